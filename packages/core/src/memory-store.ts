import { STEPS } from './algorithms/index.js';
import {
  type AlgorithmStep,
  type Kernel,
  type LeaseSet,
  newOutcome,
  type State,
} from './algorithms/types.js';
import { BAN_WIDTH, banExpiresAt, banLeft, setBan } from './ban/kernel.js';
import { checkOptions, durationOption } from './check-options.js';
import { monotonicClock } from './clock.js';
import { configError, StoreError } from './errors.js';
import {
  ALLOWED,
  applyAll,
  applyBanned,
  COUNTED,
  peekOutcomes,
  refundStates,
  settleStates,
  takeSlot,
} from './evaluate.js';
import { keyDigest } from './key-digest.js';
import { NONE, Slots } from './memory-slots.js';
import type {
  Clock,
  ConsumeInfo,
  Duration,
  Outcome,
  PolicySet,
  ResolvedBan,
  Settlement,
  Store,
} from './types.js';

/** Options of `new MemoryStore()`. */
export interface MemoryStoreOptions {
  /**
   * Most keys tracked at once, over all limiters using this store. Past it, the least recently
   * used key that is not currently denied is dropped; when every key is denied, the one whose
   * denial ends first.
   * @default 100000
   */
  maxKeys?: number;
  /**
   * How often expired state is swept: milliseconds or a duration string (`'30s'`). The timer is
   * `unref`'d: it never keeps a process alive.
   * @default 60000
   */
  sweepIntervalMs?: Duration;
  /** Time source in ms, for tests. @default a monotonic clock */
  clock?: Clock;
}

const OPTIONS = ['maxKeys', 'sweepIntervalMs', 'clock'];

/** Every call on a closed store: a StoreError, as a closed RedisStore answers. */
const closedError = () => new StoreError('This MemoryStore was closed; create a new one.');

/**
 * Keys longer than this many characters are held as their SHA-256 digest (43 characters), the
 * bound the Redis store uses too, so `maxKeys` also bounds bytes: 15 KB header values held 1.45 GB
 * at 100 000 keys (issue 9). Shorter keys, which is nearly all (`ip:…`, `key:<digest>`, a tenant
 * id), are held as they are and cost no hashing.
 */
const MAX_KEY_LENGTH = 100;
/** The keys of one policy set: an index from key to slot, and how its states are laid out. */
class Table {
  /** Keys of at most MAX_KEY_LENGTH characters, as they are. */
  readonly index = new Map<string, number>();
  /** Longer keys, by digest: a map of their own, so no short key can be taken for one. */
  readonly digests = new Map<string, number>();
  readonly width: number;
  readonly offsets: number[];
  /** Where the ban slot starts (after the policies' states); -1 for a set without bans. */
  readonly banAt: number;
  readonly steps: AlgorithmStep[];
  readonly kernels: Kernel[];
  /** Working copies of one slot's state, for evaluating before committing. */
  readonly scratch: Float64Array;
  readonly scratch2: Float64Array;
  /** For eviction checks, which run while `scratch` holds a pending state. */
  readonly probe: Float64Array;
  readonly out = newOutcome();
  /**
   * The requests in flight of the set's concurrency policy, per slot holding any (undefined when
   * the set has no such policy): beside the packed state, whose width is fixed.
   */
  readonly leases: Map<number, LeaseSet> | undefined;

  constructor(
    readonly set: PolicySet,
    readonly id: number,
    private readonly slots: Slots,
  ) {
    this.steps = set.policies.map((p) => STEPS[p.algorithm]);
    this.offsets = [];
    let width = 0;
    for (const step of this.steps) {
      this.offsets.push(width);
      width += step.width;
    }
    this.banAt = set.ban === undefined ? -1 : width;
    if (set.ban !== undefined) width += BAN_WIDTH;
    this.width = width;
    this.kernels = this.steps.map((step) => step.run);
    this.scratch = new Float64Array(width);
    this.scratch2 = new Float64Array(width);
    this.probe = new Float64Array(width);
    this.leases = set.holder < 0 ? undefined : new Map();
    slots.widen(width);
  }

  /** The requests in flight of `slot` (none for a new key or a set without concurrency policy). */
  leasesAt(slot: number | undefined): LeaseSet | undefined {
    return slot === undefined ? undefined : this.leases?.get(slot);
  }

