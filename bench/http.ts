/**
 * HTTP benchmark: what each rate limiter adds to a request, on node:http, Koa 3 and Express 5,
 * with memory and Redis stores:
 *   pnpm bench [--rounds 5] [--duration 1] [--warmup 0.25] [--first-warmup 1] [--connections 50]
 *              [--pipelining 10] [--only koa,redis | --only all] [--keys 1] [--autopipelining]
 *              [--profile koa-tollgate-mem] [--profile-s 5] [--compile build|tsx] [--json runs.json]
 *              [--pin auto|on|off]
 *
 * Every variant (bench/lib/http-variants.ts) is a server in its own child process on 127.0.0.1,
 * loaded by autocannon from this process with a fixed number of connections, one variant at a time.
 * Requests are pipelined (10 per connection by default): without it, autocannon on a 2-core machine
 * cannot keep a Node server busy (the server idles half the time and a limiter's cost hides in
 * that idle time); with it the server is the bottleneck, which is what "time added" assumes.
 * Rounds interleave: each round visits the frameworks in turn, and runs each framework's limiters
 * (in an order rotated from round to round) between runs of its bare server: bare, L1, bare, L2, ...,
 * bare. On these shared machines the CPU's speed drifts by up to 2x over seconds (other tenants,
 * a busy hyperthread sibling), so a limiter is compared with its bare server measured just before and
 * just after it. Per round, a limiter's cost is the time it adds per request, from throughput:
 * (1 / limiterRps - 1 / bareRps) * 1e6 microseconds, bareRps the harmonic mean of the two bare runs
 * around it. We report medians and min-max over rounds, and PASS/FAIL for the issue's target:
 * tollgate adds at most half of what the best peer adds, with memory and with Redis, judged on Koa
 * and on node:http.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type RedisServer, startRedis } from '../test/support/redis-servers.ts';
import type { ServerRound } from './lib/http-child.ts';
import { type LoadResult, load } from './lib/http-load.ts';
import {
  FRAMEWORK_LABEL,
  FRAMEWORKS,
  type Framework,
  LIMITER_LABEL,
  type StoreKind,
  select,
  type Variant,
} from './lib/http-variants.ts';
import { cpuSnapshot } from './lib/noise.ts';
import { ROOT, request, startChild } from './lib/spawn.ts';
import { formatRate, formatRatio, median, percent, summarize } from './lib/stats.ts';
import { table } from './lib/table.ts';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '0.25' },
    'first-warmup': { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    pipelining: { type: 'string', default: '10' },
    only: { type: 'string' },
    keys: { type: 'string', default: '1' },
    profile: { type: 'string' },
    'profile-s': { type: 'string', default: '5' },
    compile: { type: 'string', default: 'build' },
    autopipelining: { type: 'boolean', default: false },
    json: { type: 'string' },
    pin: { type: 'string', default: 'auto' },
  },
});
const ROUNDS = Number(flags.rounds);
const DURATION = Number(flags.duration);
const WARMUP = Number(flags.warmup);
const FIRST_WARMUP = Number(flags['first-warmup']);
const CONNECTIONS = Number(flags.connections);
const PIPELINING = Number(flags.pipelining);
const KEYS = Number(flags.keys);
const PROFILE_S = Number(flags['profile-s']);
/** `build`: TypeScript compiled as a build does (bench/lib/http-loader.ts); `tsx`: as tsx does. */
const COMPILE = flags.compile;
const variants = select(flags.only);
const STORES: readonly StoreKind[] = ['memory', 'redis'];

const log = (line = '') => console.log(line);
const progress = (text: string) => process.stderr.write(text);
const t0 = performance.now();

/** One measured run of one variant. */
interface Run {
  rps: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** Server process CPU per response, microseconds. */
  cpuUs: number;
  /** Server CPU time / wall time. */
  share: number;
  elu: number;
  /** autocannon's (this process's) CPU time / wall time. */
  clientShare: number;
  /** redis-server CPU per response, microseconds (Redis variants). */
  redisUs?: number;
  p99Ms: number;
  /** A limiter's run: its bare server measured just before and just after, combined. */
  bare?: { rps: number; cpuUs: number };
}

