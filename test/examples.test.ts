/**
 * The runnable examples, as users run them: each app over real HTTP (supertest against its exported
 * factory), the redis example as two real server processes sharing one Redis, its runner script and
 * `pnpm demo` as child processes that must exit by themselves.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { get, type Server } from 'node:http';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  createLimiter,
  MemoryStore,
  type Policy,
  QUOTA_EXCEEDED_TYPE,
  type RateLimitStatusBody,
} from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import supertest from 'supertest';
import { afterAll, afterEach, describe, expect, inject, it, vi } from 'vitest';
import { createApp as expressBasic } from '../examples/express-basic/server.ts';
import { createApp as koaBasic } from '../examples/koa-basic/server.ts';
import { startFakeLlm } from '../examples/llm-proxy/fake-llm.ts';
import { createApp as llmProxy } from '../examples/llm-proxy/server.ts';
import { createApp as multiTenant } from '../examples/multi-tenant/server.ts';
import { createApp as perRoute } from '../examples/per-route/server.ts';
import { createApp as redisApp } from '../examples/redis/server.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const quiet = { warn: () => {}, error: () => {} };
const PROBLEM = 'application/problem+json';

/** Listening servers, closed after each test; supertest then reuses one server for many requests. */
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});
async function listening(listen: (port: number, host: string) => Server) {
  const server = listen(0, '127.0.0.1');
  servers.push(server);
  if (!server.listening) await once(server, 'listening');
  return supertest(server);
}

/** `count` requests in parallel batches; the statuses in request order. */
async function burst(count: number, send: () => PromiseLike<{ status: number }>): Promise<number[]> {
  const statuses: number[] = [];
  for (let sent = 0; sent < count; sent += 100) {
    const batch = Array.from({ length: Math.min(100, count - sent) }, send);
    for (const response of await Promise.all(batch)) statuses.push(response.status);
  }
  return statuses;
}
/** How many of each status. */
function tally(statuses: number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

describe('express-basic', () => {
  it('allows 100 requests a minute per IP by default, with draft-6 headers', async () => {
    const http = await listening((port, host) => expressBasic().listen(port, host));
    const response = await http.get('/');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ hello: 'world', remaining: 99 });
    expect(response.headers['ratelimit-limit']).toBe('100');
    expect(response.headers['ratelimit-remaining']).toBe('99');
    expect(response.headers['ratelimit-policy']).toBe('100;w=60');
  });

  it('answers the request past the limit with 429, Retry-After and a problem+json body', async () => {
    const app = expressBasic({ policies: { name: 'basic', limit: 3, window: '1m' }, logger: quiet });
    const http = await listening((port, host) => app.listen(port, host));
    for (const remaining of ['2', '1', '0']) {
      expect((await http.get('/')).headers['ratelimit-remaining']).toBe(remaining);
    }
    const denied = await http.get('/');
    expect(denied.status).toBe(429);
    expect(denied.headers['content-type']).toBe(PROBLEM);
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(denied.text)).toMatchObject({
      type: QUOTA_EXCEEDED_TYPE,
      status: 429,
      'violated-policies': ['basic'],
      limit: 3,
      remaining: 0,
      retryAfter: Number(denied.headers['retry-after']),
    });
  });
});

describe('koa-basic', () => {
  it('allows 100 requests a minute per IP by default, with draft-6 headers', async () => {
    const http = await listening((port, host) => koaBasic().listen(port, host));
    const response = await http.get('/');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ hello: 'world', remaining: 99 });
    expect(response.headers['ratelimit-limit']).toBe('100');
    expect(response.headers['ratelimit-policy']).toBe('100;w=60');
  });

  it('answers the request past the limit with 429, Retry-After and a problem+json body', async () => {
    const app = koaBasic({ policies: { name: 'basic', limit: 2, window: '1m' }, logger: quiet });
    const http = await listening((port, host) => app.listen(port, host));
    expect((await http.get('/')).status).toBe(200);
    expect((await http.get('/')).body).toEqual({ hello: 'world', remaining: 0 });
    const denied = await http.get('/');
    expect(denied.status).toBe(429);
    expect(denied.headers['content-type']).toBe(PROBLEM);
    expect(Number(denied.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(denied.text)).toMatchObject({
      type: QUOTA_EXCEEDED_TYPE,
      'violated-policies': ['basic'],
    });
  });
});

