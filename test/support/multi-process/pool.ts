/**
 * Parent side of the multi-process tests: forks consumer processes (consumer.ts) and drives runs in
 * which all of them fire their requests at the same moment.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ParentMessage, RunResult, RunSpec } from './protocol.ts';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const CONSUMER = fileURLToPath(new URL('./consumer.ts', import.meta.url));
const SKEWED_CLOCK = fileURLToPath(new URL('./skewed-clock.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const RUN_TIMEOUT_MS = 20_000;
const EXIT_GRACE_MS = 2_000;
const STDERR_TAIL_CHARS = 8_192;

type Hello = Extract<ChildMessage, { type: 'hello' }>;

export interface Consumer {
  readonly pid: number;
  /** What the child said at start-up: its Date.now() and where `@tollgate/*` resolved. */
  readonly hello: Hello;
  /** The skew of the child's Date.now() given at fork time (0 when none). */
  readonly skewMs: number;
}

export interface ConsumerPool {
  readonly consumers: readonly Consumer[];
  /** Every child prepares `spec`; once all are ready, all get `go`; resolves with each child's result. */
  run(spec: RunSpec): Promise<RunResult[]>;
  /** Asks every child to quit its connections and exit; SIGKILL after a grace period. */
  close(): Promise<void>;
}

export interface StartConsumersOptions {
  /** Per child (by index): move its Date.now() by this many ms, through the skewed-clock.ts preload. */
  skewsMs?: readonly number[];
}

interface Child {
  process: ChildProcess;
  stderr: string;
  skewMs: number;
  inbox: ChildMessage[];
  waiters: Set<() => void>;
  exited: Promise<void>;
  exitStatus: string | undefined;
}

/** Fork `count` consumers and wait until each has said hello. */
export async function startConsumers(
  count: number,
  options: StartConsumersOptions = {},
): Promise<ConsumerPool> {
  const children: Child[] = [];
  for (let index = 0; index < count; index++) children.push(spawnChild(options.skewsMs?.[index] ?? 0));
  const close = async () => {
    await Promise.all(children.map((child) => stopChild(child)));
  };
  let hellos: Hello[];
  try {
    hellos = await Promise.all(
      children.map((child) =>
        receive(child, (m): m is Hello => m.type === 'hello', START_TIMEOUT_MS, 'saying hello'),
      ),
    );
  } catch (error) {
    await close();
    throw error;
  }
  let nextRun = 0;
  return {
    consumers: hellos.map((hello, index) => ({ pid: hello.pid, hello, skewMs: children[index]!.skewMs })),
    async run(spec) {
      const run = nextRun++;
      for (const child of children) post(child, { type: 'prepare', run, ...spec });
      await Promise.all(
        children.map((child) =>
          receive(child, (m) => m.type === 'ready' && m.run === run, RUN_TIMEOUT_MS, `preparing run ${run}`),
        ),
      );
      // Back to back, so the children start firing within a millisecond or so of each other.
      for (const child of children) post(child, { type: 'go', run });
      const done = await Promise.all(
        children.map((child) =>
          receive(
            child,
            (m): m is Extract<ChildMessage, { type: 'done' }> => m.type === 'done' && m.run === run,
            RUN_TIMEOUT_MS,
            `running run ${run}`,
          ),
        ),
      );
      return done.map(({ type: _, run: __, ...result }) => result);
    },
    close,
  };
}

function spawnChild(skewMs: number): Child {
  const execArgv = ['--import', 'tsx'];
  if (skewMs !== 0) execArgv.push('--import', SKEWED_CLOCK);
  const proc = fork(CONSUMER, [], {
    cwd: repoRoot,
    execArgv,
    env: {
      ...process.env,
      // tsx maps `@tollgate/*` to packages/*/src through this tsconfig's `paths`.
      TSX_TSCONFIG_PATH: join(repoRoot, 'tsconfig.json'),
      TOLLGATE_TEST_CLOCK_SKEW_MS: String(skewMs),
    },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  const child: Child = {
    process: proc,
    stderr: '',
    skewMs,
    inbox: [],
    waiters: new Set(),
    exited: Promise.resolve(),
    exitStatus: undefined,
  };
  const wake = () => {
    for (const waiter of [...child.waiters]) waiter();
  };
  proc.stderr?.on('data', (chunk: Buffer) => {
    child.stderr = (child.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL_CHARS);
  });
  proc.on('message', (message: ChildMessage) => {
    child.inbox.push(message);
    wake();
  });
  child.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      child.exitStatus = signal ? `killed by ${signal}` : `exit code ${code}`;
      wake();
      resolve();
    });
    proc.once('error', (error) => {
      child.exitStatus ??= `failed: ${error.message}`;
      wake();
      resolve();
    });
  });
  return child;
}

function post(child: Child, message: ParentMessage): void {
  if (child.exitStatus === undefined && child.process.connected) child.process.send(message);
}

/** The first message matching `match` (taken out of the inbox); fails on `failed`, exit or timeout. */
function receive<T extends ChildMessage>(
  child: Child,
  match: ((message: ChildMessage) => message is T) | ((message: ChildMessage) => boolean),
  timeoutMs: number,
  doing: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const describe = (what: string) =>
      new Error(`consumer ${child.process.pid} ${what} while ${doing}. Its stderr:\n${child.stderr}`);
    const check = () => {
      const index = child.inbox.findIndex((m) => match(m) || m.type === 'failed');
      if (index !== -1) {
        const [message] = child.inbox.splice(index, 1) as [ChildMessage];
        finish();
        if (message.type === 'failed') reject(describe(`failed: ${message.error}`));
        else resolve(message as T);
      } else if (child.exitStatus !== undefined) {
        finish();
        reject(describe(`exited (${child.exitStatus})`));
      }
    };
    const timer = setTimeout(() => {
      finish();
      reject(describe(`did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      child.waiters.delete(check);
    };
    child.waiters.add(check);
    check();
  });
}

async function stopChild(child: Child): Promise<void> {
  if (child.exitStatus !== undefined) return;
  post(child, { type: 'exit' });
  const grace = new Promise<'grace over'>((resolve) =>
    setTimeout(resolve, EXIT_GRACE_MS, 'grace over').unref(),
  );
  if ((await Promise.race([child.exited, grace])) === 'grace over') child.process.kill('SIGKILL');
  await child.exited;
}
