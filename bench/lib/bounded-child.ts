/**
 * Bounded memory: many distinct keys through one MemoryStore with a small `maxKeys`, in a fresh
 * process. Prints (or sends over IPC) the store size and heap at checkpoints:
 *   node --expose-gc --import tsx bench/lib/bounded-child.ts [keys=10000000] [maxKeys=100000]
 */
import { createLimiter, MemoryStore } from '../../packages/core/src/index.ts';
import { key } from './keys.ts';

export interface Checkpoint {
  keys: number;
  size: number;
  /** heapUsed + external after a full GC, in bytes. */
  bytes: number;
  elapsedMs: number;
}

export interface BoundedResult {
  keys: number;
  maxKeys: number;
  checkpoints: Checkpoint[];
  /** Time spent consuming, without the GC done at checkpoints. */
  consumeMs: number;
}

async function main(): Promise<BoundedResult> {
  const n = Number(process.argv[2] ?? 10_000_000);
  const maxKeys = Number(process.argv[3] ?? 100_000);
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const store = new MemoryStore({ maxKeys });
  const limiter = createLimiter({
    policies: { limit: 1_000_000_000, window: '1m', algorithm: 'fixed-window' },
    store,
  });
  const checkpoints: Checkpoint[] = [];
  const reading = (done: number, elapsedMs: number): Checkpoint => {
    gc();
    const m = process.memoryUsage();
    return { keys: done, size: store.size, bytes: m.heapUsed + m.external, elapsedMs };
  };
  checkpoints.push(reading(0, 0));
  const step = Math.max(1, Math.floor(n / 10));
  let consumeMs = 0;
  for (let done = 0; done < n; ) {
    const end = Math.min(n, done + step);
    const start = performance.now();
    for (let i = done; i < end; i++) await limiter.consume(key(i));
    consumeMs += performance.now() - start;
    done = end;
    checkpoints.push(reading(done, consumeMs));
  }
  await store.close();
  return { keys: n, maxKeys, checkpoints, consumeMs };
}

main().then(
  (result) => {
    if (process.send) process.send(result, () => process.exit(0));
    else {
      for (const c of result.checkpoints) {
        console.log(
          `${String(c.keys).padStart(9)} keys  size ${String(c.size).padStart(7)}  ${(c.bytes / 1048576).toFixed(1).padStart(7)} MiB  ${(c.elapsedMs / 1000).toFixed(1)} s`,
        );
      }
      process.exit(0);
    }
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
