// Issue 15's LLM acceptance: @tollgate/client against a local OpenAI-style server (test/support/
// fake-llm.ts) that enforces requests and tokens per (shortened) minute, sends OpenAI's rate-limit
// headers and reports `usage`. Mixed prompt sizes, a third of the calls streamed: the client must
// use at least 90% of the token rate after the first window with at most 1% of calls answered 429,
// and the tokens it charged must equal the server's usage exactly. Configured budgets (`limits`)
// and the token estimate's settlement are checked with exact numbers beside it.
import { ConfigError, CostExceedsLimitError, pace, presets } from '@tollgate/client';
import { afterEach, describe, expect, it } from 'vitest';
import { type Running, scriptedServer } from './support/client-servers.js';
import { type FakeLlm, fakeLlm, promptTokens } from './support/fake-llm.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A deterministic random sequence (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function llm(options: Parameters<typeof fakeLlm>[0]): Promise<FakeLlm> {
  const server = await fakeLlm(options);
  closers.push(() => server.close());
  return server;
}

/** Reads a response to its end, as a caller would (a stream event by event). */
async function consume(response: Response): Promise<void> {
  await response.arrayBuffer();
}

/** Until the client has settled every call's tokens (a stream's usage comes at its end). */
async function settled(api: ReturnType<typeof pace>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (api.snapshot().budgets.every((b) => b.tokens.pending === 0)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the client never settled its calls');
}

describe('pace() against an OpenAI-style server (RPM and TPM, usage in the answers)', () => {
  it('uses >= 90% of the token rate after the first window, <= 1% 429s, and charges exactly the usage', async () => {
    const rand = random(15);
    const WINDOW = 2000;
    const TPM = 40_000;
    const server = await llm({
      rpm: 200,
      tpm: TPM,
      windowMs: WINDOW,
      completion: (max) => 1 + Math.floor(rand() * max),
    });
    const api = pace(fetch);
    const CALLS = 90;
    const start = Date.now();
    await Promise.all(
      Array.from({ length: CALLS }, async (_, i) => {
        const content = 'x'.repeat(400 + Math.floor(rand() * 7600));
        const max = 50 + Math.floor(rand() * 450);
        const stream = i % 3 === 0;
        const response = await api(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-test', messages: [{ content }], max_tokens: max, stream }),
        });
        await consume(response);
      }),
    );
    const end = Date.now();
    await settled(api);
    const ok = server.served.filter((s) => s.status === 200);
    const limited = server.served.filter((s) => s.status === 429).length;
    const used = ok.reduce((sum, s) => sum + s.tokens, 0);
    const budget = api.snapshot().budgets[0]!;
    // Every call's charge settled to the usage the server reported: exact, streams included.
    expect(budget.tokens.charged).toBe(used);
    expect(ok.filter((s) => s.stream).length).toBe(CALLS / 3);
    expect(limited / server.served.length).toBeLessThanOrEqual(0.01);
    // After the first window (whose full bucket is a head start), tokens per ms against the rate.
    const after = ok.filter((s) => s.at >= start + WINDOW).reduce((sum, s) => sum + s.tokens, 0);
    const rate = after / (end - (start + WINDOW));
    expect(rate / (TPM / WINDOW)).toBeGreaterThanOrEqual(0.9);
  });
});

