/**
 * A client process for test/client-shared.test.ts, forked with `node --import tsx` (tsx maps
 * `@tollgate/*` to the sources through TSX_TSCONFIG_PATH, as for the multi-process consumers). It
 * builds a paced fetch whose configured budgets live in a RedisStore on the test's throwaway Redis,
 * says `ready`, and on `go` sends its calls to the fake LLM server (mixed prompt sizes, a third
 * streamed) and replies with what its snapshot says it charged.
 */
import { pace } from '@tollgate/client';
import { RedisStore } from '@tollgate/redis';
import { Redis } from 'ioredis';

interface Spec {
  url: string;
  redisPort: number;
  prefix: string;
  calls: number;
  seed: number;
  requests: { limit: number; window: number };
  tokens: { limit: number; window: number };
}

const spec = JSON.parse(process.argv[2]!) as Spec;
let a = spec.seed;
const rand = () => {
  a = (a + 0x6d2b79f5) | 0;
  let t = Math.imul(a ^ (a >>> 15), 1 | a);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const client = new Redis({ host: '127.0.0.1', port: spec.redisPort, maxRetriesPerRequest: 0 });
client.on('error', () => undefined);
await new Promise((resolve) => client.once('ready', resolve));
const store = new RedisStore({ client, prefix: spec.prefix });
const api = pace(fetch, {
  store,
  limits: [{ name: 'llm', match: spec.url, requests: spec.requests, tokens: spec.tokens }],
});

process.on('message', async (message: { type: string }) => {
  if (message.type !== 'go') return;
  const statuses: number[] = [];
  await Promise.all(
    Array.from({ length: spec.calls }, async (_, i) => {
      const content = 'x'.repeat(400 + Math.floor(rand() * 7600));
      const max = 50 + Math.floor(rand() * 450);
      const response = await api(`${spec.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk-fleet', 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'gpt-test',
          messages: [{ content }],
          max_tokens: max,
          stream: i % 3 === 0,
        }),
      });
      statuses.push(response.status);
      await response.arrayBuffer();
    }),
  );
  for (let i = 0; i < 200 && api.snapshot().budgets.some((b) => b.tokens.pending > 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // Settlements of the shared budget run after the answers: give them a moment to reach Redis.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const charged = api.snapshot().budgets.reduce((sum, b) => sum + b.tokens.charged, 0);
  process.send?.({ type: 'done', charged, statuses });
  await client.quit();
  process.disconnect();
});
process.send?.({ type: 'ready' });
