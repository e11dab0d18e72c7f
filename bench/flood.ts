/**
 * A flood of new keys on a full memory store (issue 9, item 1):
 *   pnpm bench:flood [--rounds 5] [--seconds 5] [--connections 10] [--max-keys 100000]
 *
 * One Express server (bench/lib/flood-child.ts, its own process) limits by `byApiKey()` to 1 request
 * per 10 minutes on a MemoryStore of `--max-keys`; autocannon (this process) sends every request with
 * a new X-API-Key, so each request inserts a key. Two scenarios, interleaved round by round on the
 * same server process:
 * - `empty`: the store starts empty (the flood does not fill it in one round at the default sizes);
 * - `full`: the store starts with `--max-keys` keys, each at zero quota (denied), so every request
 *   must evict while every tracked key is denied: the case that used to scan all of them.
 *
 * Acceptance (issue 9): on `full`, event-loop delay p99 under 50 ms and throughput within 2x of
 * `empty` (medians over rounds). Every response must be a 200: a new key's first request is allowed.
 */
import { parseArgs } from 'node:util';
import type { FloodRound } from './lib/flood-child.ts';
import { load } from './lib/http-load.ts';
import { cpuSnapshot, otherLoad } from './lib/noise.ts';
import { request, startChild } from './lib/spawn.ts';
import { formatRatio, median, percent } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '10' },
    'max-keys': { type: 'string', default: '100000' },
  },
});
const ROUNDS = Number(flags.rounds);
const SECONDS = Number(flags.seconds);
const CONNECTIONS = Number(flags.connections);
const MAX_KEYS = Number(flags['max-keys']);
for (const [flag, value] of Object.entries({
  rounds: ROUNDS,
  seconds: SECONDS,
  connections: CONNECTIONS,
  'max-keys': MAX_KEYS,
})) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`--${flag} takes a positive integer`);
}

type Scenario = 'empty' | 'full';
interface Row {
  scenario: Scenario;
  round: number;
  rate: number;
  latencyP99Ms: number;
  server: FloodRound;
  non200: number;
}

const child = startChild('./flood-child.ts', [String(MAX_KEYS)]);
const { port } = await request<{ port: number }>(child, { op: 'start' });
const rows: Row[] = [];
const before = cpuSnapshot();
let serverCpuMs = 0;

try {
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate which scenario goes first, so a drift of the machine's load hits both alike.
    const order: Scenario[] = round % 2 === 1 ? ['full', 'empty'] : ['empty', 'full'];
    for (const scenario of order) {
      const { size } = await request<{ size: number }>(child, {
        op: 'prepare',
        fill: scenario === 'full' ? MAX_KEYS : 0,
      });
      if (size !== (scenario === 'full' ? MAX_KEYS : 0)) throw new Error(`prepare left ${size} keys`);
      await request(child, { op: 'begin' });
      const result = await load({
        port,
        connections: CONNECTIONS,
        pipelining: 1,
        seconds: SECONDS,
        keys: 1,
        freshKeys: `r${round}-${scenario}-`,
      });
      const server = await request<FloodRound>(child, { op: 'end' });
      serverCpuMs += server.cpuMs;
      rows.push({
        scenario,
        round,
        rate: result.requests.total / result.duration,
        latencyP99Ms: result.latency.p99,
        server,
        non200: result.non2xx + result.errors + result.timeouts,
      });
      const row = rows.at(-1)!;
      console.log(
        `round ${round} ${scenario.padEnd(5)}: ${row.rate.toFixed(0)} req/s, loop delay p99 ` +
          `${server.delayP99Ms.toFixed(1)} ms (max ${server.delayMaxMs.toFixed(1)}), client p99 ` +
          `${row.latencyP99Ms} ms, ${server.size} keys at the end`,
      );
    }
  }
} finally {
  await request(child, { op: 'stop' }).catch(() => child.kill());
}

const of = (scenario: Scenario) => rows.filter((r) => r.scenario === scenario);
const med = (scenario: Scenario, pick: (r: Row) => number) => median(of(scenario).map(pick));
console.log(
  `\nExpress 5, byApiKey(), 1 request per 10 min, MemoryStore maxKeys ${MAX_KEYS}; every request a new key.`,
);
console.log(
  `${ROUNDS} rounds x ${SECONDS} s per scenario, ${CONNECTIONS} connections, medians over rounds.\n`,
);
console.log(
  table(
    ['scenario', 'req/s', 'loop delay p50', 'loop delay p99', 'loop delay max', 'client p99', 'non-200'],
    (['empty', 'full'] as const).map((scenario) => [
      scenario,
      med(scenario, (r) => r.rate).toFixed(0),
      `${med(scenario, (r) => r.server.delayP50Ms).toFixed(1)} ms`,
      `${med(scenario, (r) => r.server.delayP99Ms).toFixed(1)} ms`,
      `${med(scenario, (r) => r.server.delayMaxMs).toFixed(1)} ms`,
      `${med(scenario, (r) => r.latencyP99Ms).toFixed(0)} ms`,
      String(of(scenario).reduce((n, r) => n + r.non200 + r.server.refused, 0)),
    ]),
  ),
);

// Per round, full / empty of the same round: the interleaving cancels most of the machine's drift.
const ratios = of('full').map((full) => {
  const empty = of('empty').find((r) => r.round === full.round)!;
  return empty.rate / full.rate;
});
const slowdown = median(ratios);
const p99 = med('full', (r) => r.server.delayP99Ms);
const non200 = rows.reduce((n, r) => n + r.non200 + r.server.refused, 0);
console.log(
  `\nfull vs empty: ${formatRatio(slowdown)} slower (per-round ratios ${ratios.map(formatRatio).join(', ')})`,
);
console.log(`acceptance: loop delay p99 ${p99.toFixed(1)} ms < 50 ms: ${p99 < 50 ? 'PASS' : 'FAIL'}`);
console.log(`acceptance: throughput within 2x of empty: ${slowdown <= 2 ? 'PASS' : 'FAIL'}`);
console.log(`every response a 200: ${non200 === 0 ? 'yes' : `NO (${non200} were not)`}`);
const noise = otherLoad(before, cpuSnapshot(), serverCpuMs);
if (noise !== undefined) {
  console.log(
    `other processes used ${percent(noise.others)} of the machine's CPU during the run (steal ${percent(noise.steal)}).`,
  );
}
