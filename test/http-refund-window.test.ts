/**
 * express-rate-limit's `skipSuccessfulRequests` across a window boundary, over HTTP (issue 9 item
 * 6): slow successful requests admitted in one window, with `refund: { onSuccess: true }`, finish
 * in the next; their refunds must go to the window that counted them and free nothing in the new
 * one. Express 5, a real server, both stores, every algorithm, a virtual clock.
 */

import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type Clock, MemoryStore, type RateAlgorithm, type Store } from '@tollgate/core';
import { rateLimit } from '@tollgate/express';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

/** A multiple of the window: window 1 is [START, START + W), window 2 the next one. */
const START = 1_700_000_000_000;
const W = 10_000;
const LIMIT = 5;

/** A store that records its refunds' promises, so the test can wait until they are applied. */
function tracked(store: Store): Store & { settled(): Promise<void> } {
  const pending: Promise<void>[] = [];
  return {
    consume: (key, set, cost, info) => store.consume(key, set, cost, info),
    peek: (key, set) => store.peek(key, set),
    refund(key, set, cost, countedAt) {
      const done = store.refund(key, set, cost, countedAt);
      pending.push(done);
      return done;
    },
    reset: (key, set) => store.reset(key, set),
    remote: store.remote === true,
    clock: store.clock,
    settled: async () => void (await Promise.all(pending)),
  };
}

/** An app whose handler holds every admitted request until its gate opens. */
async function slowApp(algorithm: RateAlgorithm, store: Store) {
  let entered = 0;
  const gates: (() => void)[] = [];
  const app = express();
  app.use(
    rateLimit({
      policies: {
        algorithm,
        limit: LIMIT,
        window: '10s',
        ...(algorithm === 'leaky-bucket' ? { delay: false } : {}),
      },
      store,
      key: () => 'client',
      refund: { onSuccess: true },
    }),
  );
  app.get('/', (_req, res) => {
    entered++;
    gates.push(() => res.send('done'));
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const inFlight: Promise<Response>[] = [];
  return {
    /** One request, until it is admitted (its handler runs) or answered 429. */
    async send(): Promise<'admitted' | 'denied'> {
      const before = entered;
      const response = fetch(url);
      inFlight.push(response);
      const denied = response.then((r) => r.status === 429);
      while (entered === before) {
        const answered = await Promise.race([denied, new Promise((r) => setTimeout(r, 5, 'waiting'))]);
        if (answered === true) return 'denied';
        if (answered === false) throw new Error('answered without entering the handler');
      }
      return 'admitted';
    },
    /** Requests admitted in a row, until the first 429. */
    async admitAll(): Promise<number> {
      let admitted = 0;
      while ((await this.send()) === 'admitted') admitted++;
      return admitted;
    },
    /**
     * Detaches the requests sent so far: returns what lets them finish (200 for the held ones) and
     * waits for their responses; later requests stay held.
     */
    detach(): () => Promise<void> {
      const held = gates.splice(0);
      const responses = inFlight.splice(0);
      return async () => {
        for (const open of held) open();
        for (const r of await Promise.all(responses)) {
          expect([200, 429]).toContain(r.status);
          await r.text();
        }
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const ALGORITHMS: RateAlgorithm[] = ['fixed-window', 'sliding-window', 'token-bucket', 'leaky-bucket'];

describe.each(['MemoryStore', 'RedisStore'])('%s: refunds across a window boundary', (kind) => {
  let client: Redis | undefined;
  beforeAll(async () => {
    if (kind === 'RedisStore') {
      client = new Redis({ host: '127.0.0.1', port: inject('redisPort'), lazyConnect: true });
      await client.connect();
    }
  });
  afterAll(async () => {
    await client?.quit();
  });

  it.each(ALGORITHMS)('%s: refunds from window 1 free nothing in window 2', async (algorithm) => {
    let now = START;
    const clock: Clock = () => now;
    const store = tracked(
      kind === 'MemoryStore'
        ? new MemoryStore({ clock })
        : new RedisStore({ client: client!, clock, prefix: `t:${randomUUID()}:` }),
    );
    const app = await slowApp(algorithm, store);
    try {
      // Window 1: the whole quota, held in the handler.
      expect(await app.admitAll()).toBe(LIMIT);
      const window1 = app.detach();
      // Window 2, late in it (a sliding window's previous count weighs little by then).
      now = START + W + 9_000;
      const before = await app.admitAll();
      // Window 1's requests succeed now; their refunds arrive in window 2.
      await window1();
      await store.settled();
      const after = await app.admitAll();
      if (algorithm === 'fixed-window' || algorithm === 'sliding-window') {
        // No window admits more than its limit: window 2's count is window 2's own.
        expect(before + after).toBe(LIMIT);
      } else {
        // A bucket takes its units back, never past its capacity.
        expect([before, after]).toEqual([LIMIT, LIMIT]);
      }
    } finally {
      await app.detach()();
      await app.close();
    }
  });
});
