/**
 * Key strings shared by every library in a run, shaped like the IPv4 addresses a limiter usually
 * keys on. They are flattened (copied through a Buffer) so that no library is handed a rope
 * (`ConsString`) where another gets a flat string: an HTTP server hands limiters flat strings.
 */
export function key(i: number): string {
  const ip = `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;
  return Buffer.from(ip, 'latin1').toString('latin1');
}

/** `n` distinct keys (n <= 2^24), in a shuffled order fixed by `seed`: same array for every library. */
export function makeKeys(n: number, seed = 42): string[] {
  if (n > 2 ** 24) throw new RangeError(`at most 2^24 distinct keys, asked for ${n}`);
  const keys = new Array<string>(n);
  for (let i = 0; i < n; i++) keys[i] = key(i);
  const random = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = keys[i]!;
    keys[i] = keys[j]!;
    keys[j] = t;
  }
  return keys;
}

/** A tiny seeded PRNG, so runs visit keys in the same order. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
