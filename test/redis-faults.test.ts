/**
 * Acceptance tests of the Redis store under faults (issue "Redis store"), each against real Redis
 * servers: a server killed mid-run and restarted, servers that stop answering (a silent TCP server,
 * one that goes silent after the handshake, a SIGSTOPped redis-server), stale requests replayed by
 * the client after a reconnect, a replica (READONLY) and a wrong-type key.
 *
 * Every request must be answered within the store's `timeoutMs` + 50 ms, as the limiter's
 * `onStoreError` or `fallback` says; no rejection may go unhandled; and after every test every key
 * under the test's prefix must have a TTL.
 */
import { createHash } from 'node:crypto';
import {
  type AddressInfo,
  createConnection as connectTo,
  createServer,
  type Server,
  type Socket,
} from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import {
  createLimiter,
  type Decision,
  isStoreError,
  type Limiter,
  type LimiterOptions,
  MemoryStore,
  type StoreError,
} from '@tollgate/core';
import { type RedisClientLike, RedisStore } from '@tollgate/redis';
import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, type TestContext, test } from 'vitest';
import { keysUnder, TtlGuard, testPrefix } from './support/multi-process/redis-keys.ts';
import {
  findFreePort,
  keySlot,
  type RedisServer,
  startCluster,
  startRedis,
} from './support/redis-servers.ts';

const TIMEOUT_MS = 200;
/** How long any request may take while Redis fails. */
const BOUND_MS = TIMEOUT_MS + 50;
/** How soon after Redis is back the limiter must decide from it again. */
const RECOVERY_MS = 2_000;

const quiet = { warn: () => undefined, error: () => undefined };

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const guard = new TtlGuard();

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  await guard.verify();
  expect(unhandled, 'unhandled rejections during the test').toEqual([]);
});

type Finished = TestContext['onTestFinished'];

/** A redis-server of the test's own, stopped when the test ends. */
async function ownRedis(
  onTestFinished: Finished,
  options: { replicaOf?: number } = {},
): Promise<RedisServer> {
  const server = await startRedis(options);
  onTestFinished(() => server.stop());
  return server;
}

/** A connected ioredis client with default options (offline queue on), disconnected when the test ends. */
async function ioredis(port: number, onTestFinished: Finished): Promise<Redis> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  // Connection errors are expected here; what matters is what the limiter answers.
  client.on('error', () => undefined);
  onTestFinished(() => client.disconnect());
  await client.connect();
  return client;
}

/** A limiter on a RedisStore with `timeoutMs` 200, no denied-key cache, collecting logs and store errors. */
function redisLimiter(
  client: RedisClientLike,
  options: Omit<LimiterOptions, 'store' | 'logger'> & { prefix: string },
): { limiter: Limiter; logged: string[]; storeErrors: StoreError[] } {
  const logged: string[] = [];
  const storeErrors: StoreError[] = [];
  const { prefix, ...limiterOptions } = options;
  const limiter = createLimiter({
    blockedCache: false,
    ...limiterOptions,
    store: new RedisStore({
      client,
      prefix,
      timeoutMs: TIMEOUT_MS,
      onError: (error) => storeErrors.push(error),
    }),
    logger: { warn: (message) => logged.push(message), error: (message) => logged.push(message) },
  });
  return { limiter, logged, storeErrors };
}

interface Timed {
  decision: Decision;
  /** performance.now() when the request was made. */
  at: number;
  ms: number;
}

async function timed(call: () => Promise<Decision>): Promise<Timed> {
  const at = performance.now();
  const decision = await call();
  return { decision, at, ms: performance.now() - at };
}

const slowest = (answers: readonly Timed[]): number => Math.max(0, ...answers.map((a) => a.ms));
const reasons = (answers: readonly Timed[]) => answers.map((a) => a.decision.reason);

/**
 * Consumes every 20 ms until a decision comes from the store again (no `reason`); returns how long
 * that took and every answer on the way.
 */
