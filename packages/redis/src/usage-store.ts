import {
  bucketName,
  type Duration,
  durationOption,
  type Grain,
  StoreError,
  USAGE_ADD_LUA,
  USAGE_READ_LUA,
  type UsageAddContext,
  type UsageEntry,
  type UsageStore,
} from '@tollgate/core/internal';
import {
  type Connection,
  isNoScript,
  type RedisClientLike,
  type Script,
  script,
  storeOptions,
} from './clients.js';

/** Options of `new RedisUsageStore()`. */
export interface RedisUsageStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster`, or a node-redis client or cluster, as for `RedisStore` (it
   * may be the same client). The store never quits it.
   */
  client: RedisClientLike;
  /**
   * Prepended to every key, before the `{usage}` hash tag: at most 64 printable ASCII characters,
   * no spaces, `{` or `}`.
   * @default 'tollgate:'
   */
  prefix?: string;
  /**
   * A call that has not answered within this long fails (a batch is then kept and sent again;
   * Redis adds a batch it has already run once only, remembering its id for two hours).
   * Milliseconds or a duration string.
   * @default 2000
   */
  timeoutMs?: Duration;
}

/** The guard in front of every script takes a last ARGV, a deadline: usage scripts give none. */
const NO_DEADLINE = '';
const ADD = script('usage_add', USAGE_ADD_LUA);
const READ = script('usage_read', USAGE_READ_LUA);

/**
 * Usage buckets in Redis, shared by every process (`createUsage({ store })`): one hash per bucket
 * (minute, hour, day; per tenant and for all tenants), each with a TTL past its keep time, and a
 * sorted set of tenants. Every key shares the hash tag `{usage}`, so on Redis Cluster they sit in
 * one slot and a batch is one atomic script call; writes are batched (one call per flush per
 * process), and `maxTenants` and `maxRoutes` bound what that slot holds.
 */
export class RedisUsageStore implements UsageStore {
  private readonly connection: Connection;
  private readonly head: string;
  private readonly timeoutMs: number;

  constructor(options: RedisUsageStoreOptions) {
    const { connection, prefix } = storeOptions(
      options,
      ['client', 'prefix', 'timeoutMs'],
      'RedisUsageStore',
    );
    this.connection = connection;
    this.head = `${prefix}{usage}:`;
    this.timeoutMs = durationOption(options.timeoutMs, 'timeoutMs', 2000);
  }

  async add(entries: readonly UsageEntry[], context: UsageAddContext): Promise<void> {
    const argv = [
      String(Math.floor(context.now)),
      String(context.maxTenants),
      String(context.maxRoutes),
      this.head,
      context.batch,
    ];
    for (const { tenant, route, result, minute, count } of entries) {
      argv.push(tenant, route, result, String(minute), String(count));
    }
    await this.run('add', ADD, argv);
  }

  async read(
    tenant: string | undefined,
    grain: Grain,
    starts: readonly number[],
  ): Promise<ReadonlyMap<string, number>[]> {
    const keys = starts.map((start) => this.head + bucketName(grain, start, tenant));
    const reply = await this.run('read', READ, keys);
    if (!Array.isArray(reply) || reply.length !== keys.length) {
      throw new StoreError(`RedisUsageStore read failed: unexpected reply from Redis`);
    }
    return reply.map((fields: unknown) => {
      const bucket = new Map<string, number>();
      if (Array.isArray(fields)) {
        for (let i = 0; i + 1 < fields.length; i += 2)
          bucket.set(String(fields[i]), Number(String(fields[i + 1])));
      }
      return bucket;
    });
  }

  /** The Redis key of a bucket (for inspection and tests). */
  keyOf(grain: Grain, start: number, tenant: string | undefined): string {
    return this.head + bucketName(grain, start, tenant);
  }

  /** The pattern matching every key this store writes (for inspection and tests: `SCAN MATCH`). */
  get pattern(): string {
    return `${this.head.replace(/[*?[\]\\]/g, '\\$&')}*`;
  }

  /**
   * One script call, bounded by `timeoutMs` (waiting for a client that is connecting included),
   * every failure a StoreError; EVAL after NOSCRIPT. Nothing waits in the client's offline queue.
   */
  private run(operation: string, lua: Script, argv: string[]): Promise<unknown> {
    const args = [...argv, NO_DEADLINE];
    const key = `${this.head}tenants`;
    const send = (text: boolean): Promise<unknown> => {
      const unavailable = this.connection.notReady();
      if (unavailable !== undefined) return Promise.reject(new Error(`Redis unavailable: ${unavailable}`));
      return this.connection.run(lua, key, args, text);
    };
    const connecting = this.connection.notReady() === undefined ? undefined : this.connection.ready();
    const first = connecting === undefined ? send(false) : connecting.then(() => send(false));
    const reply = first.catch((error: unknown) => (isNoScript(error) ? send(true) : Promise.reject(error)));
    return new Promise((resolve, reject) => {
      const fail = (cause: unknown) =>
        reject(new StoreError(`RedisUsageStore ${operation} failed: ${describe(cause)}`, { cause }));
      const timer = setTimeout(
        () => fail(new Error(`no reply from Redis within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      reply.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          fail(error);
        },
      );
    });
  }
}

const describe = (error: unknown) => (error instanceof Error ? error.message : String(error));
