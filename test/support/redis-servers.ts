/**
 * Throwaway Redis servers for tests: every server listens on 127.0.0.1 on a free port, keeps its data in
 * its own temporary directory and is killed when the process that started it ends, so tests never touch
 * the machine's own Redis on 6379.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';

const HOST = '127.0.0.1';
const MACHINE_REDIS_PORT = 6379;
const READY_TIMEOUT_MS = 10_000;
const CLUSTER_READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const POLL_INTERVAL_MS = 50;
const OUTPUT_TAIL_CHARS = 16_384;
// Redis Cluster listens for its node-to-node bus on `port + 10000`, which must be a valid port too.
const CLUSTER_BUS_OFFSET = 10_000;
const SLOT_COUNT = 16_384;

export interface RedisServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
  /** The server's working directory; `undefined` after `stop()` (a new one is made by `restart()`). */
  readonly dir: string | undefined;
  /** SIGTERM (SIGKILL after 5 s), wait for the exit, remove the directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit, simulating a crash; the directory is kept. */
  kill(): Promise<void>;
  /** Start again on the same port (stopping first if running) and wait until it answers PING. */
  restart(): Promise<void>;
}

export interface StartRedisOptions {
  /** Start as a replica of the server on `127.0.0.1:<replicaOf>`. */
  replicaOf?: number;
  /** Listen on this port instead of a free one. Never use 6379. */
  port?: number;
  /** Extra `redis-server` arguments, e.g. `['--maxmemory', '10mb']`. */
  args?: readonly string[];
  /** Extra environment variables for the server process (e.g. an LD_PRELOAD clock shim). */
  env?: Readonly<Record<string, string>>;
}

export interface ClusterNode {
  host: string;
  port: number;
}

export interface RedisCluster {
  /** Every master, in the order given to `redis-cli --cluster create`; pass them as cluster seed nodes. */
  readonly nodes: ClusterNode[];
  /** The servers behind `nodes`, same order; `kill()` one to simulate a lost master. */
  readonly servers: RedisServer[];
  /** The master that owned `slot` (0..16383) when the cluster was created. */
  masterForSlot(slot: number): ClusterNode;
  /** Stop every node and remove their directories. */
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  /** Number of masters, at least 3 (a `redis-cli --cluster create` requirement). @default 3 */
  masters?: number;
  /** Extra `redis-server` arguments for every node, e.g. `['--cluster-require-full-coverage', 'no']`. */
  args?: readonly string[];
  /** Extra environment variables for the node at each index (see StartRedisOptions.env). */
  env?: readonly (Readonly<Record<string, string>> | undefined)[];
}

interface ProcessState {
  handedOutPorts: Set<number>;
  children: Set<ChildProcess>;
  dirs: Set<string>;
}

// Kept on globalThis so that every copy of this module in a process (Vitest isolates test files)
// shares one set of handed-out ports and one cleanup hook.
const STATE_KEY = Symbol.for('tollgate.test.redis-servers');
const state: ProcessState =
  ((globalThis as Record<symbol, unknown>)[STATE_KEY] as ProcessState | undefined) ??
  installCleanup({ handedOutPorts: new Set(), children: new Set(), dirs: new Set() });

function installCleanup(fresh: ProcessState): ProcessState {
  (globalThis as Record<symbol, unknown>)[STATE_KEY] = fresh;
  const cleanUp = () => {
    for (const child of fresh.children) child.kill('SIGKILL');
    for (const dir of fresh.dirs) {
      try {
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // Best effort: the process is going away.
      }
    }
  };
  process.on('exit', cleanUp);
  // Signals end a process without 'exit'; Vitest stops its fork workers with SIGTERM. Prepended so that
  // we still see Vitest's own listener (in the main process) and leave the exit to it; alone, we restore
  // the default action by removing ourselves and re-raising.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanUp();
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.prependListener(signal, onSignal);
  }
  return fresh;
}

/** Whether `redis-server` and `redis-cli` are on PATH. Use it for a clear error, not to skip tests. */
export function redisAvailable(): boolean {
  return onPath('redis-server') && onPath('redis-cli');
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/** A port that was free on 127.0.0.1 a moment ago and that this process has not handed out before. */
export async function findFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await listenOnce(0);
    if (port !== MACHINE_REDIS_PORT && !state.handedOutPorts.has(port)) {
      state.handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error('findFreePort: every port the OS offered in 100 attempts was already handed out');
}

async function findFreeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await listenOnce(0);
    const busPort = port + CLUSTER_BUS_OFFSET;
    if (
      port === MACHINE_REDIS_PORT ||
      busPort > 65_535 ||
      state.handedOutPorts.has(port) ||
      state.handedOutPorts.has(busPort) ||
      !(await listenOnce(busPort).then(
        () => true,
        () => false,
      ))
    ) {
      continue;
    }
    state.handedOutPorts.add(port);
    state.handedOutPorts.add(busPort);
    return port;
  }
  throw new Error('findFreeClusterPort: found no free port whose cluster bus port (+10000) was free too');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host: HOST, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      server.close(() => resolve(bound));
    });
  });
}

