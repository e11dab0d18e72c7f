import { randomBytes } from 'node:crypto';
import {
  type Clock,
  type ConsumeInfo,
  configError,
  type Duration,
  durationOption,
  type LiftListener,
  liftId,
  type Outcome,
  type PolicySet,
  type Settlement,
  STEPS,
  type Store,
  StoreError,
  type StoreErrorScope,
} from '@tollgate/core/internal';
import { type Connection, isLate, isNoScript, type RedisClientLike, storeOptions } from './clients.js';
import { Deadlines, type Pending } from './deadlines.js';
import { BAN, encodeKey, type Layout, LEASES_SUFFIX, layoutFor, type PeriodSlot } from './layout.js';
import { type LiftHub, liftHub } from './lift-hub.js';
import { PERIOD_MISS } from './lua/scripts.js';
import { RedisTime } from './redis-time.js';
import { keySlot } from './slot.js';

/** Options of `new RedisStore()`. */
export interface RedisStoreOptions {
  /**
   * A client: an ioredis `Redis` or `Cluster` (5.x), or a node-redis client (`createClient`) or
   * cluster (`createCluster`), v4.6+ or v5. The store never quits or reconfigures it: you own it.
   * Pass it inside the options (`new RedisStore({ client })`).
   *
   * While the client connects for the first time (just created, or `lazyConnect`, which the first
   * call starts), calls wait for it, up to `timeoutMs`. Once it has been ready, a client that is not
   * (reconnecting) fails calls at once: nothing ever waits in the client's offline queue, which
   * would replay stale requests after a reconnect. ioredis also sends again, after a reconnect, the
   * commands that got no answer (`autoResendUnfulfilledCommands`): every script carries its call's
   * deadline in Redis time (read from the scripts' replies, see RedisTime), so a command that reaches
   * Redis after the store gave up on it changes nothing. On a node-redis cluster (which tells only
   * whether it is open, not whether each node is connected) set
   * `defaults: { disableOfflineQueue: true }`.
   *
   * One command per call, written as the client writes it; ioredis's `enableAutoPipelining` lets
   * concurrent calls share socket writes.
   */
  client: RedisClientLike;
  /**
   * Prepended to every key: at most 64 printable ASCII characters, no spaces and no `{` or `}`
   * (the store puts the cluster hash tag after it).
   * @default 'tollgate:'
   */
  prefix?: string;
  /**
   * Time source in ms, passed to the scripts as `now`; for tests with a virtual clock. Without it
   * the scripts read Redis `TIME`, so clock skew between app servers does not matter. With it, keys
   * live a minute longer than their state, so that a clock slower than Redis's (a virtual one) never
   * sees state expire early.
   * @default Redis TIME
   */
  clock?: Clock;
  /**
   * A call that has not answered within this many ms fails with a `StoreError`, so a Redis that
   * stopped answering never holds requests up (the limiter then fails open, or as configured).
   * Long enough to ride out a GC pause or a brief network stall, short enough to bound the damage.
   * Milliseconds or a duration string (`'500ms'`, `'2s'`).
   * @default 500
   */
  timeoutMs?: Duration;
  /**
   * Called with every `StoreError` (connection, script error, timeout) before it is thrown, and
   * with the failures of the store's subscriber connection (see `onLift`), which nothing throws.
   */
  onError?: (error: StoreError) => void;
}

const OPTIONS = ['client', 'prefix', 'clock', 'timeoutMs', 'onError'];

type Operation = 'consume' | 'peek' | 'refund' | 'settle' | 'reset' | 'ban' | 'unban' | 'release';

/** A request in flight: everything it needs to send, resend after NOSCRIPT, time out and answer. */
interface Call extends Pending {
  readonly operation: Operation;
  readonly layout: Layout;
  readonly key: string;
  /** The key of the set's leases, for a set with a concurrency policy (a release has it as `key`). */
  readonly key2: string | undefined;
  /** consume of a set with a concurrency policy: the request's lease id, if it takes a slot. */
  readonly lease: string | undefined;
  readonly set: PolicySet;
  /** The script's ARGV: now, cost, the layout's part, the deadline (see GUARD in clients.ts). */
  readonly argv: string[];
  /** Where the layout's part of `argv` begins (a calendar period is filled in there). */
  readonly base: number;
  /** How often the script found Redis time outside the calendar periods sent (see PERIOD_MISS). */
  misses: number;
  /** The Redis Cluster slot of its keys (-1 on a single server): whose clock its deadline is in. */
  readonly slot: number;
  /** consume, peek: receives Redis's time of the decision and the key's ban. */
  readonly info: ConsumeInfo | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: StoreError) => void;
}

