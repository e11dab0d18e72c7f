/**
 * What one request costs each rate-limit middleware, in-process: no sockets, no load generator.
 *   pnpm bench:middleware [--rounds 25] [--requests 50000]
 *
 * Each request is a real Node `IncomingMessage` and `ServerResponse` (on an unconnected socket: the
 * response is never written) and, for Koa, a real Koa context from `app.createContext`; the
 * middleware runs with a `next` that resolves at once, and every call is awaited. This isolates
 * what `pnpm bench` (HTTP) measures through a load generator on a 2-core machine, where the
 * limiter's share is a few percent of a request and the CPU's speed drifts: here the only other
 * work is building the request objects, measured alone as `none` in the same round. Rounds
 * interleave the variants; a variant's cost is the median over rounds of (its time per request -
 * `none`'s time per request in that round).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import {
  rateLimit as coreRateLimit,
  type HttpResult,
  NodeRequestView,
  writeHeaders,
} from '@tollgate/core/internal';
import { rateLimit as koaRateLimit } from '@tollgate/koa';
import Koa from 'koa';
import { median } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '25' },
    requests: { type: 'string', default: '50000' },
  },
});
const ROUNDS = Number(flags.rounds);
const REQUESTS = Number(flags.requests);
const HUGE = 1_000_000_000;

/** koa-ratelimit ships no types: the options used here. */
type KoaRatelimit = (options: {
  driver: 'memory';
  db: Map<string, unknown>;
  max: number;
  duration: number;
}) => KoaMiddleware;
const koaRatelimit = createRequire(import.meta.url)('koa-ratelimit') as KoaRatelimit;

const socket = new Socket();
Object.defineProperty(socket, 'remoteAddress', { value: '127.0.0.1' });
const app = new Koa();
const next = () => Promise.resolve();

function request(): { req: IncomingMessage; res: ServerResponse } {
  const req = new IncomingMessage(socket);
  req.method = 'GET';
  req.url = '/';
  req.headers = { host: '127.0.0.1' };
  return { req, res: new ServerResponse(req) };
}

type Run = () => unknown;
type KoaMiddleware = (ctx: Koa.Context, next: () => Promise<void>) => unknown;

const koaVariant =
  (middleware: KoaMiddleware | undefined): Run =>
  () => {
    const { req, res } = request();
    const ctx = app.createContext(req, res);
    return middleware === undefined ? next() : middleware(ctx, next);
  };

const core = coreRateLimit<IncomingMessage>({ policies: { limit: HUGE, window: '1m' } });
const respond = (res: ServerResponse, result: HttpResult) => {
  if (result.action === 'next') writeHeaders(res, result.headers);
};
function nodeRequest(limited: boolean): unknown {
  const { req, res } = request();
  if (!limited) return undefined;
  const result = core.decide(new NodeRequestView(req, res), req);
  return result instanceof Promise ? result.then((r) => respond(res, r)) : respond(res, result);
}
const nodeVariant =
  (limited: boolean): Run =>
  () =>
    nodeRequest(limited);

interface Variant {
  name: string;
  setup: string;
  baseline: string;
  run: Run;
}

