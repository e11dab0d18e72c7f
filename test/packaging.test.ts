// The packages as users get them: packed tarballs, linted by publint and arethetypeswrong, then
// installed into a scratch project and loaded from both CommonJS and ESM.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');

const PACKAGES = [
  {
    dir: 'core',
    name: '@tollgate/core',
    exports: ['createLimiter', 'MemoryStore', 'ConfigError', 'rateLimit'],
  },
  { dir: 'redis', name: '@tollgate/redis', exports: ['RedisStore'] },
  { dir: 'express', name: '@tollgate/express', exports: ['rateLimit', 'byIp', 'byHeader', 'byApiKey'] },
  { dir: 'koa', name: '@tollgate/koa', exports: ['rateLimit', 'byIp', 'byHeader', 'byApiKey'] },
] as const;
/** Peer dependencies the scratch project borrows from the workspace (no network here). */
const PEERS = ['express', 'koa', 'ioredis', 'redis'];

let scratch: string;
const tarballs = new Map<string, string>();

beforeAll(async () => {
  for (const pkg of PACKAGES) {
    if (!existsSync(join(root, 'packages', pkg.dir, 'dist'))) {
      throw new Error(`packages/${pkg.dir}/dist is missing: run \`pnpm build\` first (\`pnpm test\` does).`);
    }
  }
  scratch = await mkdtemp(join(tmpdir(), 'tollgate-pack-'));
  const packs = join(scratch, 'packs');
  await mkdir(packs);
  for (const pkg of PACKAGES) {
    await run('pnpm', ['pack', '--pack-destination', packs], { cwd: join(root, 'packages', pkg.dir) });
  }
  for (const file of await readdir(packs)) {
    const pkg = PACKAGES.find((p) => file.startsWith(`tollgate-${p.dir}-`));
    if (pkg) tarballs.set(pkg.name, join(packs, file));
  }
  const modules = join(scratch, 'app', 'node_modules');
  await mkdir(join(modules, '@tollgate'), { recursive: true });
  for (const pkg of PACKAGES) {
    const into = join(modules, '@tollgate', pkg.dir);
    await mkdir(into);
    await run('tar', ['-xzf', tarballs.get(pkg.name)!, '-C', into, '--strip-components=1']);
  }
  for (const peer of PEERS) await symlink(join(root, 'node_modules', peer), join(modules, peer));
}, 120_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe.each(PACKAGES)('$name', (pkg) => {
  it('packs only dist and package metadata', async () => {
    const { stdout } = await run('tar', ['-tzf', tarballs.get(pkg.name)!]);
    const files = stdout.trim().split('\n');
    expect(files).toContain('package/package.json');
    expect(files).toContain('package/dist/index.mjs');
    expect(files).toContain('package/dist/index.cjs');
    expect(files).toContain('package/dist/index.d.mts');
    expect(files).toContain('package/dist/index.d.cts');
    expect(files.filter((f) => f.includes('/src/') || f.endsWith('.test.ts'))).toEqual([]);
  });

  it('passes publint', async () => {
    const { publint } = await import('publint');
    const { messages } = await publint({
      pkgDir: join(root, 'packages', pkg.dir),
      level: 'warning',
      strict: true,
    });
    expect(messages).toEqual([]);
  });

  it('passes arethetypeswrong', async () => {
    const { stdout } = await run(
      join(root, 'node_modules', '.bin', 'attw'),
      [tarballs.get(pkg.name)!, '--format', 'json'],
      {
        cwd: root,
      },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const report = JSON.parse(stdout) as { analysis: { problems: unknown[] } };
    expect(report.analysis.problems).toEqual([]);
  });

  it('loads from CommonJS and from ESM with the same exports', async () => {
    const app = join(scratch, 'app');
    const names = JSON.stringify(pkg.exports);
    const cjs = await run(
      process.execPath,
      [
        '-e',
        `const m = require('${pkg.name}'); console.log(JSON.stringify(${names}.filter((n) => !(n in m))))`,
      ],
      { cwd: app },
    );
    expect(JSON.parse(cjs.stdout)).toEqual([]);
    const esm = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import('${pkg.name}'); console.log(JSON.stringify(${names}.filter((n) => !(n in m))))`,
      ],
      { cwd: app },
    );
    expect(JSON.parse(esm.stdout)).toEqual([]);
  });
});
