import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

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
      { find: /^@tollgate\/otel$/, replacement: src('otel/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    // Issue 15's pacing acceptance (quota used, 429 share): sliding windows sit at their 95%
    // ceiling (19 of 20 a window once one had calls), so a case reads 93.3% when one call falls a
    // few ms the other side of the measure's cut, and a fleet against `legacy` sliding windows
    // reads 91.7-95% under load (see the fleet file); the fleet against other servers has the same
    // timing-bound checks (client-fleet-servers.test.ts). They run on their own with
    // `pnpm test:client-acceptance` (timing-bound on a loaded machine, four minutes).
    exclude: process.env.TOLLGATE_CLIENT_ACCEPTANCE
      ? configDefaults.exclude
      : [
          ...configDefaults.exclude,
          'test/client-acceptance.test.ts',
          'test/client-acceptance-fleet.test.ts',
          'test/client-fleet-servers.test.ts',
        ],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
  },
});
