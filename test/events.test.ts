/**
 * Issue 14: the limiter's events on `node:diagnostics_channel`, on a real Redis that is killed and
 * restarted. Every message is asserted exactly (durations only by sign and bound).
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { setTimeout as delay } from 'node:timers/promises';
import {
  createLimiter,
  DECISION_CHANNEL,
  type Decision,
  type DecisionMessage,
  type Limiter,
  MemoryStore,
  STORE_CALL_CHANNEL,
  STORE_ERROR_CHANNEL,
  STORE_RECOVERED_CHANNEL,
  type StoreCallMessage,
  StoreError,
  type StoreErrorMessage,
  type StoreRecoveredMessage,
} from '@tollgate/core';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';
import { afterEach, expect, test } from 'vitest';
import { TtlGuard } from './support/multi-process/redis-keys.ts';
import { startRedis } from './support/redis-servers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const guard = new TtlGuard();
const stops: (() => void)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop();
  await guard.verify();
});

function listen<T>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown) => seen.push(message as T);
  subscribe(name, listener);
  stops.push(() => unsubscribe(name, listener));
  return seen;
}

/** Consumes every 20 ms until a decision comes from Redis again (no `reason`); returns them all. */
async function untilFromStore(limiter: Limiter, key: string): Promise<Decision[]> {
  const decisions: Decision[] = [];
  const deadline = performance.now() + 10_000;
  for (;;) {
    const decision = await limiter.consume(key);
    decisions.push(decision);
    if (decision.reason === undefined) return decisions;
    if (performance.now() > deadline) throw new Error('Redis did not decide again within 10 s');
    await delay(20);
  }
}

test('decisions, store calls, store errors and the recovery of a killed Redis, message by message', async ({
  onTestFinished,
}) => {
  const server = await startRedis();
  onTestFinished(() => server.stop());
  const client = new Redis({
    host: '127.0.0.1',
    port: server.port,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
  });
  client.on('error', () => undefined);
  onTestFinished(() => client.disconnect());
  await client.connect();
  const prefix = guard.watch(client);
  const store = new RedisStore({ client, prefix, timeoutMs: 300 });
  const policies = { name: 'hourly', limit: 2, window: '1h', algorithm: 'fixed-window' } as const;
  // A probe interval far longer than the script's requests while Redis is down: exactly one probe each.
  const open = createLimiter({ name: 'open', store, policies, probeIntervalMs: '1s', logger: quiet });
  const backed = createLimiter({
    name: 'backed',
    store,
    policies,
    fallback: new MemoryStore(),
    probeIntervalMs: '1s',
    logger: quiet,
  });

  const decisions = listen<DecisionMessage>(DECISION_CHANNEL);
  const calls = listen<StoreCallMessage>(STORE_CALL_CHANNEL);
  const errors = listen<StoreErrorMessage>(STORE_ERROR_CHANNEL);
  const recoveries = listen<StoreRecoveredMessage>(STORE_RECOVERED_CHANNEL);
  const summary = () => decisions.map((m) => `${m.limiter} ${m.key} ${m.result} ${m.decision.remaining}`);
  const callSummary = () => calls.map((m) => `${m.limiter} ${m.operation} ${m.ok}`);

  // Redis up: two allowed, a denial from Redis, then one from the denied-key cache (no store call).
  for (let i = 0; i < 4; i++) await open.consume('ip:10.0.0.1');
  await open.peek('ip:10.0.0.2');
  expect(summary()).toEqual([
    'open ip:10.0.0.1 allowed 1',
    'open ip:10.0.0.1 allowed 0',
    'open ip:10.0.0.1 limited 0',
    'open ip:10.0.0.1 limited 0',
  ]);
  expect(decisions.map((m) => m.decision.reason)).toEqual([undefined, undefined, undefined, 'blocked-cache']);
  expect(callSummary()).toEqual([
    'open consume true',
    'open consume true',
    'open consume true',
    'open peek true',
  ]);
  for (const { durationMs } of calls) expect(durationMs).toBeGreaterThan(0);

  decisions.length = 0;
  calls.length = 0;
  await server.kill();
  const killedAt = performance.now();
  // Redis down: each limiter's first request fails at the store; the next ones skip it.
  for (let i = 0; i < 3; i++) await open.consume('ip:10.0.0.3');
  for (let i = 0; i < 3; i++) await backed.consume('ip:10.0.0.3');
  expect(summary()).toEqual([
    'open ip:10.0.0.3 store_error 2',
    'open ip:10.0.0.3 store_error 2',
    'open ip:10.0.0.3 store_error 2',
    'backed ip:10.0.0.3 fallback 1',
    'backed ip:10.0.0.3 fallback 0',
    'backed ip:10.0.0.3 fallback 0',
  ]);
  expect(decisions.map((m) => m.decision.allowed)).toEqual([true, true, true, true, true, false]);
  expect(callSummary()).toEqual(['open consume false', 'backed consume false']);
  expect(errors).toEqual([
    { limiter: 'open', error: expect.any(StoreError), scope: 'store' },
    { limiter: 'backed', error: expect.any(StoreError), scope: 'store' },
  ]);
  expect(recoveries).toEqual([]);

  decisions.length = 0;
  calls.length = 0;
  errors.length = 0;
  await server.restart();
  const restartedAt = performance.now();
  const recovering = await untilFromStore(open, 'ip:10.0.0.4');
  // Every answer before Redis decided again was a store_error, each one published.
  expect(decisions.map((m) => m.decision)).toEqual(recovering);
  expect(decisions.map((m) => m.result)).toEqual([
    ...recovering.slice(0, -1).map(() => 'store_error'),
    'allowed',
  ]);
  // One store call per probe: the failed ones published a store error each, then the one that worked.
  expect(calls.at(-1)).toMatchObject({ limiter: 'open', operation: 'consume', ok: true });
  expect(calls.filter((m) => !m.ok)).toHaveLength(errors.length);
  expect(recoveries).toHaveLength(1);
  expect(recoveries[0]!.limiter).toBe('open');
  // Down from the first failed call (after the kill) to the probe that worked (after the restart).
  expect(recoveries[0]!.downMs).toBeGreaterThanOrEqual(restartedAt - killedAt - 1);
  expect(recoveries[0]!.downMs).toBeLessThanOrEqual(performance.now() - killedAt + 1);
});
