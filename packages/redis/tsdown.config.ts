import { defineConfig } from 'tsdown';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
  // Peer and workspace packages stay imports; nothing of them is bundled.
  external: [/^@tollgate\//, 'ioredis', 'redis', 'express', 'koa'],
});
