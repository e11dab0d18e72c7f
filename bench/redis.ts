/**
 * tollgate's RedisStore against rate-limit-redis and rate-limiter-flexible's RateLimiterRedis, all on
 * one throwaway redis-server started here (never the machine's 6379):
 *   pnpm bench:redis [--rounds 9] [--round-ms 400] [--lua-rounds 7] [--lua-calls 200000]
 *                    [--only a,b] [--auto-pipelining] [--pin] [--no-lua] [--no-flood]
 *                    [--baseline <built checkout>]
 *
 * 1. consume throughput, sequential (1 call in flight) and 100 in flight. Each library runs in its
 *    own child process with its own ioredis client (same options for all); after a warm-up,
 *    rounds of fixed duration interleave in rotating order; we report median ops/s, min-max,
 *    client CPU per call (process.cpuUsage / calls) and ratios computed round by round.
 *    Plain ioredis INCR runs alongside as the client's ceiling (one command, one integer reply).
 * 2. Redis commands per decision: CONFIG RESETSTAT, N calls, INFO commandstats.
 * 3. Lua cost per decision: redis-benchmark -P 16 EVALSHA of each library's script with the
 *    arguments it sends (bench/lib/redis-lua.ts), interleaved rounds, medians.
 * 4. The denied-key flood: 10 000 consumes of one already-denied key through createLimiter with a
 *    RedisStore, and the commands Redis saw.
 * Then PASS/FAIL per target of the issue, against the peers measured in this same run.
 * `--baseline <dir>` adds tollgate fixed, sliding and token as built in another checkout (a git
 * worktree of an older main, `pnpm install && pnpm build` there) to the throughput rounds, for the
 * side-by-side comparison issue 10 asks for.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createLimiter, type Decision } from '../packages/core/src/index.ts';
import { RedisStore } from '../packages/redis/src/index.ts';
import { startRedis } from '../test/support/redis-servers.ts';
import { cpuSnapshot, otherLoad } from './lib/noise.ts';
import type { RedisChildRequest, RedisRoundResult } from './lib/redis-child.ts';
import {
  benchmarkCommand,
  type LuaReading,
  type LuaSubject,
  loadScript,
  measureScript,
} from './lib/redis-lua.ts';
import { luaSubjects } from './lib/redis-scripts.ts';
import {
  BASELINE_IDS,
  PEER_IDS,
  REDIS_SUBJECT_IDS,
  type RedisSubjectId,
  redisSubject,
} from './lib/redis-subjects.ts';
import { request, startChild } from './lib/spawn.ts';
import { formatRate, formatRatio, median, percent, summarize } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '9' },
    'round-ms': { type: 'string', default: '400' },
    'lua-rounds': { type: 'string', default: '7' },
    'lua-calls': { type: 'string', default: '200000' },
    keys: { type: 'string', default: '10000' },
    only: { type: 'string' },
    'auto-pipelining': { type: 'boolean', default: false },
    'no-lua': { type: 'boolean', default: false },
    'no-flood': { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    baseline: { type: 'string' },
  },
});
const ROUNDS = Number(flags.rounds);
const ROUND_MS = Number(flags['round-ms']);
const LUA_ROUNDS = Number(flags['lua-rounds']);
const LUA_CALLS = Number(flags['lua-calls']);
const KEYS = Number(flags.keys);
const AUTO = flags['auto-pipelining'];
const MODES = [1, 100] as const;
type Mode = (typeof MODES)[number];
const COUNT_CALLS = 2000;
/**
 * --pin: clients on CPU 0 and redis-server on CPU 1 (taskset), so that the two sides of a round do
 * not take turns on one core and each side's cost per call shows in the throughput, as on a server
 * where Redis has a core of its own. On a machine busy with other work it hurts more than it
 * helps (a pinned process cannot move to the idle core), hence not the default.
 */
const PIN = flags.pin && cpus().length >= 2 && onPath('taskset');
const CLIENT_CPU = 0;
const SERVER_CPU = 1;
const FLOOD = 10_000;