async function untilFromStore(limiter: Limiter, key: string): Promise<{ elapsed: number; answers: Timed[] }> {
  const start = performance.now();
  const answers: Timed[] = [];
  for (;;) {
    const answer = await timed(() => limiter.consume(key));
    answers.push(answer);
    const elapsed = performance.now() - start;
    if (answer.decision.reason === undefined || elapsed > RECOVERY_MS + 3_000) return { elapsed, answers };
    await delay(20);
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

async function redisPid(client: Redis): Promise<number> {
  const match = /process_id:(\d+)/.exec(await client.info('server'));
  if (!match) throw new Error('INFO server has no process_id');
  return Number(match[1]);
}

describe('Redis killed mid-run, then restarted on the same port', () => {
  test("onStoreError 'allow': every request answered within timeoutMs + 50 ms, allowed with reason 'store-error'; back to Redis within 2 s", async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const { limiter, logged } = redisLimiter(client, { prefix, policies: { limit: 10_000, window: '1h' } });

    // Traffic every 10 ms, five requests at a time, from before the kill to well after it.
    const answers: Promise<Timed>[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        for (let i = 0; i < 5; i++) answers.push(timed(() => limiter.consume('mid-run')));
        await delay(10);
      }
    })();
    await delay(150);
    const killStart = performance.now();
    await server.kill();
    const killed = performance.now();
    await delay(600);
    running = false;
    await traffic;
    const all = await Promise.all(answers);

    expect(slowest(all), 'slowest answer (ms)').toBeLessThanOrEqual(BOUND_MS);
    expect(all.every((a) => a.decision.allowed)).toBe(true);
    const before = all.filter((a) => a.at + a.ms < killStart);
    const after = all.filter((a) => a.at > killed);
    expect(before.length).toBeGreaterThan(10);
    expect(reasons(before)).toEqual(before.map(() => undefined));
    expect(after.length).toBeGreaterThan(50);
    expect(reasons(after)).toEqual(after.map(() => 'store-error'));
    expect(logged.some((m) => m.includes('TOLLGATE_STORE_ERROR'))).toBe(true);

    await server.restart();
    const { elapsed, answers: recovering } = await untilFromStore(limiter, 'mid-run');
    expect(elapsed, 'ms until decisions came from Redis again').toBeLessThanOrEqual(RECOVERY_MS);
    expect(slowest(recovering)).toBeLessThanOrEqual(BOUND_MS);
    expect(recovering.at(-1)!.decision.allowed).toBe(true);
  });

  test('reservations (issue 12): a settle while Redis is down fails within timeoutMs + 50 ms, once; after the restart settles are exact', async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const { limiter } = redisLimiter(client, {
      prefix,
      policies: { algorithm: 'fixed-window', limit: 1000, window: '1h' },
    });
    const before = await limiter.reserve('r', { cost: 10 });
    expect(before.decision.reason).toBeUndefined();
    await server.kill();
    const at = performance.now();
    const failed = await before.settle(30).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(performance.now() - at, 'ms until the settle failed').toBeLessThanOrEqual(BOUND_MS);
    expect(isStoreError(failed)).toBe(true);
    // Not sent again (it may have counted): the same answer.
    await expect(before.settle(30)).rejects.toBe(failed);
    // Let through while Redis is down (fail-open): nothing counted, so nothing to settle.
    const during = await limiter.reserve('r', { cost: 10 });
    expect(during.decision.reason).toBe('store-error');
    await server.restart();
    const { elapsed } = await untilFromStore(limiter, 'probe');
    expect(elapsed).toBeLessThanOrEqual(RECOVERY_MS);
    await during.settle(500);
    const after = await limiter.reserve('r', { cost: 10 });
    expect(after.decision.reason).toBeUndefined();
    // The restarted Redis kept nothing (no persistence): 25 is all it holds.
    expect((await after.settle(25)).remaining).toBe(975);
    expect((await limiter.peek('r')).remaining).toBe(975);
  });

  test('concurrency (issue 12): releases while Redis is down never reject; after the restart the scripts load again and slots count from Redis', async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const { limiter, logged } = redisLimiter(client, {
      prefix,
      policies: { algorithm: 'concurrency', limit: 3, lease: '30s' },
    });
    const held = await Promise.all([1, 2, 3].map(() => limiter.consume('c')));
    expect(held.every((d) => d.allowed && d.reason === undefined && d.release !== undefined)).toBe(true);
    expect((await limiter.consume('c')).allowed).toBe(false);
    await server.kill();
    const at = performance.now();
    await Promise.all(held.map((d) => d.release!()));
    expect(performance.now() - at, 'ms until the releases gave up').toBeLessThanOrEqual(BOUND_MS);
    expect(logged.some((m) => m.includes('Release of a slot'))).toBe(true);
    // Let through while Redis is down (fail-open): no slot held, nothing to release.
    const during = await limiter.consume('c');
    expect(during.reason).toBe('store-error');
    expect(during.release).toBeUndefined();
    await server.restart();
    const { elapsed } = await untilFromStore(limiter, 'probe');
    expect(elapsed).toBeLessThanOrEqual(RECOVERY_MS);
    // The restarted Redis kept nothing (no persistence): three slots, then a denial to the millisecond.
    const after = await Promise.all([1, 2, 3, 4].map(() => limiter.consume('c')));
    expect(after.map((d) => d.allowed).sort()).toEqual([false, true, true, true]);
    await Promise.all(after.map((d) => d.release?.()));
    expect((await limiter.peek('c')).remaining).toBe(3);
  });

  test("with a MemoryStore fallback, limits still hold (reason 'fallback'); back to Redis within 2 s", async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const fallback = new MemoryStore();
    onTestFinished(() => fallback.close());
    const { limiter } = redisLimiter(client, { prefix, policies: { limit: 5, window: '1h' }, fallback });

    const first = await Promise.all([1, 2].map(() => timed(() => limiter.consume('fallback'))));
    expect(reasons(first)).toEqual([undefined, undefined]);

    await server.kill();
    const during: Timed[] = [];
    for (let i = 0; i < 10; i++) during.push(await timed(() => limiter.consume('fallback')));
    // A burst too: all of it answered by the fallback, which is out of quota by now.
    during.push(...(await Promise.all([1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('fallback'))))));

    expect(slowest(during)).toBeLessThanOrEqual(BOUND_MS);
    expect(reasons(during)).toEqual(during.map(() => 'fallback'));
    // The fallback counts from zero in this process: 5 allowed, then denied with an honest wait.
    expect(during.map((a) => a.decision.allowed)).toEqual([...Array(5).fill(true), ...Array(10).fill(false)]);
    for (const { decision } of during.slice(5)) {
      expect(decision.remaining).toBe(0);
      expect(decision.retryAfterMs).toBeGreaterThan(0);
    }

    await server.restart();
    const { elapsed, answers } = await untilFromStore(limiter, 'fallback');
    expect(elapsed, 'ms until decisions came from Redis again').toBeLessThanOrEqual(RECOVERY_MS);
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(answers.at(-1)!.decision.allowed).toBe(true);
  });

  test("onStoreError 'deny': denied with reason 'store-error' within timeoutMs + 50 ms; back to Redis within 2 s", async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const { limiter } = redisLimiter(client, {
      prefix,
      policies: { limit: 100, window: '1h' },
      onStoreError: 'deny',
    });
    expect((await limiter.consume('deny')).reason).toBeUndefined();

    await server.kill();
    const during: Timed[] = [];
    for (let i = 0; i < 5; i++) during.push(await timed(() => limiter.consume('deny')));
    during.push(...(await Promise.all([1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('deny'))))));
    expect(slowest(during)).toBeLessThanOrEqual(BOUND_MS);
    expect(reasons(during)).toEqual(during.map(() => 'store-error'));
    for (const { decision } of during) {
      expect(decision.allowed).toBe(false);
      expect(decision.retryAfterMs).toBeGreaterThan(0);
    }

    await server.restart();
    const { elapsed, answers } = await untilFromStore(limiter, 'deny');
    expect(elapsed, 'ms until decisions came from Redis again').toBeLessThanOrEqual(RECOVERY_MS);
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(answers.at(-1)!.decision.allowed).toBe(true);
  });
});

