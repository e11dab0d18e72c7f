// @tollgate/client's behaviour against real HTTP servers on 127.0.0.1 whose answers each test
// scripts: Retry-After in both forms, a server clock 30 s off, a bare 429, a 503, an abort while
// queued. Delays are read from the diagnostics events, exact; real waits are checked server-side.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ServerResponse } from 'node:http';
import { ConfigError, pace, QueueFullError } from '@tollgate/client';
import { afterEach, describe, expect, it } from 'vitest';
import { type Running, scriptedServer } from './support/client-servers.js';

const servers: Running[] = [];
const listeners: Array<[string, (message: unknown) => void]> = [];

afterEach(async () => {
  for (const [name, listener] of listeners.splice(0)) unsubscribe(name, listener);
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  handle: (res: ServerResponse, index: number) => void,
): Promise<Running & { at: number[] }> {
  const at: number[] = [];
  const server = await scriptedServer((_req, res, index) => {
    at.push(Date.now());
    handle(res, index);
  });
  servers.push(server);
  return Object.assign(server, { at });
}

/** Messages published on `tollgate:client:<name>` while the test runs. */
function events<T = Record<string, unknown>>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown) => seen.push(message as T);
  subscribe(`tollgate:client:${name}`, listener);
  listeners.push([`tollgate:client:${name}`, listener]);
  return seen;
}

const reply = (res: ServerResponse, status: number, headers: Record<string, string> = {}) => {
  res.writeHead(status, headers);
  res.end(status < 400 ? '{"ok":true}' : '{"error":true}');
};

const httpDate = (ms: number) => new Date(ms).toUTCString();

describe('Retry-After', () => {
  it('as delta seconds: the retry waits exactly that long', async () => {
    const server = await serve((res, i) =>
      i === 0 ? reply(res, 429, { 'Retry-After': '1' }) : reply(res, 200),
    );
    const retried = events('retried');
    const response = await pace(fetch)(server.url);
    expect(response.status).toBe(200);
    expect(retried.map((e) => [e.delayMs, e.reason])).toEqual([[1000, '429']]);
    expect(server.statuses).toEqual([429, 200]);
    expect(server.at[1]! - server.at[0]!).toBeGreaterThanOrEqual(1000);
  });

  it('as an HTTP-date: the wait is read against the same answer’s Date', async () => {
    const server = await serve((res, i) => {
      const now = Math.floor(Date.now() / 1000) * 1000;
      if (i === 0) reply(res, 429, { Date: httpDate(now), 'Retry-After': httpDate(now + 2000) });
      else reply(res, 200);
    });
    const retried = events('retried');
    const response = await pace(fetch)(server.url);
    expect(response.status).toBe(200);
    expect(retried.map((e) => e.delayMs)).toEqual([2000]);
    expect(server.at[1]! - server.at[0]!).toBeGreaterThanOrEqual(1000);
  });

  it('a server clock 30 s ahead: the HTTP-date Retry-After still waits 2 s, not 32 s', async () => {
    const server = await serve((res, i) => {
      const serverNow = Math.floor((Date.now() + 30_000) / 1000) * 1000;
      if (i === 0) reply(res, 429, { Date: httpDate(serverNow), 'Retry-After': httpDate(serverNow + 2000) });
      else reply(res, 200);
    });
    const retried = events('retried');
    await pace(fetch)(server.url);
    expect(retried.map((e) => e.delayMs)).toEqual([2000]);
  });

  it('a 503 with Retry-After holds every call to that origin, not only the failed one', async () => {
    const server = await serve((res, i) =>
      i === 0 ? reply(res, 503, { 'Retry-After': '1' }) : reply(res, 200),
    );
    const retried = events('retried');
    const api = pace(fetch);
    const first = api(server.url);
    // Sent once the first has its answer: it waits for the same Retry-After.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = api(server.url);
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(retried.map((e) => [e.delayMs, e.reason])).toEqual([[1000, '503']]);
    expect(server.statuses).toEqual([503, 200, 200]);
    expect(Math.min(server.at[1]!, server.at[2]!) - server.at[0]!).toBeGreaterThanOrEqual(1000);
  });
});

