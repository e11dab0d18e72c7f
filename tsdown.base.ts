import type { UserConfig } from 'tsdown';

/** The build every package shares: dual ESM/CJS with .d.mts/.d.cts, peers and siblings external. */
export const base: UserConfig = {
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  // Peer and workspace packages stay imports; nothing of them is bundled.
  deps: { neverBundle: [/^@tollgate\//, /^@opentelemetry\//, 'ioredis', 'redis', 'express', 'koa'] },
  // A build says nothing unless something is wrong: no size report, no notes on how long the
  // declaration plugin took (that time is inherent to emitting .d.ts, not a fault to fix).
  logLevel: 'warn',
  checks: { pluginTimings: false },
};
