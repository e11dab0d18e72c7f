/**
 * Child of test/memory-bounded.test.ts (needs --expose-gc): sends 120 000 distinct 15 KB header
 * values through `byHeader()` and a limiter on a MemoryStore with default options, then reports the
 * heap after a full collection as one JSON line on stdout.
 */
import { byHeader, createLimiter, MemoryStore, type RequestView } from '@tollgate/core';

const KEYS = 120_000;
const LENGTH = 15_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

function settled() {
  gc!();
  gc!();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return { heapUsed, arrayBuffers };
}

const before = settled();
const store = new MemoryStore();
const limiter = createLimiter({ policies: { limit: 100, window: '1m' }, store });
const key = byHeader('x-api-key');
const filler = 'v'.repeat(LENGTH - 8);
let denied = 0;
for (let i = 0; i < KEYS; i++) {
  const value = `${i.toString(36).padStart(8, '0')}${filler}`;
  const view: RequestView = {
    method: 'GET',
    path: '/',
    ip: '203.0.113.7',
    trustProxy: false,
    header: (name) => (name === 'x-api-key' ? value : undefined),
  };
  const decision = await limiter.consume((await key(view))!);
  if (!decision.allowed) denied++;
}
// The last key still has its own count: hashing did not merge keys.
const again = await limiter.consume(`hdr:x-api-key:${(KEYS - 1).toString(36).padStart(8, '0')}${filler}`);
const after = settled();
console.log(JSON.stringify({ size: store.size, denied, remainingAfterTwo: again.remaining, before, after }));
await store.close();
