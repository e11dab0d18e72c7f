import {
  type Clock,
  type ConsumeInfo,
  checkOptions,
  configError,
  type Duration,
  durationOption,
  type Outcome,
  type PolicySet,
  type Store,
  StoreError,
  type StoreErrorScope,
} from '@tollgate/core/internal';
import { type Connection, connect, isNoScript, type RedisClientLike, type Sent } from './clients.js';
import { Deadlines, type Pending } from './deadlines.js';
import { encodeKey, type Layout, layoutFor } from './layout.js';

/** Options of `new RedisStore()`. */
export interface RedisStoreOptions {
  /**
   * A connected client: an ioredis `Redis` or `Cluster`, or a node-redis client (`createClient`) or
   * cluster (`createCluster`), v4 or v5. The store never connects, quits or reconfigures it: you own
   * it (an ioredis client created with `lazyConnect` is asked to connect on first use).
   *
   * While the client is not ready, calls fail at once instead of waiting in the client's offline
   * queue, which would replay stale requests after a reconnect. ioredis also sends again, after a
   * reconnect, the commands that got no answer (`autoResendUnfulfilledCommands`); on an ioredis
   * `Redis` the store turns a command that `timeoutMs` gave up on into a PING, so such a resend
   * counts nothing. On an ioredis `Cluster`, set `maxRetriesPerRequest: 0` for the same effect; on
   * a node-redis cluster (which tells only whether it is open, not whether each node is connected)
   * `defaults: { disableOfflineQueue: true }`. Either way `timeoutMs` bounds the wait.
   *
   * One command per call. On an ioredis `Redis`, the calls made while the event loop runs one turn
   * leave in a few socket writes instead of one each (the store corks the socket until
   * `setImmediate`, 16 commands a write at most): the same commands in the same order, each with
   * its own answer, and much less CPU per call on both sides. Auto-pipelining (`enableAutoPipelining`) works too, and is the way
   * to batch on an ioredis `Cluster`.
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
  /** Called with every `StoreError` (connection, script error, timeout) before it is thrown. */
  onError?: (error: StoreError) => void;
}

const OPTIONS = ['client', 'prefix', 'clock', 'timeoutMs', 'onError'];
const PREFIX = /^[\x21-\x7a|~]{0,64}$/;

type Operation = 'consume' | 'peek' | 'refund' | 'reset';