/**
 * A TCP server that speaks just enough Redis: it answers every command up to and including the
 * first `answerUntil` command (INFO, ioredis's ready check) with +OK (INFO with a bulk reply), then
 * never answers again. With `answerUntil: undefined` it never answers at all.
 */
async function blackHole(
  onTestFinished: Finished,
  answerUntil: string | undefined,
): Promise<{ port: number; received: string[]; drop(): void }> {
  const sockets = new Set<Socket>();
  const received: string[] = [];
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let buffer = '';
    let silent = answerUntil === undefined;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (;;) {
        const parsed = parseCommand(buffer);
        if (parsed === undefined) return;
        buffer = buffer.slice(parsed.length);
        const name = parsed.args.join(' ');
        received.push(name);
        if (silent) continue;
        if (parsed.args[0]?.toUpperCase() === answerUntil) {
          const info = '# Server\r\nredis_version:7.0.15\r\n# Persistence\r\nloading:0\r\n';
          socket.write(`$${info.length}\r\n${info}\r\n`);
          silent = true;
        } else {
          socket.write('+OK\r\n');
        }
      }
    });
  });
  const port = await findFreePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port: (server.address() as AddressInfo).port,
    received,
    // Closes every connection, as a network failure would: the client reconnects.
    drop: () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
  };
}

/** One RESP command (an array of bulk strings) from the start of `buffer`, or undefined if incomplete. */
function parseCommand(buffer: string): { args: string[]; length: number } | undefined {
  let at = 0;
  const line = () => {
    const end = buffer.indexOf('\r\n', at);
    if (end === -1) return undefined;
    const text = buffer.slice(at, end);
    at = end + 2;
    return text;
  };
  const header = line();
  if (header === undefined) return undefined;
  if (!header.startsWith('*')) return { args: header.split(' '), length: at }; // inline command
  const args: string[] = [];
  for (let count = Number(header.slice(1)); args.length < count; ) {
    const size = line();
    if (size === undefined) return undefined;
    const length = Number(size.slice(1));
    if (buffer.length < at + length + 2) return undefined;
    args.push(buffer.slice(at, at + length));
    at += length + 2;
  }
  return { args, length: at };
}

