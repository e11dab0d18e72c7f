/**
 * One variant of `pnpm bench:events`, in a process of its own (its own JIT: a variant that has
 * subscribed never warms the code of one that has not). Answers `{ op: 'run', ops }` with the CPU
 * and wall time of `ops` decisions on a MemoryStore.
 *   args: <variant: nobody | subscriber | otel> <path of a built @tollgate/core's dist/index.mjs>
 */
import { subscribe } from 'node:diagnostics_channel';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [variant, corePath] = process.argv.slice(2) as [string, string];
const core = (await import(pathToFileURL(corePath).href)) as typeof import('@tollgate/core');
const limiter = core.createLimiter({ policies: { limit: 1_000_000_000, window: '1m' } });
const KEYS = Array.from({ length: 1000 }, (_, i) => `ip:10.0.${i >> 8}.${i & 255}`);

if (variant === 'subscriber') {
  // The least a subscriber can be: the cost of building and publishing the messages.
  let seen = 0;
  subscribe('tollgate:decision', () => void seen++);
  subscribe('tollgate:store-call', () => void seen++);
} else if (variant === 'otel') {
  const { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } =
    await import('@opentelemetry/sdk-metrics');
  const { instrument } = (await import(
    pathToFileURL(resolve(corePath, '../../../otel/dist/index.mjs')).href
  )) as typeof import('@tollgate/otel');
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  instrument({ meterProvider: new MeterProvider({ readers: [reader] }) });
} else if (variant !== 'nobody') {
  throw new Error(`unknown variant ${variant}`);
}

let sink = 0;
function run(ops: number): { cpuNsPerOp: number; wallNsPerOp: number } {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (let i = 0; i < ops; i++) {
    const decision = limiter.decide(KEYS[i % 1000]!) as { remaining: number };
    sink += decision.remaining & 1;
  }
  const used = process.cpuUsage(cpu);
  return {
    cpuNsPerOp: ((used.user + used.system) * 1000) / ops,
    wallNsPerOp: ((performance.now() - wall) * 1e6) / ops,
  };
}

process.on('message', (message: { op: string; ops: number }) => {
  if (message.op === 'run') process.send!({ ...run(message.ops), sink: sink & 1 });
  else if (message.op === 'exit') process.exit(0);
});
process.send!({ ready: true });