/**
 * Resends of one call with the calendar period that holds the time Redis replied with: one is
 * enough unless Redis's clock crosses a boundary in between (or jumps); past this, the call fails.
 */
const MAX_PERIOD_MISSES = 2;

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Errors that fail one request alone (issue 9): a key of another type, a state the scripts cannot
 * read, and OOM, a write refused when Redis is full with `noeviction` (the scripts read before they
 * write, so a denial, which writes nothing, is still answered: a blocked client stays blocked).
 * Anything else (a timeout, a lost connection, READONLY, LOADING, CLUSTERDOWN, an unknown error) is
 * taken to affect every key it can reach.
 */
const KEY_ERROR = /^(WRONGTYPE|ERR tollgate:|OOM )/;

/**
 * Policy state in Redis, shared by every process using the same Redis: one EVALSHA per request
 * runs all policies of a key atomically (Lua twins of the core algorithms, all or nothing), on
 * standalone Redis or Redis Cluster.
 */
export class RedisStore implements Store {
  readonly remote = true;
  private readonly connection: Connection;
  private readonly prefix: string;
  /** The `clock` option, if given (the limiter's denied-key cache follows it). */
  readonly clock: Clock | undefined;
  private readonly onError: ((error: StoreError) => void) | undefined;
  private readonly deadlines: Deadlines<Call>;
  private readonly layouts = new WeakMap<PolicySet, Layout>();
  private readonly timeoutMs: number;
  private closed = false;
  /** The client was ready at some call: from then on a client that is not ready fails at once. */
  private wasReady = false;
  /** Calls made while the client connects for the first time wait for this. */
  private waiting: Promise<boolean> | undefined;
  /** Redis's clock as read from TIME and the scripts' replies (per slot on a Cluster). */
  private readonly time: RedisTime;
  /** Lease ids: this store's random prefix and a counter, so ids of every process differ. */
  private readonly leasePrefix = randomBytes(9).toString('base64url');
  private leases = 0;
  /** The channel of lifted bans: `${prefix}bans:lifted`. */
  private readonly channel: string;
  /** The client, by which stores on it share one subscriber for lifted bans (see `LiftHub`). */
  private readonly client: object;
  /** The shared subscriber this store's limiters listen to, from the first `onLift`. */
  private hub: LiftHub | undefined;
  /** This store's `onError` for its subscriber's failures (and its name in the hub). */
  private readonly reportLifts = (error: Error): void => {
    this.failure('subscribe', error);
  };

  constructor(options: RedisStoreOptions) {
    const { connection, prefix } = storeOptions(options, OPTIONS, 'RedisStore');
    this.client = options.client as object;
    const { clock, onError } = options;
    const timeoutMs = durationOption(options.timeoutMs, 'timeoutMs', 500);
    if (clock !== undefined && typeof clock !== 'function') {
      throw configError('clock', 'a function returning milliseconds', clock);
    }
    if (onError !== undefined && typeof onError !== 'function') {
      throw configError('onError', 'a function', onError);
    }
    this.connection = connection;
    this.time = new RedisTime(connection.cluster);
    this.prefix = prefix;
    this.channel = `${prefix}bans:lifted`;
    this.clock = clock;
    this.onError = onError;
    this.timeoutMs = timeoutMs;
    this.deadlines = new Deadlines<Call>(timeoutMs, (call) => {
      // Answered now as failed; if the client sends it again later, its deadline makes it a no-op.
      call.reject(
        this.failure(call.operation, new Error(`no reply from Redis within ${timeoutMs} ms`), this.reach),
      );
    });
  }

  consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Promise<Outcome[]> {
    return this.call('consume', key, set, cost, info) as Promise<Outcome[]>;
  }

  peek(key: string, set: PolicySet, info?: ConsumeInfo): Promise<Outcome[]> {
    return this.call('peek', key, set, 1, info) as Promise<Outcome[]>;
  }

  refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void> {
    return this.call('refund', key, set, cost, undefined, countedAt) as Promise<void>;
  }

  settle(key: string, set: PolicySet, delta: number, countedAt?: number): Promise<Settlement> {
    return this.call('settle', key, set, delta, undefined, countedAt) as Promise<Settlement>;
  }

  /** Forgets `key`'s state under `set`: one DEL, then with bans the PUBLISH `unban` sends. */
  reset(key: string, set: PolicySet): Promise<void> {
    const done = this.call('reset', key, set, 0) as Promise<void>;
    return set.ban === undefined ? done : done.then(() => this.announce('reset', key, set));
  }

  /**
   * Bans `key` under `set` (a set with bans) for `durationMs` from Redis's now: one EVALSHA, then
   * the PUBLISH `unban` sends, since the new ban replaces any ban the key had (a shorter one
   * shortens it): every process that knew the old one forgets it and asks Redis once.
   */
  ban(key: string, set: PolicySet, durationMs: number): Promise<{ until: number; offence: number }> {
    return (this.call('ban', key, set, durationMs) as Promise<{ until: number; offence: number }>).then(
      (state) => this.announce('ban', key, set).then(() => state),
    );
  }

  /** Frees lease `lease` of the set's concurrency policy: one command. Resolves with Redis's time. */
  release(key: string, set: PolicySet, lease: string): Promise<number> {
    return this.call('release', key, set, 0, undefined, lease) as Promise<number>;
  }

  /**
   * Lifts `key`'s ban under `set`, keeping its policies' counts: one EVALSHA, then a PUBLISH that
   * tells every process (see `onLift`); resolves once Redis has passed it on to the subscribers.
   */
  unban(key: string, set: PolicySet): Promise<void> {
    return (this.call('unban', key, set, 0) as Promise<void>).then(() => this.announce('unban', key, set));
  }

  /**
   * Tells this process of bans lifted by any process sharing Redis (`unban`, `reset` of a set with
   * bans, and `ban`, which PUBLISH on the channel `${prefix}bans:lifted` the key's `liftId`). The
   * first listener (a limiter with bans) makes the subscriber connection, a `duplicate()` of the
   * client (on a Cluster, of one master's client), once the client is ready; every RedisStore on
   * one client with one prefix shares it. It closes when the last listener of those stores leaves
   * (`close()` of the stores or the limiters), or when your client ends (quit, disconnect), and a
   * node-redis one is `unref`'d. Its failures go to `onError`; while it is not subscribed the
   * listeners are told so, and limiters trust known bans for `ban.recheck` only.
   */
  onLift(listener: LiftListener): () => void {
    if (this.closed) return () => undefined;
    this.hub ??= liftHub(this.client, this.connection, this.channel);
    return this.hub.add(listener, this.reportLifts);
  }

  /**
   * Stops this store: later calls fail with a `StoreError`, and its limiters stop listening for
   * lifted bans (the subscriber closes if no other store on the client uses it). The client is
   * yours and stays connected; quit it yourself.
   */
  close(): void {
    this.closed = true;
    this.hub?.leave(this.reportLifts);
  }

