/**
 * A consumer process for the multi-process tests, forked by pool.ts as
 * `node --import tsx test/support/multi-process/consumer.ts` with the repository root as cwd.
 *
 * How `@tollgate/*` resolves here: Vitest's aliases do not reach child processes, so the imports
 * below go through tsx, which applies the `paths` of the root tsconfig.json (pointed to by
 * TSX_TSCONFIG_PATH) to every file it loads outside node_modules. `@tollgate/core` and
 * `@tollgate/redis` are therefore the TypeScript sources in packages/<name>/src, as in the tests,
 * never a possibly stale dist; the child reports what they resolved to and the parent checks it.
 *
 * Each child keeps its own ioredis connection per target (standalone or cluster) and runs what the
 * parent sends: `prepare` (connect, build a limiter on a RedisStore), then `go` (fire every consume
 * at once), replying `ready` and `done` with the counts.
 */
import { createLimiter, type Decision, type Limiter } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import type { ChildMessage, ParentMessage, RunResult, RunSpec, Target } from './protocol.ts';
import { reserveAll } from './reserver.ts';

const send = (message: ChildMessage): void => {
  process.send?.(message);
};

const clients = new Map<string, Redis | Cluster>();
const prepared = new Map<number, { spec: RunSpec; limiter: Limiter; logged: string[] }>();

async function clientFor(target: Target): Promise<Redis | Cluster> {
  const id = JSON.stringify(target);
  let client = clients.get(id);
  if (client === undefined) {
    client =
      target.kind === 'standalone'
        ? new Redis({ host: '127.0.0.1', port: target.port })
        : new Cluster(target.nodes);
    // A failing connection shows up in the run's results (store errors); keep stderr quiet.
    client.on('error', () => undefined);
    clients.set(id, client);
  }
  // The store fails fast while the client is not ready, so wait for it before saying `ready`.
  if (client.status !== 'ready') {
    const pending = client;
    await new Promise<void>((resolve) => pending.once('ready', () => resolve()));
  }
  return client;
}

async function prepare(run: number, spec: RunSpec): Promise<void> {
  const client = await clientFor(spec.target);
  const logged: string[] = [];
  const limiter = createLimiter({
    policies: spec.policies,
    store: new RedisStore({
      client,
      prefix: spec.prefix,
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    }),
    // Every request goes to Redis: the point is the scripts' atomicity, not the local cache.
    blockedCache: false,
    logger: { warn: (message) => logged.push(message), error: (message) => logged.push(message) },
  });
  // Warm up: connect to the node that owns the key (a cluster connects per node on first use).
  await limiter.peek(spec.key);
  prepared.set(run, { spec, limiter, logged });
}

async function go(run: number): Promise<RunResult> {
  const entry = prepared.get(run);
  if (entry === undefined) throw new Error(`run ${run} was not prepared`);
  prepared.delete(run);
  const childNow = Date.now();
  const { spec, limiter, logged } = entry;
  if (spec.reservations !== undefined) {
    const reservations = await reserveAll(limiter, spec.key, spec.reservations);
    return { allowed: 0, denied: 0, reasons: {}, errors: [], logged, childNow, reservations };
  }
  const calls: Promise<Decision>[] = [];
  for (let i = 0; i < spec.requests; i++) calls.push(limiter.consume(spec.key));
  if (spec.busyMs) {
    // A moment for the socket to take every command (a full send buffer waits for the loop).
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The loop blocked, as by a server parsing and answering a burst of requests, but without
    // taking the CPU: four spinning processes on a small machine would starve Redis itself.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, spec.busyMs);
  }
  const settled = await Promise.allSettled(calls);
  const result: RunResult = { allowed: 0, denied: 0, reasons: {}, errors: [], logged, childNow };
  for (const outcome of settled) {
    if (outcome.status === 'rejected') {
      result.errors.push(String(outcome.reason));
      continue;
    }
    const decision = outcome.value;
    if (decision.allowed) result.allowed++;
    else result.denied++;
    if (decision.reason !== undefined) {
      result.reasons[decision.reason] = (result.reasons[decision.reason] ?? 0) + 1;
    }
  }
  return result;
}

async function exit(): Promise<void> {
  await Promise.allSettled([...clients.values()].map((client) => client.quit()));
  process.exit(0);
}

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'prepare': {
      const { type: _, run, ...spec } = message;
      prepare(run, spec).then(
        () => send({ type: 'ready', run }),
        (error: unknown) => send({ type: 'failed', run, error: String(error) }),
      );
      break;
    }
    case 'go':
      go(message.run).then(
        (result) => send({ type: 'done', run: message.run, ...result }),
        (error: unknown) => send({ type: 'failed', run: message.run, error: String(error) }),
      );
      break;
    case 'exit':
      void exit();
      break;
  }
});
// The parent went away (a crashed or killed test run): never outlive it.
process.on('disconnect', () => process.exit(0));

send({
  type: 'hello',
  pid: process.pid,
  now: Date.now(),
  resolved: { core: import.meta.resolve('@tollgate/core'), redis: import.meta.resolve('@tollgate/redis') },
});
