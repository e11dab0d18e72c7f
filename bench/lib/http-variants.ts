/**
 * The server variants of `pnpm bench` (bench/http.ts): what each one is, without loading any
 * framework (the parent only needs names; bench/lib/http-servers.ts builds them in the children).
 */

/** The header that carries the key when a run uses many keys (`--keys N`). */
export const KEY_HEADER = 'x-api-key';

export type Framework = 'node' | 'express' | 'koa';
/**
 * `quiet` and `fields` are references, not peers: tollgate without its header fields, and the four
 * draft-6 fields without a limiter. Together they split tollgate's cost into its own work and Node's.
 */
export type LimiterName = 'bare' | 'tollgate' | 'erl' | 'rlf' | 'koa-ratelimit' | 'quiet' | 'fields';
export type StoreKind = 'memory' | 'redis';

export interface Variant {
  id: string;
  framework: Framework;
  limiter: LimiterName;
  store?: StoreKind;
  /** Short label for tables. */
  label: string;
  /** What exactly runs in front of the handler, for the report. */
  setup: string;
  /** Not in the default set (the run would pass ~4 minutes); select it with --only. */
  extra?: boolean;
}

export const FRAMEWORKS: readonly Framework[] = ['node', 'koa', 'express'];

export const FRAMEWORK_LABEL: Record<Framework, string> = {
  node: 'node:http',
  express: 'Express 5',
  koa: 'Koa 3',
};

export const LIMITER_LABEL: Record<LimiterName, string> = {
  bare: 'bare',
  tollgate: 'tollgate',
  erl: 'express-rate-limit',
  rlf: 'rate-limiter-flexible',
  'koa-ratelimit': 'koa-ratelimit',
  quiet: 'tollgate, headers: false',
  fields: 'four fixed RateLimit fields',
};

const v = (
  framework: Framework,
  limiter: LimiterName,
  store: StoreKind | undefined,
  setup: string,
  extra = false,
): Variant => ({
  id: [framework, limiter === 'koa-ratelimit' ? 'ratelimit' : limiter, store === 'memory' ? 'mem' : store]
    .filter(Boolean)
    .join('-'),
  framework,
  limiter,
  ...(store === undefined ? {} : { store }),
  label: `${FRAMEWORK_LABEL[framework]} ${limiter === 'bare' ? 'bare' : `+ ${LIMITER_LABEL[limiter]}`}${store === undefined ? '' : ` (${store})`}`,
  setup,
  ...(extra ? { extra } : {}),
});

export const VARIANTS: readonly Variant[] = [
  v(
    'node',
    'bare',
    undefined,
    "http.createServer((req, res) => { res.setHeader('Content-Type', 'text/plain; charset=utf-8'); res.end('ok') })",
  ),
  v(
    'node',
    'tollgate',
    'memory',
    "@tollgate/core rateLimit({ policies: { limit: 1e9, window: '1m' } }) called with a RequestView of the IncomingMessage; headers copied with res.setHeader",
  ),
  v('node', 'tollgate', 'redis', 'same, store: new RedisStore({ client: ioredis })'),
  v(
    'node',
    'rlf',
    'memory',
    'new RateLimiterMemory({ points: 1e9, duration: 60 }).consume(ip) before the handler (no headers)',
    true,
  ),
  v(
    'node',
    'rlf',
    'redis',
    'new RateLimiterRedis({ storeClient: ioredis, points: 1e9, duration: 60 })',
    true,
  ),
  v('koa', 'bare', undefined, "app.use((ctx) => { ctx.body = 'ok' })"),
  v(
    'koa',
    'tollgate',
    'memory',
    "@tollgate/koa rateLimit({ policies: { limit: 1e9, window: '1m' } }) (sliding window, draft-6 headers)",
  ),
  v(
    'koa',
    'quiet',
    'memory',
    "same with headers: false: tollgate's own work, without the four fields (a reference, not a peer)",
  ),
  v(
    'koa',
    'fields',
    undefined,
    "no limiter: a middleware that sets draft-6's four fields to fixed values with res.setHeader (what Node charges for them; a reference)",
  ),
  v('koa', 'tollgate', 'redis', 'same, store: new RedisStore({ client: ioredis })'),
  v(
    'koa',
    'koa-ratelimit',
    'memory',
    "koa-ratelimit({ driver: 'memory', db: new Map(), max: 1e9, duration: 60000 }) (X-RateLimit-* headers)",
  ),
  v(
    'koa',
    'koa-ratelimit',
    'redis',
    "koa-ratelimit({ driver: 'redis', db: ioredis, max: 1e9, duration: 60000 }) (a sorted set of timestamps per key)",
  ),
  v('express', 'bare', undefined, "app.get('/', (req, res) => res.send('ok'))"),
  v(
    'express',
    'tollgate',
    'memory',
    "@tollgate/express rateLimit({ policies: { limit: 1e9, window: '1m' } }) (sliding window, draft-6 headers)",
  ),
  v('express', 'tollgate', 'redis', 'same, store: new RedisStore({ client: ioredis })'),
  v(
    'express',
    'erl',
    'memory',
    'express-rate-limit({ windowMs: 60000, limit: 1e9 }) (its MemoryStore, X-RateLimit-* headers)',
  ),
  v(
    'express',
    'erl',
    'redis',
    'same, store: new RedisStore({ sendCommand: (...args) => ioredis.call(...args) }) from rate-limit-redis',
  ),
  v(
    'express',
    'rlf',
    'memory',
    'a 3-line middleware: new RateLimiterMemory({ points: 1e9, duration: 60 }).consume(req.ip).then(() => next(), 429) (no headers)',
  ),
  v(
    'express',
    'rlf',
    'redis',
    'same with new RateLimiterRedis({ storeClient: ioredis, points: 1e9, duration: 60 })',
  ),
];

