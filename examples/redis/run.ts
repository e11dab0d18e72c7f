/**
 * Two app processes, one Redis, one limit: starts a throwaway redis-server (unless REDIS_URL is set),
 * two copies of server.ts on free ports, sends requests to them in turn from one client, prints what
 * each answered, and stops everything.
 *
 *   node --import tsx examples/redis/run.ts
 *   REDIS_URL=redis://localhost:6379 node --import tsx examples/redis/run.ts
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LIMIT = 5;
const REQUESTS = 7;
const START_TIMEOUT_MS = 20_000;
const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));

const children = new Set<ChildProcess>();
// Whatever happens to this script, it leaves no process behind.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

interface Started {
  url: string;
  stop(): Promise<void>;
}

/** Starts `command` and resolves with the first match of `ready` in its output. */
function start(command: string, args: readonly string[], env: NodeJS.ProcessEnv, ready: RegExp) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const exited = once(child, 'exit').then(() => void children.delete(child));
  const match = new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${command} did not start within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const found = ready.exec(output);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${signal ?? `code ${code}`}) before it was ready:\n${output}`));
    });
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return { match, stop };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  // Never the machine's own Redis port, should the OS offer it.
  return port === 6379 ? freePort() : port;
}

async function throwawayRedis(): Promise<Started> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'tollgate-example-redis-'));
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ];
  const redis = start('redis-server', args, process.env, /Ready to accept connections/);
  try {
    await redis.match;
  } catch (error) {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('redis-server is not on PATH: install Redis, or set REDIS_URL to a Redis you run.');
    }
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function startApp(env: NodeJS.ProcessEnv): Promise<Started> {
  const app = start(process.execPath, ['--import', 'tsx', SERVER], env, /listening on (http:\/\/\S+),/);
  try {
    const [, url] = await app.match;
    return { url: url!, stop: app.stop };
  } catch (error) {
    await app.stop();
    throw error;
  }
}

/** One GET on a fresh connection, so that nothing is left open when the servers stop. */
function request(url: string): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    }).once('error', reject);
  });
}

const stack: Started[] = [];
try {
  const ownRedis = process.env.REDIS_URL === undefined;
  const redis = ownRedis ? await throwawayRedis() : { url: process.env.REDIS_URL!, stop: async () => {} };
  stack.push(redis);
  const where = new URL(redis.url).host;
  console.log(
    ownRedis ? `Started a throwaway redis-server on ${where}.` : `Using the Redis at ${where} (REDIS_URL).`,
  );

  const env = {
    ...process.env,
    REDIS_URL: redis.url,
    // A fresh prefix per run, so a second run does not find the first run's counters.
    REDIS_PREFIX: `tollgate-example:${randomUUID()}:`,
    RATE_LIMIT: String(LIMIT),
    RATE_WINDOW: '1m',
    HOST: '127.0.0.1',
    PORT: '0',
  };
  const apps = await Promise.all([startApp(env), startApp(env)]);
  stack.push(...apps);
  const names = ['A', 'B'];
  for (const [i, app] of apps.entries()) console.log(`App ${names[i]}: ${app.url}`);
  console.log(`Both: ${LIMIT} requests per minute per client, counted in Redis.\n`);

  let allowed = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const app = apps[i % 2]!;
    const { status, headers } = await request(app.url);
    if (status === 200) allowed++;
    const detail =
      status === 429
        ? `Retry-After: ${headers['retry-after']}`
        : `RateLimit-Remaining: ${headers['ratelimit-remaining']}`;
    console.log(`#${i + 1}  -> app ${names[i % 2]}  ${status}  ${detail}`);
  }
  console.log(
    `\nOne client, two processes, one budget: ${allowed} allowed and ${REQUESTS - allowed} denied ` +
      `(a limit of ${LIMIT} per process would have allowed all ${REQUESTS}).`,
  );
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
} finally {
  // Apps first, then Redis.
  for (const started of stack.reverse()) await started.stop();
  console.log('Stopped the apps and Redis.');
}
