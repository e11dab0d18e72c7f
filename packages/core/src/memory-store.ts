import { STEPS } from './algorithms/index.js';
import { type AlgorithmStep, type Kernel, newOutcome, type State } from './algorithms/types.js';
import { monotonicClock } from './clock.js';
import { ConfigError, configError } from './errors.js';
import { peekOutcomes, refundStates } from './evaluate.js';
import type { Clock, Outcome, PolicySet, Store } from './types.js';

export interface MemoryStoreOptions {
  /**
   * Most keys tracked at once, over all limiters using this store. Past it, the least recently
   * used key is dropped, skipping keys that are currently denied while any other can go.
   * @default 100000
   */
  maxKeys?: number;
  /**
   * How often expired state is swept, in ms. The timer is `unref`'d: it never keeps a process alive.
   * @default 60000
   */
  sweepIntervalMs?: number;
  /** Time source in ms, for tests. @default a monotonic clock */
  clock?: Clock;
}

const OPTIONS = new Set(['maxKeys', 'sweepIntervalMs', 'clock']);
const NONE = -1;

/**
 * The keys of one policy set: an index from key to slot, and the states packed in a Float64Array at
 * `slot * width` (a few numbers per policy, NaN when a policy has no state). Slots are the store's,
 * shared by all tables, so one LRU list orders every key of the store.
 */
class Table {
  readonly index = new Map<string, number>();
  readonly width: number;
  readonly offsets: number[];
  readonly steps: AlgorithmStep[];
  readonly kernels: Kernel[];
  /** Working copies of one slot's state, for evaluating before committing. */
  readonly scratch: Float64Array;
  readonly scratch2: Float64Array;
  /** For eviction checks, which run while `scratch` holds a pending state. */
  readonly probe: Float64Array;
  data: Float64Array;

  constructor(readonly set: PolicySet) {
    this.steps = set.policies.map((p) => STEPS[p.algorithm]);
    this.offsets = [];
    let width = 0;
    for (const step of this.steps) {
      this.offsets.push(width);
      width += step.width;
    }
    this.width = width;
    this.kernels = this.steps.map((step) => step.run);
    this.scratch = new Float64Array(width);
    this.scratch2 = new Float64Array(width);
    this.probe = new Float64Array(width);
    this.data = new Float64Array(16 * width);
  }

  /** Makes room for `slot`. */
  reserve(slot: number): void {
    if ((slot + 1) * this.width <= this.data.length) return;
    let slots = this.data.length / this.width;
    while (slots <= slot) slots *= 2;
    const data = new Float64Array(slots * this.width);
    data.set(this.data);
    this.data = data;
  }

  read(slot: number): (State | undefined)[] {
    const { data, width, offsets, steps } = this;
    const base = slot * width;
    return offsets.map((offset, i) => {
      const at = base + offset;
      if (Number.isNaN(data[at]!)) return undefined;
      const state: number[] = new Array(steps[i]!.width);
      for (let j = 0; j < state.length; j++) state[j] = data[at + j]!;
      return state;
    });
  }

  write(slot: number, states: readonly (State | undefined)[]): void {
    const { data, width, offsets, steps } = this;
    const base = slot * width;
    for (let i = 0; i < offsets.length; i++) {
      const at = base + offsets[i]!;
      const state = states[i];
      if (state === undefined) data.fill(Number.NaN, at, at + steps[i]!.width);
      else data.set(state, at);
    }
  }

  /** The latest time at which any policy of this slot still has state. */
  expiresAt(slot: number): number {
    let at = 0;
    const states = this.read(slot);
    const { policies } = this.set;
    for (let i = 0; i < states.length; i++) {
      const state = states[i];
      if (state !== undefined) at = Math.max(at, this.steps[i]!.expiresAt(state, policies[i]!));
    }
    return at;
  }

  /** Loads a slot's state (or none) into `into`. */
  load(slot: number | undefined, into: Float64Array): void {
    if (slot === undefined) {
      for (const offset of this.offsets) into[offset] = Number.NaN;
    } else {
      into.set(this.data.subarray(slot * this.width, (slot + 1) * this.width));
    }
  }

  /** Would a cost-1 request be denied now? */
  isDenied(slot: number, now: number): boolean {
    const { probe, kernels, offsets } = this;
    const policies = this.set.policies;
    const out = newOutcome();
    this.load(slot, probe);
    for (let i = 0; i < kernels.length; i++) {
      if (!kernels[i]!(probe, offsets[i]!, now, policies[i]!, 1, out)) return true;
    }
    return false;
  }
}

