// The packages as users get them: packed by `pnpm pack:all` (scripts/pack.mjs, what the README's
// Install section runs), linted by publint and arethetypeswrong, installed with npm into scratch apps
// and loaded from both CommonJS and ESM; and the README's own install command, run as written, gives
// an Express app that limits requests.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const REPOSITORY = 'https://github.com/tollgate/tollgate';

const PACKAGES = [
  {
    dir: 'core',
    name: '@tollgate/core',
    exports: ['createLimiter', 'MemoryStore', 'ConfigError', 'rateLimit', 'parseDuration'],
    // Moved to `@tollgate/core/internal` (issue 10): users do not call them.
    internals: [
      'STEPS',
      'REGISTRY',
      'evaluate',
      'resolvePolicySet',
      'configError',
      'keyHelpers',
      'writeHeaders',
    ],
  },
  { dir: 'redis', name: '@tollgate/redis', exports: ['RedisStore'], internals: ['CONSUME_SCRIPT'] },
  {
    dir: 'express',
    name: '@tollgate/express',
    exports: ['rateLimit', 'byIp', 'byHeader', 'byApiKey'],
    internals: ['HTTP_WARNINGS', 'keyHelpers'],
  },
  {
    dir: 'koa',
    name: '@tollgate/koa',
    exports: ['rateLimit', 'byIp', 'byHeader', 'byApiKey'],
    internals: ['HTTP_WARNINGS', 'keyHelpers'],
  },
  {
    dir: 'client',
    name: '@tollgate/client',
    exports: ['pace', 'readHeaders', 'ConfigError', 'QueueFullError'],
    internals: [],
  },
  { dir: 'otel', name: '@tollgate/otel', exports: ['instrument'], internals: ['AttributeCache'] },
] as const;
/** Peer dependencies the offline scratch app borrows from the workspace. */
const PEERS = ['express', 'koa', 'ioredis', 'redis', '@opentelemetry/api'];

let scratch: string;
let packs: string;
const tarball = (dir: string) => join(packs, `tollgate-${dir}.tgz`);
const npm = (args: string[], cwd: string) =>
  run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, timeout: 120_000 });

async function scratchApp(name: string): Promise<string> {
  const app = join(scratch, name);
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name, private: true, version: '0.0.0' }));
  return app;
}

beforeAll(async () => {
  for (const pkg of PACKAGES) {
    if (!existsSync(join(root, 'packages', pkg.dir, 'dist'))) {
      throw new Error(`packages/${pkg.dir}/dist is missing: run \`pnpm build\` first (\`pnpm test\` does).`);
    }
  }
  scratch = await mkdtemp(join(tmpdir(), 'tollgate-pack-'));
  packs = join(scratch, 'packs');
  // `pnpm test` has just built the packages: the script's own build step would only repeat it.
  await run(process.execPath, ['scripts/pack.mjs', '--no-build', '--out', packs], { cwd: root });
}, 120_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe.each(PACKAGES)('$name', (pkg) => {
  const manifest = () => JSON.parse(readFileSync(join(root, 'packages', pkg.dir, 'package.json'), 'utf8'));

  it('packs dist, package metadata, its own README, the LICENSE and its CHANGELOG, nothing else', async () => {
    const { stdout } = await run('tar', ['-tzf', tarball(pkg.dir)]);
    const files = stdout.trim().split('\n').sort();
    // CHANGELOG.md exists once `changeset version` has written it (at the first release).
    const changelog = existsSync(join(root, 'packages', pkg.dir, 'CHANGELOG.md'))
      ? ['package/CHANGELOG.md']
      : [];
    expect(files.filter((f) => !f.startsWith('package/dist/'))).toEqual([
      ...changelog,
      'package/LICENSE',
      'package/README.md',
      'package/package.json',
    ]);
    for (const file of ['index.mjs', 'index.cjs', 'index.d.mts', 'index.d.cts']) {
      expect(files).toContain(`package/dist/${file}`);
    }
    expect(files.filter((f) => f.includes('/src/') || f.endsWith('.test.ts'))).toEqual([]);
    const { stdout: license } = await run('tar', ['-xzOf', tarball(pkg.dir), 'package/LICENSE']);
    expect(license).toBe(readFileSync(join(root, 'LICENSE'), 'utf8'));
    const { stdout: readme } = await run('tar', ['-xzOf', tarball(pkg.dir), 'package/README.md']);
    expect(readme).toMatch(new RegExp(`^# ${pkg.name}\\n`));
    expect(readme).toContain(`npm install ${pkg.name}`);
  });

  it('has complete metadata, and the packed manifest names real versions of its siblings', async () => {
    expect(manifest()).toMatchObject({
      license: 'MIT',
      repository: { type: 'git', url: `git+${REPOSITORY}.git`, directory: `packages/${pkg.dir}` },
      homepage: `${REPOSITORY}/tree/main/packages/${pkg.dir}#readme`,
      bugs: { url: `${REPOSITORY}/issues` },
      publishConfig: { access: 'public' },
    });
    expect(manifest().keywords).toEqual(expect.arrayContaining(['rate-limit']));
    const { stdout } = await run('tar', ['-xzOf', tarball(pkg.dir), 'package/package.json']);
    const packed = JSON.parse(stdout) as { dependencies?: Record<string, string> };
    const core = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8')).version;
    // core and client have no runtime dependencies.
    const expected =
      pkg.dir === 'core' || pkg.dir === 'client' ? undefined : { '@tollgate/core': `^${core}` };
    expect(packed.dependencies).toEqual(expected);
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
      [tarball(pkg.dir), '--format', 'json'],
      {
        cwd: root,
      },
    ).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const report = JSON.parse(stdout) as { analysis: { problems: unknown[] } };
    expect(report.analysis.problems).toEqual([]);
  });
});