describe('configured budgets (limits)', () => {
  let server: Running;
  const bodies: unknown[] = [];
  const at: number[] = [];

  async function serve(usage: (i: number) => unknown, type = 'application/json') {
    server = await scriptedServer((req, res, i) => {
      let text = '';
      req.on('data', (c) => {
        text += c;
      });
      req.on('end', () => {
        at.push(Date.now());
        bodies.push(text === '' ? undefined : JSON.parse(text));
        res.writeHead(200, { 'content-type': type });
        res.end(JSON.stringify(usage(i)));
      });
    });
    closers.push(() => server.close());
    bodies.length = 0;
    at.length = 0;
  }

  it("rpm: a full minute's calls at once, then one per 60 000 / rpm ms", async () => {
    await serve(() => ({ ok: true }));
    const api = pace(fetch, { limits: [{ match: server.url, rpm: 60 }] });
    await Promise.all(Array.from({ length: 62 }, () => api(server.url).then(consume)));
    expect(at.length).toBe(62);
    // 60 at once; the 61st waits for the one call a second the budget refills, the 62nd another.
    // (Bounds for a loaded machine: sixty local calls can take a few hundred ms.)
    expect(at[59]! - at[0]!).toBeLessThan(1000);
    expect(at[60]! - at[0]!).toBeGreaterThanOrEqual(1000 - (at[59]! - at[0]!) - 5);
    expect(at[61]! - at[60]!).toBeGreaterThanOrEqual(990);
    const snapshot = api.snapshot().budgets[0]!.limits;
    expect(snapshot.map((l) => [l.key, l.unit, l.limit, l.windowMs])).toEqual([
      ['limits[0]:rpm', 'requests', 60, 60_000],
    ]);
  });

  it('tpm: the estimate is spent up front and settled to the usage, debt included', async () => {
    // Usage: 3 000, 500, then 100 tokens; the calls state an estimate of 1 000 each.
    const usage = [3000, 500, 100];
    await serve((i) => ({ usage: { total_tokens: usage[i] } }));
    let t = 1_000_000;
    const api = pace(fetch, { limits: [{ match: server.url, tpm: 6000, name: 'llm' }], now: () => t });
    const call = (tokens: number) =>
      api(server.url, { method: 'POST', body: '{}', pace: { tokens } }).then(consume);
    const available = () => api.snapshot().budgets[0]!.limits[0]!.available;

    await call(1000);
    await settled(api);
    expect(available()).toBe(6000 - 3000);
    await call(1000);
    await settled(api);
    expect(available()).toBe(6000 - 3500);
    expect(api.snapshot().budgets[0]!.tokens).toEqual({ charged: 3500, pending: 0 });
    // 40 s later (100 tokens/s): 2 500 + 4 000, but never past the full 6 000.
    t += 40_000;
    expect(available()).toBe(6000);
    await call(6000);
    await settled(api);
    expect(available()).toBe(5900);
    expect(api.snapshot().budgets[0]!.tokens).toEqual({ charged: 3600, pending: 0 });
  });

  it('a call whose estimate exceeds a configured budget is refused unsent', async () => {
    await serve(() => ({}));
    const api = pace(fetch, { limits: [{ match: server.url, tpm: 100, name: 'small' }] });
    await expect(api(server.url, { pace: { tokens: 101 } })).rejects.toBeInstanceOf(CostExceedsLimitError);
    expect(at).toEqual([]);
  });

  it('model rules: one budget per model with `*`, only the named model otherwise', async () => {
    await serve(() => ({ usage: { input_tokens: 7, output_tokens: 5 } }));
    const api = pace(fetch, {
      // A clock that stands still: the numbers below are exact, with no refill between calls.
      now: () => 1_000_000,
      limits: [
        { match: server.url, model: '*', rpm: 10, name: 'per-model' },
        { match: /127\.0\.0\.1/, model: 'big', tpm: 1000, name: 'big' },
      ],
    });
    const post = (model: string) =>
      api(`${server.url}/v1/messages`, {
        method: 'POST',
        body: JSON.stringify({ model, messages: [{ content: 'abcd' }], max_tokens: 10 }),
      }).then(consume);
    await post('small');
    await post('big');
    await post('big');
    await settled(api);
    const limits = api.snapshot().budgets[0]!.limits.map((l) => [l.key, l.available]);
    // Estimates of 1 + 10 tokens, settled to 12 each (input 7 + output 5) on the `big` budget.
    expect(limits).toEqual([
      ['per-model:rpm:small', 9],
      ['per-model:rpm:big', 8],
      ['big:tpm', 1000 - 24],
    ]);
    expect(api.snapshot().budgets[0]!.tokens.charged).toBe(36);
  });

  it('Anthropic-style streams: input tokens from message_start, output from the last message_delta', async () => {
    server = await scriptedServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        `event: message_start\ndata: ${JSON.stringify({ type: 'message_start', message: { usage: { input_tokens: 25, output_tokens: 1 } } })}\n\n`,
      );
      res.write(
        `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', usage: { output_tokens: 9 } })}\n\n`,
      );
      res.end(
        `event: message_delta\ndata: ${JSON.stringify({ type: 'message_delta', usage: { output_tokens: 17 } })}\n\n`,
      );
    });
    closers.push(() => server.close());
    // A clock that stands still: the budget refills a token every 60 ms, and the numbers are exact.
    const api = pace(fetch, { limits: [{ match: server.url, tpm: 1000 }], now: () => 1_000_000 });
    await api(server.url, {
      method: 'POST',
      body: JSON.stringify({ model: 'claude-test', messages: [{ content: 'x'.repeat(40) }], max_tokens: 90 }),
    }).then(consume);
    await settled(api);
    expect(api.snapshot().budgets[0]!.tokens.charged).toBe(25 + 17);
    expect(api.snapshot().budgets[0]!.limits[0]!.available).toBe(1000 - 42);
  });

  it('rejects bad rules with the option named', () => {
    expect(() => pace(fetch, { limits: [{ match: 'not a url', rpm: 1 }] })).toThrow(/`limits\[0\]\.match`/);
    expect(() => pace(fetch, { limits: [{ match: 'https://a.example/', rpm: 0 }] })).toThrow(
      /`limits\[0\]\.rpm` to be a positive integer/,
    );
    expect(() => pace(fetch, { limits: [{ match: 'https://a.example/' }] })).toThrow(ConfigError);
    expect(() => pace(fetch, { limits: [{ match: 'https://a.example/', rpm: 1, tmp: 5 } as never] })).toThrow(
      /Unknown option `limits\[0\]\.tmp`/,
    );
  });

  it('the presets are options pace() accepts as they are', () => {
    for (const preset of Object.values(presets)) expect(() => pace(fetch, preset)).not.toThrow();
    expect(presets.openai.limits[0].tpm).toBe(30_000);
  });

  it('the default estimate: prompt characters / 4 plus max_tokens, kept when no usage comes back', async () => {
    await serve(() => ({ id: 'no usage here' }));
    // A clock that stands still: the budget refills a token every 60 ms, and the numbers are exact.
    const api = pace(fetch, { limits: [{ match: server.url, tpm: 1000 }], now: () => 1_000_000 });
    await api(server.url, {
      method: 'POST',
      body: JSON.stringify({ model: 'm', messages: [{ content: 'x'.repeat(401) }], max_tokens: 99 }),
    }).then(consume);
    await settled(api);
    // 401 characters -> 101 tokens, + 99.
    expect(promptTokens([{ content: 'x'.repeat(401) }]) + 99).toBe(200);
    expect(api.snapshot().budgets[0]!.tokens).toEqual({ charged: 200, pending: 0 });
    expect(api.snapshot().budgets[0]!.limits[0]!.available).toBe(800);
  });
});
