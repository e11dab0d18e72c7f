/**
 * What reserve, then settle costs (issue 12), beside a plain consume of the same policies (tokens
 * per minute and per day), in this process:
 *   pnpm bench:reserve [--rounds 7] [--ops 20000]
 *
 * - MemoryStore: `consume(key, { cost })` against `reserve(key, { cost })` then `settle(actual)`;
 * - RedisStore on one throwaway redis-server started here (never the machine's 6379), calls one
 *   after another (latency, not throughput), with the Redis commands each pair sends counted from
 *   INFO commandstats: a reservation is two EVALSHA (the reserve, the settle), a consume one.
 * Wall time per call, median over rounds; rounds interleave the two so noise hits both alike.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createLimiter, type Limiter, MemoryStore, type Policy } from '../packages/core/src/index.ts';
import { RedisStore } from '../packages/redis/src/index.ts';
import { startRedis } from '../test/support/redis-servers.ts';
import { median } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, ops: { type: 'string', default: '20000' } },
});
const ROUNDS = Number(flags.rounds);
const OPS = Number(flags.ops);

// Large enough that nothing is denied during a run: each call is the steady-state path.
const POLICIES: Policy[] = [
  { name: 'tpm', limit: 1_000_000_000, window: '1m' },
  { name: 'tpd', algorithm: 'fixed-window', limit: 1_000_000_000, window: '1d' },
];

type Subject = { name: string; run: (i: number) => Promise<unknown> };

function subjects(limiter: Limiter, store: string): Subject[] {
  return [
    { name: `${store} consume`, run: (i) => limiter.consume(`k${i % 1000}`, { cost: 300 }) },
    {
      name: `${store} reserve + settle`,
      run: async (i) => (await limiter.reserve(`k${i % 1000}`, { cost: 300 })).settle(250 + (i % 100)),
    },
  ];
}

async function measure(list: Subject[], ops: number): Promise<Map<string, number[]>> {
  const times = new Map(list.map((s) => [s.name, [] as number[]]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < list.length; j++) {
      const subject = list[(round + j) % list.length]!;
      const start = performance.now();
      for (let i = 0; i < ops; i++) await subject.run(i);
      times.get(subject.name)!.push(((performance.now() - start) * 1000) / ops);
    }
  }
  return times;
}

/** EVALSHA (and EVAL) commands Redis ran per call of `run`, from INFO commandstats. */
async function scriptsPerCall(admin: Redis, run: () => Promise<unknown>, calls: number): Promise<string> {
  await admin.config('RESETSTAT');
  for (let i = 0; i < calls; i++) await run();
  const stats = await admin.info('commandstats');
  const scripts = [...stats.matchAll(/cmdstat_(evalsha|eval):calls=(\d+)/g)].reduce(
    (sum, m) => sum + Number(m[2]),
    0,
  );
  return (scripts / calls).toFixed(2);
}

const memory = createLimiter({ policies: POLICIES, store: new MemoryStore({ maxKeys: 10_000 }) });
const server = await startRedis();
const client = new Redis({ port: server.port, lazyConnect: true });
const admin = new Redis({ port: server.port, lazyConnect: true });
await Promise.all([client.connect(), admin.connect()]);
try {
  const redis = createLimiter({
    policies: POLICIES,
    store: new RedisStore({ client, prefix: 'bench:reserve:' }),
    blockedCache: false,
  });
  const memoryTimes = await measure(subjects(memory, 'memory'), OPS);
  const redisTimes = await measure(subjects(redis, 'redis'), Math.max(1, Math.floor(OPS / 10)));
  const commands = new Map([
    ['redis consume', await scriptsPerCall(admin, () => redis.consume('c', { cost: 300 }), 500)],
    [
      'redis reserve + settle',
      await scriptsPerCall(admin, async () => (await redis.reserve('c', { cost: 300 })).settle(280), 500),
    ],
  ]);
  const rows = [...memoryTimes, ...redisTimes].map(([name, us]) => [
    name,
    median(us).toFixed(2),
    commands.get(name) ?? '-',
  ]);
  console.log(`${ROUNDS} rounds; ${OPS} calls per round in memory, ${Math.floor(OPS / 10)} on Redis`);
  console.log(table(['subject', 'us/call (median)', 'EVALSHA/call'], rows));
} finally {
  await Promise.allSettled([client.quit(), admin.quit()]);
  await server.stop();
}
