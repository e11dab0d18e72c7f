/**
 * A process that uses tollgate must be able to exit on its own: no timer, socket or pending promise of
 * the core may keep the event loop alive (DESIGN: the MemoryStore sweep timer is `unref`'d).
 * Nor may a store hold a limiter dropped without close(): it is collected and stops listening.
 * Real child processes, real time: that is the point here.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RedisCluster, type RedisServer, startCluster, startRedis } from './support/redis-servers.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const core = pathToFileURL(fileURLToPath(new URL('../packages/core/src/index.ts', import.meta.url))).href;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from the child printing `done` to its exit. */
  exitDelayMs: number;
}

/**
 * Runs `script` (an ES module, TypeScript imports through tsx; `flags` for node) and waits for it to exit. The child
 * is killed `killAfterDoneMs` after it prints `done` (timed from `done`, not from the start: tsx's
 * start-up takes seconds on a loaded machine), and in any case after `limitMs`.
 */
function run(script: string, killAfterDoneMs = 10_000, limitMs = 60_000, flags: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...flags, '--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
        // tsx maps `@tollgate/*` to packages/*/src through this tsconfig's `paths`.
        env: { ...process.env, TSX_TSCONFIG_PATH: `${repoRoot}tsconfig.json` },
      },
    );
    let stdout = '';
    let stderr = '';
    let doneAt: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (doneAt === undefined && stdout.includes('done')) {
        doneAt = performance.now();
        setTimeout(() => child.kill('SIGKILL'), killAfterDoneMs).unref();
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // A child that does not exit by itself is a failure, never a hung test run.
    const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', (error) => {
      clearTimeout(killer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      const exitAt = performance.now();
      resolve({
        code,
        signal,
        stdout,
        stderr,
        exitDelayMs: doneAt === undefined ? Number.NaN : exitAt - doneAt,
      });
    });
  });
}

const USE_EVERYTHING = `
import { createLimiter, MemoryStore } from ${JSON.stringify(core)};

const store = new MemoryStore({ maxKeys: 100, sweepIntervalMs: 20 });
const fallback = new MemoryStore();
const limiters = [
  createLimiter({ policies: [{ limit: 10, window: '1s' }, { limit: 100, window: '1h' }], store, name: 'multi' }),
  createLimiter({ policies: { algorithm: 'fixed-window', limit: 3, window: '1m' }, store, name: 'fixed', blockedCache: true }),
  createLimiter({ policies: { algorithm: 'token-bucket', limit: 5, window: '10s', burst: 8 }, store, name: 'tb', fallback }),
  createLimiter({ policies: { algorithm: 'leaky-bucket', limit: 5, window: '1s' } }),
];
let allowed = 0;
let denied = 0;
for (let i = 0; i < 3000; i++) {
  for (const limiter of limiters) {
    const d = await limiter.consume('client-' + (i % 200), { cost: i % 3 });
    if (d.allowed) allowed++;
    else denied++;
  }
}
for (const limiter of limiters) {
  await limiter.peek('client-1');
  await limiter.refund('client-1', 2);
  await limiter.reset('client-2');
}
// Let the sweep timer fire at least once.
await new Promise((resolve) => setTimeout(resolve, 50));
const size = store.size;
`;

describe('a process using tollgate exits by itself', () => {
  test('after close(): within 1 s of finishing, exit code 0', async () => {
    const result = await run(`${USE_EVERYTHING}
for (const limiter of limiters) await limiter.close();
await store.close();
await fallback.close();
console.log('done', allowed, denied, size, store.size);
`);
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    const [, allowed, denied, size, after] = result.stdout.trim().split(' ').map(Number);
    expect(allowed).toBeGreaterThan(0);
    expect(denied).toBeGreaterThan(0);
    expect(size).toBeLessThanOrEqual(100);
    expect(after).toBe(0);
    expect(result.exitDelayMs).toBeLessThan(1000);
  });

  test("without close(): the unref'd sweep timers never hold the process", async () => {
    const result = await run(`${USE_EVERYTHING}
console.log('done', allowed, denied, size);
`);
    expect(result.stderr).toBe('');
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('done ')).toBe(true);
    expect(result.exitDelayMs).toBeLessThan(1000);
  });

  test('the check itself works: a process holding a timer is caught', async () => {
    const result = await run(
      `${USE_EVERYTHING}
setInterval(() => {}, 1000);
console.log('done');
`,
      1500,
    );
    expect(result.signal).toBe('SIGKILL');
    expect(result.exitDelayMs).toBeGreaterThan(1000);
  });
});

