/**
 * In-process benchmark of tollgate's MemoryStore against the peers' memory stores (no HTTP):
 *   pnpm bench:core [--rounds 9] [--round-ms 200] [--warmup-ms 500] [--only a,b] [--no-memory]
 *                   [--mem-all] [--mem-keys 1000000] [--no-bounded] [--full]
 *
 * 1. consume throughput on 1 key and on 100 000 distinct keys. Each library runs in its own child
 *    process (own heap, GC and JIT), the same sequential `await` loop for all. After a warm-up,
 *    rounds of fixed duration interleave (A B C, B C A, ...); we report the median ops/s, the
 *    min-max over rounds, and ratios computed round by round (pairs measured seconds apart).
 * 2. bytes per tracked key at 1 000 000 keys, one fresh process per library (bench/lib/mem-child.ts).
 * 3. bounded memory: distinct keys through a MemoryStore with maxKeys 100 000 (1M keys; --full: 10M).
 * Then PASS/FAIL per target of the issue, against the peers measured in this same run.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { BoundedResult } from './lib/bounded-child.ts';
import type { MemResult } from './lib/mem-child.ts';
import { cpuSnapshot, type OtherLoad, otherLoad } from './lib/noise.ts';
import { request, runChild, startChild } from './lib/spawn.ts';
import { formatBytes, formatRate, formatRatio, median, percent, summarize } from './lib/stats.ts';
import { SUBJECT_IDS, type SubjectId, subject, TOLLGATE_IDS } from './lib/subjects.ts';
import { table } from './lib/table.ts';
import type { RoundResult } from './lib/tput-child.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    'round-ms': { type: 'string', default: '200' },
    'warmup-ms': { type: 'string', default: '500' },
    only: { type: 'string' },
    'mem-keys': { type: 'string', default: '1000000' },
    'no-memory': { type: 'boolean', default: false },
    'mem-all': { type: 'boolean', default: false },
    'no-bounded': { type: 'boolean', default: false },
    full: { type: 'boolean', default: false },
  },
});
const ROUNDS = Number(flags.rounds);
const ROUND_MS = Number(flags['round-ms']);
const WARMUP_MS = Number(flags['warmup-ms']);
const MEM_KEYS = Number(flags['mem-keys']);
const SCENARIOS = [1, 100_000] as const;
type Scenario = (typeof SCENARIOS)[number];
const PEERS: SubjectId[] = ['erl', 'rlf', 'koa'];
const ids: SubjectId[] = flags.only ? flags.only.split(',').map((id) => subject(id).id) : SUBJECT_IDS;

const label = (id: SubjectId) => subject(id).label;
const keysLabel = (n: number) => (n === 1 ? '1 key' : `${n.toLocaleString('en-US')} keys`);
const log = (line = '') => console.log(line);
const t0 = performance.now();

// ---------------------------------------------------------------------------------------------
// Throughput

/** ops/s of every round, by scenario then library (index = round number). */
const rates = new Map<Scenario, Map<SubjectId, number[]>>();
/** CPU time / wall time of every round: below ~0.9 the child did not have a core to itself. */
const shares = new Map<Scenario, Map<SubjectId, number[]>>();
/** ops per CPU-second of every round: less sensitive to other processes taking the CPU. */
const cpuRates = new Map<Scenario, Map<SubjectId, number[]>>();
/** CPU used by other processes on the machine during each scenario's rounds. */
const othersDuring = new Map<Scenario, OtherLoad | undefined>();
const sizeProblems: string[] = [];
let oldestStoreMs = 0;