function missingRedisError(): Error {
  return new Error(
    'redis-server and redis-cli must be on PATH: the tests start their own throwaway Redis servers. ' +
      'Install them with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS).',
  );
}

/** Start a standalone `redis-server` on 127.0.0.1 and wait until it answers PING. */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  if (options.port === MACHINE_REDIS_PORT) {
    throw new Error('startRedis: refusing port 6379, which belongs to the machine’s own Redis');
  }
  if (!redisAvailable()) throw missingRedisError();
  const port = options.port ?? (await findFreePort());
  const args = [
    ...(options.replicaOf === undefined ? [] : ['--replicaof', HOST, String(options.replicaOf)]),
    ...(options.args ?? []),
  ];

  let running: RunningRedis | undefined;
  let dir: string | undefined;
  // stop/kill/restart run one at a time, in call order.
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = (operation: () => Promise<void>): Promise<void> => {
    const result = queue.then(operation);
    queue = result.catch(() => undefined);
    return result;
  };

  const start = async () => {
    if (dir === undefined) {
      dir = await mkdtemp(join(tmpdir(), `tollgate-redis-${port}-`));
      state.dirs.add(dir);
    }
    running = await launch(port, dir, args, options.env);
  };
  const halt = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const current = running;
    running = undefined;
    if (current) await current.halt(signal);
  };

  try {
    await start();
  } catch (error) {
    await removeDir(dir);
    throw error;
  }

  return {
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    get dir() {
      return dir;
    },
    stop: () =>
      serialize(async () => {
        await halt('SIGTERM');
        await removeDir(dir);
        dir = undefined;
      }),
    kill: () => serialize(() => halt('SIGKILL')),
    restart: () =>
      serialize(async () => {
        await halt('SIGTERM');
        await start();
      }),
  };
}

async function removeDir(dir: string | undefined): Promise<void> {
  if (dir === undefined) return;
  await rm(dir, { recursive: true, force: true });
  state.dirs.delete(dir);
}

interface RunningRedis {
  halt(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

async function launch(
  port: number,
  dir: string,
  extraArgs: readonly string[],
  env: Readonly<Record<string, string>> | undefined,
): Promise<RunningRedis> {
  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--protected-mode',
    'no',
    // Redis waits 5 s by default before a diskless full sync, in case more replicas arrive.
    '--repl-diskless-sync-delay',
    '0',
    ...extraArgs,
  ];
  const child = spawn('redis-server', args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  state.children.add(child);

  let output = '';
  const record = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  child.stdout.on('data', record);
  child.stderr.on('data', record);

  // 'close' comes after 'exit' once stdout and stderr are drained, so a failure report has the last words.
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let exitStatus: string | undefined;
  const exited = new Promise<void>((resolve) => {
    const settle = (status: string) => {
      exitStatus ??= status;
      state.children.delete(child);
      resolve();
    };
    child.once('exit', (code, signal) => settle(signal ? `killed by ${signal}` : `exit code ${code}`));
    // Only when the spawn itself failed, e.g. ENOENT; no 'exit' follows.
    child.once('error', (error) => settle(`failed to spawn: ${error.message}`));
  });
  const failure = async (what: string) => {
    await Promise.race([closed, delay(500)]);
    const label = `redis-server on ${HOST}:${port} (dir ${dir}, extra args ${JSON.stringify(extraArgs)})`;
    return new Error(`${label} ${what}. Its output:\n${output}`);
  };

  const halt = async (signal: 'SIGTERM' | 'SIGKILL') => {
    if (exitStatus !== undefined) return;
    child.kill(signal);
    if (signal === 'SIGTERM') {
      const abort = new AbortController();
      const graceOver = delay(STOP_GRACE_MS, 'grace over', { signal: abort.signal }).catch(() => undefined);
      if ((await Promise.race([exited, graceOver])) === 'grace over') child.kill('SIGKILL');
      abort.abort();
    }
    await exited;
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (exitStatus === undefined) {
    if (child.pid !== undefined && (await answersPing(port, child.pid))) return { halt };
    if (Date.now() >= deadline) {
      await halt('SIGKILL');
      throw await failure(`did not answer PING within ${READY_TIMEOUT_MS} ms`);
    }
    await Promise.race([delay(POLL_INTERVAL_MS), exited]);
  }
  await exited;
  throw await failure(`stopped before answering PING (${exitStatus})`);
}

/**
 * Whether the server on `port` answers PING and is process `pid`: the pid check keeps a foreign server
 * that took the port first from passing for ours.
 */
function answersPing(port: number, pid: number): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = connect({ port, host: HOST });
    const finish = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('close', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (!reply.startsWith('+PONG\r\n')) {
        if (reply.includes('\r\n')) finish(false);
        return;
      }
      const processId = /\r\nprocess_id:(\d+)\r\n/.exec(reply);
      if (processId) finish(Number(processId[1]) === pid);
      else if (reply.charAt('+PONG\r\n'.length) === '-') finish(false);
    });
  });
}

