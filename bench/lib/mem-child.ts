/**
 * Bytes per tracked key of one library, in a fresh process:
 *   node --expose-gc --import tsx bench/lib/mem-child.ts <library> [keys]
 *
 * Two readings, both the growth of heapUsed + external (typed arrays keep their bytes outside the
 * V8 heap, so heapUsed alone would flatter a store built on them):
 * - retained (the headline): after the caller drops its key strings, what stays alive because the
 *   library tracks the keys, key strings included: a library that keeps the caller's string pays for
 *   it, one that keeps a prefixed copy pays for the copy. This is what a server holds per client.
 * - structures: while the caller still holds the key strings, i.e. without the caller's strings
 *   (but with any copy the library makes).
 */
import { makeKeys } from './keys.ts';
import { subject } from './subjects.ts';

export interface MemResult {
  id: string;
  keys: number;
  /** Keys the library reports tracking at the end (must equal `keys`). */
  size: number;
  /** Retained per key, key strings included (heap part, external part, sum). */
  heapBytesPerKey: number;
  externalBytesPerKey: number;
  bytesPerKey: number;
  /** Per key while the caller still holds its key strings: the library's own structures. */
  structureBytesPerKey: number;
  /** What the caller's key strings and the array holding them cost. */
  keyStringBytesPerKey: number;
  insertMs: number;
}

async function settle(): Promise<NodeJS.MemoryUsage> {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage();
}

async function main(): Promise<MemResult> {
  const id = process.argv[2] ?? 'tollgate-fixed';
  const n = Number(process.argv[3] ?? 1_000_000);
  const info = subject(id);
  // Load the library's code before the baseline.
  await info.create({ keys: 1 }).close();
  const empty = await settle();
  const keys = makeKeys(n);
  const withKeys = await settle();
  const lib = info.create({ keys: n });
  const before = await settle();
  const start = performance.now();
  for (let i = 0; i < n; i++) await lib.consume(keys[i]!);
  const insertMs = performance.now() - start;
  const withBoth = await settle();
  keys.length = 0;
  const after = await settle();
  const total = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external;
  const heap = after.heapUsed - empty.heapUsed;
  const external = after.external - empty.external;
  return {
    id,
    keys: n,
    size: lib.size(),
    heapBytesPerKey: heap / n,
    externalBytesPerKey: external / n,
    bytesPerKey: (heap + external) / n,
    structureBytesPerKey: (total(withBoth) - total(before)) / n,
    keyStringBytesPerKey: (total(withKeys) - total(empty)) / n,
    insertMs,
  };
}

main().then(
  (result) => {
    if (process.send) process.send(result, () => process.exit(0));
    else {
      console.log(JSON.stringify(result));
      process.exit(0);
    }
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
