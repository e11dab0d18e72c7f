import { createRequire } from 'node:module';
import { MemoryStore as ErlMemoryStore, type Options as ErlOptions } from 'express-rate-limit';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { createLimiter, MemoryStore, type RateAlgorithm } from '../../packages/core/src/index.ts';

/**
 * Every library under test, behind one shape: `consume(key)` returns the library's own promise and
 * the loop awaits it. Each is configured so that nothing is ever denied and nothing expires during a
 * run: a huge limit and a one-minute window (runs keep a store well under a minute).
 */
export interface Subject {
  consume(key: string): Promise<unknown>;
  /** Keys the library tracks now (a sanity check that every key really landed). */
  size(): number;
  close(): void | Promise<void>;
}

export interface SubjectOptions {
  /** Keys the run will touch; stores with a bound get at least this. */
  keys: number;
}

export interface SubjectInfo {
  id: SubjectId;
  /** Short column label. */
  label: string;
  /** What exactly is called, for the report. */
  call: string;
  create(options: SubjectOptions): Subject;
}

const HUGE = 1_000_000_000;
const WINDOW_MS = 60_000;

const require = createRequire(import.meta.url);

/** koa-ratelimit's memory driver: koa-ratelimit builds one of these per request over a shared Map. */
interface KoaMemoryLimiter {
  get(): Promise<{ remaining: number }>;
}
type KoaMemoryLimiterClass = new (options: {
  id: string;
  db: Map<string, unknown>;
  max: number;
  duration: number;
}) => KoaMemoryLimiter;
const KoaLimiter = require('koa-ratelimit/limiter/memory.js') as KoaMemoryLimiterClass;

function tollgate(algorithm: RateAlgorithm): (options: SubjectOptions) => Subject {
  return ({ keys }) => {
    const store = new MemoryStore({ maxKeys: Math.max(100_000, keys) });
    const limiter = createLimiter({ policies: { limit: HUGE, window: '1m', algorithm }, store });
    return {
      consume: (key) => limiter.consume(key),
      size: () => store.size,
      close: () => store.close(),
    };
  };
}

export const SUBJECTS = {
  'tollgate-fixed': {
    label: 'tollgate fixed',
    call: "createLimiter({ policies: { limit: 1e9, window: '1m', algorithm: 'fixed-window' }, store: new MemoryStore({ maxKeys }) }).consume(key)",
    create: tollgate('fixed-window'),
  },
  'tollgate-sliding': {
    label: 'tollgate sliding',
    call: "same, algorithm: 'sliding-window'",
    create: tollgate('sliding-window'),
  },
  'tollgate-token': {
    label: 'tollgate token',
    call: "same, algorithm: 'token-bucket'",
    create: tollgate('token-bucket'),
  },
  'tollgate-leaky': {
    label: 'tollgate leaky',
    call: "same, algorithm: 'leaky-bucket' (delay: true, the default)",
    create: tollgate('leaky-bucket'),
  },
  erl: {
    label: 'express-rate-limit',
    call: 'new MemoryStore() (init({ windowMs: 60000 })).increment(key)',
    create: () => {
      const store = new ErlMemoryStore();
      store.init({ windowMs: WINDOW_MS } as ErlOptions);
      return {
        consume: (key) => store.increment(key),
        size: () => (store as unknown as { current: Map<string, unknown> }).current.size,
        close: () => store.shutdown(),
      };
    },
  },
  rlf: {
    label: 'rate-limiter-flexible',
    call: 'new RateLimiterMemory({ points: 1e9, duration: 60 }).consume(key)',
    create: () => {
      const limiter = new RateLimiterMemory({ points: HUGE, duration: WINDOW_MS / 1000 });
      const storage = (limiter as unknown as { _memoryStorage: { _storage: Map<string, unknown> } })
        ._memoryStorage._storage;
      return {
        consume: (key) => limiter.consume(key),
        size: () => storage.size,
        close: async () => {
          for (const key of [...storage.keys()]) await limiter.delete(key.slice('rlflx:'.length));
        },
      };
    },
  },
  koa: {
    label: 'koa-ratelimit',
    call: "new (require('koa-ratelimit/limiter/memory'))({ id: key, db, max: 1e9, duration: 60000 }).get() (what its middleware does per request)",
    create: () => {
      const db = new Map<string, unknown>();
      return {
        consume: (key) => new KoaLimiter({ id: key, db, max: HUGE, duration: WINDOW_MS }).get(),
        size: () => db.size,
        close: () => db.clear(),
      };
    },
  },
} satisfies Record<string, Omit<SubjectInfo, 'id'>>;

export type SubjectId = keyof typeof SUBJECTS;

export const SUBJECT_IDS = Object.keys(SUBJECTS) as SubjectId[];
export const TOLLGATE_IDS = SUBJECT_IDS.filter((id) => id.startsWith('tollgate-'));

export function subject(id: string): SubjectInfo {
  if (!(id in SUBJECTS)) throw new Error(`unknown library '${id}'; one of ${SUBJECT_IDS.join(', ')}`);
  return { id: id as SubjectId, ...SUBJECTS[id as SubjectId] };
}
