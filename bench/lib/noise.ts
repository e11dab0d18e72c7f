import { readFileSync } from 'node:fs';

/** Linux reports CPU times in ticks of 1/USER_HZ s; USER_HZ is 100 on every mainstream build. */
const TICK_MS = 10;

export interface CpuSnapshot {
  /** Milliseconds of CPU the whole machine spent busy (all cores), and in total (busy + idle). */
  busyMs: number;
  totalMs: number;
  /** Milliseconds the hypervisor gave to other guests. */
  stealMs: number;
  /** This process's own CPU time. */
  selfMs: number;
}

/** The machine's CPU counters from /proc/stat, or undefined where there is none. */
export function cpuSnapshot(): CpuSnapshot | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const fields = stat.split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const busy = user + nice + system + irq + softirq;
  const self = process.cpuUsage();
  return {
    busyMs: busy * TICK_MS,
    totalMs: (busy + idle + iowait + steal) * TICK_MS,
    stealMs: steal * TICK_MS,
    selfMs: (self.user + self.system) / 1000,
  };
}

export interface OtherLoad {
  /** Share of the machine's CPU (all cores) used by processes other than this bench. */
  others: number;
  steal: number;
}

/** What other processes used between two snapshots, given the CPU time our children spent. */
export function otherLoad(
  before: CpuSnapshot | undefined,
  after: CpuSnapshot | undefined,
  childrenMs: number,
): OtherLoad | undefined {
  if (before === undefined || after === undefined) return undefined;
  const total = after.totalMs - before.totalMs;
  if (total <= 0) return undefined;
  const ours = after.selfMs - before.selfMs + childrenMs;
  return {
    others: Math.max(0, (after.busyMs - before.busyMs - ours) / total),
    steal: (after.stealMs - before.stealMs) / total,
  };
}