/**
 * Start `masters` cluster-enabled servers, join them with `redis-cli --cluster create` (no replicas) and
 * wait until every node reports `cluster_state:ok` with all 16384 slots assigned.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3) {
    throw new Error(`startCluster: expected \`masters\` to be an integer of at least 3, got \`${masters}\``);
  }
  if (!redisAvailable()) throw missingRedisError();

  const ports: number[] = [];
  for (let index = 0; index < masters; index++) ports.push(await findFreeClusterPort());
  const started = await Promise.allSettled(
    ports.map((port, index) =>
      startRedis({
        port,
        ...(options.env?.[index] === undefined ? {} : { env: options.env[index] }),
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          '2000',
          ...(options.args ?? []),
        ],
      }),
    ),
  );
  const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
  };

  let slots: SlotRange[];
  try {
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((port) => `${HOST}:${port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    slots = await waitForCluster(ports);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes: ports.map((port) => ({ host: HOST, port })),
    servers,
    masterForSlot(slot) {
      if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) {
        throw new RangeError(`masterForSlot: expected a slot in 0..16383, got \`${slot}\``);
      }
      const range = slots.find(({ start, end }) => start <= slot && slot <= end);
      if (!range) throw new Error(`masterForSlot: slot ${slot} had no master when the cluster was created`);
      return { ...range.master };
    },
    stop,
  };
}

interface SlotRange {
  start: number;
  end: number;
  master: ClusterNode;
}

/** Poll CLUSTER INFO on every node until all agree the cluster is up; return the slot map. */
async function waitForCluster(ports: readonly number[]): Promise<SlotRange[]> {
  const clients = ports.map(
    (port) =>
      new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null }),
  );
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  let last: string[] = [];
  try {
    for (;;) {
      last = await Promise.all(
        clients.map((client) =>
          client.cluster('INFO').then(String, (error: unknown) => `error: ${String(error)}`),
        ),
      );
      const ready = last.every(
        (info) =>
          info.includes('cluster_state:ok') &&
          info.includes(`cluster_slots_assigned:${SLOT_COUNT}`) &&
          info.includes(`cluster_known_nodes:${ports.length}`),
      );
      if (ready) break;
      if (Date.now() >= deadline) {
        const report = last.map((info, index) => `--- 127.0.0.1:${ports[index]}\n${info.trim()}`);
        throw new Error(
          `Redis Cluster on ports ${ports.join(', ')} not ready within ${CLUSTER_READY_TIMEOUT_MS} ms:\n` +
            report.join('\n'),
        );
      }
      await delay(POLL_INTERVAL_MS * 2);
    }
    const reply = await clients[0]!.cluster('SLOTS');
    return reply.map(([start, end, master]) => {
      if (!master) throw new Error(`CLUSTER SLOTS listed slots ${start}-${end} without a master`);
      return { start, end, master: { host: master[0], port: master[1] } };
    });
  } finally {
    for (const client of clients) client.disconnect();
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`\`${command} ${args.join(' ')}\` failed: ${error.message}\n${stdout}${stderr}`));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** The cluster slot of `key` (CRC16/XMODEM mod 16384, honouring `{hash tags}`), as CLUSTER KEYSLOT. */
export function keySlot(key: string | Uint8Array): number {
  let bytes =
    typeof key === 'string' ? Buffer.from(key) : Buffer.from(key.buffer, key.byteOffset, key.length);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % SLOT_COUNT;
}
