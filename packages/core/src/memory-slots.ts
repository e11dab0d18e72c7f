/** No slot: the end of the recency list. */
export const NONE = -1;
/** A set-aside slot's `prev` holds `ASIDE - its position in the heap` (see `Slots`). */
const ASIDE = -2;

/**
 * Every key of the MemoryStore, whatever its policy set: one slot per key holding the key, its owning
 * table, its place in the eviction order, and its states packed in one Float64Array at
 * `slot * stride` (a few numbers per policy, NaN when a policy has no state). All arrays, the key
 * array included, grow by doubling up to `max` slots and never past it, so their capacity is exact
 * rather than a growth policy's guess. While the store serves a single policy set (the usual case)
 * no owner array exists at all: every slot belongs to table 0.
 *
 * The eviction order has two parts (issue 9: a flood of new keys while every key was denied made
 * each eviction walk all of them):
 * - the recency list, a doubly linked list through `prev`/`next`, most recently used at `head`;
 * - the keys set aside: keys that eviction found denied at the list's tail, in a binary min-heap on
 *   the time their denial ends. A set-aside slot is in no list; its `prev` holds its heap position
 *   (`ASIDE - position`), so the heap needs no array per slot. Being used (`touch`) puts a key back
 *   at the front of the list.
 * Every set-aside key is older than every key in the list: it was the least recently used when it
 * was set aside, and keys enter the list at the front (used) or, after a refund, at the back (as the
 * oldest). Time alone only ends denials, never starts one, so a set-aside key's end time, computed
 * once, stays exact until it is used or refunded.
 */
export class Slots {
  /** The key of each slot (a long key's digest); `undefined` for a free one. */
  keys: (string | undefined)[] = new Array(16);
  /** Owning table's id per slot, once a second table exists. */
  owners: Uint32Array | undefined;
  prev = new Int32Array(16);
  next = new Int32Array(16);
  /** Numbers per slot: the widest table's width. */
  stride = 1;
  data = new Float64Array(16);
  head = NONE; // most recently used
  tail = NONE; // least recently used
  free: number[] = [];
  /** Slots ever handed out: the next new slot. */
  top = 0;
  used = 0;
  /** The heap of set-aside slots and, at the same positions, when each one's denial ends. */
  private asideSlots = new Int32Array(0);
  private asideEnds = new Float64Array(0);
  /** Keys set aside. */
  aside = 0;

  constructor(private readonly max: number) {}

  get capacity(): number {
    return this.prev.length;
  }

