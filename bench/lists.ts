/**
 * What an allow or deny list costs per request (issue 13), in-process:
 *   pnpm bench:lists [--ranges 100000] [--batches 300] [--batch 1000]
 *
 * Builds a list of random IPv4 and IPv6 ranges (half each, prefixes /8-/32 and /16-/128), then times
 * what the HTTP layer does for a client address it has not seen before: read the address
 * (`readAddress`: one pass for the usual spellings, every other spelling through `parseAddress`,
 * IPv4-mapped folded) and look it up in the merged, sorted ranges (`RangeSet.has`, a binary
 * search). The addresses are random (half IPv4, half IPv6, a quarter of
 * them inside a listed range), every one a distinct string, so no cache helps. They are timed in
 * short batches (1000 lookups, well under a scheduler time slice), so the median batch shows the
 * lookup's cost rather than time spent waiting for a core on a busy machine; the whole run's CPU
 * time per lookup is shown beside it. The same run at 100 and 10 000 ranges shows the cost does not
 * grow with the list. PASS/FAIL against the issue's 2 µs (median batch, wall time), and the
 * machine's load.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { type IpRange, parseRange, RangeSet, readAddress } from '@tollgate/core/internal';
import { cpuSnapshot, otherLoad } from './lib/noise.ts';
import { median, percent } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    ranges: { type: 'string', default: '100000' },
    batches: { type: 'string', default: '300' },
    batch: { type: 'string', default: '1000' },
  },
});
const RANGES = Number(flags.ranges);
const BATCHES = Number(flags.batches);
const BATCH = Number(flags.batch);
const TARGET_NS = 2000;

/** A seeded generator, so every run lists the same ranges. */
function generator(seed: number) {
  let state = seed >>> 0;
  return (n: number) => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
}

const v4Text = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

function randomRanges(count: number, next: (n: number) => number): { entries: string[]; ranges: IpRange[] } {
  const entries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      const prefix = 8 + next(25);
      const address = ((next(0x10000) * 0x10000 + next(0x10000)) & (0xffffffff << (32 - prefix))) >>> 0;
      entries.push(`${v4Text(address)}/${prefix}`);
    } else {
      const prefix = 16 + next(113);
      const groups = Array.from({ length: 8 }, (_, g) => {
        const keep = Math.min(16, Math.max(0, prefix - 16 * g));
        return next(0x10000) & ((0xffff << (16 - keep)) & 0xffff);
      });
      entries.push(`${groups.map((g) => g.toString(16)).join(':')}/${prefix}`);
    }
  }
  return { entries, ranges: entries.map((e) => parseRange(e) as IpRange) };
}

/** Random client addresses as a server sees them: a quarter taken from inside listed ranges. */
function randomAddresses(count: number, entries: readonly string[], next: (n: number) => number): string[] {
  return Array.from({ length: count }, (_, i) => {
    if (i % 4 === 0) {
      // The first address of a listed range, as a client would spell it.
      const entry = entries[next(entries.length)]!;
      return entry.slice(0, entry.indexOf('/'));
    }
    if (i % 2 === 0) return v4Text(next(0x10000) * 0x10000 + next(0x10000));
    return Array.from({ length: 8 }, () => next(0x10000).toString(16)).join(':');
  });
}

interface Measured {
  ranges: number;
  merged: number;
  buildMs: number;
  nsPerLookup: number[];
  cpuNs: number;
  hits: number;
}

function measure(count: number): Measured {
  const next = generator(0x5eed + count);
  const { entries, ranges } = randomRanges(count, next);
  const built = performance.now();
  const set = new RangeSet(ranges);
  const buildMs = performance.now() - built;
  const nsPerLookup: number[] = [];
  const scratch = new Array<number>(8).fill(0);
  const addresses = randomAddresses(BATCHES * BATCH, entries, next);
  const lookup = (from: number, to: number) => {
    let found = 0;
    for (let i = from; i < to; i++) {
      const address = readAddress(addresses[i]!, scratch);
      if (address !== undefined && set.has(address)) found++;
    }
    return found;
  };
  // Warm the JIT on the first tenth; measure every batch.
  lookup(0, Math.min(addresses.length, 20 * BATCH));
  let hits = 0;
  const cpu = process.cpuUsage();
  for (let b = 0; b < BATCHES; b++) {
    const start = process.hrtime.bigint();
    hits += lookup(b * BATCH, (b + 1) * BATCH);
    nsPerLookup.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  const used = process.cpuUsage(cpu);
  const cpuNs = ((used.user + used.system) * 1000) / (BATCHES * BATCH);
  return { ranges: count, merged: set.size, buildMs, nsPerLookup, cpuNs, hits };
}

const cpuBefore = cpuSnapshot();
const load = loadavg()[0]!;
const sizes = [...new Set([100, 10_000, RANGES])].sort((a, b) => a - b);
const results = sizes.map(measure);
const others = otherLoad(cpuBefore, cpuSnapshot(), 0);

console.log(
  `Allow/deny list lookup: readAddress + RangeSet.has on a fresh random address (half IPv4, half IPv6), ${BATCHES} batches of ${BATCH.toLocaleString('en-US')} lookups.\n`,
);
console.log(
  table(
    [
      'ranges listed',
      'after merging',
      'build',
      'ns/lookup (median batch)',
      'p90 batch',
      'ns/lookup (CPU)',
      'in a range',
    ],
    results.map((r) => [
      r.ranges.toLocaleString('en-US'),
      r.merged.toLocaleString('en-US'),
      `${r.buildMs.toFixed(0)} ms`,
      median(r.nsPerLookup).toFixed(0),
      [...r.nsPerLookup].sort((a, b) => a - b)[Math.floor(0.9 * r.nsPerLookup.length)]!.toFixed(0),
      r.cpuNs.toFixed(0),
      percent(r.hits / (BATCHES * BATCH)),
    ]),
  ),
);
const largest = results.at(-1)!;
const cost = median(largest.nsPerLookup);
console.log(
  `\nTarget (issue 13): lookup with ${largest.ranges.toLocaleString('en-US')} ranges under ${TARGET_NS} ns per request: ${cost < TARGET_NS ? 'PASS' : 'FAIL'} (${cost.toFixed(0)} ns).`,
);
console.log(
  `Machine: load average ${load.toFixed(2)}${others === undefined ? '' : `, other processes used ${percent(others.others)} of the CPU, steal ${percent(others.steal)}`} during the run.`,
);