/** The bare server around a limiter run: mean time per request (harmonic mean rate) and mean CPU. */
const pairOf = (before: Run, after: Run) => ({
  rps: 2 / (1 / before.rps + 1 / after.rps),
  cpuUs: (before.cpuUs + after.cpuUs) / 2,
});

/** runs.get(id): every measured run of a variant, in order (bare servers run several times a round). */
const runs = new Map<string, Run[]>();
/** Totals over every measured run, for the share of the machine that other processes used. */
const machine = { busyMs: 0, totalMs: 0, stealMs: 0, oursMs: 0 };
/** Responses that were not 2xx, or errors, during warm-ups (which are not measured). */
const warmupProblems: string[] = [];

// ---------------------------------------------------------------------------------------------
// Running

interface Server {
  variant: Variant;
  child: ChildProcess;
  port: number;
}

async function startServer(variant: Variant, redis: RedisServer | undefined, extraFlags: string[] = []) {
  const args = [
    variant.id,
    variant.store === 'redis' ? String(redis!.port) : '-',
    KEYS > 1 ? 'header' : 'ip',
    COMPILE,
    flags.autopipelining ? 'autopipelining' : 'no-autopipelining',
  ];
  const child = startChild('./http-child.ts', args, extraFlags);
  const { port } = await request<{ port: number }>(child, { op: 'start' });
  if (PIN) await pin(child.pid!, SERVER_CPU);
  return { variant, child, port } satisfies Server;
}

/**
 * `--pin auto|on|off`: every server on the last CPU, autocannon (this process) on the others, so the
 * two never take turns on one core and the scheduler never moves a server mid-run (on a 2-core VM
 * this cut the spread between rounds from 50-75% to 15-25%). redis-server is not pinned (it starts
 * before this process pins itself). `auto` pins when there are at least 2 CPUs and `taskset`
 * (util-linux) is installed.
 */
const PIN =
  flags.pin === 'on' || (flags.pin === 'auto' && cpus().length >= 2 && existsSync('/usr/bin/taskset'));
const SERVER_CPU = String(cpus().length - 1);
const CLIENT_CPUS = cpus().length > 1 ? `0-${cpus().length - 2}` : '0';
const pin = (pid: number, cpuList: string) =>
  new Promise<void>((resolve, reject) =>
    execFile('taskset', ['-a', '-p', '-c', cpuList, String(pid)], (error) =>
      error ? reject(new Error(`--pin needs taskset (util-linux): ${error.message}`)) : resolve(),
    ),
  );

async function stopServer(server: Server): Promise<void> {
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const stopped = request(server.child, { op: 'stop' }).catch(() => undefined);
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
  await stopped;
  await exited;
  clearTimeout(timer);
}

async function warm(server: Server, seconds: number): Promise<void> {
  if (seconds <= 0) return;
  const r = await load({
    port: server.port,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    seconds,
    keys: KEYS,
  });
  if (r.non2xx > 0 || r.errors > 0)
    warmupProblems.push(`${server.variant.label}: ${r.non2xx} non-2xx, ${r.errors} errors in a warm-up`);
}