  /** The slot holding `key`, if any. */
  find(key: string): number | undefined {
    return key.length > MAX_KEY_LENGTH ? this.digests.get(keyDigest(key)) : this.index.get(key);
  }

  /** Every policy's state and, with bans, the ban slot last. */
  read(slot: number): (State | undefined)[] {
    const { data, stride } = this.slots;
    const base = slot * stride;
    const piece = (at: number, width: number) => {
      if (Number.isNaN(data[at]!)) return undefined;
      const state: number[] = new Array(width);
      for (let j = 0; j < width; j++) state[j] = data[at + j]!;
      return state;
    };
    const states = this.offsets.map((offset, i) => piece(base + offset, this.steps[i]!.width));
    if (this.banAt >= 0) states.push(piece(base + this.banAt, BAN_WIDTH));
    return states;
  }

  /** Writes the states `read` gives (the ban slot last, when the set has bans). */
  write(slot: number, states: readonly (State | undefined)[]): void {
    const { data, stride } = this.slots;
    const base = slot * stride;
    const put = (at: number, width: number, state: State | undefined) => {
      if (state === undefined) data.fill(Number.NaN, at, at + width);
      else data.set(state, at);
    };
    for (let i = 0; i < this.offsets.length; i++) {
      put(base + this.offsets[i]!, this.steps[i]!.width, states[i]);
    }
    if (this.banAt >= 0) put(base + this.banAt, BAN_WIDTH, states[this.offsets.length]);
  }

  /** Copies the ban slot of `from` (a working copy) into the slot; for a new slot, no policy state. */
  commitBan(slot: number, from: Float64Array, fresh: boolean): void {
    const { data, stride } = this.slots;
    const base = slot * stride;
    if (fresh) for (const offset of this.offsets) data[base + offset] = Number.NaN;
    for (let i = 0; i < BAN_WIDTH; i++) data[base + this.banAt + i] = from[this.banAt + i]!;
  }

  /** Copies `from` (a working copy) into the slot. */
  commit(slot: number, from: Float64Array): void {
    this.slots.data.set(from, slot * this.slots.stride);
  }

  /** The latest time at which any policy of this slot, or its ban, still has state. */
  expiresAt(slot: number): number {
    let at = 0;
    const states = this.read(slot);
    const { policies } = this.set;
    for (let i = 0; i < policies.length; i++) {
      const state = states[i];
      if (state !== undefined) at = Math.max(at, this.steps[i]!.expiresAt(state, policies[i]!));
    }
    if (this.banAt >= 0) at = Math.max(at, this.banExpiresAt(slot));
    return at;
  }

  /** When the slot's ban state stops mattering (0: none). */
  banExpiresAt(slot: number): number {
    const { data, stride } = this.slots;
    return banExpiresAt(data, slot * stride + this.banAt, this.set.ban!);
  }

  /** Loads a slot's state (or none) into `into`. */
  load(slot: number | undefined, into: Float64Array): void {
    if (slot === undefined) {
      for (const offset of this.offsets) into[offset] = Number.NaN;
      if (this.banAt >= 0) into[this.banAt] = Number.NaN;
    } else {
      // A loop rather than `set(subarray(...))`: no view object per call (eviction calls this once
      // per key it examines).
      const { data, stride } = this.slots;
      const at = slot * stride;
      for (let i = 0; i < this.width; i++) into[i] = data[at + i]!;
    }
  }

  /** When a cost-1 request from this slot will be allowed: `now` if it would be allowed now. */
  deniedUntil(slot: number, now: number): number {
    const { probe, kernels, offsets, out } = this;
    const policies = this.set.policies;
    this.load(slot, probe);
    // A denied request consumes nothing and time alone never denies, so each policy that denies now
    // allows from its own retry time on, and the set allows once the last of them does; a banned
    // key, once its ban has ended too.
    let until = this.banAt >= 0 ? now + banLeft(probe, this.banAt, now) : now;
    const leases = this.leasesAt(slot);
    for (let i = 0; i < kernels.length; i++) {
      if (!kernels[i]!(probe, offsets[i]!, now, policies[i]!, 1, out, leases)) {
        until = Math.max(until, now + Math.max(1, out.retryAfterMs));
      }
    }
    // Evicting a key that holds requests in flight would free their slots: it is kept like a
    // denied one until its last lease ends (a release puts it back in the list).
    if (leases !== undefined && leases.live(now) > 0) until = Math.max(until, leases.lastEnd());
    return until;
  }
}