/** A request in flight: everything it needs to send, resend after NOSCRIPT, time out and answer. */
interface Call extends Pending {
  readonly operation: Operation;
  readonly layout: Layout;
  readonly key: string;
  /** ARGV: `first` (now), `second` (cost), then `args`. */
  readonly first: string;
  readonly second: string | undefined;
  readonly args: readonly string[];
  /** consume: receives Redis's time of the decision. */
  readonly info: ConsumeInfo | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: StoreError) => void;
  /** The command sent, if the client might send it again after a reconnect (see `Sent`). */
  sent: Sent | undefined;
}

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
  private closed = false;

  constructor(options: RedisStoreOptions) {
    if (typeof options !== 'object' || options === null) {
      throw configError('RedisStore options', 'an object such as `{ client: new Redis() }`', options);
    }
    checkOptions(options, OPTIONS, '`RedisStore` options');
    const { client, prefix = 'tollgate:', clock, onError } = options;
    const timeoutMs = durationOption(options.timeoutMs, 'timeoutMs', 500);
    const connection = connect(client);
    if (connection === undefined) {
      throw configError(
        'client',
        'an ioredis `Redis` or `Cluster`, or a node-redis client (`createClient`) or cluster (`createCluster`)',
        client,
      );
    }
    if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
      throw configError(
        'prefix',
        'a string of at most 64 printable ASCII characters without spaces, `{` or `}`',
        prefix,
      );
    }
    if (clock !== undefined && typeof clock !== 'function') {
      throw configError('clock', 'a function returning milliseconds', clock);
    }
    if (onError !== undefined && typeof onError !== 'function') {
      throw configError('onError', 'a function', onError);
    }
    this.connection = connection;
    this.prefix = prefix;
    this.clock = clock;
    this.onError = onError;
    this.deadlines = new Deadlines<Call>(timeoutMs, (call) => {
      // Answered now as failed: the command must not count if the client resends it later.
      call.sent?.neutralize?.();
      call.reject(
        this.failure(call.operation, new Error(`no reply from Redis within ${timeoutMs} ms`), this.reach),
      );
    });
  }

  consume(key: string, set: PolicySet, cost: number, info?: ConsumeInfo): Promise<Outcome[]> {
    return this.call('consume', key, set, cost, info) as Promise<Outcome[]>;
  }

  peek(key: string, set: PolicySet): Promise<Outcome[]> {
    return this.call('peek', key, set, 1) as Promise<Outcome[]>;
  }

  refund(key: string, set: PolicySet, cost: number, countedAt?: number): Promise<void> {
    return this.call('refund', key, set, cost, undefined, countedAt) as Promise<void>;
  }

  reset(key: string, set: PolicySet): Promise<void> {
    return this.call('reset', key, set, 0) as Promise<void>;
  }

  /**
   * Stops this store: later calls fail with a `StoreError`. The client is yours and stays
   * connected; quit it yourself.
   */
  close(): void {
    this.closed = true;
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

  /** The scripts' ARGV[1]: the caller's time in whole ms (the arithmetic is integer), or '' for Redis TIME. */
  private now(): string {
    if (this.clock === undefined) return '';
    const now = Math.floor(this.clock());
    if (!Number.isFinite(now)) throw new Error(`the \`clock\` option returned ${now}`);
    return String(now);
  }

  /**
   * Runs `operation` for one key: one command, bounded by `timeoutMs`, every failure a StoreError.
   * The hot path of every request, so it allocates little: one Call, the promise and two handlers.
   */
  private call(
    operation: Operation,
    key: string,
    set: PolicySet,
    cost: number,
    info?: ConsumeInfo,
    countedAt?: number,
  ): Promise<unknown> {
    const unavailable = this.closed ? 'the store was closed' : this.connection.notReady();
    if (unavailable !== undefined) {
      return Promise.reject(this.failure(operation, new Error(`Redis unavailable: ${unavailable}`)));
    }
    const layout = this.layout(set);
    let first: string;
    try {
      first = this.now();
    } catch (error) {
      return Promise.reject(this.failure(operation, error));
    }
    return new Promise((resolve, reject) => {
      const call: Call = {
        at: 0,
        done: false,
        operation,
        layout,
        key: layout.head + encodeKey(key) + layout.tail,
        first,
        second: cost === 1 ? '1' : String(cost),
        // A refund's ARGV[3]: when the units were counted ('' if unknown).
        args:
          operation === 'refund'
            ? [countedAt === undefined ? '' : String(Math.floor(countedAt)), ...layout.args]
            : layout.args,
        info,
        resolve,
        reject,
        sent: undefined,
      };
      this.deadlines.add(call);
      this.send(call, false);
    });
  }

  /** Sends `call`'s command (with the script's text when `text`) and settles it with the reply. */
  private send(call: Call, text: boolean): void {
    let sent: Sent;
    try {
      sent =
        call.operation === 'reset'
          ? this.connection.del(call.key)
          : this.connection.run(
              call.layout.scripts[call.operation],
              call.key,
              call.first,
              call.second,
              call.args,
              text,
              // Alone in flight: no company to wait for, so write at once.
              this.deadlines.pending > 1,
            );
    } catch (error) {
      sent = { reply: Promise.reject(error) };
    }
    call.sent = sent;
    sent.reply.then(
      (reply) => this.replied(call, reply),
      (error: unknown) => {
        // The server lost its script cache (SCRIPT FLUSH, restart, failover): send the script itself.
        if (!text && !call.done && isNoScript(error)) this.send(call, true);
        else if (this.deadlines.settle(call)) call.reject(this.commandFailure(call, error));
      },
    );
  }

  private replied(call: Call, reply: unknown): void {
    if (!this.deadlines.settle(call)) return;
    const { operation, layout } = call;
    if (operation !== 'consume' && operation !== 'peek') {
      call.resolve(undefined);
      return;
    }
    const outcomes = toOutcomes(reply, layout.size, call.info);
    if (outcomes === undefined) {
      const cause = new Error(`unexpected script reply ${JSON.stringify(reply)}`);
      call.reject(this.failure(operation, cause, 'key'));
    } else {
      call.resolve(outcomes);
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

/**
 * A consume or peek script's reply: 5 integers per policy (allowed, remaining, resetMs, retryAfterMs,
 * delayMs), then Redis's time of the decision, which goes to `info`.
 */
function toOutcomes(reply: unknown, size: number, info: ConsumeInfo | undefined): Outcome[] | undefined {
  if (!Array.isArray(reply) || reply.length !== size * 5 + 1) return undefined;
  if (info !== undefined) info.countedAt = Number(reply[size * 5]);
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