/** One doubly linked LRU list over the store's slots, with a free list. */
class Slots {
  keys: (string | undefined)[] = [];
  owners: (Table | undefined)[] = [];
  prev = new Int32Array(16);
  next = new Int32Array(16);
  head = NONE; // most recently used
  tail = NONE; // least recently used
  free: number[] = [];
  used = 0;

  allocate(key: string, owner: Table): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.keys.length;
      if (slot >= this.prev.length) this.grow();
    }
    this.keys[slot] = key;
    this.owners[slot] = owner;
    this.used++;
    this.linkFront(slot);
    return slot;
  }

  release(slot: number): void {
    this.keys[slot] = undefined;
    this.owners[slot] = undefined;
    this.unlink(slot);
    this.free.push(slot);
    this.used--;
  }

  touch(slot: number): void {
    if (this.head === slot) return;
    this.unlink(slot);
    this.linkFront(slot);
  }

  clear(): void {
    this.keys = [];
    this.owners = [];
    this.head = NONE;
    this.tail = NONE;
    this.free = [];
    this.used = 0;
  }

  private linkFront(slot: number): void {
    this.prev[slot] = NONE;
    this.next[slot] = this.head;
    if (this.head !== NONE) this.prev[this.head] = slot;
    this.head = slot;
    if (this.tail === NONE) this.tail = slot;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!;
    const n = this.next[slot]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }

  private grow(): void {
    const prev = new Int32Array(this.prev.length * 2);
    prev.set(this.prev);
    this.prev = prev;
    const next = new Int32Array(this.next.length * 2);
    next.set(this.next);
    this.next = next;
  }
}

/**
 * The embedded default store: bounded, swept, monotonic. State lives in this process only, so with
 * several processes each enforces its own limits; use `@tollgate/redis` to share them.
 */
