/**
 * Plans per tenant: free 60, pro 600 and enterprise 6000 requests per minute. Every API key has a
 * plan, and so has every organization; a request names its organization in `X-Org-Id` and must fit
 * both the key's budget and the organization's, which all its keys share.
 *
 *   node --import tsx examples/multi-tenant/server.ts      # PORT=3000 by default
 *   curl -H 'X-API-Key: key-alice' -H 'X-Org-Id: acme' localhost:3000/
 *   curl -H 'X-API-Key: key-alice' -H 'X-Org-Id: acme' localhost:3000/rate_limit   # both budgets, uncounted
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  byApiKey,
  byHeader,
  type Logger,
  MemoryStore,
  type Policy,
  rateLimit,
  rateLimitStatus,
  type Store,
} from '@tollgate/express';
import express, { type NextFunction, type Request, type Response } from 'express';

type Plan = 'free' | 'pro' | 'enterprise';

/** One policy per plan; the names (`org-free`, `key-pro`, ...) tell a client which budget ran out. */
function tiers(scope: 'org' | 'key'): Record<Plan, Policy> {
  return {
    free: { name: `${scope}-free`, limit: 60, window: '1m' },
    pro: { name: `${scope}-pro`, limit: 600, window: '1m' },
    enterprise: { name: `${scope}-enterprise`, limit: 6000, window: '1m' },
  };
}
// Built once, outside the `policies` functions below: tollgate validates each policy object once.
const ORG_TIERS = tiers('org');
const KEY_TIERS = tiers('key');

interface Organization {
  id: string;
  plan: Plan;
}
interface ApiKey {
  owner: string;
  plan: Plan;
  /** The organizations this key may act for. */
  orgs: readonly string[];
}
interface Tenant {
  org: Organization;
  key: ApiKey;
}

declare global {
  namespace Express {
    interface Request {
      /** Set by `authenticate` once the API key and the organization are known to go together. */
      tenant?: Tenant;
    }
  }
}

// A stand-in for your database. Real keys are random secrets, stored hashed.
const ORGS = new Map<string, Organization>([
  ['acme', { id: 'acme', plan: 'free' }],
  ['globex', { id: 'globex', plan: 'pro' }],
  ['initech', { id: 'initech', plan: 'enterprise' }],
]);
const API_KEYS = new Map<string, ApiKey>([
  ['key-alice', { owner: 'alice', plan: 'free', orgs: ['acme'] }],
  ['key-bob', { owner: 'bob', plan: 'free', orgs: ['acme'] }],
  ['key-carol', { owner: 'carol', plan: 'pro', orgs: ['globex', 'acme'] }],
  ['key-dave', { owner: 'dave', plan: 'enterprise', orgs: ['initech'] }],
]);

/** A tiny authentication: a known API key (Bearer or X-API-Key), acting for one of its organizations. */
function authenticate(req: Request, res: Response, next: NextFunction): void {
  const secret = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1] ?? req.get('x-api-key');
  const key = secret === undefined ? undefined : API_KEYS.get(secret);
  if (key === undefined) {
    res.status(401).json({ error: 'a valid API key is required (X-API-Key or Authorization: Bearer)' });
    return;
  }
  const org = ORGS.get(req.get('x-org-id') ?? '');
  if (org === undefined || !key.orgs.includes(org.id)) {
    res
      .status(403)
      .json({ error: `X-Org-Id must name one of this key's organizations: ${key.orgs.join(', ')}` });
    return;
  }
  req.tenant = { org, key };
  next();
}

export interface AppOptions {
  /** Where both limiters keep their counters. @default a new MemoryStore */
  store?: Store;
  /** @default console */
  logger?: Logger;
}

export function createApp({ store = new MemoryStore(), logger = console }: AppOptions = {}): express.Express {
  const app = express();
  // The order matters. A key taken from a header is whatever the client chose to send: a header-derived
  // tenant key is only as trustworthy as the authentication in front of it. Mounted before
  // `authenticate`, the limiter would let anyone pick the budget they are counted against (a fresh
  // X-Org-Id per request, or another tenant's, to use up theirs). After it, both the key and the
  // organization have been checked, so the limiters below can take them as they are.
  // (Unauthenticated requests are not counted here; put an IP limit in front of `authenticate` to
  // slow down key guessing.)
  app.use(authenticate);
  // Per organization: all keys acting for it share the organization plan's budget.
  const org = rateLimit({
    name: 'org',
    key: byHeader('x-org-id'),
    policies: (req) => ORG_TIERS[req.tenant!.org.plan],
    store,
    logger,
  });
  // Per API key (stored as a SHA-256 digest, never in clear), by the key's own plan.
  const apiKey = rateLimit({
    name: 'api-key',
    key: byApiKey(),
    policies: (req) => KEY_TIERS[req.tenant!.key.plan],
    store,
    logger,
  });
  // The caller's own budgets, both of them, with their plans: mounted before the limiters, so that
  // asking costs nothing (it only reads the counters).
  app.get(
    '/rate_limit',
    rateLimitStatus({
      limiters: [org, apiKey],
      tier: (req, limiter) => (limiter === 'org' ? req.tenant!.org.plan : req.tenant!.key.plan),
    }),
  );
  app.use(org, apiKey);
  app.get('/', (req, res) => {
    const { org, key } = req.tenant!;
    res.json({ org: org.id, owner: key.owner, remaining: req.rateLimit?.remaining });
  });
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const port = Number(process.env.PORT ?? 3000);
  createApp().listen(port, (error) => {
    if (error) throw error;
    console.log(`multi-tenant listening on http://localhost:${port}`);
    console.log(`try: curl -i -H 'X-API-Key: key-alice' -H 'X-Org-Id: acme' http://localhost:${port}/`);
  });
}