if (flags.baseline !== undefined) {
  const root = resolve(flags.baseline);
  if (!existsSync(join(root, 'packages/redis/dist/index.mjs'))) {
    throw new Error(
      `--baseline ${flags.baseline}: no packages/redis/dist there; run pnpm install && pnpm build in it`,
    );
  }
  // The children inherit it (bench/lib/redis-subjects.ts).
  process.env.TOLLGATE_BENCH_BASELINE = root;
}
const ids: RedisSubjectId[] = (
  flags.only ? flags.only.split(',').map((id) => redisSubject(id).id) : REDIS_SUBJECT_IDS
).filter((id) => flags.baseline !== undefined || !BASELINE_IDS.includes(id));
const peers = PEER_IDS.filter((id) => ids.includes(id));
const label = (id: RedisSubjectId) => redisSubject(id).label;
const modeLabel = (m: Mode) => (m === 1 ? 'sequential' : `${m} in flight`);
const log = (line = '') => console.log(line);
const progress = (text: string) => process.stderr.write(text);
const t0 = performance.now();

// ---------------------------------------------------------------------------------------------
// Server

function onPath(command: string): boolean {
  return (process.env.PATH ?? '')
    .split(delimiter)
    .some((dir) => dir !== '' && existsSync(join(dir, command)));
}

function pin(processId: number, cpu: number): void {
  execFileSync('taskset', ['-p', '-c', String(cpu), String(processId)], { stdio: 'ignore' });
}

let port = 0;
let pid = 0;
let admin: Redis;

function serverCpuMs(): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

/** Calls per command name since the last CONFIG RESETSTAT, leaving out our own INFO and CONFIG. */
async function commandCounts(): Promise<Map<string, number>> {
  const info = await admin.info('commandstats');
  const counts = new Map<string, number>();
  for (const match of info.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)) {
    const name = match[1]!;
    if (name === 'info' || name.startsWith('config')) continue;
    counts.set(name, Number(match[2]));
  }
  return counts;
}

const total = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// Throughput

type Child = ReturnType<typeof startChild>;
const children = new Map<RedisSubjectId, Child>();
/** ops/s and client CPU us per call of every round, by mode then library. */
const rates = new Map<Mode, Map<RedisSubjectId, number[]>>();
const cpuPerCall = new Map<Mode, Map<RedisSubjectId, number[]>>();
/** redis-server CPU time per call of every round. */
const serverPerCall = new Map<Mode, Map<RedisSubjectId, number[]>>();
const othersDuring = new Map<Mode, number | undefined>();
const failures: string[] = [];

async function throughput(): Promise<void> {
  for (const id of ids) {
    progress(`setup ${label(id)}\n`);
    const child = startChild('./redis-child.ts', [id]);
    if (PIN) pin(child.pid!, CLIENT_CPU);
    children.set(id, child);
    await request(child, {
      op: 'setup',
      port,
      keys: KEYS,
      autoPipelining: AUTO,
    } satisfies RedisChildRequest);
  }
  for (const mode of MODES) {
    const byId = new Map<RedisSubjectId, number[]>(ids.map((id) => [id, []]));
    const cpuById = new Map<RedisSubjectId, number[]>(ids.map((id) => [id, []]));
    const serverById = new Map<RedisSubjectId, number[]>(ids.map((id) => [id, []]));
    rates.set(mode, byId);
    cpuPerCall.set(mode, cpuById);
    serverPerCall.set(mode, serverById);
    progress(`throughput, ${modeLabel(mode)}: warm-up`);
    for (const id of ids) {
      await request(children.get(id)!, {
        op: 'round',
        ms: ROUND_MS,
        inflight: mode,
      } satisfies RedisChildRequest);
    }
    const before = cpuSnapshot();
    const server0 = serverCpuMs();
    let ours = 0;
    for (let round = 0; round < ROUNDS; round++) {
      progress(`, ${round + 1}`);
      for (let j = 0; j < ids.length; j++) {
        const id = ids[(round + j) % ids.length]!;
        const serverBefore = serverCpuMs();
        const r = await request<RedisRoundResult>(children.get(id)!, {
          op: 'round',
          ms: ROUND_MS,
          inflight: mode,
        } satisfies RedisChildRequest);
        serverById.get(id)!.push(((serverCpuMs() - serverBefore) * 1000) / r.ops);
        if (r.errors > 0) failures.push(`${label(id)}: ${r.errors} failed calls (${modeLabel(mode)})`);
        byId.get(id)!.push((r.ops / r.wallMs) * 1000);
        cpuById.get(id)!.push((r.cpuMs * 1000) / r.ops);
        ours += r.cpuMs;
      }
    }
    ours += serverCpuMs() - server0;
    othersDuring.set(mode, otherLoad(before, cpuSnapshot(), ours)?.others);
    progress('\n');
  }
}

