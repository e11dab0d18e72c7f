// `pnpm test:unit` (vitest.unit.config.ts) runs the colocated tests without the global setup that
// starts Redis: each of them must stay pure (no Redis, no build output, no child processes).
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import unit from '../vitest.unit.config.ts';

const root = resolve(import.meta.dirname, '..');

function colocatedTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : colocatedTests(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

describe('pnpm test:unit', () => {
  it('runs the colocated tests only, with no global setup (no Redis started)', () => {
    expect(unit.test?.include).toEqual(['packages/*/src/**/*.test.ts']);
    expect(unit.test?.globalSetup).toEqual([]);
  });

  const files = readdirSync(join(root, 'packages')).flatMap((pkg) =>
    colocatedTests(join(root, 'packages', pkg, 'src')),
  );

  it.each(files.map((f) => [f.slice(root.length + 1)]))(
    '%s needs no Redis, build or child process',
    (file) => {
      const source = readFileSync(join(root, file), 'utf8');
      const impure = [
        /from '(ioredis|redis)'/,
        /node:child_process/,
        /\binject\(/,
        /\/dist\//,
        /support\/redis-servers/,
      ].filter((pattern) => pattern.test(source));
      expect(impure).toEqual([]);
    },
  );
});