async function throughput(): Promise<void> {
  const children = new Map(ids.map((id) => [id, startChild('./tput-child.ts', [id])]));
  try {
    for (const keys of SCENARIOS) {
      const byId = new Map<SubjectId, number[]>(ids.map((id) => [id, []]));
      const shareById = new Map<SubjectId, number[]>(ids.map((id) => [id, []]));
      const cpuById = new Map<SubjectId, number[]>(ids.map((id) => [id, []]));
      rates.set(keys, byId);
      shares.set(keys, shareById);
      cpuRates.set(keys, cpuById);
      process.stderr.write(`throughput, ${keysLabel(keys)}: warm-up`);
      for (const id of ids) await request(children.get(id)!, { op: 'setup', keys });
      for (const id of ids) await request(children.get(id)!, { op: 'warmup', ms: WARMUP_MS });
      const before = cpuSnapshot();
      let childrenMs = 0;
      for (let round = 0; round < ROUNDS; round++) {
        process.stderr.write(`, round ${round + 1}`);
        // Rotate the order so that no library always runs right after the same neighbour.
        for (let j = 0; j < ids.length; j++) {
          const id = ids[(round + j) % ids.length]!;
          const r = await request<RoundResult>(children.get(id)!, { op: 'round', ms: ROUND_MS });
          byId.get(id)!.push((r.ops / r.wallMs) * 1000);
          shareById.get(id)!.push(r.cpuMs / r.wallMs);
          cpuById.get(id)!.push((r.ops / r.cpuMs) * 1000);
          oldestStoreMs = Math.max(oldestStoreMs, r.storeAgeMs);
          childrenMs += r.cpuMs;
        }
      }
      othersDuring.set(keys, otherLoad(before, cpuSnapshot(), childrenMs));
      process.stderr.write('\n');
      for (const id of ids) {
        const { size } = await request<{ size: number }>(children.get(id)!, { op: 'teardown' });
        if (size !== keys)
          sizeProblems.push(`${label(id)} tracked ${size} keys after the ${keysLabel(keys)} run`);
      }
    }
  } finally {
    for (const child of children.values()) child.disconnect();
  }
}

/** Round-by-round ratios a/b in one scenario: median and min-max. */
function pairedRatio(keys: Scenario, a: SubjectId, b: SubjectId, source = rates) {
  const ra = source.get(keys)!.get(a)!;
  const rb = source.get(keys)!.get(b)!;
  const each = ra.map((x, i) => x / rb[i]!);
  return { ...summarize(each), each };
}

function printThroughput(): void {
  log(`## consume throughput (ops/s; median of ${ROUNDS} interleaved rounds of ${ROUND_MS} ms, [min - max])`);
  log();
  const rows = ids.map((id) => {
    const cells = [label(id)];
    for (const keys of SCENARIOS) {
      const s = summarize(rates.get(keys)!.get(id)!);
      cells.push(formatRate(s.median), `[${formatRate(s.min)} - ${formatRate(s.max)}]`, percent(s.spread));
    }
    for (const keys of SCENARIOS) cells.push(formatRate(median(cpuRates.get(keys)!.get(id)!)));
    cells.push(median([...SCENARIOS.flatMap((k) => shares.get(k)!.get(id)!)]).toFixed(2));
    return cells;
  });
  const header = ['library', '1 key', 'range', 'spread', '100k keys', 'range', 'spread'];
  log(table([...header, 'per cpu-s 1', 'per cpu-s 100k', 'cpu/wall'], rows));
  log();
  log('spread = (max - min) / median over rounds. per cpu-s = ops per second of process CPU time');
  log('(median), which other processes taking the CPU disturb less; it includes GC helper threads.');
  log('cpu/wall = process CPU time per wall-clock time of a round (median): about 1.0 when the child');
  log('had a core to itself, lower when other processes took it, above 1 when GC threads helped.');
  log();

  const tollgates = ids.filter((id) => TOLLGATE_IDS.includes(id));
  const peers = PEERS.filter((id) => ids.includes(id));
  if (tollgates.length > 0 && peers.length > 0) {
    log('## ratios tollgate / peer (ops/s; median of round-by-round ratios, [min - max])');
    log();
    const header = ['tollgate'];
    for (const keys of SCENARIOS) {
      for (const p of peers) header.push(`vs ${shortPeer(p)}, ${keys === 1 ? '1 key' : '100k'}`);
    }
    const ratioRows = tollgates.map((t) => {
      const cells = [label(t).replace('tollgate ', '')];
      for (const keys of SCENARIOS) {
        for (const p of peers) {
          const r = pairedRatio(keys, t, p);
          cells.push(`${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}]`);
        }
      }
      return cells;
    });
    log(table(header, ratioRows));
    log();
  }
}