const VARIANTS: Variant[] = [
  { name: 'koa none', setup: 'a Koa context, next() only', baseline: 'koa none', run: koaVariant(undefined) },
  {
    name: 'koa + tollgate',
    setup:
      "@tollgate/koa rateLimit({ policies: { limit: 1e9, window: '1m' } }) (sliding window, draft-6: 4 fields)",
    baseline: 'koa none',
    run: koaVariant(koaRateLimit({ policies: { limit: HUGE, window: '1m' } }) as unknown as KoaMiddleware),
  },
  {
    name: 'koa + tollgate, draft-7',
    setup: "same with headers: 'draft-7' (2 fields: RateLimit, RateLimit-Policy)",
    baseline: 'koa none',
    run: koaVariant(
      koaRateLimit({
        name: 'draft7',
        policies: { limit: HUGE, window: '1m' },
        headers: 'draft-7',
      }) as unknown as KoaMiddleware,
    ),
  },
  {
    name: 'koa + tollgate, no headers',
    setup: 'same with headers: false (what the fields cost)',
    baseline: 'koa none',
    run: koaVariant(
      koaRateLimit({
        name: 'quiet',
        policies: { limit: HUGE, window: '1m' },
        headers: false,
      }) as unknown as KoaMiddleware,
    ),
  },
  {
    name: 'koa + four fixed fields',
    setup: "no limiter: draft-6's four fields set to fixed values with res.setHeader (Node's share)",
    baseline: 'koa none',
    run: koaVariant((ctx, next) => {
      ctx.res.setHeader('ratelimit-limit', '1000000000');
      ctx.res.setHeader('ratelimit-remaining', '999999999');
      ctx.res.setHeader('ratelimit-reset', '60');
      ctx.res.setHeader('ratelimit-policy', '1000000000;w=60');
      return next();
    }),
  },
  {
    name: 'koa + koa-ratelimit',
    setup:
      "koa-ratelimit({ driver: 'memory', db: new Map(), max: 1e9, duration: 60000 }) (3 X-RateLimit-* fields)",
    baseline: 'koa none',
    run: koaVariant(
      koaRatelimit({
        driver: 'memory',
        db: new Map(),
        max: HUGE,
        duration: 60_000,
      }) as unknown as KoaMiddleware,
    ),
  },
  {
    name: 'node none',
    setup: 'a request and a response, nothing else',
    baseline: 'node none',
    run: nodeVariant(false),
  },
  {
    name: 'node + tollgate core',
    setup: '@tollgate/core rateLimit(...).decide(view, req), then writeHeaders(res, result.headers)',
    baseline: 'node none',
    run: nodeVariant(true),
  },
];

async function measure(run: Run): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) await run();
  return Number(process.hrtime.bigint() - start) / REQUESTS;
}

const times = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
// Warm-up: every variant reaches optimized code before the first measured round.
for (const v of VARIANTS) await measure(v.run);
for (let round = 0; round < ROUNDS; round++) {
  const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
  for (const v of order) times.get(v.name)!.push(await measure(v.run));
}

const added = (v: Variant) => {
  const mine = times.get(v.name)!;
  const base = times.get(v.baseline)!;
  return mine.map((t, i) => t - base[i]!);
};

console.log(`# tollgate bench:middleware  (node ${process.version})\n`);
console.log(`${ROUNDS} interleaved rounds of ${REQUESTS} requests per variant; ns per request.\n`);
const rows = VARIANTS.map((v) => {
  const own = times.get(v.name)!;
  const cost = v.baseline === v.name ? undefined : added(v);
  return [
    v.name,
    median(own).toFixed(0),
    Math.min(...own).toFixed(0),
    cost === undefined ? '' : median(cost).toFixed(0),
    cost === undefined ? '' : `[${Math.min(...cost).toFixed(0)} - ${Math.max(...cost).toFixed(0)}]`,
    v.setup,
  ];
});
console.log(table(['variant', 'ns/req', 'min', 'ns added', 'range', 'what runs'], rows, 'lrrrrl'));

const byName = (name: string) => VARIANTS.find((v) => v.name === name)!;
const tollgate = median(added(byName('koa + tollgate')));
const peer = median(added(byName('koa + koa-ratelimit')));
const ratios = added(byName('koa + tollgate')).map((t, i) => t / added(byName('koa + koa-ratelimit'))[i]!);
console.log(
  `\nKoa: tollgate adds ${tollgate.toFixed(0)} ns per request, koa-ratelimit ${peer.toFixed(0)} ns: ` +
    `${(tollgate / peer).toFixed(2)}x (round by round: median ${median(ratios).toFixed(2)}x, ` +
    `${ratios.filter((r) => r <= 0.5).length} of ${ratios.length} rounds at or below 0.5x).`,
);
