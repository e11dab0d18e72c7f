import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (file: string) => fileURLToPath(new URL(`./packages/${file}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Exact matches: `@tollgate/core/internal` must not resolve as a path below `@tollgate/core`.
    alias: [
      { find: /^@tollgate\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@tollgate\/core\/internal$/, replacement: src('core/src/internal.ts') },
      { find: /^@tollgate\/redis$/, replacement: src('redis/src/index.ts') },
      { find: /^@tollgate\/express$/, replacement: src('express/src/index.ts') },
      { find: /^@tollgate\/koa$/, replacement: src('koa/src/index.ts') },
      { find: /^@tollgate\/client$/, replacement: src('client/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
  },
});
