/**
 * What usage recording costs (issue 14).
 *   pnpm bench:usage [--rounds 15] [--requests 50000]
 *
 * - per request, in-process: the core HTTP limiter on a MemoryStore deciding a request, its result
 *   written to a real Node `ServerResponse` (on an unconnected socket) and the response's `close`
 *   emitted, with and without `usage` (rounds interleave the two; the cost is the median of the
 *   per-round differences);
 * - a flush to a throwaway Redis: the time of one batch of a second's traffic from 100 tenants on
 *   20 routes (one script call; Redis sees one command per flush, not one per request).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import {
  rateLimit as coreRateLimit,
  createUsage,
  MemoryStore,
  NodeRequestView,
  type Usage,
  writeResult,
} from '@tollgate/core/internal';
import { RedisUsageStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import { startRedis } from '../test/support/redis-servers.ts';
import { median } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    requests: { type: 'string', default: '50000' },
  },
});
const ROUNDS = Number(flags.rounds);
const REQUESTS = Number(flags.requests);
const TENANTS = 100;
const ROUTES = 20;

const socket = new Socket();
Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' });
const quiet = { warn: () => {}, error: () => {} };

function limiter(usage: Usage<IncomingMessage> | undefined) {
  return coreRateLimit<IncomingMessage>({
    policies: { limit: 1_000_000_000, window: '1h' },
    key: (req) => `t${Number(req.headers['x-n']) % TENANTS}`,
    store: new MemoryStore(),
    logger: quiet,
    ...(usage === undefined ? {} : { usage }),
  });
}

/** ns per request for `requests` requests through `handle` (decide, write, close). */
function run(handle: ReturnType<typeof limiter>): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    const req = new IncomingMessage(socket);
    req.method = 'GET';
    req.url = `/r${i % ROUTES}/${i}`;
    req.headers = { 'x-n': String(i) };
    const res = new ServerResponse(req);
    const result = handle.decide(new NodeRequestView(req, res), req);
    if (result instanceof Promise) throw new Error('a MemoryStore decides synchronously');
    writeResult(result, res);
    res.emit('close');
  }
  return Number(process.hrtime.bigint() - start) / REQUESTS;
}

async function perRequest(): Promise<string[][]> {
  const usage = createUsage<IncomingMessage>({ route: (req) => `GET /r${req.url!.split('/')[1]}` });
  const plain = limiter(undefined);
  const recorded = limiter(usage);
  const diffs: number[] = [];
  const base: number[] = [];
  run(plain);
  run(recorded);
  for (let round = 0; round < ROUNDS; round++) {
    const a = run(plain);
    const b = run(recorded);
    base.push(a);
    diffs.push(b - a);
    await usage.flush();
  }
  await usage.close();
  return [
    ['limiter, MemoryStore, no usage', `${median(base).toFixed(0)} ns`],
    ['added by usage (record on close)', `${median(diffs).toFixed(0)} ns`],
  ];
}

async function flushes(): Promise<string[][]> {
  const server = await startRedis();
  const client = new Redis({ port: server.port });
  try {
    let now = Date.now();
    const usage = createUsage({
      store: new RedisUsageStore({ client }),
      clock: () => now,
      flushIntervalMs: '1h',
    });
    const times: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      now += 1000;
      for (let i = 0; i < 10_000; i++) {
        const route = `GET /r${Math.floor(i / TENANTS) % ROUTES}`;
        usage.record({ tenant: `t${i % TENANTS}`, route, result: i % 7 ? 'allowed' : 'limited' });
      }
      const start = performance.now();
      await usage.flush();
      times.push(performance.now() - start);
    }
    await usage.close();
    const commands = await client.info('commandstats');
    const [, calls = '0', perCall = '0'] =
      /cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/.exec(commands) ?? [];
    return [
      [
        `flush of 10 000 requests (${TENANTS} tenants x ${ROUTES} routes, 2 results) to Redis`,
        `${median(times).toFixed(1)} ms`,
      ],
      [`Redis script calls for ${ROUNDS} x 10 000 requests`, calls],
      ['Redis time per script call (at most 200 entries)', `${(Number(perCall) / 1000).toFixed(2)} ms`],
    ];
  } finally {
    await client.quit();
    await server.stop();
  }
}

const rows = [...(await perRequest()), ...(await flushes())];
console.log(table(['what (median)', 'cost'], rows));