/**
 * The embedded default store: bounded, swept, monotonic. State lives in this process only, so with
 * several processes each enforces its own limits; use `@tollgate/redis` to share them.
 */
export class MemoryStore implements Store {
  readonly remote = false;
  private readonly maxKeys: number;
  /** The time source (the limiter's denied-key cache follows it). */
  readonly clock: Clock;
  private readonly tables = new Map<string, Table>();
  private readonly byId: Table[] = [];
  private readonly slots: Slots;
  /** The reused result of single-policy `consumeSync`. */
  private readonly single: [Outcome] = [newOutcome()];
  /** The table of the last set used: most stores serve one set. */
  private lastSet: PolicySet | undefined;
  private lastTable: Table | undefined;
  /** The last lease id handed out: ids only need to differ within one key's leases. */
  private leaseIds = 0;
  private timer: ReturnType<typeof setInterval> | undefined;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    checkOptions(options, OPTIONS, '`MemoryStore` options');
    const { maxKeys = 100_000, clock = monotonicClock } = options;
    if (!Number.isInteger(maxKeys) || maxKeys < 1)
      throw configError('maxKeys', 'a positive integer', maxKeys);
    const sweepIntervalMs = durationOption(options.sweepIntervalMs, 'sweepIntervalMs', 60_000);
    if (typeof clock !== 'function') throw configError('clock', 'a function returning milliseconds', clock);
    this.maxKeys = maxKeys;
    this.slots = new Slots(maxKeys);
    this.clock = clock;
    this.timer = setInterval(() => this.sweep(), sweepIntervalMs);
    // Where timers are numbers (browsers, jsdom, some test environments) there is nothing to unref.
    if (typeof this.timer.unref === 'function') this.timer.unref();
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.slots.used;
  }

  consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Promise<Outcome[]> {
    try {
      return Promise.resolve(this.consumeSync(key, set, cost, info).map((o) => ({ ...o })));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * The synchronous core of `consume`; the limiter calls it directly to save a promise. For speed,
   * the array it returns may be reused by the next call: read it at once, keep nothing of it.
   */
  consumeSync(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Outcome[] {
    const now = this.now();
    if (info !== undefined) info.countedAt = now;
    const table = set === this.lastSet ? this.lastTable! : this.table(set);
    const long = key.length > MAX_KEY_LENGTH;
    if (long) key = keyDigest(key);
    let slot = (long ? table.digests : table.index).get(key);
    if (set.ban !== undefined)
      return this.consumeBanned(table, set, set.ban, key, long, slot, now, cost, info);
    if (table.kernels.length !== 1) return this.consumeMany(table, set, key, long, slot, now, cost, info);
    const single = this.single;
    const out = single[0];
    const kernel = table.kernels[0]!;
    if (slot !== undefined) {
      const slots = this.slots;
      const leases = table.leases === undefined ? undefined : table.leases.get(slot);
      if (kernel(slots.data, slot * slots.stride, now, set.policies[0]!, cost, out, leases)) {
        if (table.leases !== undefined) this.hold(table, slot, now, cost, info);
      }
      slots.touch(slot);
    } else {
      const scratch = table.scratch;
      scratch[0] = Number.NaN;
      if (kernel(scratch, 0, now, set.policies[0]!, cost, out)) {
        slot = this.insert(table, key, long, now);
        table.commit(slot, scratch);
        if (table.leases !== undefined) this.hold(table, slot, now, cost, info);
      }
    }
    return single;
  }

  /**
   * Several policies, all or nothing (`applyAll`): evaluate on a copy, commit only if every enforced
   * policy allows. `set`, not `table.set`: sets differing only in their policies' modes share a table.
   */
  private consumeMany(
    table: Table,
    set: PolicySet,
    key: string,
    long: boolean,
    slot: number | undefined,
    now: number,
    cost: number,
    info: ConsumeInfo | undefined,
  ): Outcome[] {
    const { kernels, offsets, scratch } = table;
    const outcomes: Outcome[] = new Array(kernels.length);
    table.load(slot, scratch);
    const reload = (into: Float64Array) => table.load(slot, into);
    const leases = table.leasesAt(slot);
    if (
      applyAll(kernels, offsets, set.policies, scratch, reload, table.scratch2, now, cost, outcomes, leases)
    ) {
      if (slot === undefined) slot = this.insert(table, key, long, now);
      else this.slots.touch(slot);
      table.commit(slot, scratch);
      if (table.leases !== undefined) this.hold(table, slot, now, cost, info);
      return outcomes;
    }
    if (slot !== undefined) this.slots.touch(slot);
    return outcomes;
  }

  /**
   * A set with bans (`applyBanned`): a banned key is answered from its ban slot; a denial is
   * counted in it, and stored even when the key had no state (its policies' states stay as they
   * were: a denial consumes nothing).
   */
  private consumeBanned(
    table: Table,
    set: PolicySet,
    ban: ResolvedBan,
    key: string,
    long: boolean,
    slot: number | undefined,
    now: number,
    cost: number,
    info: ConsumeInfo | undefined,
  ): Outcome[] {
    const { kernels, offsets, scratch } = table;
    const outcomes: Outcome[] = new Array(kernels.length);
    table.load(slot, scratch);
    const reload = (into: Float64Array) => table.load(slot, into);
    const verdict = applyBanned(
      kernels,
      offsets,
      set.policies,
      scratch,
      reload,
      table.scratch2,
      now,
      cost,
      outcomes,
      ban,
      table.banAt,
      info,
      table.leasesAt(slot),
    );
    if (verdict === ALLOWED || verdict === COUNTED) {
      const fresh = slot === undefined;
      if (slot === undefined) slot = this.insert(table, key, long, now);
      else this.slots.touch(slot);
      if (verdict === ALLOWED) {
        table.commit(slot, scratch);
        if (table.leases !== undefined) this.hold(table, slot, now, cost, info);
      } else table.commitBan(slot, scratch, fresh);
    } else if (slot !== undefined) {
      this.slots.touch(slot);
    }
    return outcomes;
  }

  peek(key: string, set: PolicySet, info?: ConsumeInfo): Promise<Outcome[]> {
    try {
      return Promise.resolve(this.peekSync(key, set, info));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  peekSync(key: string, set: PolicySet, info?: ConsumeInfo): Outcome[] {
    if (this.closed) throw closedError();
    const table = this.tables.get(set.id);
    const slot = table?.find(key);
    const states = table === undefined || slot === undefined ? EMPTY : table.read(slot);
    return peekOutcomes(states, this.now(), set, info, table?.leasesAt(slot));
  }

  ban(key: string, set: PolicySet, durationMs: number): Promise<{ until: number; offence: number }> {
    try {
      const table = this.banTable(set);
      const now = this.now();
      const long = key.length > MAX_KEY_LENGTH;
      const found = long ? keyDigest(key) : key;
      let slot = (long ? table.digests : table.index).get(found);
      const fresh = slot === undefined;
      const { scratch, banAt } = table;
      table.load(slot, scratch);
      setBan(scratch, banAt, now, durationMs, set.ban!);
      if (slot === undefined) slot = this.insert(table, found, long, now);
      else this.slots.touch(slot);
      table.commitBan(slot, scratch, fresh);
      return Promise.resolve({ until: now + durationMs, offence: scratch[banAt + 1]! });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  unban(key: string, set: PolicySet): Promise<void> {
    try {
      const table = this.banTable(set);
      const slot = table.find(key);
      if (slot !== undefined) {
        const states = table.read(slot);
        states[set.policies.length] = undefined;
        if (states.every((s) => s === undefined)) this.drop(slot);
        else {
          table.write(slot, states);
          this.slots.putBack(slot);
        }
      }
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The table of a set with bans (`ban`, `unban`). */
  private banTable(set: PolicySet): Table {
    if (set.ban === undefined) {
      throw new StoreError('This policy set has no bans: give the limiter a `ban` option.');
    }
    return this.table(set);
  }

  /**
   * Holds the lease of a request `set` allowed as a whole, if it takes a slot of the set's
   * concurrency policy; its id goes to `info`.
   */
  private hold(table: Table, slot: number, now: number, cost: number, info: ConsumeInfo | undefined): void {
    const leases = table.leases!;
    let held = leases.get(slot);
    if (held === undefined) {
      held = STEPS[table.set.policies[table.set.holder]!.algorithm].holds!.create();
      leases.set(slot, held);
    }
    const id = String(++this.leaseIds);
    if (takeSlot(table.set, held, id, now, cost) && info !== undefined) info.lease = id;
  }

  release(key: string, set: PolicySet, lease: string): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    const now = this.now();
    const table = this.tables.get(set.id);
    const slot = table?.find(key);
    // A set-aside key's hold may now end earlier than when it was set aside.
    if (slot !== undefined && table!.leasesAt(slot)?.remove(lease)) this.slots.putBack(slot);
    return Promise.resolve(now);
  }

  refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const table = this.tables.get(set.id);
    const slot = table?.find(key);
    if (table !== undefined && slot !== undefined) {
      const now = this.now();
      const states = refundStates(table.read(slot), now, set, cost, countedAt);
      if (states.every((s) => s === undefined)) this.drop(slot);
      else {
        table.write(slot, states);
        // A set-aside key's denial may now end earlier than when it was set aside.
        this.slots.putBack(slot);
      }
    }
    return Promise.resolve();
  }

  settle(key: string, set: PolicySet, delta: number, countedAt?: number): Promise<Settlement> {
    try {
      return Promise.resolve(this.settleSync(key, set, delta, countedAt));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private settleSync(key: string, set: PolicySet, delta: number, countedAt?: number): Settlement {
    if (this.closed) throw closedError();
    const now = this.now();
    const table = this.table(set);
    let slot = table.find(key);
    const before = slot === undefined ? EMPTY : table.read(slot);
    const leases = table.leasesAt(slot);
    const { states, uncharged } = settleStates(before, now, set, delta, countedAt);
    if (states.every((s) => s === undefined)) {
      if (slot !== undefined) this.drop(slot);
    } else {
      if (slot === undefined) {
        const long = key.length > MAX_KEY_LENGTH;
        slot = this.insert(table, long ? keyDigest(key) : key, long, now);
      } else {
        this.slots.touch(slot);
      }
      table.write(slot, states);
    }
    return { outcomes: peekOutcomes(states, now, set, undefined, leases), uncharged };
  }

  reset(key: string, set: PolicySet): Promise<void> {
    if (this.closed) return Promise.reject(closedError());
    const slot = this.tables.get(set.id)?.find(key);
    if (slot !== undefined) this.drop(slot);
    return Promise.resolve();
  }

  /** Drops every key. */
  clear(): void {
    this.tables.clear();
    this.byId.length = 0;
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
    const { slots } = this;
    let removed = 0;
    for (let slot = 0; slot < slots.top; slot++) {
      if (slots.keys[slot] !== undefined && this.byId[slots.ownerOf(slot)]!.expiresAt(slot) <= now) {
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
      if (this.closed) throw closedError();
      if (this.byId.length === 1) this.slots.trackOwners();
      table = new Table(set, this.byId.length, this.slots);
      this.byId.push(table);
      this.tables.set(set.id, table);
    }
    this.lastSet = set;
    this.lastTable = table;
    return table;
  }

  /** `key` is the digest of a long key (`long`). */
  private insert(table: Table, key: string, long: boolean, now: number): number {
    if (this.slots.used >= this.maxKeys) this.evict(now);
    const slot = this.slots.allocate(key, table.id);
    (long ? table.digests : table.index).set(key, slot);
    return slot;
  }

  private drop(slot: number): void {
    const key = this.slots.keys[slot];
    if (key === undefined) return;
    const table = this.byId[this.slots.ownerOf(slot)]!;
    // A short key may spell some long key's digest; only the map that points here holds this slot.
    if (table.index.get(key) === slot) table.index.delete(key);
    else table.digests.delete(key);
    table.leases?.delete(slot);
    this.slots.release(slot);
  }

  /**
   * Frees one key. Evicting a denied key would hand its client a fresh quota, so the least recently
   * used key that is not denied goes:
   * 1. a set-aside key whose denial has ended (they are older than every key in the list), the one
   *    whose denial ended first;
   * 2. else the least recently used key of the list that is not denied; each denied key met on the
   *    way is set aside and not looked at again until it is used, so a key is examined at most once
   *    per use, whatever the mix of denied and open keys;
   * 3. else, when every key is denied, the set-aside key whose denial ends first: its client gets
   *    back the least quota it had not earned yet.
   */
  private evict(now: number): void {
    const { slots } = this;
    if (slots.firstAsideEnds <= now) {
      this.drop(slots.firstAside);
      return;
    }
    for (let slot = slots.tail; slot !== NONE; slot = slots.tail) {
      const until = this.byId[slots.ownerOf(slot)]!.deniedUntil(slot, now);
      if (until <= now) {
        this.drop(slot);
        return;
      }
      slots.setAside(slot, until);
    }
    this.drop(slots.firstAside);
  }
}

const EMPTY: readonly (State | undefined)[] = [];