/**
 * A TCP relay to a real Redis that can hold what the client sends (as a stalled network does) and
 * drop every connection (as a network failure does; held bytes are lost). Records the commands it
 * passed on to Redis.
 */
async function proxy(
  onTestFinished: Finished,
  target: number,
): Promise<{ port: number; hold(on: boolean): void; drop(): void; commands(): string[] }> {
  const pairs = new Set<{ client: Socket; server: Socket; held: Buffer[]; seen: string }>();
  const commands: string[] = [];
  let holding = false;
  const pass = (pair: { server: Socket; seen: string }, chunk: Buffer) => {
    pair.server.write(chunk);
    pair.seen += chunk.toString('latin1');
    for (let parsed = parseCommand(pair.seen); parsed; parsed = parseCommand(pair.seen)) {
      pair.seen = pair.seen.slice(parsed.length);
      commands.push(parsed.args.join(' '));
    }
  };
  const relay: Server = createServer((client) => {
    const server = connectTo(target);
    const pair = { client, server, held: [] as Buffer[], seen: '' };
    pairs.add(pair);
    for (const socket of [client, server]) socket.on('error', () => undefined);
    client.on('data', (chunk: Buffer) => (holding ? pair.held.push(chunk) : pass(pair, chunk)));
    server.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => server.destroy());
    server.on('close', () => client.destroy());
  });
  const port = await findFreePort();
  await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
  const drop = () => {
    for (const pair of pairs) {
      pair.client.destroy();
      pair.server.destroy();
    }
    pairs.clear();
  };
  onTestFinished(async () => {
    drop();
    await new Promise((resolve) => relay.close(resolve));
  });
  return {
    port,
    hold(on) {
      holding = on;
      if (on) return;
      for (const pair of pairs) for (const chunk of pair.held.splice(0)) pass(pair, chunk);
    },
    drop,
    commands: () => [...commands],
  };
}

