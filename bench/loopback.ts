/**
 * What each Koa rate-limit middleware costs per request over a real socket, on one CPU:
 *   pnpm bench:loopback [--rounds 12] [--requests 20000] [--depth 50] [--baseline <worktree>]
 *
 * One process holds every server (Koa 3 on node:http, 127.0.0.1) and a raw client that pipelines
 * `GET /` on one connection, keeps `--depth` requests in flight and only counts responses. The
 * process pins itself to one CPU (taskset, when installed), so client and server never run at the
 * same time and the process's CPU time per response is the whole cost of a request: unlike
 * `pnpm bench:middleware`, Node's writing of the header fields onto the socket is in it; unlike
 * `pnpm bench` (autocannon, two processes), the load generator cannot starve the server or take its
 * core. The client's share (writing requests, scanning responses) is the same for every variant
 * but for the extra bytes of the header fields.
 *
 * The Redis variants share one throwaway redis-server (its CPU is not counted: the client side is).
 *
 * Rounds interleave the variants; a variant's cost is the median over rounds of (its CPU per
 * response - the bare server's in the same round). Two references split tollgate's cost: its
 * decision without fields (`headers: false`), and four fixed fields set by a middleware without a
 * limiter (what Node charges for draft-6's fields, whoever sets them).
 *
 * `--baseline` adds the tollgate variants of another built checkout (e.g. a git worktree of an
 * older main: `git worktree add ../oldmain <commit> && pnpm install && pnpm build` there), loaded
 * from its `dist/` into this process, so old and new run interleaved under the same load. Run it
 * with this checkout built and `TSX_TSCONFIG_PATH=bench/tsconfig.baseline.json`: the root
 * tsconfig's `paths` would send the baseline's own `@tollgate/core` imports to this checkout's
 * sources, and that tsconfig loads both builds from their `dist/` instead.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { rateLimit } from '@tollgate/koa';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { startRedis } from '../test/support/redis-servers.ts';
import { median } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '12' },
    requests: { type: 'string', default: '20000' },
    depth: { type: 'string', default: '50' },
    baseline: { type: 'string' },
  },
});
const ROUNDS = Number(flags.rounds);
const REQUESTS = Number(flags.requests);
const DEPTH = Number(flags.depth);
for (const [flag, value] of Object.entries({ ROUNDS, REQUESTS, DEPTH })) {
  if (!(Number.isInteger(value) && value > 0))
    throw new Error(`--${flag.toLowerCase()} takes a positive integer`);
}
const HUGE = 1_000_000_000;

type Middleware = (ctx: Koa.Context, next: () => Promise<unknown>) => unknown;
/** koa-ratelimit ships no types: the options used here. */
type KoaRatelimit = (options: {
  driver: 'memory' | 'redis';
  db: Map<string, unknown> | Redis;
  max: number;
  duration: number;
}) => Middleware;
const koaRatelimit = createRequire(import.meta.url)('koa-ratelimit') as KoaRatelimit;

function koaApp(middleware: Middleware | undefined): Koa {
  const app = new Koa();
  app.silent = true;
  if (middleware !== undefined) app.use(middleware);
  app.use((ctx) => {
    ctx.body = 'ok';
  });
  return app;
}

const fourFields: Middleware = (ctx, next) => {
  ctx.res.setHeader('ratelimit-limit', '1000000000');
  ctx.res.setHeader('ratelimit-remaining', '999999999');
  ctx.res.setHeader('ratelimit-reset', '60');
  ctx.res.setHeader('ratelimit-policy', '1000000000;w=60');
  return next();
};

interface Variant {
  name: string;
  setup: string;
  app: Koa;
}

// A throwaway redis-server, started before this process pins itself so it runs on another CPU.
const redisServer = await startRedis();
const redis = new Redis({ port: redisServer.port });
await redis.ping();

type KoaRateLimit = (options: Record<string, unknown>) => unknown;
interface Tollgate {
  rateLimit: KoaRateLimit;
  RedisStore: new (options: { client: Redis; prefix: string }) => unknown;
}
const current: Tollgate = { rateLimit: rateLimit as unknown as KoaRateLimit, RedisStore };
const baseline: Tollgate | undefined =
  flags.baseline === undefined
    ? undefined
    : {
        rateLimit: (await import(resolve(flags.baseline, 'packages/koa/dist/index.mjs'))).rateLimit,
        RedisStore: (await import(resolve(flags.baseline, 'packages/redis/dist/index.mjs'))).RedisStore,
      };

