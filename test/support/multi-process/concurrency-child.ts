/**
 * A child process for the concurrency acceptance tests (test/concurrency-acceptance.test.ts), forked
 * with tsx. Its mode comes in `TOLLGATE_CC_MODE`:
 * - `load`: an Express server limited by a concurrency policy on Redis, whose handler counts
 *   itself in flight with INCR/DECR on a shared Redis counter and holds 5-50 ms; on `go`, the
 *   child sends its own requests at it and reports the highest count its handlers saw.
 * - `hold`: the same server; the child sends requests whose handlers never answer, reports once
 *   they all are in, and waits to be killed (kill -9: no release ever comes).
 * - `client`: no server: sends requests that never get an answer to `TOLLGATE_CC_URL` and waits to
 *   be killed (the server sees its connections close).
 */
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { rateLimit } from '@tollgate/express';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';

const env = (name: string) => process.env[`TOLLGATE_CC_${name}`] ?? '';
const mode = env('MODE');
const requests = Number(env('REQUESTS'));
const parallel = Number(env('PARALLEL'));
const agent = new Agent({ keepAlive: true, maxSockets: parallel });

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  if (mode === 'client') {
    for (let i = 0; i < requests; i++) get(env('URL')).catch(() => undefined);
    process.send?.({ type: 'holding' });
    return;
  }
  const redis = new Redis({ port: Number(env('REDIS_PORT')), lazyConnect: true });
  await redis.connect();
  const counter = env('COUNTER');
  const app = express();
  app.use(
    rateLimit({
      name: 'cc-acceptance',
      policies: { algorithm: 'concurrency', limit: Number(env('LIMIT')), lease: Number(env('LEASE_MS')) },
      store: new RedisStore({ client: redis, prefix: env('PREFIX') }),
      key: () => 'shared',
      logger: { warn: () => undefined, error: (m) => console.error(m) },
    }),
  );
  let entered = 0;
  app.get('/work', async (_req, res) => {
    entered++;
    if (mode === 'hold') {
      if (entered === requests) process.send?.({ type: 'holding' });
      return; // never answers
    }
    const inFlight = await redis.incr(counter);
    await sleep(5 + Math.floor(Math.random() * 46));
    await redis.decr(counter);
    res.send(String(inFlight));
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/work`;
  if (mode === 'hold') {
    for (let i = 0; i < requests; i++) get(url).catch(() => undefined);
    return;
  }
  process.send?.({ type: 'ready' });
  await new Promise((resolve) => process.once('message', resolve));
  let next = 0;
  let admitted = 0;
  let denied = 0;
  let highest = 0;
  const worker = async () => {
    while (next < requests) {
      next++;
      const { status, body } = await get(url);
      if (status === 200) {
        admitted++;
        highest = Math.max(highest, Number(body));
      } else if (status === 429) denied++;
      else throw new Error(`unexpected status ${status}: ${body}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  process.send?.({ type: 'done', admitted, denied, highest });
  agent.destroy();
  server.close();
  await redis.quit();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