describe('a Redis that stops answering never stalls a request past timeoutMs + 50 ms', () => {
  test('a TCP server that accepts and never answers: ioredis never becomes ready, the store fails within timeoutMs', async ({
    onTestFinished,
  }) => {
    const { port, received } = await blackHole(onTestFinished, undefined);
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    client.on('error', () => undefined);
    onTestFinished(() => client.disconnect());
    void client.connect().catch(() => undefined);
    await until(() => received.length > 0, 'the client to send its handshake');
    expect(client.status).not.toBe('ready');

    const store = new RedisStore({ client, prefix: testPrefix(), timeoutMs: TIMEOUT_MS });
    const allow = createLimiter({ policies: { limit: 5, window: '1m' }, store, logger: quiet });
    const deny = createLimiter({
      policies: { limit: 5, window: '1m' },
      store,
      logger: quiet,
      onStoreError: 'deny',
    });
    const start = performance.now();
    await expect(store.consume('k', allow.policies!, 1)).rejects.toSatisfy(isStoreError);
    expect(performance.now() - start).toBeLessThanOrEqual(BOUND_MS);
    const answers = await Promise.all([
      ...[1, 2, 3].map(() => timed(() => allow.consume('k'))),
      ...[1, 2, 3].map(() => timed(() => deny.consume('k'))),
    ]);
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(answers.map((a) => [a.decision.allowed, a.decision.reason])).toEqual([
      ...Array(3).fill([true, 'store-error']),
      ...Array(3).fill([false, 'store-error']),
    ]);
  });

  test.for([
    {
      server: 'that accepts and never answers (ioredis without a ready check is ready at once)',
      answerUntil: undefined,
      readyCheck: false,
    },
    { server: 'that answers the handshake, then goes silent', answerUntil: 'INFO', readyCheck: true },
  ])(
    'a TCP server $server: every call times out within timeoutMs + 50 ms',
    async ({ answerUntil, readyCheck }, { onTestFinished }) => {
      const { port, received } = await blackHole(onTestFinished, answerUntil);
      // Without the client info (CLIENT SETINFO, whose replies ioredis awaits), a silent server would
      // keep ioredis from ever becoming ready.
      const client = new Redis({
        host: '127.0.0.1',
        port,
        lazyConnect: true,
        enableReadyCheck: readyCheck,
        disableClientInfo: !readyCheck,
      });
      client.on('error', () => undefined);
      onTestFinished(() => client.disconnect());
      await client.connect();
      expect(client.status).toBe('ready');

      const prefix = testPrefix();
      const store = new RedisStore({ client, prefix, timeoutMs: TIMEOUT_MS });
      const policies = { limit: 5, window: '1m' } as const;
      const set = createLimiter({ policies, store, logger: quiet }).policies!;
      // The store alone: 20 calls in flight, each rejected with a StoreError on time.
      const calls = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const at = performance.now();
          const error = await store.consume('k', set, 1).then(
            () => undefined,
            (e: unknown) => e,
          );
          return { error, ms: performance.now() - at };
        }),
      );
      for (const { error, ms } of calls) {
        expect(isStoreError(error), String(error)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
        expect(ms).toBeLessThanOrEqual(BOUND_MS);
      }
      expect(received.some((command) => /^EVAL/i.test(command))).toBe(true);

      // Through limiters: fail open or closed, never late.
      for (const onStoreError of ['allow', 'deny'] as const) {
        const limiter = createLimiter({ policies, store, logger: quiet, onStoreError, probeIntervalMs: 100 });
        const answers: Timed[] = [];
        answers.push(...(await Promise.all([1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('k'))))));
        for (let i = 0; i < 5; i++) {
          answers.push(await timed(() => limiter.consume('k')));
          await delay(60); // past the probe interval now and then, so the store is tried again
        }
        expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
        expect(answers.map((a) => [a.decision.allowed, a.decision.reason])).toEqual(
          answers.map(() => [onStoreError === 'allow', 'store-error']),
        );
      }
    },
  );

  test.for(['resent by ioredis after a reconnect', 'held up on the way, then delivered'])(
    'a command answered by timeout and %s reaches Redis after its deadline: it counts nothing',
    async (how, { onTestFinished }) => {
      const server = await ownRedis(onTestFinished);
      const relay = await proxy(onTestFinished, server.port);
      // Default options: offline queue on, `autoResendUnfulfilledCommands` on.
      const client = await ioredis(relay.port, onTestFinished);
      const admin = await ioredis(server.port, onTestFinished);
      const prefix = guard.watch(admin);
      const policies = { algorithm: 'fixed-window', limit: 100, window: '1h' } as const;
      const { limiter } = redisLimiter(client, { prefix, policies, probeIntervalMs: 50 });
      for (let i = 0; i < 3; i++) expect((await limiter.consume('late')).reason).toBeUndefined();
      // What Redis holds, read beside the relay.
      const direct = createLimiter({
        policies,
        store: new RedisStore({ client: admin, prefix }),
        blockedCache: false,
      });
      const count = async () => policies.limit - (await direct.peek('late')).remaining;
      expect(await count()).toBe(3);

      relay.hold(true);
      const answers = await Promise.all([1, 2, 3].map(() => timed(() => limiter.consume('late'))));
      expect(reasons(answers)).toEqual(['store-error', 'store-error', 'store-error']);
      const sent = relay.commands().filter((c) => /^EVAL/i.test(c)).length;
      // Past the deadline: twice timeoutMs after sending, plus the TIME reading's round trip and 5 ms.
      await delay(TIMEOUT_MS + 100);
      if (how.includes('reconnect')) {
        relay.drop();
        relay.hold(false);
        await until(() => client.status === 'ready', 'ioredis to reconnect');
      } else {
        relay.hold(false);
      }
      // The commands reached Redis again (resent, or delivered late)...
      await until(() => relay.commands().filter((c) => /^EVAL/i.test(c)).length >= sent + 3, 'the commands');
      await delay(100);
      // ...and changed nothing.
      expect(await count()).toBe(3);
      const { answers: after } = await untilFromStore(limiter, 'late');
      expect(after.at(-1)!.decision).toMatchObject({ allowed: true, remaining: 96 });
      expect(await count()).toBe(4);
    },
  );

  test('a SIGSTOPped redis-server (ioredis and node-redis): answered within timeoutMs + 50 ms; after SIGCONT, back to Redis within 2 s', async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const io = await ioredis(server.port, onTestFinished);
    const node = createClient({ socket: { host: '127.0.0.1', port: server.port } });
    node.on('error', () => undefined);
    await node.connect();
    onTestFinished(() => node.destroy());
    const pid = await redisPid(io);
    const prefix = guard.watch(io);
    const limiters = [
      redisLimiter(io, { prefix, policies: { limit: 1_000, window: '1h' } }).limiter,
      redisLimiter(node, { prefix, policies: { limit: 1_000, window: '1h' }, onStoreError: 'deny' }).limiter,
    ];
    for (const limiter of limiters) expect((await limiter.consume('frozen')).reason).toBeUndefined();

    let stopped = true;
    process.kill(pid, 'SIGSTOP');
    onTestFinished(() => {
      if (stopped) process.kill(pid, 'SIGCONT');
    });
    const answers: Timed[] = [];
    for (let round = 0; round < 3; round++) {
      const burst = limiters.flatMap((limiter) =>
        [1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('frozen'))),
      );
      answers.push(...(await Promise.all(burst)));
      await delay(100);
    }
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(reasons(answers)).toEqual(answers.map(() => 'store-error'));
    expect(answers.filter((a) => a.decision.allowed)).toHaveLength(answers.length / 2);

    process.kill(pid, 'SIGCONT');
    stopped = false;
    for (const limiter of limiters) {
      const { elapsed, answers: recovering } = await untilFromStore(limiter, 'frozen');
      expect(elapsed, 'ms until decisions came from Redis again').toBeLessThanOrEqual(RECOVERY_MS);
      expect(slowest(recovering)).toBeLessThanOrEqual(BOUND_MS);
    }
  });
});

