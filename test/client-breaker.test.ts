// The circuit breaker per origin against a real server that fails 5 times in a row, then recovers.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { CircuitOpenError, pace } from '@tollgate/client';
import { afterEach, expect, it } from 'vitest';
import { type Running, scriptedServer } from './support/client-servers.js';

let server: Running | undefined;
const states: string[] = [];
const listener = (message: unknown) => states.push((message as { state: string }).state);

afterEach(async () => {
  unsubscribe('tollgate:client:breaker', listener);
  states.length = 0;
  await server?.close();
});

it('opens after 5 failures in a row, fails fast while open, half-opens with one probe, closes', async () => {
  subscribe('tollgate:client:breaker', listener);
  server = await scriptedServer((_req, res, index) => {
    res.writeHead(index < 5 ? 500 : 200);
    res.end();
  });
  const api = pace(fetch, { retry: false, breaker: { failures: 5, resetAfter: 300 } });
  for (let i = 0; i < 5; i++) expect((await api(server.url)).status).toBe(500);
  expect(states).toEqual(['open']);
  const started = Date.now();
  const fast = await api(server.url).catch((error: unknown) => error);
  expect(fast).toBeInstanceOf(CircuitOpenError);
  expect(fast).toMatchObject({ code: 'TOLLGATE_CLIENT_CIRCUIT_OPEN', origin: server.url });
  expect(Date.now() - started).toBeLessThan(50);
  expect(server.statuses).toEqual([500, 500, 500, 500, 500]);
  expect(api.snapshot().breakers).toEqual([{ origin: server.url, state: 'open' }]);

  // (A few ms past `resetAfter`: a timer may fire a ms before `Date.now()` has moved that far.)
  await new Promise((resolve) => setTimeout(resolve, 310));
  // One probe at a time: a second call while the probe is out fails fast too.
  const probe = api(server.url);
  await expect(api(server.url)).rejects.toBeInstanceOf(CircuitOpenError);
  expect((await probe).status).toBe(200);
  expect(states).toEqual(['open', 'half-open', 'closed']);
  expect((await api(server.url)).status).toBe(200);
  expect(server.statuses).toEqual([500, 500, 500, 500, 500, 200, 200]);
});

it('a failed probe opens it again', async () => {
  subscribe('tollgate:client:breaker', listener);
  server = await scriptedServer((_req, res) => {
    res.writeHead(503);
    res.end();
  });
  const api = pace(fetch, { retry: false, breaker: { failures: 2, resetAfter: 100 } });
  await api(server.url);
  await api(server.url);
  // (A few ms past `resetAfter`, as above: a fresh-clone CI run saw the probe refused at 100.)
  await new Promise((resolve) => setTimeout(resolve, 110));
  expect((await api(server.url)).status).toBe(503);
  expect(states).toEqual(['open', 'half-open', 'open']);
  await expect(api(server.url)).rejects.toBeInstanceOf(CircuitOpenError);
});

it('perModel: a failing model opens its own breaker; the other models keep going', async () => {
  subscribe('tollgate:client:breaker', listener);
  server = await scriptedServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      res.writeHead(JSON.parse(body).model === 'broken' ? 500 : 200);
      res.end();
    });
  });
  const api = pace(fetch, { retry: false, breaker: { failures: 2, resetAfter: 10_000, perModel: true } });
  const call = (model: string) => api(server!.url, { method: 'POST', body: JSON.stringify({ model }) });
  expect((await call('broken')).status).toBe(500);
  expect((await call('broken')).status).toBe(500);
  const error = await call('broken').catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CircuitOpenError);
  expect(error).toMatchObject({ origin: server.url, model: 'broken' });
  expect((error as Error).message).toContain('(model broken)');
  expect((await call('fine')).status).toBe(200);
  expect(api.snapshot().breakers).toEqual([
    { origin: server.url, model: 'broken', state: 'open' },
    { origin: server.url, model: 'fine', state: 'closed' },
  ]);
  expect(states).toEqual(['open']);
  expect(server.statuses).toEqual([500, 500, 200]);
});

it('timeout: a call unanswered within it is aborted and counts as a failure', async () => {
  subscribe('tollgate:client:breaker', listener);
  server = await scriptedServer((_req, res, index) => {
    // The first two never answer in time; the third would answer at once.
    setTimeout(
      () => {
        if (!res.destroyed) {
          res.writeHead(200);
          res.end();
        }
      },
      index < 2 ? 1000 : 0,
    );
  });
  const api = pace(fetch, { retry: false, breaker: { failures: 2, resetAfter: 10_000, timeout: 100 } });
  const started = Date.now();
  for (let i = 0; i < 2; i++) {
    const error = await api(server.url).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'TimeoutError' });
  }
  expect(Date.now() - started).toBeLessThan(900);
  expect(states).toEqual(['open']);
  await expect(api(server.url)).rejects.toBeInstanceOf(CircuitOpenError);
});