/** The peer with the highest median ops/s in `mode`. */
function bestPeer(mode: Mode): RedisSubjectId | undefined {
  if (peers.length === 0 || !rates.has(mode)) return undefined;
  return peers.reduce((a, b) =>
    median(rates.get(mode)!.get(a)!) >= median(rates.get(mode)!.get(b)!) ? a : b,
  );
}

/** Round-by-round ratios of a to b (to the best of several in each round) in one mode. */
function pairedRatio(mode: Mode, a: RedisSubjectId, b: readonly RedisSubjectId[]) {
  const ra = rates.get(mode)!.get(a)!;
  const each = ra.map((x, i) => x / Math.max(...b.map((id) => rates.get(mode)!.get(id)![i]!)));
  return { ...summarize(each), each };
}

function printThroughput(): void {
  log(
    `## consume throughput (ops/s; median of ${ROUNDS} interleaved rounds of ${ROUND_MS} ms, [min - max], client CPU per call)`,
  );
  log();
  const header = ['library'];
  for (const mode of MODES) header.push(modeLabel(mode), 'range', 'spread', 'CPU/call', 'Redis/call');
  const rows = ids.map((id) => {
    const cells = [label(id)];
    for (const mode of MODES) {
      const s = summarize(rates.get(mode)!.get(id)!);
      cells.push(
        formatRate(s.median),
        `[${formatRate(s.min)} - ${formatRate(s.max)}]`,
        percent(s.spread),
        `${median(cpuPerCall.get(mode)!.get(id)!).toFixed(1)} us`,
        `${median(serverPerCall.get(mode)!.get(id)!).toFixed(1)} us`,
      );
    }
    return cells;
  });
  log(table(header, rows));
  log();
  log("CPU/call = CPU time of the library's process (client side: library + ioredis + socket writes)");
  log('per call, median over rounds; Redis/call = CPU time of redis-server per call (10 ms ticks from');
  log('/proc, so rough for short rounds).');
  log();
  const tollgates = ids.filter((id) => id.startsWith('tollgate-') || BASELINE_IDS.includes(id));
  if (tollgates.length === 0 || peers.length === 0) return;
  log('## ratios (ops/s; median of round-by-round ratios, [min - max])');
  log();
  const ratioHeader = ['tollgate'];
  const against: { name: string; ids: RedisSubjectId[] }[] = peers.map((p) => ({ name: label(p), ids: [p] }));
  if (ids.includes('incr')) against.push({ name: 'INCR', ids: ['incr'] });
  for (const mode of MODES)
    for (const a of against) ratioHeader.push(`vs ${a.name}, ${mode === 1 ? 'seq' : mode}`);
  log(
    table(
      ratioHeader,
      tollgates.map((t) => {
        const cells = [label(t).replace('tollgate ', '')];
        for (const mode of MODES) {
          for (const a of against) {
            const r = pairedRatio(mode, t, a.ids);
            cells.push(`${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}]`);
          }
        }
        return cells;
      }),
    ),
  );
  log();
  const pairs = BASELINE_IDS.filter((b) => ids.includes(b)).map(
    (b) => [b.replace('baseline-', 'tollgate-') as RedisSubjectId, b] as const,
  );
  if (pairs.some(([t]) => ids.includes(t))) {
    log(`## this build vs the baseline (${flags.baseline}), ops/s, round by round`);
    log();
    log(
      table(
        ['algorithm', ...MODES.map((m) => `this / baseline, ${modeLabel(m)}`)],
        pairs
          .filter(([t]) => ids.includes(t))
          .map(([t, b]) => [
            label(t).replace('tollgate ', ''),
            ...MODES.map((m) => {
              const r = pairedRatio(m, t, [b]);
              return `${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}]`;
            }),
          ]),
      ),
    );
    log();
  }
}