export class MemoryStore implements Store {
  readonly remote = false;
  private readonly maxKeys: number;
  private readonly clock: Clock;
  private readonly tables = new Map<string, Table>();
  private readonly slots = new Slots();
  /** The reused result of single-policy `consumeSync`. */
  private readonly single: [Outcome] = [newOutcome()];
  /** The table of the last set used: most stores serve one set. */
  private lastSet: PolicySet | undefined;
  private lastTable: Table | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw configError('MemoryStore options', 'an object', options);
    }
    for (const option of Object.keys(options)) {
      if (!OPTIONS.has(option)) {
        throw new ConfigError(
          `Unknown MemoryStore option \`${option}\`. It takes \`maxKeys\`, \`sweepIntervalMs\`, \`clock\`.`,
        );
      }
    }
    const { maxKeys = 100_000, sweepIntervalMs = 60_000, clock = monotonicClock } = options;
    if (!Number.isInteger(maxKeys) || maxKeys < 1)
      throw configError('maxKeys', 'a positive integer', maxKeys);
    if (!Number.isInteger(sweepIntervalMs) || sweepIntervalMs < 1 || sweepIntervalMs > 2 ** 31 - 1) {
      throw configError(
        'sweepIntervalMs',
        'a whole number of milliseconds between 1 and 2147483647',
        sweepIntervalMs,
      );
    }
    if (typeof clock !== 'function') throw configError('clock', 'a function returning milliseconds', clock);
    this.maxKeys = maxKeys;
    this.clock = clock;
    this.timer = setInterval(() => this.sweep(), sweepIntervalMs);
    this.timer.unref();
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.slots.used;
  }

  consume(key: string, set: PolicySet, cost: number): Promise<Outcome[]> {
    try {
      return Promise.resolve(this.consumeSync(key, set, cost).map((o) => ({ ...o })));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The synchronous core of `consume`; the limiter calls it directly to save a promise. For speed,
   * the array it returns may be reused by the next call: read it at once, keep nothing of it.
   */
  consumeSync(key: string, set: PolicySet, cost: number): Outcome[] {
    const now = this.now();
    const table = set === this.lastSet ? this.lastTable! : this.table(set);
    let slot = table.index.get(key);
    if (table.kernels.length !== 1) return this.consumeMany(table, key, slot, now, cost);
    const single = this.single;
    const out = single[0];
    const kernel = table.kernels[0]!;
    if (slot !== undefined) {
      kernel(table.data, slot * table.width, now, set.policies[0]!, cost, out);
      this.slots.touch(slot);
    } else {
      const scratch = table.scratch;
      scratch[0] = Number.NaN;
      if (kernel(scratch, 0, now, set.policies[0]!, cost, out)) {
        slot = this.insert(table, key, now);
        table.data.set(scratch, slot * table.width);
      }
    }
    return single;
  }

  /** Several policies, all or nothing: evaluate on a copy, commit only if every policy allows. */
  private consumeMany(
    table: Table,
    key: string,
    slot: number | undefined,
    now: number,
    cost: number,
  ): Outcome[] {
    const { kernels, offsets, scratch } = table;
    const policies = table.set.policies;
    const outcomes: Outcome[] = new Array(kernels.length);
    table.load(slot, scratch);
    let allowed = true;
    for (let i = 0; i < kernels.length; i++) {
      const out = newOutcome();
      if (!kernels[i]!(scratch, offsets[i]!, now, policies[i]!, cost, out)) allowed = false;
      outcomes[i] = out;
    }
    if (allowed) {
      if (slot === undefined) slot = this.insert(table, key, now);
      else this.slots.touch(slot);
      table.data.set(scratch, slot * table.width);
      return outcomes;
    }
    // Denied as a whole: the policies that would have allowed report their state untouched.
    const untouched = table.scratch2;
    for (let i = 0; i < kernels.length; i++) {
      const out = outcomes[i]!;
      if (!out.allowed) continue;
      table.load(slot, untouched);
      kernels[i]!(untouched, offsets[i]!, now, policies[i]!, 0, out);
      out.retryAfterMs = 0;
      out.delayMs = 0;
    }
    if (slot !== undefined) this.slots.touch(slot);
    return outcomes;
  }

  peek(key: string, set: PolicySet): Promise<Outcome[]> {
    return Promise.resolve(this.peekSync(key, set));
  }

  peekSync(key: string, set: PolicySet): Outcome[] {
    const table = this.tables.get(set.id);
    const slot = table?.index.get(key);
    const states = table === undefined || slot === undefined ? EMPTY : table.read(slot);
    return peekOutcomes(states, this.now(), set);
  }

  refund(key: string, set: PolicySet, cost: number): Promise<void> {
    const table = this.tables.get(set.id);
    const slot = table?.index.get(key);
    if (table !== undefined && slot !== undefined) {
      const states = refundStates(table.read(slot), this.now(), set, cost);
      if (states.every((s) => s === undefined)) this.drop(slot);
      else table.write(slot, states);
    }
    return Promise.resolve();
  }

  reset(key: string, set: PolicySet): Promise<void> {
    const slot = this.tables.get(set.id)?.index.get(key);
    if (slot !== undefined) this.drop(slot);
    return Promise.resolve();
  }

  /** Drops every key. */
  clear(): void {
    this.tables.clear();
    this.slots.clear();
    this.lastSet = undefined;
    this.lastTable = undefined;
  }

  /** Stops the sweep timer and drops all state. Safe to call twice. */
  close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.closed = true;
    this.clear();
    return Promise.resolve();
  }

  /** Removes every key whose state has fully expired. Runs on the timer; callable from tests. */
  sweep(): number {
    const now = this.now();
    const { owners } = this.slots;
    let removed = 0;
    for (let slot = 0; slot < owners.length; slot++) {
      const owner = owners[slot];
      if (owner !== undefined && owner.expiresAt(slot) <= now) {
        this.drop(slot);
        removed++;
      }
    }
    return removed;
  }

  /** Whole milliseconds: the algorithms' exact arithmetic assumes integer time. */
  private now(): number {
    return Math.floor(this.clock());
  }

  private table(set: PolicySet): Table {
    let table = this.tables.get(set.id);
    if (table === undefined) {
      if (this.closed) throw new ConfigError('This MemoryStore was closed; create a new one.');
      table = new Table(set);
      this.tables.set(set.id, table);
    }
    this.lastSet = set;
    this.lastTable = table;
    return table;
  }

  private insert(table: Table, key: string, now: number): number {
    if (this.slots.used >= this.maxKeys) this.evict(now);
    const slot = this.slots.allocate(key, table);
    table.index.set(key, slot);
    table.reserve(slot);
    return slot;
  }

  private drop(slot: number): void {
    const key = this.slots.keys[slot];
    const owner = this.slots.owners[slot];
    if (key === undefined || owner === undefined) return;
    owner.index.delete(key);
    this.slots.release(slot);
  }

  /**
   * Frees one key: the least recently used that is not currently denied. Evicting a denied key
   * would hand its client a fresh quota, so denied keys are moved to the front and passed over; only
   * if every key is denied does the least recently used one go. The scan is amortised (a passed-over
   * key is not looked at again until the whole list has turned), but when every tracked key is denied
   * each new key costs a pass over all of them.
   */
  private evict(now: number): void {
    const { slots } = this;
    for (let scanned = slots.used; scanned > 0; scanned--) {
      const slot = slots.tail;
      if (!slots.owners[slot]!.isDenied(slot, now)) break;
      slots.touch(slot);
    }
    this.drop(slots.tail);
  }
}

const EMPTY: readonly (State | undefined)[] = [];