describe('per-route', () => {
  const start = () => listening((port, host) => perRoute({ logger: quiet }).listen(port, host));
  const login = (http: supertest.Agent | ReturnType<typeof supertest>, password: string) =>
    http.post('/login').send({ username: 'demo', password });

  it('limits POST /login to 5 a minute, whatever the outcome, and leaves /search its own budget', async () => {
    const http = await start();
    const first = await login(http, 'demo');
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-limit']).toBe('5');
    for (let i = 0; i < 4; i++) expect((await login(http, 'wrong')).status).toBe(401);
    const denied = await login(http, 'demo');
    expect(denied.status).toBe(429);
    expect(JSON.parse(denied.text)['violated-policies']).toEqual(['login-burst']);
    expect(denied.headers['ratelimit-policy']).toBe('5;w=60, 50;w=86400');

    // Six requests so far count against `app` (300), none against `search` (60): the headers show
    // the most restrictive of the two limiters the request passed.
    const search = await http.get('/search?q=tollgate');
    expect(search.status).toBe(200);
    expect(search.headers['ratelimit-limit']).toBe('60');
    expect(search.headers['ratelimit-remaining']).toBe('59');
  });

  it('limits GET /search to 60 a minute', async () => {
    const http = await start();
    expect(tally(await burst(61, () => http.get('/search')))).toEqual({ 200: 60, 429: 1 });
    const denied = await http.get('/search');
    expect(JSON.parse(denied.text)['violated-policies']).toEqual(['search']);
    expect((await login(http, 'demo')).status).toBe(200);
  });

  it('stacks the app-wide 300 a minute over every route', async () => {
    const http = await start();
    expect(tally(await burst(300, () => http.get('/')))).toEqual({ 200: 300 });
    const denied = await http.get('/search');
    expect(denied.status).toBe(429);
    expect(denied.headers['ratelimit-limit']).toBe('300');
    expect(JSON.parse(denied.text)['violated-policies']).toEqual(['app']);
  });
});

