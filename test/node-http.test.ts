/**
 * The core HTTP layer on a plain node:http server, written as the README shows it: a real server
 * over HTTP (supertest), the memory store and Redis.
 */
import { createServer, type ServerResponse } from 'node:http';
import {
  type HttpResult,
  MemoryStore,
  NodeRequestView,
  rateLimit,
  type Store,
  writeResult,
} from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import supertest from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const quiet = { warn: () => {}, error: () => {} };

function server(store: Store) {
  const limit = rateLimit({
    policies: { algorithm: 'fixed-window', limit: 2, window: '1m' },
    store,
    name: `node-${Math.random()}`,
    logger: quiet,
  });
  const handle = (res: ServerResponse) => res.end('ok');
  const respond = (res: ServerResponse, result: HttpResult) => {
    if (result.action === 'error') return void res.writeHead(500).end();
    const go = writeResult(result, res);
    if (go === true) handle(res);
    else if (go !== false) void go.then((held) => held && handle(res));
  };
  const sync: boolean[] = [];
  const app = createServer((req, res) => {
    const result = limit.decide(new NodeRequestView(req, res), req);
    sync.push(!(result instanceof Promise));
    if (result instanceof Promise) result.then((r) => respond(res, r));
    else respond(res, result);
  });
  return { app, sync };
}

async function burst(app: ReturnType<typeof server>['app']) {
  const agent = supertest(app);
  const responses = [];
  for (let i = 0; i < 3; i++) responses.push(await agent.get('/search?q=1'));
  return responses;
}

const redis = new Redis({ port: inject('redisPort') });
beforeAll(() => redis.ping());
afterAll(() => redis.quit());

describe('node:http with NodeRequestView', () => {
  it.each([
    ['memory', () => new MemoryStore(), true],
    ['redis', () => new RedisStore({ client: redis, prefix: 'node-http:' }), false],
  ] as const)('limits by the socket address, %s', async (_, store, synchronous) => {
    const { app, sync } = server(store());
    const [first, second, third] = await burst(app);
    expect([first!.status, second!.status, third!.status]).toEqual([200, 200, 429]);
    expect(first!.headers['ratelimit-remaining']).toBe('1');
    expect(first!.headers['ratelimit-policy']).toBe('2;w=60');
    // On the wire, as sent (supertest's `headers` are lower-cased whatever was sent).
    const raw = (first as unknown as { res: { rawHeaders: string[] } }).res.rawHeaders;
    expect(raw.filter((name) => /ratelimit/i.test(name))).toEqual([
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
      'ratelimit-policy',
    ]);
    expect(first!.headers['retry-after']).toBeUndefined();
    expect(third!.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
    expect(third!.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(third!.text)).toMatchObject({ status: 429, 'violated-policies': ['2-per-1m'] });
    expect(sync).toEqual([synchronous, synchronous, synchronous]);
  });

  it('reads the method, the path without its query, headers and the address', () => {
    const view = new NodeRequestView(
      {
        method: 'POST',
        url: '/a/b?c=1',
        headers: { 'x-a': ['1', '2'], 'x-b': 'v' },
        socket: { remoteAddress: '::1' },
      },
      { headersSent: true },
    );
    expect([view.method, view.path, view.header('x-a'), view.header('x-b'), view.header('x-c')]).toEqual([
      'POST',
      '/a/b',
      '1, 2',
      'v',
      undefined,
    ]);
    expect([view.ip, view.trustProxy, view.headersSent()]).toEqual(['::1', false, true]);
    expect(new NodeRequestView({ headers: {}, socket: {} }).path).toBe('/');
  });
});