  /**
   * After an unban, a reset of a set with bans or a ban: PUBLISH the key's `liftId`, so that every
   * process forgets the ban it knew (see `onLift`), within `timeoutMs`. A failure fails the call:
   * the ban is lifted (or replaced) in Redis, but processes that know the old one may go on refusing
   * the key until it ends; call it again.
   */
  private announce(operation: Operation, key: string, set: PolicySet): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (error: unknown) =>
        reject(
          this.failure(
            operation,
            new Error(
              `the ban was ${operation === 'ban' ? 'stored' : 'lifted'} in Redis, but telling the other processes failed (${describe(error)}); call it again`,
            ),
          ),
        );
      const timer = setTimeout(() => fail(`no reply from Redis within ${this.timeoutMs} ms`), this.timeoutMs);
      const id = liftId(key, set);
      // Asked for before the PUBLISH: the news may come back on the subscriber before its reply.
      const heard = this.hub?.heard(id, this.timeoutMs);
      let reply: Promise<unknown>;
      try {
        reply = this.connection.publish(this.channel, id);
      } catch (error) {
        reply = Promise.reject(error);
      }
      reply.then(
        () => {
          clearTimeout(timer);
          // Resolved once this process's own subscriber has the news too (at most timeoutMs more):
          // Redis writes it to every subscriber in the same pass, so by then it has gone out to all.
          if (heard === undefined) resolve();
          else heard.then(resolve);
        },
        (error: unknown) => {
          clearTimeout(timer);
          fail(error);
        },
      );
    });
  }

  /**
   * On Redis Cluster, the master that holds `key`'s state (`host:port`): a master that fails takes
   * only its own keys into the limiter's failing state. One name for the whole store elsewhere.
   */
  shardOf(key: string, set: PolicySet): string {
    return this.connection.cluster ? this.connection.shardOf(this.keyFor(key, set)) : 'redis';
  }

  /** What a failure to reach Redis for one call takes down: on Cluster, that call's master. */
  private get reach(): StoreErrorScope {
    return this.connection.cluster ? 'shard' : 'store';
  }

  /** The Redis key holding `key`'s state under `set` (for inspection and tests). */
  keyFor(key: string, set: PolicySet): string {
    const layout = this.layout(set);
    return layout.head + encodeKey(key) + layout.tail;
  }

  private layout(set: PolicySet): Layout {
    let layout = this.layouts.get(set);
    if (layout === undefined) {
      layout = layoutFor(set, this.prefix);
      this.layouts.set(set, layout);
    }
    return layout;
  }

  /** The caller's time in whole ms (the arithmetic is integer), or undefined for Redis TIME. */
  private now(): number | undefined {
    if (this.clock === undefined) return undefined;
    const now = Math.floor(this.clock());
    if (!Number.isFinite(now)) throw new Error(`the \`clock\` option returned ${now}`);
    return now;
  }

  /**
   * Redis time as this process can tell it without asking (see RedisTime), else this machine's
   * clock. Only where a calendar period is sent, which the script checks against TIME itself (see
   * PERIOD_MISS).
   */
  private redisNow(): number {
    return this.time.now();
  }

  /**
   * Runs `operation` for one key: one command, bounded by `timeoutMs`, every failure a StoreError.
   * The hot path of every request, so it allocates little: one Call, the promise and two handlers.
   * `detail`: a refund's or a settle's `countedAt`, or the lease id a release lets go.
   */
  private call(
    operation: Operation,
    key: string,
    set: PolicySet,
    cost: number,
    info?: ConsumeInfo,
    detail?: number | string,
  ): Promise<unknown> {
    const unavailable = this.closed ? 'the store was closed' : this.connection.notReady();
    if (unavailable !== undefined) {
      const waiting = this.wasReady || this.closed ? undefined : this.firstConnect();
      if (waiting !== undefined) return this.afterConnect(waiting, operation, key, set, cost, info, detail);
      return Promise.reject(this.failure(operation, new Error(`Redis unavailable: ${unavailable}`)));
    }
    this.wasReady = true;
    this.hub?.poke();
    const layout = this.layout(set);
    if ((operation === 'ban' || operation === 'unban') && !layout.ban) {
      return Promise.reject(
        this.failure(operation, new Error('this policy set has no bans: give the limiter a `ban` option')),
      );
    }
    const argv: string[] = [];
    let now: number | undefined;
    try {
      now = this.now();
    } catch (error) {
      return Promise.reject(this.failure(operation, error));
    }
    argv.push(now === undefined ? '' : String(now));
    const stateKey = layout.head + encodeKey(key) + layout.tail;
    // The release script's ARGV: now, the lease id; its one key, the sorted set of leases.
    if (operation === 'release') argv.push(String(detail));
    else argv.push(cost === 1 ? '1' : String(cost));
    // A refund's and a settle's ARGV[3]: when the units were counted ('' if unknown).
    if (operation === 'refund' || operation === 'settle') {
      argv.push(detail === undefined ? '' : String(Math.floor(Number(detail))));
    }
    // With a concurrency policy, consume's and peek's ARGV[3]: the lease id the request would hold.
    let lease: string | undefined;
    if (layout.leases && (operation === 'consume' || operation === 'peek')) {
      if (operation === 'consume' && takesSlot(set, cost)) {
        lease = `${this.leasePrefix}${(++this.leases).toString(36)}`;
      }
      argv.push(lease ?? '');
    }
    if (operation === 'settle') argv.push(layout.debts);
    const base = argv.length;
    // The ban script's ARGV: now, the ban's length (`cost`; 0 lifts it), then the layout's part.
    const banning = operation === 'ban' || operation === 'unban';
    if (operation !== 'release') {
      for (const arg of banning ? layout.banArgs : layout.args) argv.push(arg);
      if (!banning && layout.periods.length > 0)
        fillPeriods(argv, base, layout.periods, now ?? this.redisNow());
    }
    const slot = this.connection.cluster ? keySlot(stateKey) : -1;
    argv.push(this.deadline(slot));
    return new Promise((resolve, reject) => {
      const call: Call = {
        at: 0,
        done: false,
        operation,
        layout,
        key: operation === 'release' ? stateKey + LEASES_SUFFIX : stateKey,
        // The scripts of a set with a concurrency policy (and a reset) take its leases' key too.
        key2: layout.leases && !banning && operation !== 'release' ? stateKey + LEASES_SUFFIX : undefined,
        lease,
        set,
        argv,
        base,
        misses: 0,
        slot,
        info,
        resolve,
        reject,
      };
      this.deadlines.add(call);
      this.send(call, false);
    });
  }
  /**
   * While the client connects for the first time (just created; `lazyConnect`), calls wait for it,
   * up to `timeoutMs`, rather than fail (issue 11): nothing waits in the client's offline queue, so
   * nothing can be replayed. All waiting calls share one wait.
   */
  private firstConnect(): Promise<boolean> | undefined {
    if (this.waiting === undefined) {
      const ready = this.connection.ready();
      if (ready === undefined) return undefined;
      this.waiting = ready.finally(() => {
        this.waiting = undefined;
      });
    }
    return this.waiting;
  }

  private afterConnect(
    waiting: Promise<boolean>,
    operation: Operation,
    key: string,
    set: PolicySet,
    cost: number,
    info: ConsumeInfo | undefined,
    detail: number | string | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          this.failure(
            operation,
            new Error(`Redis unavailable: the client did not connect within ${this.timeoutMs} ms`),
          ),
        );
      }, this.timeoutMs);
      waiting.then((ready) => {
        clearTimeout(timer);
        if (!ready) this.wasReady = true;
        this.call(operation, key, set, cost, info, detail).then(resolve, reject);
      });
    });
  }

  /**
   * The replay guard's last ARGV (see GUARD in clients.ts) for a command to `slot`, in Redis time:
   * twice `timeoutMs` after now, plus the reading's round trip (its uncertainty) and 5 ms (see
   * RedisTime). Twice, because a reply that arrives while the loop is busy past `timeoutMs` is still
   * taken (see Deadlines): a command Redis runs a little late must still count. A resend after a
   * reconnect comes later than that. '' until a first reading.
   */
  private deadline(slot: number): string {
    const t = performance.now();
    if (this.time.shouldAsk(t)) this.askTime(t);
    return this.time.deadline(t, slot, 2 * this.timeoutMs);
  }

  private askTime(t0: number): void {
    let time: Promise<unknown>;
    try {
      time = this.connection.time();
    } catch {
      this.time.answered(undefined, t0, t0);
      return;
    }
    time.then(
      (reply) => {
        const ok = Array.isArray(reply) && reply.length === 2;
        const redisMs = ok ? Number(String(reply[0])) * 1000 + Number(String(reply[1])) / 1000 : undefined;
        this.time.answered(redisMs, t0, performance.now());
      },
      () => this.time.answered(undefined, t0, t0),
    );
  }

  /** Sends `call`'s command (with the script's text when `text`) and settles it with the reply. */
  private send(call: Call, text: boolean): void {
    let reply: Promise<unknown>;
    try {
      const { operation } = call;
      reply =
        operation === 'reset'
          ? this.connection.del(call.key, call.key2)
          : this.connection.run(
              operation === 'ban' || operation === 'unban' ? BAN : call.layout.scripts[operation]!,
              call.key,
              call.argv,
              text,
              call.key2,
            );
    } catch (error) {
      reply = Promise.reject(error);
    }
    reply.then(
      (value) => this.replied(call, value),
      (error: unknown) => {
        // The server lost its script cache (SCRIPT FLUSH, restart, failover): send the script itself.
        if (!text && !call.done && isNoScript(error)) {
          this.send(call, true);
          return;
        }
        // Late by Redis's clock before our timeout: the reading of Redis TIME is off; take another.
        if (isLate(error)) this.time.late(call.slot);
        if (this.deadlines.settle(call)) call.reject(this.commandFailure(call, error));
      },
    );
  }

  private replied(call: Call, reply: unknown): void {
    const { operation, layout } = call;
    if (operation === 'release') {
      if (this.deadlines.settle(call)) call.resolve(Number(reply));
      return;
    }
    if (operation === 'ban' || operation === 'unban') {
      if (!this.deadlines.settle(call)) return;
      if (operation === 'unban') call.resolve(undefined);
      else if (Array.isArray(reply) && reply.length === 2) {
        call.resolve({ until: Number(reply[0]), offence: Number(reply[1]) });
      } else {
        call.reject(
          this.failure(operation, new Error(`unexpected script reply ${JSON.stringify(reply)}`), 'key'),
        );
      }
      return;
    }
    const missed = layout.periods.length > 0 ? periodMiss(reply) : undefined;
    if (missed !== undefined && !call.done && call.misses < MAX_PERIOD_MISSES) {
      // Redis's clock is in another calendar period than we thought: send the one that holds it.
      call.misses++;
      fillPeriods(call.argv, call.base, layout.periods, missed);
      this.time.distrust();
      this.send(call, false);
      return;
    }
    if (
      this.clock === undefined &&
      (operation === 'consume' || operation === 'peek') &&
      Array.isArray(reply)
    ) {
      // On Redis time, the script's `now` (whole ms) is a reading taken while the call was out.
      this.time.replied(
        Number(reply[layout.size * 5]),
        call.at - this.timeoutMs,
        performance.now(),
        call.slot,
      );
    }
    if (!this.deadlines.settle(call)) return;
    if (missed !== undefined) {
      const cause = new Error(
        `Redis time ${missed} left the calendar period sent ${call.misses + 1} times in a row (a clock that jumps?)`,
      );
      call.reject(this.failure(operation, cause));
      return;
    }
    if (operation !== 'consume' && operation !== 'peek' && operation !== 'settle') {
      call.resolve(undefined);
      return;
    }
    const settled = operation === 'settle' ? toSettlement(reply, layout.size, layout.ban) : undefined;
    const settlement = settled?.settlement;
    const outcomes =
      operation === 'settle' ? settlement?.outcomes : toOutcomes(reply, layout.size, layout.ban, call.info);
    if (outcomes === undefined) {
      const cause = new Error(`unexpected script reply ${JSON.stringify(reply)}`);
      call.reject(this.failure(operation, cause, 'key'));
    } else {
      // A calendar policy's window is the period the script counted in, the one sent (a banned key
      // ran no policy).
      const banned = (call.info?.banLeftMs ?? settled?.banLeftMs ?? 0) > 0;
      if (!banned)
        for (const slot of layout.periods)
          outcomes[slot.policy]!.windowMs = Number(call.argv[call.base + slot.w]);
      // The script held the lease (given only to a request that takes a slot) if it allowed it.
      if (call.lease !== undefined && call.info !== undefined && allowedAll(call.set, outcomes)) {
        call.info.lease = call.lease;
      }
      call.resolve(settlement ?? outcomes);
    }
  }

  /**
   * A command answered with an error: on the key's value alone, or on everything the connection
   * reaches. The message names no key (the scripts' errors hold the Redis key, hence the user's).
   */
  private commandFailure(call: Call, cause: unknown): StoreError {
    const message = describe(cause);
    const scope = KEY_ERROR.test(message) ? 'key' : this.reach;
    return this.failure(call.operation, cause, scope, message.replaceAll(call.key, '<key>'));
  }

  private failure(
    operation: string,
    cause: unknown,
    scope: StoreErrorScope = 'store',
    message = describe(cause),
  ): StoreError {
    const error = new StoreError(`RedisStore ${operation} failed: ${message}`, { cause, scope });
    if (this.onError !== undefined) {
      try {
        this.onError(error);
      } catch {
        // A failing error hook must not turn one failure into another.
      }
    }
    return error;
  }
}