describe('no replay of stale increments after a reconnect (ioredis with its offline queue enabled)', () => {
  /** Only the fixed window's count is simple to read back: its state is {windowStart, count}. */
  const policies = { algorithm: 'fixed-window', limit: 100, window: '1h' } as const;

  async function afterRecovery(
    server: RedisServer,
    client: Redis,
    limiter: Limiter,
    prefix: string,
  ): Promise<void> {
    await server.restart();
    await until(() => client.status === 'ready', 'ioredis to reconnect');
    // Whatever the client would replay has been sent by now.
    await delay(300);
    // The restarted Redis has no persistence: any state under the prefix was replayed.
    const replayed = await keysUnder(client, prefix);
    const state = await Promise.all(replayed.map(({ key }) => client.get(key)));
    expect(state, 'state in the restarted Redis before any new request: replayed by the client').toEqual([]);
    const { answers } = await untilFromStore(limiter, 'stale');
    expect(answers.at(-1)!.decision).toMatchObject({ allowed: true, remaining: policies.limit - 1 });
    expect(answers.at(-1)!.decision.reason).toBeUndefined();
  }

  test('requests made while Redis is down are not counted when it is back', async ({ onTestFinished }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    expect(client.options.enableOfflineQueue).toBe(true);
    const prefix = guard.watch(client);
    const { limiter } = redisLimiter(client, { prefix, policies, probeIntervalMs: 50 });
    for (let i = 0; i < 3; i++) expect((await limiter.consume('stale')).reason).toBeUndefined();

    // Right after Redis died, before the client has noticed (its socket's close event is still to
    // come), and while it is down.
    await server.kill();
    const during = [1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('stale')));
    for (let i = 0; i < 10; i++) {
      await delay(30);
      during.push(timed(() => limiter.consume('stale')));
    }
    const answers = await Promise.all(during);
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(reasons(answers)).toEqual(answers.map(() => 'store-error'));

    await afterRecovery(server, client, limiter, prefix);
  });

  test('requests in flight when Redis stopped answering, then died, are not counted when it is back', async ({
    onTestFinished,
  }) => {
    const server = await ownRedis(onTestFinished);
    const client = await ioredis(server.port, onTestFinished);
    const prefix = guard.watch(client);
    const { limiter } = redisLimiter(client, { prefix, policies, probeIntervalMs: 50 });
    for (let i = 0; i < 3; i++) expect((await limiter.consume('stale')).reason).toBeUndefined();

    // Frozen: the requests reach the server's socket, time out and are answered fail-open...
    const pid = await redisPid(client);
    process.kill(pid, 'SIGSTOP');
    onTestFinished(() => {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Already killed, as planned.
      }
    });
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => timed(() => limiter.consume('stale'))));
    for (let i = 0; i < 5; i++) {
      answers.push(await timed(() => limiter.consume('stale')));
      await delay(60);
    }
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(reasons(answers)).toEqual(answers.map(() => 'store-error'));
    // ...then the server dies without having run them (SIGKILL works on a stopped process).
    await server.kill();

    await afterRecovery(server, client, limiter, prefix);
  });
});