const shortPeer = (id: SubjectId) => ({ erl: 'ERL', rlf: 'RLF', koa: 'koa' })[id as 'erl' | 'rlf' | 'koa'];

// ---------------------------------------------------------------------------------------------
// Memory

const memory = new Map<SubjectId, MemResult>();

async function bytesPerKey(): Promise<void> {
  // token-bucket and leaky-bucket keep the same two numbers per key as fixed-window: the same
  // layout, the same bytes (--mem-all measures them anyway).
  const same = flags['mem-all'] ? [] : ['tollgate-token', 'tollgate-leaky'];
  const queue = ids.filter((id) => !same.includes(id));
  // Two at a time: a reading does not depend on CPU time, and 2 cores are all there is.
  const worker = async () => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      process.stderr.write(`bytes per key: ${label(id)}\n`);
      memory.set(id, await runChild<MemResult>('./mem-child.ts', [id, String(MEM_KEYS)]));
    }
  };
  await Promise.all([worker(), worker()]);
  for (const [id, m] of memory) {
    if (m.size !== m.keys)
      sizeProblems.push(`${label(id)} tracked ${m.size} of ${m.keys} keys in the memory run`);
  }
}

function printMemory(): void {
  const keyStrings = median([...memory.values()].map((m) => m.keyStringBytesPerKey));
  log(`## bytes per tracked key at ${MEM_KEYS.toLocaleString('en-US')} keys (fresh process per library)`);
  log();
  log(
    table(
      ['library', 'retained', 'heap', 'off-heap', 'structures', 'insert time'],
      ids
        .filter((id) => memory.has(id))
        .map((id) => {
          const m = memory.get(id)!;
          return [
            label(id),
            formatBytes(m.bytesPerKey),
            formatBytes(m.heapBytesPerKey),
            formatBytes(m.externalBytesPerKey),
            formatBytes(m.structureBytesPerKey),
            `${(m.insertMs / 1000).toFixed(1)} s`,
          ];
        }),
    ),
  );
  log();
  log('retained (the headline, used for the target) = growth of heapUsed + external from an empty');
  log('process to the store holding every key after the caller dropped its own key strings: what a');
  log("server keeps per client, counting the key string the library keeps alive (the caller's string,");
  log("or a prefixed copy, which may itself point at the caller's string). heap / off-heap split it");
  log('(typed-array bytes live off the V8 heap). structures = growth while the caller still holds its');
  log(`key strings, i.e. the caller's strings not counted. Keys are IPv4-like strings ("10.x.y.z"):`);
  log(`the caller's key strings plus their array cost ${formatBytes(keyStrings)} per key.`);
  log();
}

// ---------------------------------------------------------------------------------------------
// Bounded memory

let bounded: BoundedResult | undefined;

async function boundedCheck(): Promise<void> {
  const keys = flags.full ? 10_000_000 : 1_000_000;
  process.stderr.write(`bounded memory: ${keysLabel(keys)} through maxKeys 100 000\n`);
  bounded = await runChild<BoundedResult>('./bounded-child.ts', [String(keys), '100000']);
}

