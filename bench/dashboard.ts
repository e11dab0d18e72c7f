/**
 * What a mounted dashboard costs each decision (issue 14), in one process, no HTTP:
 *   pnpm bench:dashboard [--rounds 9] [--round-ms 200]
 *
 * `limiter.decide()` on a MemoryStore, in rounds that rotate between no subscriber at all, a
 * subscriber that does nothing (what publishing the events costs: the events' own price), and one
 * dashboard created (its collector subscribed), for: allowed decisions on 1 key, and denials of
 * 100 000 distinct keys (each one new to the most-denied table, so every denial takes its
 * replacement path). Reports the median ops/s of each and the cost per decision over none.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createLimiter, DECISION_CHANNEL, type Limiter } from '@tollgate/core';
import { createDashboard } from '@tollgate/core/internal';
import { median } from './lib/stats.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    'round-ms': { type: 'string', default: '200' },
  },
});
const ROUNDS = Number(flags.rounds);
const ROUND_MS = Number(flags['round-ms']);
const quiet = { warn: () => undefined, error: () => undefined };

interface Scenario {
  name: string;
  limiter: Limiter;
  key: (i: number) => string;
}
const scenarios: Scenario[] = [
  {
    name: 'allowed, 1 key',
    limiter: createLimiter({ policies: { limit: 1e9, window: '1h' }, logger: quiet }),
    key: () => 'ip:10.0.0.1',
  },
  {
    name: 'denied, 100 000 keys',
    // A limit of 0 is refused, so the cost of 2 never fits in a limit of 1: every decision denies.
    limiter: createLimiter({ policies: { limit: 1, window: '1h' }, logger: quiet }),
    key: (i) => `ip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  },
];

/** Decisions per second over one round. */
function round(s: Scenario): number {
  let n = 0;
  const options = { cost: s.name.startsWith('denied') ? 2 : 1 };
  const end = performance.now() + ROUND_MS;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) s.limiter.decide(s.key(n++ % 100_000), options);
  }
  return n / (ROUND_MS / 1000);
}

const load = () => loadavg()[0]!.toFixed(1);
console.log(`bench:dashboard: ${ROUNDS} rotated rounds of ${ROUND_MS} ms per mode and case`);
console.log(`noise: load average ${load()} on ${cpus().length} CPUs before the run\n`);
const noop = () => undefined;
const MODES = {
  'no subscriber': () => () => undefined,
  'no-op subscriber': () => {
    subscribe(DECISION_CHANNEL, noop);
    return () => unsubscribe(DECISION_CHANNEL, noop);
  },
  dashboard: () => {
    const dashboard = createDashboard({ guard: () => true });
    return () => dashboard.close();
  },
};
type Mode = keyof typeof MODES;
const modes = Object.keys(MODES) as Mode[];
const rate = (ops: number) => `${Math.round(ops).toLocaleString('en-US')}/s`.padStart(12);

for (const s of scenarios) {
  round(s); // warm-up
  const rates = new Map<Mode, number[]>(modes.map((m) => [m, []]));
  for (let r = 0; r < ROUNDS; r++) {
    // Rotated, so that no mode always runs right after another.
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(r + i) % modes.length]!;
      const stop = MODES[mode]();
      rates.get(mode)!.push(round(s));
      stop();
    }
  }
  const base = median(rates.get('no subscriber')!);
  const parts = modes.map((mode) => {
    const ops = median(rates.get(mode)!);
    const extra = mode === 'no subscriber' ? '' : ` (+${(1e9 / ops - 1e9 / base).toFixed(0)} ns)`;
    return `${mode} ${rate(ops)}${extra}`;
  });
  console.log(`${s.name.padEnd(22)} ${parts.join('   ')}`);
  await s.limiter.close();
}
console.log(`noise: load average ${load()} after the run; above the CPU count, compare the modes only`);
