/**
 * What a script costs Redis per call, measured the way the issue asks: `redis-benchmark -P 16`
 * (pipelined, so the network and the client hardly count) sending EVALSHA with the same arguments
 * a library sends, and converting its throughput to microseconds per call. Two steadier readings
 * come with it: the redis-server process's own CPU time per call (from /proc, so a benchmark client
 * starved of CPU does not inflate it) and INFO commandstats' usec_per_call (time inside EVALSHA only).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export interface LuaSubject {
  label: string;
  lua: string;
  key: string;
  args: readonly string[];
}

export interface LuaReading {
  /** 1e6 / redis-benchmark's requests per second. */
  usecByThroughput: number;
  /** redis-server CPU time per call (user + system), undefined without /proc. */
  usecServerCpu: number | undefined;
  /** INFO commandstats usec_per_call of evalsha. */
  usecInCommand: number;
}

const TICK_US = 10_000;

function serverCpuUs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm) ".
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return undefined;
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The exact command line, for the report; `cpu`: pinned to that CPU with taskset. */
export function benchmarkCommand(
  port: number,
  calls: number,
  sha: string,
  s: LuaSubject,
  cpu: number | undefined,
): string {
  const quote = (a: string) => (a === '' ? "''" : a);
  const pin = cpu === undefined ? '' : `taskset -c ${cpu} `;
  return `${pin}redis-benchmark -p ${port} -n ${calls} -P 16 -q EVALSHA ${sha} 1 ${s.key} ${s.args.map(quote).join(' ')}`;
}

export async function loadScript(admin: Redis, lua: string): Promise<string> {
  return (await admin.script('LOAD', lua)) as string;
}

export async function measureScript(
  admin: Redis,
  port: number,
  pid: number,
  sha: string,
  subject: LuaSubject,
  calls: number,
  cpu: number | undefined,
): Promise<LuaReading> {
  await admin.del(subject.key);
  await admin.config('RESETSTAT');
  const cpu0 = serverCpuUs(pid);
  const pin = cpu === undefined ? [] : ['-c', String(cpu)];
  const out = await run(cpu === undefined ? 'redis-benchmark' : 'taskset', [
    ...pin,
    ...(cpu === undefined ? [] : ['redis-benchmark']),
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-n',
    String(calls),
    '-P',
    '16',
    '-q',
    'EVALSHA',
    sha,
    '1',
    subject.key,
    ...subject.args,
  ]);
  const cpu1 = serverCpuUs(pid);
  const stats = await admin.info('commandstats');
  const rps = /([\d.]+) requests per second/.exec(out.split('\r').at(-1) ?? out);
  if (rps === null) throw new Error(`no throughput in redis-benchmark's output: ${out.slice(-500)}`);
  const evalsha =
    /cmdstat_evalsha:calls=(\d+),usec=\d+,usec_per_call=([\d.]+)(?:,rejected_calls=\d+,failed_calls=(\d+))?/.exec(
      stats,
    );
  if (evalsha === null) throw new Error(`no evalsha in INFO commandstats:\n${stats}`);
  if (Number(evalsha[3] ?? 0) > 0) throw new Error(`${subject.label}: ${evalsha[3]} EVALSHA calls failed`);
  if (Number(evalsha[1]) !== calls)
    throw new Error(`${subject.label}: ${evalsha[1]} EVALSHA calls, not ${calls}`);
  return {
    usecByThroughput: 1e6 / Number(rps[1]),
    usecServerCpu: cpu0 === undefined || cpu1 === undefined ? undefined : (cpu1 - cpu0) / calls,
    usecInCommand: Number(evalsha[2]),
  };
}
