import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisStore as RlrStore } from 'rate-limit-redis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLimiter, type Policy, type RateAlgorithm } from '../../packages/core/src/index.ts';
import { RedisStore } from '../../packages/redis/src/index.ts';

/**
 * The libraries measured against one Redis, behind one shape. Every one gets its own ioredis client
 * with the same options (ioredis defaults unless --auto-pipelining), a huge limit and a one-hour
 * window, so nothing is denied and no window rolls over during a run: each call is the library's
 * steady-state "count this request" path.
 */
export interface RedisSubject {
  consume(key: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface RedisSubjectInfo {
  label: string;
  /** What exactly is called, for the report. */
  call: string;
  /** Redis commands one call should send: 1 (a decision), or 2 (a decision and its release). */
  commands?: number;
  create(client: Redis): RedisSubject | Promise<RedisSubject>;
}

const HUGE = 1_000_000_000;
const WINDOW_MS = 3_600_000;

function tollgate(algorithm: RateAlgorithm): RedisSubjectInfo['create'] {
  return (client) => {
    const store = new RedisStore({ client, prefix: `bench:tg:${algorithm}:` });
    const limiter = createLimiter({ policies: { limit: HUGE, window: WINDOW_MS, algorithm }, store });
    return { consume: (key) => limiter.consume(key), close: async () => undefined };
  };
}

/** Two rate policies, all or nothing: the set the concurrency subject adds a policy to. */
const RATE_SET: Policy[] = [
  { name: 'sliding', limit: HUGE, window: WINDOW_MS },
  { name: 'fixed', algorithm: 'fixed-window', limit: HUGE, window: WINDOW_MS },
];

/** A limiter on `policies`; with `release`, each call also frees the slot its decision holds. */
function tollgateSet(policies: Policy[], name: string, release: boolean): RedisSubjectInfo['create'] {
  return (client) => {
    const store = new RedisStore({ client, prefix: `bench:tg:${name}:` });
    const limiter = createLimiter({ policies, store });
    const consume = release
      ? async (key: string) => {
          const decision = await limiter.consume(key);
          await decision.release?.();
          return decision;
        }
      : (key: string) => limiter.consume(key);
    return { consume, close: async () => undefined };
  };
}

/**
 * `--baseline <checkout>` (TOLLGATE_BENCH_BASELINE in the children): the same one-policy call on
 * another built checkout, e.g. a git worktree of an older main, loaded from its dist.
 */
function baseline(algorithm: RateAlgorithm): RedisSubjectInfo['create'] {
  return async (client) => {
    const root = process.env.TOLLGATE_BENCH_BASELINE;
    if (root === undefined) throw new Error('the baseline subjects need --baseline <built checkout>');
    const load = (pkg: string) => import(pathToFileURL(resolve(root, `packages/${pkg}/dist/index.mjs`)).href);
    const [core, redis] = await Promise.all([load('core'), load('redis')]);
    const store = new redis.RedisStore({ client, prefix: `bench:baseline:${algorithm}:` });
    const limiter = core.createLimiter({ policies: { limit: HUGE, window: WINDOW_MS, algorithm }, store });
    return { consume: (key) => limiter.consume(key), close: async () => undefined };
  };
}

export const REDIS_SUBJECTS = {
  'tollgate-fixed': {
    label: 'tollgate fixed',
    call: "createLimiter({ policies: { limit: 1e9, window: '1h', algorithm: 'fixed-window' }, store: new RedisStore({ client }) }).consume(key)",
    create: tollgate('fixed-window'),
  },
  'tollgate-sliding': {
    label: 'tollgate sliding',
    call: "same, algorithm: 'sliding-window' (the default)",
    create: tollgate('sliding-window'),
  },
  'tollgate-token': {
    label: 'tollgate token',
    call: "same, algorithm: 'token-bucket'",
    create: tollgate('token-bucket'),
  },
  'tollgate-month': {
    label: 'tollgate month',
    call: "same, window: { calendar: 'month', timeZone: 'America/New_York' } (fixed-window on the calendar: the store sends the period with each call)",
    create: (client) => {
      const store = new RedisStore({ client, prefix: 'bench:tg:month:' });
      const limiter = createLimiter({
        policies: { limit: HUGE, window: { calendar: 'month', timeZone: 'America/New_York' } },
        store,
      });
      return { consume: (key) => limiter.consume(key), close: async () => undefined };
    },
  },
  'tollgate-set': {
    label: 'tollgate set',
    call: "policies: [{ limit: 1e9, window: '1h' }, { algorithm: 'fixed-window', limit: 1e9, window: '1h' }] (two rate policies, all or nothing)",
    create: tollgateSet(RATE_SET, 'set', false),
  },
  'tollgate-concurrency': {
    label: 'tollgate set+cc',
    call: "the same set and { algorithm: 'concurrency', limit: 1e9, lease: '1h' }: consume, then decision.release() (a call is a decision and its release: 2 commands)",
    commands: 2,
    create: tollgateSet(
      [...RATE_SET, { name: 'in-flight', algorithm: 'concurrency', limit: HUGE, lease: WINDOW_MS }],
      'cc',
      true,
    ),
  },
  'baseline-fixed': {
    label: 'baseline fixed',
    call: 'tollgate fixed, as built in the --baseline checkout',
    create: baseline('fixed-window'),
  },
  'baseline-sliding': {
    label: 'baseline sliding',
    call: 'tollgate sliding, as built in the --baseline checkout',
    create: baseline('sliding-window'),
  },
  'baseline-token': {
    label: 'baseline token',
    call: 'tollgate token, as built in the --baseline checkout',
    create: baseline('token-bucket'),
  },
  rlr: {
    label: 'rate-limit-redis',
    call: 'new RedisStore({ sendCommand: (...args) => client.call(...args) }) (init({ windowMs: 3600000 })).increment(key)',
    create: async (client) => {
      const store = new RlrStore({
        sendCommand: (command: string, ...args: string[]) =>
          client.call(command, ...args) as Promise<number | string>,
        prefix: 'bench:rlr:',
      });
      store.init({ windowMs: WINDOW_MS } as Parameters<RlrStore['init']>[0]);
      return { consume: (key) => store.increment(key), close: async () => undefined };
    },
  },
  rlf: {
    label: 'rate-limiter-flexible',
    call: 'new RateLimiterRedis({ storeClient: client, points: 1e9, duration: 3600 }).consume(key)',
    create: (client) => {
      const limiter = new RateLimiterRedis({
        storeClient: client,
        points: HUGE,
        duration: WINDOW_MS / 1000,
        keyPrefix: 'bench:rlf',
      });
      return { consume: (key) => limiter.consume(key), close: async () => undefined };
    },
  },
  incr: {
    label: 'ioredis INCR',
    call: "client.incr(key): the client's ceiling for one command and one reply per call",
    create: (client) => ({
      consume: (key) => client.incr(`bench:incr:${key}`),
      close: async () => undefined,
    }),
  },
} satisfies Record<string, RedisSubjectInfo>;

export type RedisSubjectId = keyof typeof REDIS_SUBJECTS;
export const REDIS_SUBJECT_IDS = Object.keys(REDIS_SUBJECTS) as RedisSubjectId[];
export const PEER_IDS: RedisSubjectId[] = ['rlr', 'rlf'];
export const BASELINE_IDS: RedisSubjectId[] = ['baseline-fixed', 'baseline-sliding', 'baseline-token'];

export function redisSubject(id: string): RedisSubjectInfo & { id: RedisSubjectId } {
  if (!(id in REDIS_SUBJECTS)) {
    throw new Error(`unknown library '${id}'; one of ${REDIS_SUBJECT_IDS.join(', ')}`);
  }
  return { id: id as RedisSubjectId, ...REDIS_SUBJECTS[id as RedisSubjectId] };
}

export function benchClient(port: number, autoPipelining: boolean): Redis {
  const options: RedisOptions = { host: '127.0.0.1', port, lazyConnect: true };
  if (autoPipelining) options.enableAutoPipelining = true;
  return new Redis(options);
}