describe('multi-tenant', () => {
  // A clock that stands still mid-minute: the bursts below must not straddle a sliding window's
  // minute boundary, where the decaying previous window frees a unit (601 admitted under load).
  const clock = () => 1_800_000_030_000;
  const start = () =>
    listening((port, host) =>
      multiTenant({ store: new MemoryStore({ clock }), logger: quiet }).listen(port, host),
    );
  const as = (http: ReturnType<typeof supertest>, key: string, org: string) =>
    http.get('/').set('X-API-Key', key).set('X-Org-Id', org);

  it('answers unauthenticated requests before the limiter: 401/403, no rate-limit headers', async () => {
    const http = await start();
    for (const response of [
      await http.get('/'),
      await http.get('/').set('X-API-Key', 'key-nobody').set('X-Org-Id', 'acme'),
    ]) {
      expect(response.status).toBe(401);
      expect(response.headers['ratelimit-limit']).toBeUndefined();
    }
    // A valid key cannot claim another tenant's organization (and its enterprise budget).
    const spoofed = await as(http, 'key-alice', 'initech');
    expect(spoofed.status).toBe(403);
    expect(spoofed.headers['ratelimit-limit']).toBeUndefined();
    expect((await http.get('/').set('X-API-Key', 'key-alice')).status).toBe(403);
  });

  it('gives each plan its limit: free 60, pro 600, enterprise 6000 a minute', async () => {
    const http = await start();
    const free = await as(http, 'key-alice', 'acme');
    expect(free.body).toEqual({ org: 'acme', owner: 'alice', remaining: 59 });
    expect(free.headers['ratelimit-limit']).toBe('60');
    const pro = await as(http, 'key-carol', 'globex');
    expect([pro.headers['ratelimit-limit'], pro.headers['ratelimit-remaining']]).toEqual(['600', '599']);
    // Bearer and X-API-Key are the same key.
    await as(http, 'key-dave', 'initech');
    const enterprise = await http.get('/').set('Authorization', 'Bearer key-dave').set('X-Org-Id', 'initech');
    expect([enterprise.headers['ratelimit-limit'], enterprise.headers['ratelimit-remaining']]).toEqual([
      '6000',
      '5998',
    ]);
    // A pro key acting for a free organization gets the organization's budget.
    expect((await as(http, 'key-carol', 'acme')).headers['ratelimit-limit']).toBe('60');
  });

  it('denies the 61st request of a free key, and the 601st of a pro one', async () => {
    const http = await start();
    expect(tally(await burst(61, () => as(http, 'key-alice', 'acme')))).toEqual({ 200: 60, 429: 1 });
    expect(tally(await burst(601, () => as(http, 'key-carol', 'globex')))).toEqual({ 200: 600, 429: 1 });
    const denied = await as(http, 'key-carol', 'globex');
    expect(JSON.parse(denied.text)['violated-policies']).toEqual(['org-pro']);
  });

  it("shares an organization's budget among its keys", async () => {
    const http = await start();
    expect(tally(await burst(30, () => as(http, 'key-alice', 'acme')))).toEqual({ 200: 30 });
    expect(tally(await burst(30, () => as(http, 'key-bob', 'acme')))).toEqual({ 200: 30 });
    // Bob's key has 30 left, but acme's free budget of 60 is spent.
    const denied = await as(http, 'key-bob', 'acme');
    expect(denied.status).toBe(429);
    expect(JSON.parse(denied.text)['violated-policies']).toEqual(['org-free']);
    // Carol's own key is pro, and she acts for globex too.
    expect((await as(http, 'key-carol', 'globex')).status).toBe(200);
  });

  it('answers both budgets and their plans at /rate_limit, counting nothing', async () => {
    const http = await start();
    expect(tally(await burst(3, () => as(http, 'key-carol', 'acme')))).toEqual({ 200: 3 });
    const status = () => http.get('/rate_limit').set('X-API-Key', 'key-carol').set('X-Org-Id', 'acme');
    for (let i = 0; i < 5; i++) await status();
    const answer = await status();
    expect(answer.status).toBe(200);
    const { limiters } = answer.body as RateLimitStatusBody;
    expect([limiters.org!.tier, limiters['api-key']!.tier]).toEqual(['free', 'pro']);
    expect(limiters.org!.policies.map((p) => [p.name, p.limit, p.remaining])).toEqual([['org-free', 60, 57]]);
    expect(limiters['api-key']!.policies.map((p) => [p.name, p.limit, p.remaining])).toEqual([
      ['key-pro', 600, 597],
    ]);
    // The next request's headers: the binding (organization's) budget, less that request.
    expect((await as(http, 'key-carol', 'acme')).headers['ratelimit-remaining']).toBe('56');
  });
});