describe('epoch resets and clock skew', () => {
  it('X-RateLimit-Reset from a server 30 s ahead is read on our clock through its Date', async () => {
    const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);
    const serverNow = T0 + 30_000;
    let clock = T0;
    const server = await serve((res) =>
      reply(res, 200, {
        Date: httpDate(serverNow),
        'X-RateLimit-Limit': '1',
        'X-RateLimit-Remaining': '0',
        'X-RateLimit-Reset': String(serverNow / 1000 + 1),
      }),
    );
    const queued = events('queued');
    const api = pace(fetch, { now: () => clock });
    await (await api(server.url)).arrayBuffer();
    expect(api.snapshot().budgets[0]!.quotas).toEqual([
      {
        key: 'legacy:',
        unit: 'requests',
        limit: 1,
        available: 0,
        resetAt: T0 + 1000,
        rate: undefined,
        kind: 'window',
      },
    ]);
    const second = api(server.url);
    clock = T0 + 1000;
    await (await second).arrayBuffer();
    expect(queued.map((e) => e.waitMs)).toEqual([0, 1000]);
    expect(server.at[1]! - server.at[0]!).toBeGreaterThanOrEqual(1000);
  });
});

describe('backoff', () => {
  it('a 429 without any header: exponential backoff with full jitter', async () => {
    const server = await serve((res, i) => reply(res, i < 2 ? 429 : 200));
    const retried = events('retried');
    const limited = events('limited');
    const api = pace(fetch, { random: () => 0.5, retry: { baseDelay: 200 } });
    const response = await api(server.url);
    expect(response.status).toBe(200);
    // floor(0.5 × 200 × 2⁰), floor(0.5 × 200 × 2¹)
    expect(retried.map((e) => [e.attempt, e.delayMs, e.reason])).toEqual([
      [0, 100, '429'],
      [1, 200, '429'],
    ]);
    expect(limited.map((e) => [e.status, e.retryAfterMs])).toEqual([
      [429, undefined],
      [429, undefined],
    ]);
    expect(server.at[1]! - server.at[0]!).toBeGreaterThanOrEqual(100);
    expect(server.at[2]! - server.at[1]!).toBeGreaterThanOrEqual(200);
  });

  it('a POST is not retried unless the call asks', async () => {
    const server = await serve((res, i) => reply(res, i < 2 ? 429 : 200, { 'Retry-After': '1' }));
    const api = pace(fetch);
    expect((await api(server.url, { method: 'POST', body: 'x' })).status).toBe(429);
    expect((await api(server.url, { method: 'POST', body: 'x', pace: { retry: true } })).status).toBe(200);
    expect(server.statuses).toEqual([429, 429, 200]);
  });

  it('the retry budget caps retries across calls', async () => {
    const server = await serve((res) => reply(res, 500));
    const api = pace(fetch, { random: () => 0, retry: { limit: 5, budget: { reserve: 2, ratio: 0 } } });
    expect((await api(server.url)).status).toBe(500);
    expect((await api(server.url)).status).toBe(500);
    // Two retries in the reserve, none earned: 1 + 2 attempts, then 1.
    expect(server.statuses).toEqual([500, 500, 500, 500]);
    expect(api.snapshot().retryTokens).toBe(0);
  });

  it('a Retry-After beyond maxRetryAfter goes back to the caller', async () => {
    const server = await serve((res) => reply(res, 429, { 'Retry-After': '3600' }));
    const response = await pace(fetch)(server.url);
    expect(response.status).toBe(429);
    expect(server.statuses).toEqual([429]);
  });
});

