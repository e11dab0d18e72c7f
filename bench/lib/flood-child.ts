/**
 * The server of bench/flood.ts in its own process: Express 5 on 127.0.0.1 (a free port) behind
 * tollgate's `rateLimit({ key: byApiKey(), policies: { limit: 1, window: '10m' } })` on a
 * MemoryStore with `maxKeys` keys, the setup of issue 9's report. The parent drives it over IPC:
 *   start -> { port }; prepare { fill } (empty the store, then track `fill` keys, each at zero
 *   quota: denied); begin; end -> FloodRound; stop.
 *
 * The event loop's delay is sampled by `monitorEventLoopDelay` between begin and end: what every
 * request on this server waits on top of its own work.
 */
import { register } from 'node:module';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

export type FloodRequest =
  | { op: 'start' }
  | { op: 'prepare'; fill: number }
  | { op: 'begin' }
  | { op: 'end' }
  | { op: 'stop' };

export interface FloodRound {
  /** Event-loop delay percentiles between begin and end, ms. */
  delayP50Ms: number;
  delayP99Ms: number;
  delayMaxMs: number;
  /** Requests the server answered, and how many of them were refused (429). */
  answered: number;
  refused: number;
  cpuMs: number;
  /** Keys tracked at the end (at most maxKeys). */
  size: number;
}

const maxKeys = Number(process.argv[2] ?? 100_000);
// Compile tollgate and this file the way a build does (bench/lib/http-loader.ts explains why).
register('./http-loader.ts', import.meta.url);
const { MemoryStore } = await import('@tollgate/core');
const { byApiKey, rateLimit } = await import('@tollgate/express');
const { default: express } = await import('express');

const store = new MemoryStore({ maxKeys });
const limiter = rateLimit({ key: byApiKey(), policies: { limit: 1, window: '10m' }, store });
let answered = 0;
let refused = 0;
const app = express();
app.use((_req, res, next) => {
  res.once('finish', () => {
    answered++;
    if (res.statusCode === 429) refused++;
  });
  next();
});
app.use(limiter);
app.get('/', (_req, res) => {
  res.send('ok');
});
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const { port } = server.address() as AddressInfo;

const delay = monitorEventLoopDelay({ resolution: 1 });
let mark: { cpu: NodeJS.CpuUsage; at: number };

async function answer(message: FloodRequest): Promise<unknown> {
  switch (message.op) {
    case 'start':
      return { port };
    case 'prepare': {
      store.clear();
      // Keys as byApiKey() makes them; one request each uses the whole quota of 1.
      for (let i = 0; i < message.fill; i++) limiter.limiter.decide(`key:fill-${i}`);
      global.gc?.();
      return { size: store.size };
    }
    case 'begin':
      answered = 0;
      refused = 0;
      delay.reset();
      delay.enable();
      mark = { cpu: process.cpuUsage(), at: performance.now() };
      return {};
    case 'end': {
      delay.disable();
      const cpu = process.cpuUsage(mark.cpu);
      const round: FloodRound = {
        delayP50Ms: delay.percentile(50) / 1e6,
        delayP99Ms: delay.percentile(99) / 1e6,
        delayMaxMs: delay.max / 1e6,
        answered,
        refused,
        cpuMs: (cpu.user + cpu.system) / 1000,
        size: store.size,
      };
      return round;
    }
    case 'stop':
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await store.close();
      return {};
  }
}

process.on('message', (message: FloodRequest) => {
  answer(message).then(
    (reply) => {
      process.send!(reply, () => {
        if (message.op === 'stop') process.exit(0);
      });
    },
    (error: unknown) => process.send!({ error: String((error as Error)?.stack ?? error) }),
  );
});