describe('llm-proxy', () => {
  // The example's shape with numbers a test can reach: 1 000 tokens per hour (a rolling fixed
  // window, so nothing slides while the test runs) and 5 000 per day, per API key.
  const policies: Policy[] = [
    { name: 'tpm', algorithm: 'fixed-window', limit: 1000, window: '1h', maxDebt: 500 },
    { name: 'tpd', algorithm: 'fixed-window', limit: 5000, window: '1d' },
  ];
  const llms: { close(): void }[] = [];
  afterAll(() => {
    for (const llm of llms) llm.close();
  });

  async function start(upstream?: string) {
    const llm = await startFakeLlm();
    llms.push(llm.server);
    const store = new MemoryStore();
    const warned: string[] = [];
    const logger = { warn: (m: string) => warned.push(m), error: (m: string) => warned.push(m) };
    const app = llmProxy({ upstream: upstream ?? llm.url, policies, store, logger });
    const http = await listening((port, host) => app.listen(port, host));
    // The proxy's counters, read as a client's key is stored (byApiKey keeps a digest of the secret).
    const limiter = createLimiter({ policies, store, logger: quiet });
    const left = async (secret: string) => {
      const key = `key:${createHash('sha256').update(secret).digest('base64url')}`;
      return (await limiter.peek(key)).policies.map((p) => p.remaining);
    };
    const chat = (secret: string, content: string, maxTokens: number) =>
      http
        .post('/v1/chat/completions')
        .set('authorization', `Bearer ${secret}`)
        .send({ model: 'fake-1', messages: [{ role: 'user', content }], max_tokens: maxTokens });
    return { http, left, chat, warned };
  }

  it('reserves prompt + max_tokens, then charges exactly usage.total_tokens per API key', async () => {
    const { chat, left } = await start();
    // 21 characters: 6 prompt tokens; the estimate is 6 + 100.
    const first = await chat('sk-alice', 'Say hello in 40 words', 100);
    expect(first.status).toBe(200);
    expect(first.body.usage).toEqual({ prompt_tokens: 6, completion_tokens: 40, total_tokens: 46 });
    expect(first.headers['ratelimit-remaining']).toBe('894');
    // Settled when the response closed: 46, not 106.
    await vi.waitFor(async () => expect(await left('sk-alice')).toEqual([954, 4954]), { interval: 5 });
    const second = await chat('sk-alice', 'Say hello in 40 words', 100);
    expect(second.headers['ratelimit-remaining']).toBe('848');
    await vi.waitFor(async () => expect(await left('sk-alice')).toEqual([908, 4908]), { interval: 5 });
    // Another key has its own budget.
    expect(await left('sk-bob')).toEqual([1000, 5000]);
  });

  it('charges a call past its estimate in full, up to maxDebt, and denies the key until it is paid', async () => {
    const { chat, left, warned } = await start();
    // max_tokens 5 000 is more than the hour's 1 000 tokens: the estimate is capped at 1 000 (an
    // estimate above the capacity could never be admitted). The call uses 7 + 1 400.
    const big = await chat('sk-carol', 'Write a story in 1400 words', 5000);
    expect(big.status).toBe(200);
    expect(big.body.usage.total_tokens).toBe(1407);
    expect(big.headers['ratelimit-remaining']).toBe('0');
    await vi.waitFor(async () => expect(await left('sk-carol')).toEqual([0, 3593]), { interval: 5 });
    // 407 over the hour's limit: denied until the window ends, with an honest Retry-After.
    const owed = await chat('sk-carol', 'Hi in 1 words', 1);
    expect(owed.status).toBe(429);
    expect(Number(owed.headers['retry-after'])).toBeGreaterThan(3500);
    expect(JSON.parse(owed.text)['violated-policies']).toEqual(['tpm']);
    // 2 007 used by one call: the hour stops at maxDebt (500 over), the day counts all of it.
    const huge = await chat('sk-dave', 'Write a story in 2000 words', 5000);
    expect(huge.body.usage.total_tokens).toBe(2007);
    await vi.waitFor(async () => expect(await left('sk-dave')).toEqual([0, 2993]), { interval: 5 });
    expect(warned).toEqual([
      expect.stringContaining(
        "[TOLLGATE_DEBT_CAPPED] A settle of limiter 'default' left 507 units uncharged on policy 'tpm'",
      ),
    ]);
  });

  it('gives the estimate back when the LLM cannot be reached', async () => {
    const { chat, left } = await start('http://127.0.0.1:1');
    const failed = await chat('sk-erin', 'Say hello in 40 words', 100);
    expect(failed.status).toBe(502);
    expect(failed.headers['ratelimit-remaining']).toBe('894');
    await vi.waitFor(async () => expect(await left('sk-erin')).toEqual([1000, 5000]), { interval: 5 });
  });
});

