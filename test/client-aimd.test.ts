// AIMD against a server that states no quota: it answers a bare 429 above a hidden rate (20 calls/s,
// a bucket of 4). After a warm-up the client must settle within 10% of that rate, with at most 5% of
// its calls answered 429.
import { pace } from '@tollgate/client';
import { afterEach, expect, it } from 'vitest';
import { type Running, scriptedServer } from './support/client-servers.js';

const HIDDEN_RATE = 20;
const BURST = 4;
const WARM_UP = 4000;
const MEASURE = 6000;

let server: Running | undefined;
afterEach(() => server?.close());

/** A server that states no quota and answers a bare 429 above HIDDEN_RATE (a bucket of BURST). */
async function hiddenRateServer(): Promise<Array<[number, number]>> {
  let tokens = BURST;
  let last = Date.now();
  const answers: Array<[number, number]> = [];
  server = await scriptedServer((_req, res) => {
    const now = Date.now();
    tokens = Math.min(BURST, tokens + ((now - last) * HIDDEN_RATE) / 1000);
    last = now;
    const status = tokens >= 1 ? 200 : 429;
    if (status === 200) tokens -= 1;
    answers.push([now, status]);
    res.writeHead(status);
    res.end();
  });
  return answers;
}

it('settles within 10% of a hidden rate with at most 5% of calls answered 429 after warm-up', async () => {
  const answers = await hiddenRateServer();
  const api = pace(fetch, {
    aimd: { initialRate: 15, increaseStep: 2, decreaseFactor: 0.9, cooldown: 1000 },
  });
  const start = Date.now();
  const end = start + WARM_UP + MEASURE;
  const caller = async () => {
    while (Date.now() < end) {
      const response = await api(server!.url, { pace: { deadline: end } }).catch(() => undefined);
      await response?.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 8 }, caller));
  const measured = answers.filter(([at]) => at >= start + WARM_UP && at < end);
  const ok = measured.filter(([, status]) => status === 200).length;
  const limited = measured.length - ok;
  const rate = ok / (MEASURE / 1000);
  console.log(
    `AIMD: ${rate.toFixed(1)} calls/s allowed (hidden ${HIDDEN_RATE}), ${limited}/${measured.length} answered 429`,
  );
  console.log(JSON.stringify(api.snapshot().budgets[0]?.aimd));
  expect(Math.abs(rate - HIDDEN_RATE) / HIDDEN_RATE).toBeLessThanOrEqual(0.1);
  expect(limited).toBeLessThanOrEqual(measured.length * 0.05);
}, 30_000);

it('stays out of the way of an origin that states its quota', async () => {
  server = await scriptedServer((_req, res) => {
    res.writeHead(200, { RateLimit: 'limit=10, remaining=9, reset=1', 'RateLimit-Policy': '10;w=1' });
    res.end();
  });
  const api = pace(fetch, { aimd: { initialRate: 1 } });
  await (await api(server.url)).arrayBuffer();
  expect(api.snapshot().budgets[0]!.aimd).toBeUndefined();
});

it('checks its options at pace()', () => {
  expect(() => pace(fetch, { aimd: { decreaseFactor: 1 } })).toThrow(
    'Expected `aimd.decreaseFactor` to be a number between 0 and 1, got `1` (number).',
  );
  expect(() => pace(fetch, { aimd: { minRate: 5, maxRate: 2 } })).toThrow(
    'Expected `aimd.maxRate` to be a number ≥ 5',
  );
  expect(() => pace(fetch, { aimd: { backoffStatus: [42] } })).toThrow('Expected `aimd.backoffStatus`');
});

/** Eight callers in a loop for `ms` against a server that 429s above 20 calls/s; the 429 share of the last half. */
async function flood(api: ReturnType<typeof pace>, ms: number): Promise<{ share: number; ok: number }> {
  const answers = await hiddenRateServer();
  const start = Date.now();
  const end = start + ms;
  const caller = async () => {
    while (Date.now() < end) {
      const response = await api(server!.url, { pace: { deadline: end } }).catch(() => undefined);
      await response?.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 8 }, caller));
  const late = answers.filter(([at]) => at >= start + ms / 2);
  return {
    share: late.filter(([, s]) => s === 429).length / late.length,
    ok: late.filter(([, s]) => s === 200).length,
  };
}

it('without the aimd option, a fallback engages on a flood of 429s and paces; aimd: false leaves it to backoff', async () => {
  const fallback = pace(fetch, { retry: false });
  const paced = await flood(fallback, 4000);
  expect(fallback.snapshot().budgets[0]!.aimd).not.toBeUndefined();
  await server?.close();
  const off = pace(fetch, { retry: false, aimd: false });
  const unpaced = await flood(off, 4000);
  expect(off.snapshot().budgets[0]!.aimd).toBeUndefined();
  console.log(`fallback: ${paced.share} 429 share, ${paced.ok} ok; off: ${unpaced.share}, ${unpaced.ok} ok`);
  // Unpaced, eight callers in a loop meet mostly 429s; paced, few.
  expect(unpaced.share).toBeGreaterThan(0.5);
  expect(paced.share).toBeLessThan(0.2);
}, 30_000);

it('the fallback leaves a lone 429 to backoff: one call at a time never engages it', async () => {
  server = await scriptedServer((_req, res, i) => {
    res.writeHead(i === 0 ? 429 : 200);
    res.end();
  });
  const api = pace(fetch, { retry: { baseDelay: 10 } });
  expect((await api(server.url)).status).toBe(200);
  expect(api.snapshot().budgets[0]!.aimd).toBeUndefined();
});