describe('errors from Redis itself are store errors, never exceptions', () => {
  test("a replica as the limiter's client (READONLY): allowed with reason 'store-error'", async ({
    onTestFinished,
  }) => {
    const primary = await ownRedis(onTestFinished);
    const replica = await ownRedis(onTestFinished, { replicaOf: primary.port });
    const client = await ioredis(replica.port, onTestFinished);
    // Synced, so that reads are served (not LOADING) and only writes fail.
    for (const deadline = performance.now() + 5_000; ; await delay(20)) {
      if ((await client.info('replication')).includes('master_link_status:up')) break;
      if (performance.now() > deadline) throw new Error('the replica did not sync within 5 s');
    }
    const prefix = guard.watch(client);
    const { limiter, logged, storeErrors } = redisLimiter(client, {
      prefix,
      policies: { limit: 5, window: '1m' },
    });

    const answers: Timed[] = [];
    for (let i = 0; i < 3; i++) answers.push(await timed(() => limiter.consume('replica')));
    expect(answers.map((a) => [a.decision.allowed, a.decision.reason])).toEqual(
      answers.map(() => [true, 'store-error']),
    );
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(storeErrors.length).toBeGreaterThan(0);
    expect(storeErrors.every(isStoreError)).toBe(true);
    expect(String(storeErrors[0]!.message)).toMatch(/READONLY/);
    expect(logged.join('\n')).toMatch(/READONLY/);
    // Reading works on a replica: a peek is answered by it.
    const peeked = await limiter.peek('replica');
    expect(peeked.reason, storeErrors.at(-1)?.message).toBeUndefined();
    expect(peeked).toMatchObject({ allowed: true, remaining: 5 });
    expect(await keysUnder(client, prefix)).toEqual([]);
  });

  test("a wrong-type key where the limiter's hash lives: allowed with reason 'store-error'", async ({
    onTestFinished,
  }) => {
    const client = await ioredis(inject('redisPort'), onTestFinished);
    const prefix = guard.watch(client);
    const { limiter, logged, storeErrors } = redisLimiter(client, {
      prefix,
      policies: [
        { algorithm: 'fixed-window', limit: 5, window: '1m' },
        { algorithm: 'token-bucket', limit: 50, window: '1h' },
      ],
    });
    expect((await limiter.consume('typed')).reason).toBeUndefined();
    const [held, ...others] = await keysUnder(client, prefix);
    expect(others).toEqual([]);
    expect(await client.type(held!.key)).toBe('string');
    // A hash in its place, with a TTL of its own (every key under the prefix must have one).
    await client.multi().del(held!.key).hset(held!.key, 'not', 'a string').pexpire(held!.key, 60_000).exec();

    const answers: Timed[] = [];
    for (let i = 0; i < 3; i++) answers.push(await timed(() => limiter.consume('typed')));
    expect(answers.map((a) => [a.decision.allowed, a.decision.reason])).toEqual(
      answers.map(() => [true, 'store-error']),
    );
    expect(slowest(answers)).toBeLessThanOrEqual(BOUND_MS);
    expect(storeErrors[0]?.message).toMatch(/WRONGTYPE/);
    expect(logged.join('\n')).toMatch(/WRONGTYPE/);
    expect((await limiter.peek('typed')).reason).toBe('store-error');
    await expect(limiter.refund('typed')).rejects.toSatisfy(isStoreError);
    expect(await client.hgetall(held!.key)).toEqual({ not: 'a string' });

    // reset() clears it, and the next request is counted by Redis again.
    await limiter.reset('typed');
    const { answers: recovering } = await untilFromStore(limiter, 'typed');
    expect(recovering.at(-1)!.decision).toMatchObject({ allowed: true, remaining: 4 });
  });
});