async function redisCpuMs(admin: Redis | undefined): Promise<number> {
  if (admin === undefined) return 0;
  const info = await admin.info('cpu');
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

async function measure(server: Server, admin: Redis | undefined): Promise<Run> {
  const usesRedis = server.variant.store === 'redis';
  await request(server.child, { op: 'begin' });
  const redis0 = usesRedis ? await redisCpuMs(admin) : 0;
  const machine0 = cpuSnapshot();
  const self0 = process.cpuUsage();
  const r: LoadResult = await load({
    port: server.port,
    connections: CONNECTIONS,
    pipelining: PIPELINING,
    seconds: DURATION,
    keys: KEYS,
  });
  const self = process.cpuUsage(self0);
  const machine1 = cpuSnapshot();
  const s = await request<ServerRound>(server.child, { op: 'end' });
  const redisMs = usesRedis ? (await redisCpuMs(admin)) - redis0 : 0;
  const selfMs = (self.user + self.system) / 1000;
  if (machine0 !== undefined && machine1 !== undefined) {
    machine.busyMs += machine1.busyMs - machine0.busyMs;
    machine.totalMs += machine1.totalMs - machine0.totalMs;
    machine.stealMs += machine1.stealMs - machine0.stealMs;
    machine.oursMs += selfMs + s.cpuMs + redisMs;
  }
  const requests = r.requests.total;
  return {
    rps: requests / r.duration,
    requests,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    cpuUs: (s.cpuMs * 1000) / requests,
    share: s.cpuMs / s.wallMs,
    elu: s.elu,
    clientShare: selfMs / (r.duration * 1000),
    ...(usesRedis ? { redisUs: (redisMs * 1000) / requests } : {}),
    p99Ms: r.latency.p99,
  };
}

const rotate = <T>(list: readonly T[], by: number): T[] => list.map((_, i) => list[(i + by) % list.length]!);

async function rounds(redis: RedisServer | undefined): Promise<void> {
  const admin = redis === undefined ? undefined : new Redis({ host: '127.0.0.1', port: redis.port });
  progress(`starting ${variants.length} servers`);
  const servers: Server[] = [];
  try {
    // Two at a time: 2 cores, and starting a child (tsx) is CPU-bound.
    const queue = [...variants];
    const worker = async () => {
      for (let v = queue.shift(); v !== undefined; v = queue.shift()) {
        try {
          servers.push(await startServer(v, redis));
        } catch (error) {
          queue.length = 0; // the other worker starts nothing more
          throw error;
        }
      }
    };
    // Both workers finish before a failure is thrown, so `finally` stops every server that started
    // (a server started after the failure would otherwise keep this process alive).
    const started = await Promise.allSettled([worker(), worker()]);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const byFramework = FRAMEWORKS.map((f) =>
      variants.filter((v) => v.framework === f).map((v) => servers.find((s) => s.variant === v)!),
    ).filter((list) => list.length > 0);
    for (const v of variants) runs.set(v.id, []);
    progress(', first warm-up');
    for (const s of servers) await warm(s, FIRST_WARMUP);
    progress('\n');
    for (let round = 0; round < ROUNDS; round++) {
      progress(`round ${round + 1}/${ROUNDS}:`);
      for (const group of rotate(byFramework, round)) {
        // bare, L1, bare, L2, ..., bare: each limiter run sits between two runs of its bare server.
        const bare = group.find((s) => s.variant.limiter === 'bare')!;
        const run = async (server: Server) => {
          progress(` ${server.variant.id}`);
          await warm(server, WARMUP);
          const result = await measure(server, admin);
          runs.get(server.variant.id)!.push(result);
          return result;
        };
        let before = await run(bare);
        for (const server of rotate(
          group.filter((s) => s !== bare),
          round,
        )) {
          const result = await run(server);
          const after = await run(bare);
          result.bare = pairOf(before, after);
          before = after;
        }
      }
      progress('\n');
    }
  } finally {
    await Promise.all(servers.map(stopServer));
    admin?.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Profile

let profileReport: string | undefined;

async function profile(id: string, redis: RedisServer | undefined): Promise<void> {
  const variant = select(id).find((v) => v.id === id)!;
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-http-prof-'));
  progress(`profiling ${id} for ${PROFILE_S} s\n`);
  try {
    const server = await startServer(variant, redis, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    try {
      await warm(server, 1);
      await load({
        port: server.port,
        connections: CONNECTIONS,
        pipelining: PIPELINING,
        seconds: PROFILE_S,
        keys: KEYS,
      });
    } finally {
      await stopServer(server);
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (file === undefined) throw new Error(`no .cpuprofile written in ${dir}`);
    const summary = fileURLToPath(new URL('./lib/cpuprofile-summary.ts', import.meta.url));
    profileReport = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', summary, join(dir, file), '30'],
        { cwd: ROOT },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Analysis

/** Per round: microseconds the variant adds per request over its bare framework, by throughput. */
function addedUs(v: Variant): number[] {
  return runs.get(v.id)!.map((r) => (1 / r.rps - 1 / r.bare!.rps) * 1e6);
}

/** Per round: server CPU microseconds per request the variant adds over its bare framework. */
function addedCpuUs(v: Variant): number[] {
  return runs.get(v.id)!.map((r) => r.cpuUs - r.bare!.cpuUs);
}

const us = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const range = (xs: readonly number[]) => `[${us(Math.min(...xs))} - ${us(Math.max(...xs))}]`;

function printFramework(f: Framework): void {
  const list = variants.filter((v) => v.framework === f);
  if (list.length === 0) return;
  log(`## ${FRAMEWORK_LABEL[f]}`);
  log();
  const rows = list.map((v) => {
    const r = runs.get(v.id)!;
    const rps = summarize(r.map((x) => x.rps));
    const cells = [
      v.label.replace(`${FRAMEWORK_LABEL[f]} `, ''),
      formatRate(rps.median),
      `[${formatRate(rps.min)} - ${formatRate(rps.max)}]`,
      percent(rps.spread),
    ];
    if (v.limiter === 'bare') {
      cells.push('1.00x', '', '', us(median(r.map((x) => x.cpuUs))), '');
    } else {
      const added = addedUs(v);
      const cpu = addedCpuUs(v);
      cells.push(
        formatRatio(median(r.map((x) => x.rps / x.bare!.rps))),
        us(median(added)),
        range(added),
        us(median(r.map((x) => x.cpuUs))),
        us(median(cpu)),
      );
    }
    const redisUs = r.map((x) => x.redisUs).filter((x) => x !== undefined);
    cells.push(
      redisUs.length > 0 ? us(median(redisUs)) : '',
      median(r.map((x) => x.share)).toFixed(2),
      median(r.map((x) => x.elu)).toFixed(2),
      median(r.map((x) => x.clientShare)).toFixed(2),
      median(r.map((x) => x.p99Ms)).toFixed(0),
      String(r.reduce((n, x) => n + x.non2xx + x.errors, 0)),
    );
    return cells;
  });
  log(
    table(
      [
        'variant',
        'req/s',
        'range',
        'spread',
        'vs bare',
        'us added',
        'range',
        'cpu us/req',
        'cpu added',
        'redis us/req',
        'cpu/wall',
        'ELU',
        'client',
        'p99 ms',
        'non-2xx',
      ],
      rows,
    ),
  );
  log();
}

interface Verdict {
  target: string;
  result: string;
  measured: string;
  note: string;
}

/** The peer with the least median microseconds added, among `peers`. */
function best(peers: readonly Variant[]): Variant | undefined {
  let found: Variant | undefined;
  for (const p of peers) if (found === undefined || median(addedUs(p)) < median(addedUs(found))) found = p;
  return found;
}

const REFERENCES: readonly string[] = ['bare', 'tollgate', 'quiet', 'fields'];
const isPeer = (v: Variant) => !REFERENCES.includes(v.limiter);
const name = (v: Variant) => `${LIMITER_LABEL[v.limiter]} on ${FRAMEWORK_LABEL[v.framework]}`;

function verdict(
  t: Variant,
  peer: Variant | undefined,
  judged: boolean,
  strict: Variant | undefined,
): Verdict {
  const target = `${FRAMEWORK_LABEL[t.framework]} + tollgate (${t.store}) adds <= 1/2 of the best peer${judged ? '' : ' (reported, not judged)'}`;
  if (peer === undefined)
    return { target, result: 'n/a', measured: '', note: `no peer with ${t.store} in this run` };
  const mine = addedUs(t);
  const theirs = addedUs(peer);
  const pass = median(mine) <= median(theirs) / 2;
  const rounds = mine.filter((x, i) => x <= theirs[i]! / 2).length;
  const cpuMine = median(addedCpuUs(t));
  const cpuTheirs = median(addedCpuUs(peer));
  const cpuPass = cpuMine <= cpuTheirs / 2;
  const notes = [
    `${rounds} of ${mine.length} rounds meet it`,
    `server CPU: ${us(cpuMine)} vs ${us(cpuTheirs)} us${cpuPass === pass ? '' : ' (would flip the verdict)'}`,
  ];
  if (strict !== undefined && strict !== peer) {
    const s = median(addedUs(strict));
    notes.push(
      `vs ${name(strict)} (${us(s)} us): ${median(mine) <= s / 2 ? 'PASS' : 'FAIL'} (Express figures are noisy)`,
    );
  }
  return {
    target,
    result: median(theirs) <= 0 ? 'n/a' : pass ? 'PASS' : 'FAIL',
    measured: `${us(median(mine))} us ${range(mine)} vs ${us(median(theirs))} us ${range(theirs)} (${name(peer)})`,
    note: notes.join('; '),
  };
}

function targets(): Verdict[] {
  const verdicts: Verdict[] = [];
  for (const store of STORES) {
    const peers = variants.filter((v) => isPeer(v) && v.store === store);
    // Judged against the peers on the frameworks whose ratios are stable here: Koa, and node:http.
    const judgedPeer = best(peers.filter((p) => p.framework !== 'express'));
    const anyPeer = best(peers);
    for (const f of FRAMEWORKS) {
      const t = variants.find((v) => v.framework === f && v.limiter === 'tollgate' && v.store === store);
      if (t === undefined) continue;
      if (f === 'express') {
        verdicts.push(verdict(t, best(peers.filter((p) => p.framework === 'express')), false, undefined));
      } else {
        verdicts.push(verdict(t, judgedPeer, true, anyPeer));
      }
    }
  }
  return verdicts;
}

/**
 * Where tollgate's time goes, from the two references run on the same framework: the decision
 * without header fields (`quiet`), and four fixed fields without a limiter (`fields`).
 */
function split(): string[] {
  const lines: string[] = [];
  for (const f of FRAMEWORKS) {
    const of = (limiter: string) => variants.find((v) => v.framework === f && v.limiter === limiter);
    const [t, quiet, fields] = [of('tollgate'), of('quiet'), of('fields')];
    if (t?.store !== 'memory' || quiet === undefined || fields === undefined) continue;
    const cell = (v: Variant) =>
      `${us(median(addedUs(v)))} us ${range(addedUs(v))} (server CPU ${us(median(addedCpuUs(v)))} us)`;
    lines.push(
      `${FRAMEWORK_LABEL[f]}, where tollgate's time goes: the whole, with draft-6's four fields, ${cell(t)};` +
        ` its decision alone (headers: false) ${cell(quiet)}; four fixed fields set by a middleware` +
        ` without a limiter ${cell(fields)}: Node's cost of writing the fields, the same for any limiter.`,
      '',
    );
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  for (const [flag, value] of Object.entries({ ROUNDS, DURATION, CONNECTIONS, PIPELINING, KEYS })) {
    if (!(value > 0)) throw new Error(`--${flag.toLowerCase()} takes a positive number`);
  }
  if (!(WARMUP >= 0) || !(FIRST_WARMUP >= 0))
    throw new Error('--warmup and --first-warmup take seconds >= 0');
  if (COMPILE !== 'build' && COMPILE !== 'tsx') throw new Error("--compile is 'build' or 'tsx'");
  if (flags.profile !== undefined) select(flags.profile);
  if (!['auto', 'on', 'off'].includes(flags.pin)) throw new Error("--pin is 'auto', 'on' or 'off'");
  if (PIN && cpus().length < 2) throw new Error('--pin on needs at least 2 CPUs');
  const loadBefore = loadavg();
  const needsRedis = variants.some((v) => v.store === 'redis') || (flags.profile ?? '').endsWith('-redis');
  // redis-server first, so it does not inherit this process's CPU.
  const redis = needsRedis ? await startRedis() : undefined;
  if (PIN) await pin(process.pid, CLIENT_CPUS);
  try {
    await rounds(redis);
    if (flags.profile !== undefined) await profile(flags.profile, redis);
  } finally {
    await redis?.stop();
  }
  const loadAfter = loadavg();

  log();
  log(`# tollgate bench: HTTP  (node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'})`);
  log();
  log(
    `autocannon, ${CONNECTIONS} connections x ${PIPELINING} pipelined requests, GET / on 127.0.0.1, ${DURATION} s per run after a ${WARMUP} s warm-up` +
      ` (${FIRST_WARMUP} s the first time), ${ROUNDS} interleaved rounds; ${KEYS > 1 ? `${KEYS} keys (X-API-Key header, the same requests sent to the bare servers)` : 'one key: every limiter counts by client IP, all 127.0.0.1'}.` +
      (PIN
        ? ` Servers pinned to CPU ${SERVER_CPU}, autocannon to CPU ${CLIENT_CPUS} (taskset; --pin off to let them float).`
        : ' Processes not pinned to CPUs.') +
      (flags.autopipelining
        ? ' Every ioredis client with enableAutoPipelining.'
        : ' ioredis clients with default options.'),
  );
  log(
    `Limits are 1e9 per minute, so nothing is denied. Servers run TypeScript ${COMPILE === 'build' ? 'compiled as a build does (bench/lib/http-loader.ts), peers their published JavaScript' : 'compiled by tsx (keepNames: every named closure costs an Object.defineProperty)'}. Each server:`,
  );
  for (const v of variants) log(`  ${v.id.padEnd(22)} ${v.setup}`);
  log();
  for (const f of FRAMEWORKS) printFramework(f);
  log('req/s: median over runs [min - max], spread = (max - min) / median (bare servers run before and');
  log('after every limiter). vs bare: median over rounds of the ratio to the bare runs just before and');
  log('after. us added: microseconds per request the limiter adds, (1 / req/s - 1 / bare req/s) * 1e6 with');
  log('those bare runs: median [min - max] over rounds. cpu us/req: CPU time of the server process (GC');
  log('threads included) per response; cpu added: the same minus the bare runs around it, which other');
  log('processes taking the CPU disturb less (a slower CPU still shows). redis us/req: redis-server CPU');
  log('per response.');
  log('cpu/wall and ELU (event-loop utilisation) near 1.0 mean the server was the bottleneck; client:');
  log("autocannon's CPU per wall time (near 1.0: the load generator itself was saturated).");
  log();
  log('## targets (tollgate vs the best peer measured in this run; judged on Koa and node:http)');
  log();
  log(
    table(
      ['target', 'result', 'measured (us added per request)', 'note'],
      targets().map((v) => [v.target, v.result, v.measured, v.note]),
      'llll',
    ),
  );
  log();
  for (const line of split()) log(line);
  if (profileReport !== undefined) {
    log(`## CPU profile of ${flags.profile} under load (self time, top 30; includes start-up)`);
    log();
    log(profileReport.trimEnd());
    log();
  }
  log('## noise');
  log();
  log(
    `load average (1 min) ${loadBefore[0]!.toFixed(2)} before, ${loadAfter[0]!.toFixed(2)} after, on ${cpus().length} cores.`,
  );
  if (machine.totalMs > 0) {
    const others = Math.max(0, (machine.busyMs - machine.oursMs) / machine.totalMs);
    log(
      `During the measured runs, other processes used ${percent(others)} of the machine's CPU (all ${cpus().length} cores;` +
        ` this bench needs about two: autocannon and the server, plus redis-server), hypervisor steal ${percent(machine.stealMs / machine.totalMs)}.`,
    );
  }
  const noisy = variants.filter((v) => summarize(runs.get(v.id)!.map((r) => r.rps)).spread > 0.15);
  log(
    noisy.length === 0
      ? "Every variant's rounds agree within 15%."
      : `Rounds disagree by more than 15% for: ${noisy.map((v) => v.id).join(', ')}; compare medians with care, or rerun with more --rounds.`,
  );
  const unsaturated = variants.filter((v) => median(runs.get(v.id)!.map((r) => r.elu)) < 0.9);
  if (unsaturated.length > 0)
    log(
      `Event loop below 90% busy for: ${unsaturated.map((v) => v.id).join(', ')}: the server was not the only bottleneck.`,
    );
  const failed = variants.filter((v) => runs.get(v.id)!.some((r) => r.non2xx + r.errors > 0));
  log(
    failed.length === 0
      ? 'Every measured response was a 2xx; no errors or timeouts.'
      : `WARNING: non-2xx responses or errors for ${failed.map((v) => v.id).join(', ')}.`,
  );
  for (const problem of warmupProblems) log(`WARNING: ${problem}`);
  log(`Total time ${((performance.now() - t0) / 1000).toFixed(0)} s.`);
  if (flags.json !== undefined) {
    // Every measured run, for BENCHMARKS.md or a closer look at the noise.
    const raw = { flags, node: process.version, variants, runs: Object.fromEntries(runs) };
    writeFileSync(flags.json, `${JSON.stringify(raw, null, 2)}\n`);
    log(`Runs written to ${flags.json}.`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
