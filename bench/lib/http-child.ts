/**
 * One server variant of bench/http.ts in its own process, listening on 127.0.0.1 (a free port).
 * The parent drives it over IPC while autocannon loads it:
 *   start -> { port }; begin; end -> ServerRound; stop (the process exits, writing a --cpu-prof).
 *
 * Standalone, for profiling one variant (then load it with autocannon on the printed port):
 *   node --cpu-prof --import tsx bench/lib/http-child.ts koa-tollgate-mem
 */
import { register } from 'node:module';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export type ChildRequest = { op: 'start' } | { op: 'begin' } | { op: 'end' } | { op: 'stop' };

/** What the server process spent during one measured run. */
export interface ServerRound {
  /** CPU time of the process (all threads: GC helpers included) between begin and end. */
  cpuMs: number;
  wallMs: number;
  /** Event-loop utilisation between begin and end: below ~0.95 the server was not the bottleneck. */
  elu: number;
  rssBytes: number;
}

const [id, redisPort, keyBy = 'ip', compile = 'build', pipelining = 'no-autopipelining'] =
  process.argv.slice(2);
if (id === undefined) {
  throw new Error(
    'usage: http-child.ts <variant> [redisPort|-] [ip|header] [build|tsx] [autopipelining|no-autopipelining]',
  );
}
if (keyBy !== 'ip' && keyBy !== 'header') throw new Error(`keyBy is 'ip' or 'header', got '${keyBy}'`);

// Compile the servers and tollgate like a build does (see http-loader.ts), unless asked for tsx's way.
if (compile !== 'tsx') register('./http-loader.ts', import.meta.url);
const { build } = await import('./http-servers.ts');
const { variant } = await import('./http-variants.ts');

const built = await build(variant(id), {
  keyBy,
  autoPipelining: pipelining === 'autopipelining',
  ...(redisPort === undefined || redisPort === '-' ? {} : { redisPort: Number(redisPort) }),
});
const { server } = built;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address() as AddressInfo;

let mark: { cpu: NodeJS.CpuUsage; at: number; elu: ReturnType<typeof performance.eventLoopUtilization> };

async function answer(message: ChildRequest): Promise<unknown> {
  switch (message.op) {
    case 'start':
      return { port };
    case 'begin':
      mark = { cpu: process.cpuUsage(), at: performance.now(), elu: performance.eventLoopUtilization() };
      return {};
    case 'end': {
      const cpu = process.cpuUsage(mark.cpu);
      const round: ServerRound = {
        cpuMs: (cpu.user + cpu.system) / 1000,
        wallMs: performance.now() - mark.at,
        elu: performance.eventLoopUtilization(mark.elu).utilization,
        rssBytes: process.memoryUsage.rss(),
      };
      return round;
    }
    case 'stop':
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await built.close();
      return {};
  }
}

if (process.send === undefined) {
  console.log(`${id} listening on http://127.0.0.1:${port}/ (Ctrl-C to stop)`);
  // Exit on Ctrl-C rather than die of it, so that --cpu-prof writes its profile.
  process.once('SIGINT', () => process.exit(0));
} else {
  process.on('message', (message: ChildRequest) => {
    answer(message).then(
      (reply) => {
        process.send!(reply, () => {
          // Exiting (rather than being killed) lets --cpu-prof write its profile.
          if (message.op === 'stop') process.exit(0);
        });
      },
      (error: unknown) => process.send!({ error: String((error as Error)?.stack ?? error) }),
    );
  });
}