/** tollgate's two main variants (memory, Redis) for one build of it. */
function tollgateVariants({ rateLimit, RedisStore }: Tollgate, suffix: string, prefix: string): Variant[] {
  return [
    {
      name: `koa + tollgate${suffix}`,
      setup:
        "@tollgate/koa rateLimit({ policies: { limit: 1e9, window: '1m' } }) (sliding window, draft-6: 4 fields)",
      app: koaApp(rateLimit({ policies: { limit: HUGE, window: '1m' } }) as Middleware),
    },
    {
      name: `koa + tollgate (redis${suffix})`,
      setup: 'koa + tollgate with store: new RedisStore({ client: ioredis })',
      app: koaApp(
        rateLimit({
          name: 'redis',
          policies: { limit: HUGE, window: '1m' },
          store: new RedisStore({ client: redis, prefix }),
        }) as Middleware,
      ),
    },
  ];
}
const [tollgateMemory, tollgateRedis] = tollgateVariants(current, '', 'tollgate:') as [Variant, Variant];

const VARIANTS: Variant[] = [
  { name: 'koa bare', setup: "app.use((ctx) => { ctx.body = 'ok' })", app: koaApp(undefined) },
  tollgateMemory,
  {
    name: 'koa + tollgate, no headers',
    setup: 'same with headers: false (its decision alone; a reference)',
    app: koaApp(
      rateLimit({
        name: 'quiet',
        policies: { limit: HUGE, window: '1m' },
        headers: false,
      }) as unknown as Middleware,
    ),
  },
  {
    name: 'koa + four fixed fields',
    setup:
      "no limiter: draft-6's four fields set to fixed values with res.setHeader (Node's share; a reference)",
    app: koaApp(fourFields),
  },
  {
    name: 'koa + koa-ratelimit',
    setup:
      "koa-ratelimit({ driver: 'memory', db: new Map(), max: 1e9, duration: 60000 }) (3 X-RateLimit-* fields)",
    app: koaApp(koaRatelimit({ driver: 'memory', db: new Map(), max: HUGE, duration: 60_000 })),
  },
  tollgateRedis,
  {
    name: 'koa + koa-ratelimit (redis)',
    setup: "koa-ratelimit({ driver: 'redis', db: ioredis, max: 1e9, duration: 60000 })",
    app: koaApp(koaRatelimit({ driver: 'redis', db: redis, max: HUGE, duration: 60_000 })),
  },
  ...(baseline === undefined ? [] : tollgateVariants(baseline, ', baseline', 'tollgate-baseline:')),
];

const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
const BATCH = Buffer.concat(Array.from({ length: DEPTH }, () => REQUEST));
const STATUS_LINE = 'HTTP/1.1 ';

/** CPU microseconds of this process per response, for REQUESTS pipelined requests on one connection. */
async function measure(server: Server): Promise<number> {
  const { port } = server.address() as { port: number };
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let sent = 0;
  let received = 0;
  let non200 = 0;
  const sendBatch = () => {
    if (sent >= REQUESTS) return;
    const n = Math.min(DEPTH, REQUESTS - sent);
    socket.write(n === DEPTH ? BATCH : BATCH.subarray(0, n * REQUEST.length));
    sent += n;
  };
  const cpu0 = process.cpuUsage();
  await new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    // A status line (and its code) may straddle two reads: the unscanned tail is kept for the next.
    let tail: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      const data = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk;
      let scanned = 0;
      for (
        let i = data.indexOf(STATUS_LINE);
        i !== -1 && i + 12 <= data.length;
        i = data.indexOf(STATUS_LINE, i + 1)
      ) {
        received++;
        if (data.toString('latin1', i + 9, i + 12) !== '200') non200++;
        scanned = i + 1;
      }
      tail = data.subarray(Math.max(scanned, data.length - 11));
      if (received >= REQUESTS) resolve();
      else if (sent - received <= DEPTH) sendBatch();
    });
    sendBatch();
    sendBatch();
  });
  const cpu = process.cpuUsage(cpu0);
  socket.destroy();
  if (non200 > 0) throw new Error(`${non200} responses were not 200`);
  return (cpu.user + cpu.system) / REQUESTS;
}