describe('a failure on one key or one Cluster master fails only what it reaches (issue 9)', () => {
  const LIMIT = 30;
  const policies = { limit: LIMIT, window: '1h' } as const;

  /** `rounds` rounds every `everyMs`, each consuming every key once at the same time; decisions by key. */
  async function traffic(
    limiter: Limiter,
    keys: readonly string[],
    rounds: number,
    everyMs: number,
  ): Promise<Map<string, Timed[]>> {
    const byKey = new Map<string, Timed[]>(keys.map((key) => [key, []]));
    const all: Promise<void>[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const key of keys) {
        all.push(timed(() => limiter.consume(key)).then((answer) => void byKey.get(key)!.push(answer)));
      }
      await delay(everyMs);
    }
    await Promise.all(all);
    return byKey;
  }

  /**
   * Exactly what Redis answers key by key after `before` earlier consumes: all from Redis, every
   * remaining count once, as many allowed as the limit leaves.
   */
  function expectExact(answers: readonly Timed[], key: string, before = 0): void {
    const decisions = answers.map((a) => a.decision);
    expect(
      decisions.map((d) => d.reason),
      `reasons for ${key}`,
    ).toEqual(decisions.map(() => undefined));
    const remaining = decisions.map((d) => d.remaining).sort((a, b) => b - a);
    const left = LIMIT - before;
    expect(remaining, `remaining for ${key}`).toEqual(decisions.map((_, i) => Math.max(0, left - 1 - i)));
    const allowed = decisions.filter((d) => d.allowed);
    expect(allowed, `allowed for ${key}`).toHaveLength(Math.min(left, decisions.length));
  }

  test.for(['a hash in place of the state (WRONGTYPE)', 'a string the script cannot read'])(
    'one broken key hammered 20 times a second among 200 clients: every other decision comes from Redis, the broken one is logged hashed',
    async (breakage, { onTestFinished }) => {
      const client = await ioredis(inject('redisPort'), onTestFinished);
      const prefix = guard.watch(client);
      const { limiter, logged } = redisLimiter(client, { prefix, policies });
      const broken = 'customer-4711';
      const held = (limiter.store as RedisStore).keyFor(broken, limiter.policies!);
      if (breakage.includes('WRONGTYPE')) {
        await client.multi().hset(held, 'not', 'a state').pexpire(held, 60_000).exec();
      } else {
        await client.set(held, 'garbage', 'PX', 60_000);
      }

      const keys = Array.from({ length: 200 }, (_, i) => `client-${i}`);
      const hammer = (async () => {
        const answers: Timed[] = [];
        for (let i = 0; i < 40; i++) {
          answers.push(await timed(() => limiter.consume(broken)));
          await delay(50);
        }
        return answers;
      })();
      const byKey = await traffic(limiter, keys, 40, 50);
      const brokenAnswers = await hammer;

      for (const [key, answers] of byKey) expectExact(answers, key);
      expect(brokenAnswers.map((a) => [a.decision.allowed, a.decision.reason])).toEqual(
        brokenAnswers.map(() => [true, 'store-error']),
      );
      // Logged once, as a key error with the key's hash; never the key itself, and no store failure.
      const hash = createHash('sha256').update(broken).digest('hex').slice(0, 16);
      const keyErrors = logged.filter((m) => m.includes('TOLLGATE_STORE_KEY_ERROR'));
      expect(keyErrors).toHaveLength(1);
      expect(keyErrors[0]).toContain(hash);
      expect(keyErrors[0]).toMatch(breakage.includes('WRONGTYPE') ? /WRONGTYPE/ : /tollgate: the state/);
      expect(logged.join('\n')).not.toContain(broken);
      expect(logged.filter((m) => m.includes('TOLLGATE_STORE_ERROR'))).toEqual([]);
    },
  );

  test.for(['ioredis', 'node-redis'])(
    'one of 3 Cluster masters killed (%s): keys on the other two stay exact, keys on the dead one wait for it once per probe interval',
    async (library, { onTestFinished }) => {
      // Without full coverage required, the two healthy masters keep serving their slots.
      const cluster = await startCluster({ args: ['--cluster-require-full-coverage', 'no'] });
      onTestFinished(() => cluster.stop());
      const admin = new Cluster(cluster.nodes, { lazyConnect: true });
      admin.on('error', () => undefined);
      onTestFinished(() => admin.disconnect());
      await admin.connect();
      let client: RedisClientLike;
      if (library === 'ioredis') {
        client = admin;
      } else {
        const node = createCluster({
          rootNodes: cluster.nodes.map(({ host, port }) => ({
            socket: { host, port, reconnectStrategy: 50 },
          })),
          defaults: { disableOfflineQueue: true },
        });
        node.on('error', () => undefined);
        await node.connect();
        onTestFinished(() => node.destroy());
        client = node;
      }
      const prefix = testPrefix();
      const { limiter, logged } = redisLimiter(client, { prefix, policies });
      const store = limiter.store as RedisStore;
      const keys = Array.from({ length: 90 }, (_, i) => `client-${i}`);
      const masterOf = (key: string) =>
        cluster.masterForSlot(keySlot(store.keyFor(key, limiter.policies!))).port;
      // Every key once, so that every master is connected and known.
      for (const key of keys) expect((await limiter.consume(key)).reason).toBeUndefined();

      const victim = cluster.servers[0]!;
      const healthy = keys.filter((key) => masterOf(key) !== victim.port);
      const lost = keys.filter((key) => masterOf(key) === victim.port);
      expect(lost.length).toBeGreaterThan(20);
      await victim.kill();
      const byKey = await traffic(limiter, keys, 30, 50);

      // One consume each before the kill.
      for (const key of healthy) expectExact(byKey.get(key)!, key, 1);
      const lostAnswers = lost.flatMap((key) => byKey.get(key)!);
      expect(new Set(lostAnswers.map((a) => a.decision.reason))).toEqual(new Set(['store-error']));
      // The whole master fails, not key by key: once one of its keys has timed out, its keys wait
      // for Redis once per probe interval (1 s), not once per key.
      const waited = lostAnswers.filter((a) => a.ms >= TIMEOUT_MS - 5);
      const firstTimedOut = Math.min(...waited.map((a) => a.at + a.ms));
      const waitedAfter = waited.filter((a) => a.at > firstTimedOut);
      expect(
        waitedAfter.length,
        'lost keys that waited for Redis after the first timeout',
      ).toBeLessThanOrEqual(3);
      const failures = logged.filter((m) => m.includes('TOLLGATE_STORE_ERROR'));
      expect(failures.length).toBeGreaterThan(0);
      for (const failure of failures) expect(failure).toContain(`shard 127.0.0.1:${victim.port}`);
      // The TTL guard looks at the masters still up (the dead one took its keys with it).
      for (const { port } of cluster.nodes.filter(({ port }) => port !== victim.port)) {
        guard.watch(await ioredis(port, onTestFinished), prefix);
      }
    },
  );
});
