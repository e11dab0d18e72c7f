/**
 * What the diagnostics_channel events cost (issue 14): `limiter.decide()` on a MemoryStore, per
 * call, in four processes whose rounds interleave:
 *   pnpm bench:events [--rounds 15] [--ops 300000] [--baseline <worktree>]...
 *
 * - `nobody`: this build, no subscriber (the events' whole cost is one `hasSubscribers` read per
 *   call and one per store call);
 * - `baseline <path>`: another built checkout (`--baseline`, repeatable; e.g. a worktree of main
 *   before the events: `git worktree add ../base <commit> && pnpm install && pnpm build` there),
 *   no subscriber;
 * - `subscriber`: this build with a no-op subscriber on tollgate:decision and tollgate:store-call
 *   (building and publishing the messages, timing the store call);
 * - `otel`: this build with `@tollgate/otel`'s `instrument()` on an SDK MeterProvider.
 * Both builds are loaded from their `dist/` (run `pnpm build` first). CPU time per call, median over
 * rounds, and round-by-round ratios against `nobody` (pairs measured seconds apart).
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, request, startChild } from './lib/spawn.ts';
import { median } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    ops: { type: 'string', default: '300000' },
    baseline: { type: 'string', multiple: true },
  },
});
const ROUNDS = Number(flags.rounds);
const OPS = Number(flags.ops);
const dist = (root: string) => resolve(root, 'packages/core/dist/index.mjs');
const baselines = flags.baseline ?? [];
for (const root of [ROOT, ...baselines]) {
  if (!existsSync(dist(root))) throw new Error(`${dist(root)} is missing: run \`pnpm build\` in ${root}`);
}

const variants: { name: string; what: string; args: string[] }[] = [
  { name: 'nobody', what: 'this build, no subscriber', args: ['nobody', dist(ROOT)] },
  ...baselines.map((root) => ({
    name: `baseline ${root}`,
    what: 'that build, no subscriber',
    args: ['nobody', dist(root)],
  })),
  {
    name: 'subscriber',
    what: 'no-op subscribers on decision and store-call',
    args: ['subscriber', dist(ROOT)],
  },
  { name: 'otel', what: "@tollgate/otel's instrument() on an SDK MeterProvider", args: ['otel', dist(ROOT)] },
];

type Reading = { cpuNsPerOp: number; wallNsPerOp: number };
const children = new Map<string, ChildProcess>();
for (const v of variants) {
  const child = startChild('./events-child.ts', v.args);
  await new Promise((ok) => child.once('message', ok));
  children.set(v.name, child);
}
const readings = new Map<string, Reading[]>(variants.map((v) => [v.name, []]));
// Warm-up: one round each, not counted.
for (const v of variants) await request<Reading>(children.get(v.name)!, { op: 'run', ops: OPS });
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order each round so no variant always runs first or last.
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(round + i) % variants.length]!;
    readings.get(v.name)!.push(await request<Reading>(children.get(v.name)!, { op: 'run', ops: OPS }));
  }
  process.stderr.write(`\rround ${round + 1}/${ROUNDS}`);
}
process.stderr.write('\n');
for (const child of children.values()) child.send({ op: 'exit' });

const cpu = (name: string) => readings.get(name)!.map((r) => r.cpuNsPerOp);
const nobody = cpu('nobody');
console.log(
  `# tollgate bench:events  (node ${process.version}; ${ROUNDS} rounds x ${OPS} decide() calls, MemoryStore, 1000 keys)\n`,
);
console.log(
  table(
    ['variant', 'cpu ns/call', 'range', 'vs nobody (round by round)', 'what runs'],
    variants.map((v) => {
      const mine = cpu(v.name);
      const ratios = mine.map((x, i) => x / nobody[i]!);
      return [
        v.name,
        median(mine).toFixed(0),
        `[${Math.min(...mine).toFixed(0)} - ${Math.max(...mine).toFixed(0)}]`,
        v.name === 'nobody' ? '' : `${median(ratios).toFixed(3)}x`,
        v.what,
      ];
    }),
    'lrrrl',
  ),
);