function pinned(): string {
  if (!existsSync('/usr/bin/taskset')) return 'not pinned (taskset not installed)';
  const cpu = String(cpus().length - 1);
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(process.pid)]);
  return `pinned to CPU ${cpu}`;
}

const pinning = pinned();
const servers = new Map<Variant, Server>();
for (const v of VARIANTS) {
  const server = createServer(v.app.callback()).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  servers.set(v, server);
}
const times = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
// Two unmeasured rounds: every server reaches optimized code first.
for (let round = -2; round < ROUNDS; round++) {
  for (let i = 0; i < VARIANTS.length; i++) {
    const v = VARIANTS[(i + Math.max(round, 0)) % VARIANTS.length]!;
    const t = await measure(servers.get(v)!);
    if (round >= 0) times.get(v)!.push(t);
  }
}
for (const server of servers.values()) server.close();
await redis.quit();
await redisServer.stop();

const bare = times.get(VARIANTS[0]!)!;
const added = (v: Variant) => times.get(v)!.map((t, i) => t - bare[i]!);
const us = (x: number) => x.toFixed(2);

console.log(`# tollgate bench:loopback  (node ${process.version})\n`);
console.log(
  `${ROUNDS} interleaved rounds of ${REQUESTS} requests per variant, ${DEPTH} pipelined on one loopback ` +
    `connection, client and servers in one process ${pinning}; CPU microseconds per response.\n`,
);
console.log(
  table(
    ['variant', 'cpu us/req', 'us added', 'range', 'what runs'],
    VARIANTS.map((v) => {
      const own = times.get(v)!;
      if (v === VARIANTS[0]) return [v.name, us(median(own)), '', '', v.setup];
      const a = added(v);
      return [
        v.name,
        us(median(own)),
        us(median(a)),
        `[${us(Math.min(...a))} - ${us(Math.max(...a))}]`,
        v.setup,
      ];
    }),
    'lrrrl',
  ),
);
const byName = (name: string) => VARIANTS.find((v) => v.name === name)!;
const fields = median(added(byName('koa + four fixed fields')));
console.log();
for (const [store, suffix] of [
  ['memory', ''],
  ['Redis', ' (redis)'],
] as const) {
  const mine = added(byName(`koa + tollgate${suffix}`));
  const theirs = added(byName(`koa + koa-ratelimit${suffix}`));
  const ratios = mine.map((t, i) => t / theirs[i]!);
  console.log(
    `Koa, ${store}: tollgate adds ${us(median(mine))} us per request, koa-ratelimit ${us(median(theirs))} us: ` +
      `${(median(mine) / median(theirs)).toFixed(2)}x (round by round: median ${median(ratios).toFixed(2)}x, ` +
      `${ratios.filter((r) => r <= 0.5).length} of ${ratios.length} rounds at or below 0.5x).`,
  );
}
if (baseline !== undefined) {
  for (const [store, suffix] of [
    ['memory', ''],
    ['Redis', 'redis'],
  ] as const) {
    const mine = added(byName(suffix ? 'koa + tollgate (redis)' : 'koa + tollgate'));
    const old = added(byName(suffix ? 'koa + tollgate (redis, baseline)' : 'koa + tollgate, baseline'));
    const ratios = mine.map((t, i) => t / old[i]!);
    console.log(
      `Koa, ${store}: this build adds ${us(median(mine))} us per request, the baseline (${flags.baseline}) ` +
        `${us(median(old))} us: ${(median(mine) / median(old)).toFixed(2)}x (round by round: median ` +
        `${median(ratios).toFixed(2)}x).`,
    );
  }
}
console.log(
  `Four fixed fields alone add ${us(fields)} us: ${(fields / median(added(byName('koa + koa-ratelimit')))).toFixed(2)}x ` +
    "of koa-ratelimit's whole cost with memory. redis-server's own CPU is not in these figures (pnpm bench and " +
    'pnpm bench:redis report it).',
);