export function variant(id: string): Variant {
  const found = VARIANTS.find((x) => x.id === id);
  if (found === undefined) {
    throw new Error(`unknown variant '${id}'; one of ${VARIANTS.map((x) => x.id).join(', ')}`);
  }
  return found;
}

/**
 * The variants `--only` selects: comma-separated variant ids, and group words: frameworks (`koa`),
 * limiters (`tollgate`, `rlf`), stores (`memory`, `redis`), `all` (includes the extra variants).
 * Words of one kind widen the choice (`koa,node`), kinds narrow it (`koa,redis`); ids add to it.
 * The bare server of each framework in the selection is always added (ratios need it).
 */
export function select(only: string | undefined): Variant[] {
  if (only === undefined) return VARIANTS.filter((x) => !x.extra);
  const words = only
    .split(',')
    .map((w) => w.trim())
    .filter(Boolean);
  const ids = words.filter((w) => VARIANTS.some((x) => x.id === w));
  /** Group words by the field of a variant they name. */
  const wanted = new Map<GroupKind, Set<string>>();
  let all = false;
  for (const word of words.filter((w) => !ids.includes(w))) {
    if (word === 'all') {
      all = true;
      continue;
    }
    const kind = GROUP_KINDS.find((k) => k.words.includes(word));
    if (kind === undefined) variant(word); // throws: names the valid ids
    if (!wanted.has(kind!)) wanted.set(kind!, new Set());
    wanted.get(kind!)!.add(word);
  }
  const inGroups = (x: Variant) =>
    (all || wanted.size > 0) &&
    (all || !x.extra) &&
    [...wanted].every(([kind, values]) => values.has(kind.of(x) ?? ''));
  const chosen = VARIANTS.filter((x) => ids.includes(x.id) || inGroups(x));
  if (chosen.length === 0) throw new Error(`--only ${only} selects no variant`);
  const frameworks = new Set(chosen.map((x) => x.framework));
  return VARIANTS.filter((x) => chosen.includes(x) || (x.limiter === 'bare' && frameworks.has(x.framework)));
}

interface GroupKind {
  words: readonly string[];
  of(x: Variant): string | undefined;
}

const GROUP_KINDS: readonly GroupKind[] = [
  { words: FRAMEWORKS, of: (x) => x.framework },
  { words: Object.keys(LIMITER_LABEL), of: (x) => x.limiter },
  // The fixed-fields reference has no store; it belongs with the memory runs it explains.
  { words: ['memory', 'redis'], of: (x) => x.store ?? (x.limiter === 'fields' ? 'memory' : undefined) },
];
