/**
 * A process of test/bans-acceptance.test.ts, forked as `node --import tsx` with the repository root
 * as cwd (`@tollgate/*` resolve to packages/<name>/src through tsconfig paths, as in consumer.ts).
 * It holds one connection per target (ioredis or node-redis, standalone or Cluster) and limiters
 * built on request, each on a RedisStore of its own, and answers the parent's commands over IPC, one
 * at a time: `limiter` (build one; answers once its store's subscriber is subscribed), `consume` (n
 * requests, in sequence), `ban`, `unban`, `subscribed` (waits until a limiter's store has
 * subscribed `times` times in all), `heard` (until it has heard `times` lifts in all), `exit`.
 */
import { type BanOptions, createLimiter, type Limiter, type Policy } from '@tollgate/core';
import { type RedisClientLike, RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';

export type BanChildCommand =
  | {
      type: 'limiter';
      id: string;
      target:
        | { kind: 'standalone'; port: number; client?: 'ioredis' | 'node-redis' }
        | { kind: 'cluster'; nodes: { host: string; port: number }[]; client?: 'ioredis' | 'node-redis' };
      prefix: string;
      name: string;
      policies: Policy;
      ban: BanOptions;
    }
  | { type: 'consume'; id: string; key: string; n: number }
  | { type: 'ban'; id: string; key: string; duration: number }
  | { type: 'unban'; id: string; key: string }
  | { type: 'reset'; id: string; key: string }
  | { type: 'subscribed'; id: string; times: number }
  | { type: 'heard'; id: string; times: number }
  | { type: 'exit' };

/** One decision as the parent sees it: allowed, reason ('' for none), retryAfterMs. */
export type Answer = [boolean, string, number];

type Target = Extract<BanChildCommand, { type: 'limiter' }>['target'];
const clients = new Map<string, { client: RedisClientLike; quit(): unknown }>();
const limiters = new Map<
  string,
  { limiter: Limiter; subscribed: () => number; heard: () => number; wait: Set<() => void> }
>();

async function connect(target: Target): Promise<RedisClientLike> {
  const id = JSON.stringify(target);
  let entry = clients.get(id);
  if (entry === undefined) {
    if (target.client === 'node-redis') {
      const client =
        target.kind === 'standalone'
          ? createClient({ socket: { host: '127.0.0.1', port: target.port } })
          : createCluster({
              rootNodes: target.nodes.map((n) => ({ socket: { host: n.host, port: n.port } })),
              defaults: { disableOfflineQueue: true },
            });
      client.on('error', () => undefined);
      await client.connect();
      entry = { client: client as RedisClientLike, quit: () => client.disconnect().catch(() => undefined) };
    } else {
      const client =
        target.kind === 'standalone'
          ? new Redis({ host: '127.0.0.1', port: target.port })
          : new Cluster(target.nodes);
      client.on('error', () => undefined);
      if (client.status !== 'ready')
        await new Promise<void>((resolve) => client.once('ready', () => resolve()));
      entry = { client, quit: () => client.disconnect() };
    }
    clients.set(id, entry);
  }
  return entry.client;
}

async function run(command: BanChildCommand): Promise<unknown> {
  if (command.type === 'limiter') {
    const store = new RedisStore({ client: await connect(command.target), prefix: command.prefix });
    const limiter = createLimiter({
      name: command.name,
      policies: command.policies,
      store,
      ban: command.ban,
      logger: { warn: () => undefined, error: () => undefined },
    });
    // The store's subscriptions, counted through its public hook (beside the limiter's listener).
    let subscribed = 0;
    let heard = 0;
    const wait = new Set<() => void>();
    store.onLift({
      lifted: () => {
        heard++;
        for (const w of wait) w();
      },
      listening: (on) => {
        if (!on) return;
        subscribed++;
        for (const w of wait) w();
      },
    });
    // One limiter per id at a time: a later scenario replaces an earlier one.
    limiters.get(command.id)?.limiter.store.close?.();
    limiters.set(command.id, { limiter, subscribed: () => subscribed, heard: () => heard, wait });
    await until(command.id, 1);
    return null;
  }
  if (command.type === 'exit') {
    for (const { quit } of clients.values()) quit();
    process.exit(0);
  }
  const { limiter } = limiters.get(command.id)!;
  if (command.type === 'subscribed') return until(command.id, command.times);
  if (command.type === 'heard') return until(command.id, command.times, 'heard');
  if (command.type === 'ban') return limiter.ban(command.key, command.duration);
  if (command.type === 'unban') return limiter.unban(command.key);
  if (command.type === 'reset') return limiter.reset(command.key);
  const answers: Answer[] = [];
  for (let i = 0; i < command.n; i++) {
    const d = await limiter.consume(command.key);
    answers.push([d.allowed, d.reason ?? '', d.retryAfterMs]);
  }
  return answers;
}

/**
 * Resolves once the store of limiter `id` has subscribed `times` times (again after reconnects), or
 * has heard `times` lifts in all (`what`: 'heard').
 */
function until(id: string, times: number, what: 'subscribed' | 'heard' = 'subscribed'): Promise<number> {
  const entry = limiters.get(id)!;
  return new Promise((resolve) => {
    const check = () => {
      if (entry[what]() < times) return;
      entry.wait.delete(check);
      resolve(entry[what]());
    };
    entry.wait.add(check);
    check();
  });
}

process.on('message', (message: { seq: number; command: BanChildCommand }) => {
  run(message.command).then(
    (result) => process.send?.({ seq: message.seq, result: result ?? null }),
    (error: unknown) => process.send?.({ seq: message.seq, error: String(error) }),
  );
});
process.send?.({ seq: -1, result: 'hello' });