describe('redis', () => {
  const redisUrl = `redis://127.0.0.1:${inject('redisPort')}`;
  const clients: Redis[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.quit()));
  });

  it('shares one limit between two apps on one Redis (in process)', async () => {
    const prefix = `examples:${randomUUID()}:`;
    const policies = { name: 'shared', limit: 3, window: '1m' } satisfies Policy;
    const [a, b] = await Promise.all(
      [0, 1].map(async () => {
        const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0 });
        clients.push(client);
        // Before the first request: until then the store fails and the app's fallback would answer.
        await client.connect();
        const app = redisApp({ store: new RedisStore({ client, prefix }), policies, logger: quiet });
        return listening((port, host) => app.listen(port, host));
      }),
    );
    const remaining = [];
    for (const http of [a!, b!, a!]) remaining.push((await http.get('/')).body.remaining);
    expect(remaining).toEqual([2, 1, 0]);
    expect((await b!.get('/')).status).toBe(429);
  });

  it('shares one limit between two server processes, which stop cleanly on SIGTERM', async () => {
    const env = {
      REDIS_URL: redisUrl,
      REDIS_PREFIX: `examples:${randomUUID()}:`,
      RATE_LIMIT: '4',
      RATE_WINDOW: '1m',
      HOST: '127.0.0.1',
      PORT: '0',
    };
    const apps = await Promise.all([0, 1].map(() => startServer(env)));
    try {
      const answers = [];
      for (let i = 0; i < 6; i++) answers.push(await httpGet(apps[i % 2]!.url));
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429]);
      expect(answers.slice(0, 4).map((a) => JSON.parse(a.body).remaining)).toEqual([3, 2, 1, 0]);
      expect(new Set(answers.slice(0, 2).map((a) => JSON.parse(a.body).pid)).size).toBe(2);
      expect(answers[4]!.headers['content-type']).toBe(PROBLEM);
    } finally {
      for (const app of apps) app.child.kill('SIGTERM');
    }
    for (const app of apps) {
      const [code, signal] = await app.exited;
      expect({ code, signal, stderr: app.stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
    }
  });

  it('run.ts starts a throwaway Redis and two servers, shows the shared count and stops everything', async () => {
    const { code, signal, stdout, stderr } = await runScript(
      ['--import', 'tsx', 'examples/redis/run.ts'],
      30_000,
    );
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    const lines = stdout.split('\n').filter((line) => line.startsWith('#'));
    expect(lines).toEqual([
      '#1  -> app A  200  RateLimit-Remaining: 4',
      '#2  -> app B  200  RateLimit-Remaining: 3',
      '#3  -> app A  200  RateLimit-Remaining: 2',
      '#4  -> app B  200  RateLimit-Remaining: 1',
      '#5  -> app A  200  RateLimit-Remaining: 0',
      expect.stringMatching(/^#6 {2}-> app B {2}429 {2}Retry-After: \d+$/),
      expect.stringMatching(/^#7 {2}-> app A {2}429 {2}Retry-After: \d+$/),
    ]);
    expect(stdout).toContain('5 allowed and 2 denied');
    // Everything it started is gone: Redis and both apps refuse connections.
    const ports = [...stdout.matchAll(/(?:redis-server on |App [AB]: http:\/\/)127\.0\.0\.1:(\d+)/g)].map(
      (m) => Number(m[1]),
    );
    expect(ports).toHaveLength(3);
    for (const port of ports) expect(await accepts(port)).toBe(false);
  });
});