describe('every tarball installed together with npm, offline', () => {
  let app: string;
  beforeAll(async () => {
    app = await scratchApp('all-packages');
    // --legacy-peer-deps: npm would fetch the peers from the registry; the workspace's stand in.
    await npm(
      ['install', '--offline', '--legacy-peer-deps', ...PACKAGES.map((pkg) => tarball(pkg.dir))],
      app,
    );
    await mkdir(join(app, 'node_modules', '@opentelemetry'), { recursive: true });
    for (const peer of PEERS)
      await symlink(join(root, 'node_modules', peer), join(app, 'node_modules', peer));
  }, 200_000);

  /** Which of `names` the entry `specifier` lacks, and which of `hidden` it has, from CJS and ESM. */
  async function probe(specifier: string, names: readonly string[], hidden: readonly string[]) {
    const check = `console.log(JSON.stringify({ missing: ${JSON.stringify(names)}.filter((n) => !(n in m)), exposed: ${JSON.stringify(hidden)}.filter((n) => n in m) }))`;
    const cjs = await run(process.execPath, ['-e', `const m = require('${specifier}'); ${check}`], {
      cwd: app,
    });
    const esm = await run(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import('${specifier}'); ${check}`],
      { cwd: app },
    );
    return { cjs: JSON.parse(cjs.stdout), esm: JSON.parse(esm.stdout) };
  }

  it.each(PACKAGES)(
    'loads $name from CommonJS and from ESM with the same exports, no internals',
    async (pkg) => {
      const none = { missing: [], exposed: [] };
      expect(await probe(pkg.name, pkg.exports, pkg.internals)).toEqual({ cjs: none, esm: none });
    },
  );

  it('serves the internals at @tollgate/core/internal, from CommonJS and from ESM', async () => {
    const core = PACKAGES[0];
    const none = { missing: [], exposed: [] };
    expect(await probe('@tollgate/core/internal', [...core.exports, ...core.internals], [])).toEqual({
      cjs: none,
      esm: none,
    });
  });
});

/** The README's "from a clone" npm command, its tarball paths pointed at this run's packs. */
function readmeInstallCommand(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(
    readme.indexOf('## Install'),
    readme.indexOf('\n## ', readme.indexOf('## Install') + 1),
  );
  const line = /^npm install (.*tollgate-express\.tgz.*)$/m.exec(section)?.[1];
  if (line === undefined)
    throw new Error("README's Install section has no `npm install ... tollgate-express.tgz` line");
  return line
    .replace(/#.*/, '')
    .trim()
    .split(/\s+/)
    .map((arg) => arg.replace(/^\.\.\/tollgate\/packs\//, `${packs}/`));
}

const LIMITED_APP = (load: string) => `${load}
const app = express();
app.use(rateLimit({ policies: { limit: 2, window: '1m' } }));
app.get('/', (req, res) => res.json({ remaining: req.rateLimit.remaining }));
const server = app.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await fetch(url)).status);
  server.close();
  server.closeAllConnections();
  console.log(JSON.stringify(statuses));
});
`;

describe("the README's Install section, from a clone, with npm", () => {
  let app: string;
  let how: string;
  beforeAll(async () => {
    app = await scratchApp('my-app');
    const args = readmeInstallCommand();
    expect(args).toEqual(['express', tarball('core'), tarball('express')]);
    const online = await run('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=10000'], {
      timeout: 30_000,
    }).then(
      () => true,
      () => false,
    );
    if (online) {
      await npm(['install', ...args], app);
      how = 'as written (express from the registry)';
    } else {
      // No registry here: the same tarballs, and the workspace's Express in place of npm's.
      await npm(
        ['install', '--offline', '--legacy-peer-deps', ...args.filter((a) => a.endsWith('.tgz'))],
        app,
      );
      await symlink(join(root, 'node_modules', 'express'), join(app, 'node_modules', 'express'));
      how = 'offline (registry unreachable; Express linked from the workspace)';
    }
    await writeFile(
      join(app, 'esm.mjs'),
      LIMITED_APP("import express from 'express';\nimport { rateLimit } from '@tollgate/express';"),
    );
    await writeFile(
      join(app, 'cjs.cjs'),
      LIMITED_APP("const express = require('express');\nconst { rateLimit } = require('@tollgate/express');"),
    );
  }, 200_000);

  it.each(['esm.mjs', 'cjs.cjs'])(
    'an Express app in %s imports @tollgate/express and limits requests',
    async (file) => {
      const { stdout, stderr } = await run(process.execPath, [file], { cwd: app, timeout: 30_000 });
      expect({ statuses: JSON.parse(stdout), stderr }, how).toEqual({
        statuses: [200, 200, 429],
        stderr: '',
      });
    },
  );

  it('installed @tollgate/core from its tarball, once, for @tollgate/express', () => {
    const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { resolved?: string }>;
    };
    const cores = Object.keys(lock.packages).filter((path) => path.endsWith('node_modules/@tollgate/core'));
    expect(cores).toEqual(['node_modules/@tollgate/core']);
    expect(lock.packages['node_modules/@tollgate/core']!.resolved).toMatch(/tollgate-core\.tgz$/);
  });
});