describe('the queue', () => {
  it('a call aborted while it waits for quota is rejected with the abort reason and never sent', async () => {
    const server = await serve((res) => reply(res, 200, { RateLimit: 'limit=1, remaining=0, reset=10' }));
    const queued = events('queued');
    const api = pace(fetch);
    await (await api(server.url)).arrayBuffer();
    const controller = new AbortController();
    const call = api(server.url, { signal: controller.signal });
    expect(queued.map((e) => [e.queued, Math.ceil((e.waitMs as number) / 1000)])).toEqual([
      [1, 0],
      [1, 10],
    ]);
    controller.abort(new Error('caller gave up'));
    await expect(call).rejects.toThrow('caller gave up');
    expect(api.snapshot().budgets[0]!.queued).toBe(0);
    expect(server.statuses).toEqual([200]);
  });

  it('a full queue rejects with QueueFullError', async () => {
    const server = await serve((res) => reply(res, 200, { RateLimit: 'limit=1, remaining=0, reset=10' }));
    const api = pace(fetch, { maxQueue: 1 });
    await (await api(server.url)).arrayBuffer();
    const controller = new AbortController();
    const waiting = api(server.url, { signal: controller.signal });
    await expect(api(server.url)).rejects.toBeInstanceOf(QueueFullError);
    controller.abort();
    await expect(waiting).rejects.toThrow();
  });

  it('a deadline passed while waiting rejects with DeadlineError', async () => {
    const server = await serve((res) => reply(res, 200, { RateLimit: 'limit=1, remaining=0, reset=10' }));
    const api = pace(fetch);
    await (await api(server.url)).arrayBuffer();
    await expect(api(server.url, { pace: { deadline: Date.now() + 50 } })).rejects.toMatchObject({
      name: 'DeadlineError',
      code: 'TOLLGATE_CLIENT_DEADLINE',
    });
    expect(server.statuses).toEqual([200]);
  });

  it('higher priority goes first', async () => {
    const order: string[] = [];
    const server = await scriptedServer((req, res) => {
      order.push(req.url!);
      reply(res, 200, { RateLimit: 'limit=10, remaining=9, reset=1', 'RateLimit-Policy': '10;w=1' });
    });
    servers.push(server);
    const api = pace(fetch);
    const calls = [
      api(`${server.url}/first`),
      api(`${server.url}/low`),
      api(`${server.url}/high`, { pace: { priority: 1 } }),
    ];
    for (const call of calls) await (await call).arrayBuffer();
    expect(order).toEqual(['/first', '/high', '/low']);
  });
});

describe('budgets', () => {
  it('are kept per origin and credential, the credential hashed', async () => {
    const server = await serve((res) => reply(res, 200));
    const api = pace(fetch);
    await (await api(server.url, { headers: { Authorization: 'Bearer sk-secret-1' } })).arrayBuffer();
    await (await api(server.url, { headers: { Authorization: 'Bearer sk-secret-2' } })).arrayBuffer();
    await (await api(server.url)).arrayBuffer();
    const snapshot = api.snapshot();
    expect(snapshot.budgets.map((b) => [b.origin, typeof b.credential])).toEqual([
      [server.url, 'string'],
      [server.url, 'string'],
      [server.url, 'undefined'],
    ]);
    expect(snapshot.budgets[0]!.credential).not.toBe(snapshot.budgets[1]!.credential);
    expect(JSON.stringify(snapshot)).not.toContain('secret');
  });
});

describe('options', () => {
  it('bad options fail at pace() with a ConfigError naming the option', () => {
    expect(() => pace(fetch, { maxQueue: 0 })).toThrow(
      new ConfigError('Expected `maxQueue` to be an integer ≥ 1, got `0` (number).'),
    );
    expect(() => pace(fetch, { retry: { limit: -1 } })).toThrow(
      'Expected `retry.limit` to be an integer ≥ 0',
    );
    expect(() => pace(fetch, { retry: { statuses: [999] } })).toThrow('Expected `retry.statuses`');
    expect(() => pace(fetch, { nope: 1 } as never)).toThrow('Unknown option `nope`');
    expect(() => pace('fetch' as never)).toThrow('Expected `fetch` to be a fetch-compatible function');
  });
});