// ---------------------------------------------------------------------------------------------
// Commands per decision

interface CommandCount {
  /** Commands the client sent (MONITOR, leaving out those run by scripts), per decision. */
  sent: number;
  sentNames: string;
  /** Every command Redis ran (INFO commandstats, which counts calls made inside scripts too). */
  ran: number;
  ranNames: string;
  /** What the scripts called inside Redis, per decision. */
  insideNames: string;
  /** INFO commandstats' EVALSHA + EVAL calls, per decision. */
  scripts: number;
}
const commands = new Map<RedisSubjectId, CommandCount>();

const perCallList = (counts: Map<string, number>, calls: number) =>
  [...counts]
    .sort((x, y) => y[1] - x[1])
    .map(([name, n]) => `${name} ${(n / calls).toFixed(2)}`)
    .join(', ');

/**
 * N calls of one library between CONFIG RESETSTAT and INFO commandstats, watched by MONITOR: INFO
 * commandstats counts the calls scripts make inside Redis too, MONITOR tells them apart (source
 * "lua"), so we get both what the client sent and what Redis ran.
 */
async function commandsPerDecision(): Promise<void> {
  progress('commands per decision\n');
  for (const id of ids) {
    const child = children.get(id)!;
    const monitor = await admin.monitor();
    const sent = new Map<string, number>();
    const marker = `bench-marker-${Math.random()}`;
    let seenMarker = false;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (args[1] === marker) seenMarker = true;
      else if (source !== 'lua' && !seenMarker) {
        const name = String(args[0]).toLowerCase();
        sent.set(name, (sent.get(name) ?? 0) + 1);
      }
    });
    try {
      await admin.config('RESETSTAT');
      sent.clear();
      let calls = 0;
      for (const inflight of [1, 100]) {
        const r = await request<RedisRoundResult>(child, {
          op: 'count',
          calls: COUNT_CALLS / 2,
          inflight,
        } satisfies RedisChildRequest);
        calls += r.ops;
      }
      const ran = await commandCounts();
      await admin.echo(marker);
      for (const deadline = performance.now() + 10_000; !seenMarker; ) {
        if (performance.now() > deadline) throw new Error('MONITOR did not catch up within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      for (const own of ['config', 'config|resetstat', 'info', 'echo']) sent.delete(own);
      commands.set(id, {
        sent: total(sent) / calls,
        sentNames: perCallList(sent, calls),
        ran: total(ran) / calls,
        ranNames: perCallList(ran, calls),
        insideNames: perCallList(new Map([...ran].filter(([name]) => !sent.has(name))), calls),
        scripts: ((ran.get('evalsha') ?? 0) + (ran.get('eval') ?? 0)) / calls,
      });
    } finally {
      monitor.disconnect();
    }
  }
}

function printCommands(): void {
  log(`## Redis commands per decision (${COUNT_CALLS} calls, half of them 100 in flight)`);
  log();
  log(
    table(
      ['library', 'sent', 'which (MONITOR)', 'run by Redis', 'which (INFO commandstats)'],
      ids.map((id) => {
        const c = commands.get(id)!;
        return [label(id), c.sent.toFixed(3), c.sentNames, c.ran.toFixed(3), c.ranNames];
      }),
      'lrlrl',
    ),
  );
  log();
  log('sent = commands the client sent per decision; run by Redis = every command INFO commandstats');
  log('counted, which includes the calls a script makes inside Redis (PTTL, INCR, GET, SET, TIME...).');
  log();
}

// ---------------------------------------------------------------------------------------------
// Lua cost

const lua = new Map<string, LuaReading[]>();
let luaList: (LuaSubject & { sha: string })[] = [];