describe('pnpm demo', () => {
  it('runs the express-basic example into a 429, explains it, waits Retry-After, gets in and exits 0 within 20 s', async () => {
    const script: string = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
      .scripts.demo;
    const [command, ...args] = script.split(' ');
    expect(command).toBe('node');
    const started = performance.now();
    const { code, signal, stdout, stderr } = await runScript(args, 20_000);
    const elapsed = performance.now() - started;
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    const lines = stdout.split('\n');
    const statuses = lines.filter((line) => /^#\d /.test(line)).map((line) => line.slice(0, 25).trim());
    expect(statuses).toEqual([
      ...['#1', '#2', '#3', '#4', '#5'].map((n) => `${n}  200 OK`),
      ...['#6', '#7', '#8'].map((n) => `${n}  429 Too Many Requests`),
      '#9  200 OK',
    ]);
    expect(stdout).toMatch(
      /^#1 {2}200 OK +RateLimit-Limit: 5 {2}RateLimit-Remaining: 4 {2}RateLimit-Reset: \d+/m,
    );
    expect(stdout).toMatch(/^#6 {2}429 Too Many Requests .*RateLimit-Remaining: 0 .*Retry-After: \d+$/m);
    expect(stdout).toContain(`"type": "${QUOTA_EXCEEDED_TYPE}"`);
    expect(stdout).toContain(`Content-Type: ${PROBLEM}`);

    // The two lines on the sliding window quote the last 429's own Reset and Retry-After.
    const last = /^#8 .*RateLimit-Reset: (\d+) .*Retry-After: (\d+)$/m.exec(stdout)!;
    const [reset, retryAfter] = [Number(last[1]), Number(last[2])];
    const explanation = lines.findIndex((line) => line.startsWith('Sliding window: '));
    expect(lines[explanation]).toContain(`RateLimit-Reset (${reset} s)`);
    expect(lines[explanation + 1]).toContain(`Retry-After (${retryAfter} s)`);
    // The sliding window over 5 s: everything forgotten within two windows, one more within one.
    expect(reset).toBeGreaterThanOrEqual(1);
    expect(reset).toBeLessThanOrEqual(10);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(reset);
    // It really waited: #9 was sent at least Retry-After seconds after the 429s.
    expect(stdout).toContain(`Waiting Retry-After (${retryAfter} s), then one more:`);
    expect(elapsed).toBeGreaterThanOrEqual(retryAfter * 1000);
    expect(stdout).toContain('Admitted: a client that waits Retry-After gets in.');
    // The live dashboard's address comes first, while the burst runs.
    expect(lines[1]).toMatch(/^Live dashboard: http:\/\/127\.0\.0\.1:\d+\/tollgate {2}\(open it now;/);
  });

  it('with --dashboard, serves the dashboard during the burst and keeps it up with live traffic after', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', '--dashboard'], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    const output = collect(child);
    try {
      const page = /^Live dashboard: (\S+)/m.exec(
        await untilOutput(output.stdout, /^Live dashboard: \S+/m),
      )![1]!;
      expect((await fetch(page)).headers.get('content-type')).toBe('text/html; charset=utf-8');
      await untilOutput(output.stdout, /The dashboard stays up/);
      type Data = { total: number[]; limiters: { name: string; total: number[] }[] };
      const read = async () => (await (await fetch(`${page}/data`)).json()) as Data;
      const before = await read();
      // At least the demo's own: 6 admitted (5, then 1 after Retry-After) and 3 limited (the stream
      // of requests after it may have begun).
      expect(before.total[0]).toBeGreaterThanOrEqual(6);
      expect(before.total[1]).toBeGreaterThanOrEqual(3);
      expect(before.limiters.map((l) => l.name)).toEqual(['default']);
      // Then a request every 300 ms: the counts keep rising until Ctrl-C.
      const deadline = performance.now() + 5000;
      let after = before;
      while (sum(after.total) <= sum(before.total) && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await read();
      }
      expect(sum(after.total)).toBeGreaterThan(sum(before.total));
      expect(output.stderr()).toBe('');
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  });
});

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** Waits (up to 20 s) until `stdout()` matches `pattern`; returns the output so far. */
async function untilOutput(stdout: () => string, pattern: RegExp): Promise<string> {
  const deadline = performance.now() + 20_000;
  while (!pattern.test(stdout())) {
    if (performance.now() > deadline) throw new Error(`no ${pattern} in: ${stdout()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return stdout();
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <args>` from the repository root; killed (a failure) if it has not exited by `timeoutMs`. */
function runScript(args: readonly string[], timeoutMs: number): Promise<Run> {
  const env = { ...process.env };
  delete env.REDIS_URL;
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(child);
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return once(child, 'exit').then(([code, signal]) => {
    clearTimeout(killer);
    return { code, signal, stdout: output.stdout(), stderr: output.stderr() };
  });
}

function collect(child: ChildProcess) {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return { stdout: () => stdout, stderr: () => stderr };
}

interface ServerProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  stderr: () => string;
}

/** Starts examples/redis/server.ts as its README says and waits for its "listening" line. */
async function startServer(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/redis/server.ts'], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const output = collect(child);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const url = /listening on (http:\/\/\S+),/.exec(output.stdout())?.[1];
    if (url !== undefined) return { child, url, exited, stderr: output.stderr };
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server.ts did not start:\n${output.stdout()}\n${output.stderr()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One GET on its own connection (no keep-alive), so a stopping server has nothing left open. */
function httpGet(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    }).once('error', reject);
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