function printBounded(): void {
  if (bounded === undefined) return;
  const b = bounded;
  log(
    `## bounded memory: ${b.keys.toLocaleString('en-US')} distinct keys through tollgate fixed-window, MemoryStore({ maxKeys: ${b.maxKeys.toLocaleString('en-US')} })`,
  );
  log();
  log(
    table(
      ['keys consumed', 'store size', 'heapUsed + external', 'elapsed'],
      b.checkpoints.map((c) => [
        c.keys.toLocaleString('en-US'),
        c.size.toLocaleString('en-US'),
        formatBytes(c.bytes),
        `${(c.elapsedMs / 1000).toFixed(1)} s`,
      ]),
    ),
  );
  const later = b.checkpoints.slice(2).map((c) => c.bytes);
  const growth = later.length > 1 ? Math.max(...later) - Math.min(...later) : 0;
  log();
  log(
    `new-key consumes with eviction: ${formatRate((b.keys / b.consumeMs) * 1000)}/s (key strings built on the fly). ` +
      `Heap after the store filled varies by ${formatBytes(growth)}.${flags.full ? '' : ' --full runs 10 000 000 keys (about 30 s).'}`,
  );
  log();
}

// ---------------------------------------------------------------------------------------------
// Targets

interface Verdict {
  target: string;
  measured: string;
  pass: boolean;
  note: string;
}

function throughputTarget(keys: Scenario, a: SubjectId, b: SubjectId, need: number, target: string): Verdict {
  const r = pairedRatio(keys, a, b);
  const below = r.each.filter((x) => x < need).length;
  const pass = r.median >= need;
  const notes: string[] = [];
  if (pass && below > 0) notes.push(`${below} of ${r.each.length} rounds below`);
  if (!pass && below < r.each.length)
    notes.push(`${r.each.length - below} of ${r.each.length} rounds meet it`);
  const cpu = pairedRatio(keys, a, b, cpuRates);
  notes.push(
    `per cpu-s ${formatRatio(cpu.median)}${cpu.median >= need === pass ? '' : ' (would flip the verdict)'}`,
  );
  const note = notes.join('; ');
  return {
    target,
    measured: `${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}] (${formatRate(summarize(rates.get(keys)!.get(a)!).median)} vs ${formatRate(summarize(rates.get(keys)!.get(b)!).median)})`,
    pass,
    note,
  };
}

function targets(): Verdict[] {
  const verdicts: Verdict[] = [];
  const has = (...list: SubjectId[]) => list.every((id) => ids.includes(id));
  if (rates.size > 0) {
    for (const keys of SCENARIOS) {
      const k = keys === 1 ? '1 key' : '100k keys';
      if (has('tollgate-fixed', 'erl')) {
        verdicts.push(
          throughputTarget(keys, 'tollgate-fixed', 'erl', 1, `fixed >= 1x express-rate-limit, ${k}`),
        );
      }
      if (has('tollgate-fixed', 'rlf')) {
        verdicts.push(
          throughputTarget(keys, 'tollgate-fixed', 'rlf', 2, `fixed >= 2x rate-limiter-flexible, ${k}`),
        );
      }
      for (const other of TOLLGATE_IDS.filter((id) => id !== 'tollgate-fixed' && has(id, 'tollgate-fixed'))) {
        verdicts.push(
          throughputTarget(
            keys,
            other,
            'tollgate-fixed',
            1 / 1.5,
            `${label(other).replace('tollgate ', '')} within 1.5x of fixed, ${k}`,
          ),
        );
      }
    }
  }
  const peers = PEERS.filter((id) => memory.has(id));
  if (peers.length > 0) {
    const leanest = peers.reduce((a, b) =>
      memory.get(a)!.bytesPerKey <= memory.get(b)!.bytesPerKey ? a : b,
    );
    const budget = memory.get(leanest)!.bytesPerKey / 2;
    for (const t of TOLLGATE_IDS.filter((id) => memory.has(id))) {
      const m = memory.get(t)!;
      verdicts.push({
        target: `${label(t).replace('tollgate ', '')} bytes/key <= half of leanest peer`,
        measured: `${formatBytes(m.bytesPerKey)} vs ${formatBytes(budget)} (half of ${label(leanest)}'s ${formatBytes(2 * budget)})`,
        pass: m.bytesPerKey <= budget,
        note: `${(m.bytesPerKey / (2 * budget)).toFixed(2)}x the leanest peer; without the caller's key strings ${(m.structureBytesPerKey / memory.get(leanest)!.structureBytesPerKey).toFixed(2)}x`,
      });
    }
  }
  if (bounded !== undefined) {
    const last = bounded.checkpoints.at(-1)!;
    // From the second checkpoint on, the store is full and evicting: memory must stay flat.
    const evicting = bounded.checkpoints[Math.min(2, bounded.checkpoints.length - 1)]!;
    const growth = last.bytes / evicting.bytes - 1;
    verdicts.push({
      target: 'MemoryStore stays bounded at maxKeys',
      measured: `size ${last.size.toLocaleString('en-US')} after ${last.keys.toLocaleString('en-US')} keys; ${formatBytes(evicting.bytes)} at ${evicting.keys.toLocaleString('en-US')} keys, ${formatBytes(last.bytes)} at the end`,
      pass: last.size <= bounded.maxKeys && growth <= 0.1,
      note: `${growth > 0.005 ? '+' : ''}${percent(Math.abs(growth) < 0.005 ? 0 : growth)} while evicting (10% allowed)`,
    });
  }
  return verdicts;
}