/**
 * A script with a banning limiter on a RedisStore (whose subscriber for lifted bans is up), which
 * quits its client at the end: `connect` makes the client (awaited, ready), `quit` ends it.
 */
const withBans = (connect: string, quit: string, closeStore: boolean) => `
import { createLimiter } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis, Cluster } from 'ioredis';
import { createClient, createCluster } from 'redis';

const client = await (async () => { ${connect} })();
const store = new RedisStore({ client, prefix: 'exit:${Math.random().toString(36).slice(2)}:' });
const subscribed = new Promise((resolve) =>
  store.onLift({ lifted: () => undefined, listening: (on) => on && resolve() }),
);
const limiter = createLimiter({
  policies: { algorithm: 'fixed-window', limit: 1, window: '1m' },
  store,
  ban: { after: 2, within: '1m', for: '1m' },
  logger: { warn: () => undefined, error: () => undefined },
});
await limiter.consume('k');
await limiter.consume('k');
await limiter.consume('k');
const banned = await limiter.consume('k');
await subscribed;
await limiter.unban('k');
const after = await limiter.consume('k');
if (${closeStore}) store.close();
await (async () => { ${quit} })();
console.log('done ' + banned.reason + ' ' + after.reason);
`;

describe('a process using bans on Redis exits by itself after quitting its client', () => {
  let server: RedisServer;
  let cluster: RedisCluster;
  beforeAll(async () => {
    [server, cluster] = await Promise.all([startRedis(), startCluster()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([server?.stop(), cluster?.stop()]);
  });

  const ioredis = () =>
    `const c = new Redis(${server.port}, '127.0.0.1'); await new Promise((r) => c.once('ready', r)); return c;`;
  const nodeRedis = () =>
    `const c = createClient({ socket: { host: '127.0.0.1', port: ${server.port} } }); await c.connect(); return c;`;
  const ioCluster = () =>
    `const c = new Cluster(${JSON.stringify(cluster.nodes)}); await new Promise((r) => c.once('ready', r)); return c;`;
  const nodeCluster = () =>
    `const c = createCluster({ rootNodes: ${JSON.stringify(cluster.nodes.map((n) => ({ socket: n })))} }); await c.connect(); return c;`;
  const cases: [string, () => string, boolean][] = [
    ['ioredis', ioredis, false],
    ['ioredis, store.close() first', ioredis, true],
    ['node-redis', nodeRedis, false],
    ['ioredis Cluster', ioCluster, false],
    ['node-redis cluster', nodeCluster, false],
  ];

  test.each(cases)(
    '%s',
    async (_, connect, closeStore) => {
      const result = await run(withBans(connect(), 'await client.quit();', closeStore));
      expect(result.stderr).toBe('');
      expect(result.signal).toBeNull();
      expect(result.code).toBe(0);
      expect(result.stdout.trim()).toBe('done banned undefined');
      expect(result.exitDelayMs).toBeLessThan(2000);
    },
    70_000,
  );
});

describe('limiters with bans dropped without close()', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  test('are collected although their RedisStore lives on, and its subscriber closes with the last of them', async () => {
    const result = await run(
      `
import { createLimiter } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';

const client = new Redis(${server.port}, '127.0.0.1');
const admin = new Redis(${server.port}, '127.0.0.1');
await new Promise((r) => client.once('ready', r));
const prefix = 'gc:' + Math.random().toString(36).slice(2) + ':';
const store = new RedisStore({ client, prefix });
const numsub = async () => (await admin.pubsub('NUMSUB', prefix + 'bans:lifted'))[1];
// Made in a function: the suspended module body may hold its last local values in registers.
const make = () =>
  new WeakRef(
    createLimiter({
      name: 'route',
      store,
      policies: { limit: 10, window: '1m' },
      ban: { after: 3, within: '1m', for: '10m' },
      logger: { warn: () => undefined, error: () => undefined },
    }),
  );
const refs = [];
for (let i = 0; i < 2000; i++) refs.push(make());
while ((await numsub()) !== 1) await new Promise((r) => setTimeout(r, 10));
const alive = () => refs.filter((r) => r.deref() !== undefined).length;
// Collection and the finalizers that follow it come in their own time: a few rounds at most. (A
// deref() keeps its target alive until the current job ends: gc() only after a turn of the loop.)
for (let i = 0; i < 100; i++) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 20));
  if (alive() === 0 && (await numsub()) === 0) break;
}
console.log('done', alive(), await numsub(), typeof store.close);
client.disconnect();
admin.disconnect();
`,
      10_000,
      60_000,
      ['--expose-gc'],
    );
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('done 0 0 function');
  }, 70_000);
});
