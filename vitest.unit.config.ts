// `pnpm test:unit`: the colocated tests of pure logic (algorithms, policies, the memory store, the
// HTTP layer, the client's parsers) in seconds: no Redis started (no globalSetup), no build, no child
// processes. `pnpm test` runs these and every cross-package suite in test/.
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['packages/*/src/**/*.test.ts'],
    globalSetup: [],
    pool: 'threads',
  },
});