  allocate(key: string, owner: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.top++;
      if (slot >= this.prev.length) this.grow();
    }
    this.keys[slot] = key;
    if (this.owners !== undefined) this.owners[slot] = owner;
    this.used++;
    this.linkFront(slot);
    return slot;
  }

  ownerOf(slot: number): number {
    return this.owners === undefined ? 0 : this.owners[slot]!;
  }

  /** From now on, slots may belong to different tables (the existing ones belong to table 0). */
  trackOwners(): void {
    this.owners ??= new Uint32Array(this.prev.length);
  }

  release(slot: number): void {
    this.keys[slot] = undefined;
    this.detach(slot);
    this.free.push(slot);
    this.used--;
  }

  /** The slot was used: it becomes the most recently used. */
  touch(slot: number): void {
    if (this.head === slot) return;
    this.detach(slot);
    this.linkFront(slot);
  }

  /** Takes a slot out of the recency list until it is used, with the time its denial ends. */
  setAside(slot: number, endsAt: number): void {
    this.unlink(slot);
    if (this.aside === this.asideSlots.length) this.growAside();
    this.siftUp(this.aside++, slot, endsAt);
  }

  /** A set-aside slot whose state changed (a refund) goes back to the list, as its oldest key. */
  putBack(slot: number): void {
    if (this.prev[slot]! > ASIDE) return;
    this.removeAside(slot);
    this.linkBack(slot);
  }

  /** The set-aside slot whose denial ends first, or NONE. */
  get firstAside(): number {
    return this.aside === 0 ? NONE : this.asideSlots[0]!;
  }

  /** When the denial of `firstAside` ends (Infinity when nothing is set aside). */
  get firstAsideEnds(): number {
    return this.aside === 0 ? Number.POSITIVE_INFINITY : this.asideEnds[0]!;
  }

  /** Makes room for states `width` numbers wide (a new, wider policy set). */
  widen(width: number): void {
    if (width <= this.stride) return;
    const data = new Float64Array(this.prev.length * width);
    for (let slot = 0; slot < this.top; slot++) {
      data.set(this.data.subarray(slot * this.stride, (slot + 1) * this.stride), slot * width);
    }
    this.data = data;
    this.stride = width;
  }

  clear(): void {
    this.keys.fill(undefined);
    this.owners?.fill(0);
    this.head = NONE;
    this.tail = NONE;
    this.free = [];
    this.top = 0;
    this.used = 0;
    this.aside = 0;
  }

  /** Out of the list, or out of the heap. */
  private detach(slot: number): void {
    if (this.prev[slot]! <= ASIDE) this.removeAside(slot);
    else this.unlink(slot);
  }

  private linkFront(slot: number): void {
    this.prev[slot] = NONE;
    this.next[slot] = this.head;
    if (this.head !== NONE) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === NONE) this.tail = slot;
  }

  private linkBack(slot: number): void {
    this.next[slot] = NONE;
    this.prev[slot] = this.tail;
    if (this.tail !== NONE) this.next[this.tail] = slot;
    this.tail = slot;
    if (this.head === NONE) this.head = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }

  private removeAside(slot: number): void {
    const at = ASIDE - this.prev[slot]!;
    const last = --this.aside;
    if (at === last) return;
    const moved = this.asideSlots[last]!;
    const ends = this.asideEnds[last]!;
    if (at > 0 && this.asideEnds[(at - 1) >> 1]! > ends) this.siftUp(at, moved, ends);
    else this.siftDown(at, moved, ends);
  }

  /** Puts (slot, ends) at heap position `at` or above, moving larger parents down. */
  private siftUp(at: number, slot: number, ends: number): void {
    const { asideEnds, asideSlots } = this;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (asideEnds[parent]! <= ends) break;
      this.place(at, asideSlots[parent]!, asideEnds[parent]!);
      at = parent;
    }
    this.place(at, slot, ends);
  }

  /** Puts (slot, ends) at heap position `at` or below, moving smaller children up. */
  private siftDown(at: number, slot: number, ends: number): void {
    const { asideEnds, asideSlots, aside } = this;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= aside) break;
      if (child + 1 < aside && asideEnds[child + 1]! < asideEnds[child]!) child++;
      if (asideEnds[child]! >= ends) break;
      this.place(at, asideSlots[child]!, asideEnds[child]!);
      at = child;
    }
    this.place(at, slot, ends);
  }

  private place(at: number, slot: number, ends: number): void {
    this.asideSlots[at] = slot;
    this.asideEnds[at] = ends;
    this.prev[slot] = ASIDE - at;
  }

  private growAside(): void {
    const size = Math.min(Math.max(16, this.asideSlots.length * 2), this.max);
    const slots = new Int32Array(size);
    slots.set(this.asideSlots);
    this.asideSlots = slots;
    const ends = new Float64Array(size);
    ends.set(this.asideEnds);
    this.asideEnds = ends;
  }

  private grow(): void {
    const capacity = this.prev.length;
    const slots = Math.max(capacity + 1, Math.min(capacity * 2, this.max));
    // `new Array(n)` reserves exactly n elements (pushing would over-allocate by half).
    const keys = new Array<string | undefined>(slots);
    for (let slot = 0; slot < capacity; slot++) keys[slot] = this.keys[slot];
    this.keys = keys;
    if (this.owners !== undefined) {
      const owners = new Uint32Array(slots);
      owners.set(this.owners);
      this.owners = owners;
    }
    const prev = new Int32Array(slots);
    prev.set(this.prev);
    this.prev = prev;
    const next = new Int32Array(slots);
    next.set(this.next);
    this.next = next;
    const data = new Float64Array(slots * this.stride);
    data.set(this.data);
    this.data = data;
  }
}