async function luaCost(): Promise<void> {
  luaList = [];
  for (const s of luaSubjects()) luaList.push({ ...s, sha: await loadScript(admin, s.lua) });
  for (const s of luaList) lua.set(s.label, []);
  progress('Lua cost (redis-benchmark -P 16): round');
  for (let round = 0; round < LUA_ROUNDS; round++) {
    progress(` ${round + 1}`);
    for (let j = 0; j < luaList.length; j++) {
      const s = luaList[(round + j) % luaList.length]!;
      lua
        .get(s.label)!
        .push(await measureScript(admin, port, pid, s.sha, s, LUA_CALLS, PIN ? CLIENT_CPU : undefined));
    }
  }
  progress('\n');
}

const RLR_SCRIPT = 'rate-limit-redis increment';

function luaRatio(labelA: string, pick: (r: LuaReading) => number | undefined) {
  const a = lua.get(labelA)!;
  const b = lua.get(RLR_SCRIPT)!;
  const each = a.map((r, i) => (pick(r) ?? Number.NaN) / (pick(b[i]!) ?? Number.NaN));
  return summarize(each);
}

function printLua(): void {
  log(
    `## Lua cost per decision (redis-benchmark -P 16, ${LUA_CALLS} calls per run, median of ${LUA_ROUNDS} interleaved runs)`,
  );
  log();
  const us = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? 'n/a' : `${x.toFixed(2)} us`);
  log(
    table(
      ['script', 'by throughput', 'range', 'vs rlr', 'server CPU', 'vs rlr', 'in EVALSHA', 'vs rlr'],
      luaList.map((s) => {
        const r = lua.get(s.label)!;
        const t = summarize(r.map((x) => x.usecByThroughput));
        const cells = [s.label, us(t.median), `[${t.min.toFixed(2)}-${t.max.toFixed(2)}]`];
        cells.push(formatRatio(luaRatio(s.label, (x) => x.usecByThroughput).median));
        cells.push(us(median(r.map((x) => x.usecServerCpu ?? Number.NaN))));
        cells.push(formatRatio(luaRatio(s.label, (x) => x.usecServerCpu).median));
        cells.push(us(median(r.map((x) => x.usecInCommand))));
        cells.push(formatRatio(luaRatio(s.label, (x) => x.usecInCommand).median));
        return cells;
      }),
    ),
  );
  log();
  log("by throughput = 1e6 / requests per second of redis-benchmark (the issue's measure); server CPU =");
  log('redis-server CPU time per call from /proc (steadier on a busy machine); in EVALSHA = INFO');
  log('commandstats usec_per_call (the script alone, without reading and parsing the request).');
  log("vs rlr = median of run-by-run ratios to rate-limit-redis's increment script. Commands:");
  for (const s of luaList)
    log(`  ${benchmarkCommand(port, LUA_CALLS, s.sha, s, PIN ? CLIENT_CPU : undefined)}`);
  log();
}

// ---------------------------------------------------------------------------------------------
// Denied-key flood

interface FloodResult {
  blockedCache: boolean;
  commands: number;
  denied: number;
  fromCache: number;
  ms: number;
}
const floods: FloodResult[] = [];

async function flood(blockedCache: boolean): Promise<FloodResult> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await client.connect();
  try {
    const store = new RedisStore({ client, prefix: `bench:flood:${blockedCache}:` });
    const limiter = createLimiter({
      policies: { limit: 10, window: '1m', algorithm: 'fixed-window' },
      store,
      blockedCache,
      name: 'flood',
    });
    for (let i = 0; i < 10; i++) await limiter.consume('attacker');
    const first = await limiter.consume('attacker');
    if (first.allowed) throw new Error('the 11th request of 10 per minute was allowed');
    await admin.config('RESETSTAT');
    let denied = 0;
    let fromCache = 0;
    let next = 0;
    const started = performance.now();
    const loop = async () => {
      while (next < FLOOD) {
        next++;
        const d: Decision = await limiter.consume('attacker');
        if (!d.allowed) denied++;
        if (d.reason === 'blocked-cache') fromCache++;
      }
    };
    await Promise.all(Array.from({ length: 100 }, loop));
    const ms = performance.now() - started;
    return { blockedCache, commands: total(await commandCounts()), denied, fromCache, ms };
  } finally {
    client.disconnect();
  }
}