/** Whether the request was allowed as a whole: every enforced policy allowed it. */
const allowedAll = (set: PolicySet, outcomes: readonly Outcome[]): boolean =>
  outcomes.every((o, i) => o.allowed || set.policies[i]!.mode === 'shadow');

/** Whether a request of `cost` takes a slot of `set`'s concurrency policy. */
const takesSlot = (set: PolicySet, cost: number): boolean =>
  STEPS[set.policies[set.holder]!.algorithm].holds!.takes(cost);

/** Writes into `argv` (its layout's part from `base`) each calendar policy's period holding `at`. */
function fillPeriods(argv: string[], base: number, periods: readonly PeriodSlot[], at: number): void {
  for (const slot of periods) {
    const { start, end } = slot.calendar.periodAt(at);
    argv[base + slot.w] = String(end - start);
    argv[base + slot.s] = String(start);
  }
}

/** Redis's time when the reply says it is outside the calendar periods sent (PERIOD_MISS), else undefined. */
function periodMiss(reply: unknown): number | undefined {
  if (!Array.isArray(reply) || reply.length !== 2 || Number(reply[0]) !== PERIOD_MISS) return undefined;
  const now = Number(reply[1]);
  return Number.isFinite(now) ? now : undefined;
}

/**
 * A settle script's reply: a peek's 5 integers per policy, then each policy's uncharged units, then
 * now, then with bans the ban left (0: not banned).
 */
