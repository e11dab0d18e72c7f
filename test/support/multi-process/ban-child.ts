/**
 * A process of test/bans-acceptance.test.ts, forked as `node --import tsx` with the repository root
 * as cwd (`@tollgate/*` resolve to packages/<name>/src through tsconfig paths, as in consumer.ts).
 * It holds one ioredis connection and limiters built on request, and answers the parent's commands
 * over IPC, one at a time: `limiter` (build one), `consume` (n requests, in sequence), `ban`,
 * `unban`, `exit`.
 */
import { type BanOptions, createLimiter, type Limiter, type Policy } from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';

export type BanChildCommand =
  | {
      type: 'limiter';
      id: string;
      target:
        | { kind: 'standalone'; port: number }
        | { kind: 'cluster'; nodes: { host: string; port: number }[] };
      prefix: string;
      name: string;
      policies: Policy;
      ban: BanOptions;
    }
  | { type: 'consume'; id: string; key: string; n: number }
  | { type: 'ban'; id: string; key: string; duration: number }
  | { type: 'unban'; id: string; key: string }
  | { type: 'exit' };

/** One decision as the parent sees it: allowed, reason ('' for none), retryAfterMs. */
export type Answer = [boolean, string, number];

const clients = new Map<string, Redis | Cluster>();
const limiters = new Map<string, Limiter>();

async function connect(target: Extract<BanChildCommand, { type: 'limiter' }>['target']) {
  const id = JSON.stringify(target);
  let client = clients.get(id);
  if (client === undefined) {
    client =
      target.kind === 'standalone'
        ? new Redis({ host: '127.0.0.1', port: target.port })
        : new Cluster(target.nodes);
    client.on('error', () => undefined);
    clients.set(id, client);
  }
  const pending = client;
  if (pending.status !== 'ready')
    await new Promise<void>((resolve) => pending.once('ready', () => resolve()));
  return client;
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
    // One limiter per id at a time: a later scenario replaces an earlier one.
    limiters.set(command.id, limiter);
    return null;
  }
  if (command.type === 'exit') {
    for (const client of clients.values()) client.disconnect();
    process.exit(0);
  }
  const limiter = limiters.get(command.id)!;
  if (command.type === 'ban') return limiter.ban(command.key, command.duration);
  if (command.type === 'unban') return limiter.unban(command.key);
  const answers: Answer[] = [];
  for (let i = 0; i < command.n; i++) {
    const d = await limiter.consume(command.key);
    answers.push([d.allowed, d.reason ?? '', d.retryAfterMs]);
  }
  return answers;
}

process.on('message', (message: { seq: number; command: BanChildCommand }) => {
  run(message.command).then(
    (result) => process.send?.({ seq: message.seq, result: result ?? null }),
    (error: unknown) => process.send?.({ seq: message.seq, error: String(error) }),
  );
});
process.send?.({ seq: -1, result: 'hello' });