function printFlood(): void {
  log(
    `## flood: ${FLOOD.toLocaleString('en-US')} consumes (100 in flight) of one key already denied (10 per minute)`,
  );
  log();
  log(
    table(
      ['blockedCache', 'Redis commands', 'denied', 'answered by the cache', 'elapsed'],
      floods.map((f) => [
        String(f.blockedCache),
        String(f.commands),
        String(f.denied),
        String(f.fromCache),
        `${f.ms.toFixed(0)} ms`,
      ]),
      'lrrrr',
    ),
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

/** Client and server CPU per call of a against b: what the throughput ratio comes from. */
function cpuNote(mode: Mode, a: RedisSubjectId, b: RedisSubjectId): string {
  const client = (id: RedisSubjectId) => median(cpuPerCall.get(mode)!.get(id)!);
  const server = (id: RedisSubjectId) => median(serverPerCall.get(mode)!.get(id)!);
  return (
    `${client(a).toFixed(1)} vs ${client(b).toFixed(1)} us (${formatRatio(client(b) / client(a))} less), ` +
    `Redis/call ${server(a).toFixed(1)} vs ${server(b).toFixed(1)} us`
  );
}

function targets(): Verdict[] {
  const verdicts: Verdict[] = [];
  for (const id of ids.filter((i) => i.startsWith('tollgate-'))) {
    const c = commands.get(id);
    if (c === undefined) continue;
    // A call of a set with a concurrency policy is a decision and its release: one command each.
    const want = redisSubject(id).commands ?? 1;
    verdicts.push({
      target: `${label(id)}: exactly one Redis command per decision${want > 1 ? ', plus one per release' : ''}`,
      measured: `${c.sent.toFixed(3)} sent per call (${c.sentNames}); commandstats EVALSHA ${c.scripts.toFixed(3)}`,
      pass: c.sent === want && c.scripts === want,
      note: `inside the script: ${c.insideNames || 'nothing'}`,
    });
  }
  if (ids.includes('tollgate-fixed') && peers.length > 0 && rates.has(100)) {
    // The best peer is the one with the highest median; ratios are taken round by round against it.
    const best = bestPeer(100)!;
    const r = pairedRatio(100, 'tollgate-fixed', [best]);
    const below = r.each.filter((x) => x < 1.3).length;
    verdicts.push({
      target: 'tollgate fixed, 100 in flight: >= 1.3x the best peer',
      measured: `${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}] (${formatRate(median(rates.get(100)!.get('tollgate-fixed')!))} vs ${label(best)} ${formatRate(median(rates.get(100)!.get(best)!))})`,
      pass: r.median >= 1.3,
      note: `${below > 0 ? `${below} of ${r.each.length} rounds below 1.3x` : 'every round at or above'}; client CPU/call ${cpuNote(100, 'tollgate-fixed', best)}`,
    });
  }
  for (const id of ['tollgate-sliding', 'tollgate-token'] as const) {
    if (!ids.includes(id) || peers.length === 0 || !rates.has(100)) continue;
    const best = bestPeer(100)!;
    const r = pairedRatio(100, id, [best]);
    verdicts.push({
      target: `${label(id)}, 100 in flight: >= 1.0x the best peer`,
      measured: `${formatRatio(r.median)} [${r.min.toFixed(2)}-${r.max.toFixed(2)}] (${formatRate(median(rates.get(100)!.get(id)!))} vs ${label(best)} ${formatRate(median(rates.get(100)!.get(best)!))})`,
      pass: r.median >= 1,
      note: `client CPU/call ${cpuNote(100, id, best)}`,
    });
  }
  const fixedLua = luaList.find((s) => s.label.startsWith('tollgate fixed'));
  if (fixedLua !== undefined && lua.has(RLR_SCRIPT)) {
    const t = luaRatio(fixedLua.label, (x) => x.usecByThroughput);
    const cpu = luaRatio(fixedLua.label, (x) => x.usecServerCpu);
    verdicts.push({
      target: 'fixed-window Lua cost within 20% of rate-limit-redis increment',
      measured: `${formatRatio(t.median)} [${t.min.toFixed(2)}-${t.max.toFixed(2)}] by throughput`,
      pass: t.median <= 1.2,
      note: `server CPU ${formatRatio(cpu.median)}${cpu.median <= 1.2 === t.median <= 1.2 ? '' : ' (would flip the verdict)'}`,
    });
  }
  const withCache = floods.find((f) => f.blockedCache);
  if (withCache !== undefined) {
    verdicts.push({
      target: 'denied-key flood: Redis sees almost none of it (<= 1%)',
      measured: `${withCache.commands} commands for ${FLOOD} consumes`,
      pass: withCache.commands <= FLOOD / 100,
      note: `${withCache.fromCache} answered by the blocked cache`,
    });
  }
  return verdicts;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!(ROUNDS >= 1 && ROUND_MS > 0 && LUA_ROUNDS >= 1 && LUA_CALLS >= 1000 && KEYS >= 1)) {
    throw new Error(
      '--rounds, --round-ms, --lua-rounds, --lua-calls (>= 1000) and --keys take positive numbers',
    );
  }
  const loadBefore = loadavg();
  const server = await startRedis();
  port = server.port;
  admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  try {
    await admin.connect();
    const info = await admin.info('server');
    pid = Number(/process_id:(\d+)/.exec(info)![1]);
    if (PIN) pin(pid, SERVER_CPU);
    const version = /redis_version:([\d.]+)/.exec(info)![1];
    try {
      await throughput();
      await commandsPerDecision();
    } finally {
      for (const child of children.values()) child.disconnect();
    }
    if (!flags['no-lua']) await luaCost();
    if (!flags['no-flood']) {
      progress('flood\n');
      floods.push(await flood(true), await flood(false));
    }
    const loadAfter = loadavg();

    log();
    log(
      `# tollgate bench:redis  (node ${process.version}, Redis ${version} on 127.0.0.1:${port}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'})`,
    );
    log();
    log(
      `Every library has its own process and ioredis client (${AUTO ? 'enableAutoPipelining: true' : 'default options'}),`,
    );
    log(
      PIN
        ? `pinned to CPU ${CLIENT_CPU}, redis-server to CPU ${SERVER_CPU} (taskset; other processes still run on both),`
        : 'not pinned to CPUs (see --pin),',
    );
    log(
      `a limit of 1e9 per hour over ${KEYS.toLocaleString('en-US')} IPv4-like keys (nothing is denied). Calls measured:`,
    );
    for (const id of ids) log(`  ${label(id).padEnd(22)} ${redisSubject(id).call}`);
    log();
    printThroughput();
    printCommands();
    if (lua.size > 0) printLua();
    if (floods.length > 0) printFlood();
    log('## targets (against the peers measured in this run)');
    log();
    const verdicts = targets();
    log(
      table(
        ['target', 'result', 'measured', 'note'],
        verdicts.map((v) => [v.target, v.pass ? 'PASS' : 'FAIL', v.measured, v.note]),
        'llll',
      ),
    );
    log();
    log('## noise');
    log();
    log(
      `load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after, on ${cpus().length} cores.`,
    );
    for (const [mode, others] of othersDuring) {
      if (others === undefined) continue;
      log(
        `During the ${modeLabel(mode)} rounds, processes other than this bench and its redis-server used ${percent(others)} of the machine's CPU.`,
      );
    }
    const noisy = [...rates].flatMap(([mode, byId]) =>
      [...byId]
        .filter(([, r]) => summarize(r).spread > 0.15)
        .map(([id]) => `${label(id)} (${modeLabel(mode)})`),
    );
    log(
      noisy.length === 0
        ? "Every library's rounds agree within 15%."
        : `Rounds disagree by more than 15% for: ${noisy.join(', ')}; compare medians with care, or rerun with more --rounds.`,
    );
    for (const failure of failures) log(`WARNING: ${failure}`);
    log(`Total time ${((performance.now() - t0) / 1000).toFixed(0)} s.`);
  } finally {
    admin.disconnect();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