function toSettlement(
  reply: unknown,
  size: number,
  ban: boolean,
): { settlement: Settlement; banLeftMs: number } | undefined {
  if (!Array.isArray(reply) || reply.length !== size * 6 + (ban ? 2 : 1)) return undefined;
  const outcomes = toOutcomes([...reply.slice(0, size * 5), reply[size * 6]], size, false, undefined);
  if (outcomes === undefined) return undefined;
  const uncharged = reply.slice(size * 5, size * 6).map(Number);
  return { settlement: { outcomes, uncharged }, banLeftMs: ban ? Number(reply[size * 6 + 1]) : 0 };
}

/**
 * A consume or peek script's reply: 5 integers per policy (allowed, remaining, resetMs, retryAfterMs,
 * delayMs), then Redis's time of the decision, which goes to `info`, and with bans the ms of ban
 * left and the offence a ban started by this request has (see scripts.ts).
 */
function toOutcomes(
  reply: unknown,
  size: number,
  ban: boolean,
  info: ConsumeInfo | undefined,
): Outcome[] | undefined {
  if (!Array.isArray(reply) || reply.length !== size * 5 + (ban ? 3 : 1)) return undefined;
  if (info !== undefined) {
    info.countedAt = Number(reply[size * 5]);
    if (ban) {
      info.banLeftMs = Number(reply[size * 5 + 1]);
      info.banOffence = Number(reply[size * 5 + 2]);
    }
  }
  const outcomes: Outcome[] = new Array(size);
  for (let i = 0; i < size; i++) {
    const at = i * 5;
    const retryAfterMs = Number(reply[at + 3]);
    outcomes[i] = {
      allowed: Number(reply[at]) === 1,
      remaining: Number(reply[at + 1]),
      resetMs: Number(reply[at + 2]),
      retryAfterMs: retryAfterMs === -1 ? Number.POSITIVE_INFINITY : retryAfterMs,
      delayMs: Number(reply[at + 4]),
    };
  }
  return outcomes;
}