function printTargets(verdicts: Verdict[]): void {
  log('## targets (against the peers measured in this run)');
  log();
  log(
    table(
      ['target', 'result', 'measured', 'note'],
      verdicts.map((v) => [v.target, v.pass ? 'PASS' : 'FAIL', v.measured, v.note]),
      'llll',
    ),
  );
  log();
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const loadBefore = loadavg();
  if (!Number.isFinite(ROUNDS) || ROUNDS < 1 || !(ROUND_MS > 0) || !(WARMUP_MS >= 0)) {
    throw new Error('--rounds, --round-ms and --warmup-ms take positive numbers');
  }
  await throughput();
  if (!flags['no-memory']) await bytesPerKey();
  if (!flags['no-bounded']) await boundedCheck();
  const loadAfter = loadavg();

  log();
  log(`# tollgate bench:core  (node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'})`);
  log();
  log('Each library runs `for (...) await <call>(key)` in its own child process; keys are IPv4-like');
  log('strings visited in one fixed shuffled order; limits are huge so nothing is ever denied, windows are');
  log('one minute and every store is younger than that. Calls measured:');
  for (const id of ids) log(`  ${label(id).padEnd(22)} ${subject(id).call}`);
  log();
  printThroughput();
  if (memory.size > 0) printMemory();
  printBounded();
  printTargets(targets());
  log('## noise');
  log();
  log(
    `load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after, on ${cpus().length} cores.`,
  );
  for (const [keys, load] of othersDuring) {
    if (load === undefined) continue;
    log(
      `During the ${keysLabel(keys)} rounds, other processes used ${percent(load.others)} of the machine's CPU` +
        ` (all ${cpus().length} cores; this bench uses one), hypervisor steal ${percent(load.steal)}.`,
    );
  }
  const noisy = [...rates].flatMap(([keys, byId]) =>
    [...byId]
      .filter(([, r]) => summarize(r).spread > 0.15)
      .map(([id]) => `${label(id)} (${keysLabel(keys)})`),
  );
  log(
    noisy.length === 0
      ? "Every library's rounds agree within 15%."
      : `Rounds disagree by more than 15% for: ${noisy.join(', ')}; compare medians with care, or rerun with more --rounds.`,
  );
  if (oldestStoreMs > 55_000)
    log(`WARNING: a store lived ${(oldestStoreMs / 1000).toFixed(0)} s, past its one-minute window.`);
  for (const problem of sizeProblems) log(`WARNING: ${problem}`);
  log(`Total time ${((performance.now() - t0) / 1000).toFixed(0)} s.`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
