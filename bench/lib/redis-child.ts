/**
 * One library against Redis, in its own process (own heap, JIT and client connection), driven over
 * IPC by bench/redis.ts so that rounds of all libraries interleave.
 *
 * Standalone, for profiling one library against a Redis you started (never 6379):
 *   node --cpu-prof --import tsx bench/lib/redis-child.ts tollgate-fixed PORT 100 5000
 * (library, port, calls in flight, milliseconds)
 */
import type { Redis } from 'ioredis';
import { makeKeys } from './keys.ts';
import { benchClient, type RedisSubject, redisSubject } from './redis-subjects.ts';

export type RedisChildRequest =
  | { op: 'setup'; port: number; keys: number; autoPipelining: boolean }
  | { op: 'round'; ms: number; inflight: number }
  | { op: 'count'; calls: number; inflight: number }
  | { op: 'teardown' };

export interface RedisRoundResult {
  ops: number;
  wallMs: number;
  /** CPU time of this process (all threads) during the round. */
  cpuMs: number;
  /** Calls that failed (should be 0). */
  errors: number;
}

/**
 * `inflight` loops, each awaiting one call at a time, until `ms` have passed (or `calls` are done).
 * Every loop takes the next key of one shared, fixed order.
 */
async function drive(
  consume: (key: string) => Promise<unknown>,
  keys: readonly string[],
  cursor: { at: number },
  inflight: number,
  ms: number,
  calls: number,
): Promise<RedisRoundResult> {
  const n = keys.length;
  let ops = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + ms;
  const loop = async () => {
    // A clock read per call costs well under 1% of a Redis round trip.
    while (ops < calls && performance.now() < end) {
      const key = keys[cursor.at]!;
      cursor.at = cursor.at + 1 === n ? 0 : cursor.at + 1;
      ops++;
      try {
        await consume(key);
      } catch {
        errors++;
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (let i = 0; i < inflight; i++) loops.push(loop());
  await Promise.all(loops);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { ops, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, errors };
}

class Runner {
  private client: Redis | undefined;
  private subject: RedisSubject | undefined;
  private keys: string[] = [];
  private readonly cursor = { at: 0 };

  constructor(private readonly id: string) {}

  async handle(request: RedisChildRequest): Promise<unknown> {
    switch (request.op) {
      case 'setup': {
        this.client = benchClient(request.port, request.autoPipelining);
        await this.client.connect();
        this.keys = makeKeys(request.keys);
        this.subject = await redisSubject(this.id).create(this.client);
        // First calls load scripts and warm the JIT; every key gets its state once.
        await this.run(0, 8, 2 * this.keys.length, 10_000);
        return { ok: true };
      }
      case 'round':
        return this.run(request.ms, request.inflight, Number.POSITIVE_INFINITY);
      case 'count':
        return this.run(Number.POSITIVE_INFINITY, request.inflight, request.calls);
      case 'teardown': {
        await this.subject?.close();
        this.client?.disconnect();
        return { ok: true };
      }
    }
  }

  private run(ms: number, inflight: number, calls: number, msCap = ms): Promise<RedisRoundResult> {
    if (this.subject === undefined) throw new Error('setup first');
    return drive(this.subject.consume, this.keys, this.cursor, inflight, Math.min(ms, msCap), calls);
  }
}

if (process.send !== undefined) {
  const runner = new Runner(process.argv[2]!);
  process.on('message', (request: RedisChildRequest) => {
    runner.handle(request).then(
      (reply) => process.send!(reply),
      (error: unknown) => process.send!({ error: error instanceof Error ? error.stack : String(error) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
} else {
  const [id = 'tollgate-fixed', port, inflight = '100', ms = '5000'] = process.argv.slice(2);
  if (port === undefined || Number(port) === 6379) throw new Error('give the port of a Redis you started');
  const runner = new Runner(id);
  await runner.handle({ op: 'setup', port: Number(port), keys: 10_000, autoPipelining: false });
  const r = (await runner.handle({
    op: 'round',
    ms: Number(ms),
    inflight: Number(inflight),
  })) as RedisRoundResult;
  console.log(
    `${id}, ${inflight} in flight: ${((r.ops / r.wallMs) * 1000).toFixed(0)} ops/s, ` +
      `${((r.cpuMs * 1000) / r.ops).toFixed(2)} us CPU per call, ${r.errors} errors`,
  );
  await runner.handle({ op: 'teardown' });
}
