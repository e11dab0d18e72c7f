/**
 * One library's throughput, in its own process (its own heap, GC and JIT feedback, so libraries do
 * not slow each other down). The parent drives it over IPC so that rounds of all libraries
 * interleave: setup -> warmup -> round x N -> teardown.
 *
 * Standalone, for profiling one library:
 *   node --cpu-prof --import tsx bench/lib/tput-child.ts tollgate-fixed 1 5000
 * (library, distinct keys, milliseconds)
 */
import { makeKeys } from './keys.ts';
import { type Subject, subject } from './subjects.ts';

export type Request =
  | { op: 'setup'; keys: number }
  | { op: 'warmup'; ms: number }
  | { op: 'round'; ms: number }
  | { op: 'teardown' };

export interface RoundResult {
  ops: number;
  wallMs: number;
  /** CPU time of this process (all threads, GC helpers included) during the round. */
  cpuMs: number;
  /** Milliseconds since this store was created: must stay under its one-minute window. */
  storeAgeMs: number;
}

const BATCH = 256;

/**
 * The loop every library runs: await each call in turn, check the clock every BATCH calls.
 * Each child runs exactly one library, so the call site stays monomorphic for all of them.
 */
async function loop(
  consume: (key: string) => Promise<unknown>,
  keys: readonly string[],
  state: { at: number },
  ms: number,
  minOps: number,
): Promise<RoundResult> {
  const n = keys.length;
  let i = state.at;
  let ops = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + ms;
  let now = start;
  do {
    for (let b = 0; b < BATCH; b++) {
      await consume(keys[i]!);
      if (++i === n) i = 0;
    }
    ops += BATCH;
    now = performance.now();
  } while (now < deadline || ops < minOps);
  const cpu = process.cpuUsage(cpu0);
  state.at = i;
  return { ops, wallMs: now - start, cpuMs: (cpu.user + cpu.system) / 1000, storeAgeMs: 0 };
}

class Runner {
  private current: Subject | undefined;
  private keys: string[] = [];
  private readonly state = { at: 0 };
  private createdAt = 0;

  constructor(private readonly id: string) {}

  async handle(request: Request): Promise<unknown> {
    switch (request.op) {
      case 'setup': {
        await this.current?.close();
        this.keys = makeKeys(request.keys);
        this.state.at = 0;
        this.current = subject(this.id).create({ keys: request.keys });
        globalThis.gc?.();
        this.createdAt = performance.now();
        return { ok: true };
      }
      case 'warmup':
        // At least two passes over the keys, so rounds measure a store that already holds them all.
        return this.measure(request.ms, 2 * this.keys.length);
      case 'round':
        return this.measure(request.ms, 0);
      case 'teardown': {
        const size = this.current?.size() ?? 0;
        await this.current?.close();
        this.current = undefined;
        globalThis.gc?.();
        return { size };
      }
    }
  }

  private async measure(ms: number, minOps: number): Promise<RoundResult> {
    if (this.current === undefined) throw new Error('setup first');
    const result = await loop(this.current.consume, this.keys, this.state, ms, minOps);
    result.storeAgeMs = performance.now() - this.createdAt;
    return result;
  }
}

if (process.send !== undefined) {
  const runner = new Runner(process.argv[2]!);
  process.on('message', (request: Request) => {
    runner.handle(request).then(
      (reply) => process.send!(reply),
      (error: unknown) => process.send!({ error: error instanceof Error ? error.stack : String(error) }),
    );
  });
  process.on('disconnect', () => process.exit(0));
} else {
  const [id = 'tollgate-fixed', keys = '1', ms = '5000'] = process.argv.slice(2);
  const runner = new Runner(id);
  await runner.handle({ op: 'setup', keys: Number(keys) });
  await runner.handle({ op: 'warmup', ms: 500 });
  const r = (await runner.handle({ op: 'round', ms: Number(ms) })) as RoundResult;
  console.log(
    `${id} keys=${keys}: ${((r.ops / r.wallMs) * 1000).toFixed(0)} ops/s (${r.ops} ops in ${r.wallMs.toFixed(0)} ms, cpu ${r.cpuMs.toFixed(0)} ms)`,
  );
  await runner.handle({ op: 'teardown' });
}
