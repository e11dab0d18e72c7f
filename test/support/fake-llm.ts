// A local stand-in for an OpenAI-style API: POST /v1/chat/completions with `model`, `messages` and
// `max_tokens`, answering `usage` (in the body, or in the last event of a stream) and the
// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers. It enforces its limits as
// OpenAI describes them: token buckets that refill continuously, a request admitted only when its
// estimate (prompt tokens + max_tokens) fits what is left, then charged what it really used.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeLlmOptions {
  /** Requests per `windowMs`. */
  rpm: number;
  /** Tokens per `windowMs`. */
  tpm: number;
  /** The "minute", shortened so a test runs in seconds. */
  windowMs: number;
  /** Completion tokens for a request allowing `max` (the test's random choice). */
  completion: (max: number) => number;
}

export interface Served {
  at: number;
  status: number;
  /** Tokens charged (0 when refused). */
  tokens: number;
  stream: boolean;
}

export interface FakeLlm {
  url: string;
  served: Served[];
  close(): Promise<void>;
}

/** Tokens of a prompt, as the client's default estimate counts them: characters / 4, rounded up. */
export const promptTokens = (messages: Array<{ content: string }>): number =>
  Math.ceil(messages.reduce((sum, m) => sum + m.content.length, 0) / 4);

class Bucket {
  private level: number;
  private at = Date.now();
  constructor(
    readonly limit: number,
    private readonly windowMs: number,
  ) {
    this.level = limit;
  }
  now(): number {
    const t = Date.now();
    this.level = Math.min(this.limit, this.level + ((t - this.at) * this.limit) / this.windowMs);
    this.at = t;
    return this.level;
  }
  take(n: number): void {
    this.now();
    this.level -= n;
  }
  /** OpenAI's reset: how long until the bucket is full, as `1.234s`. */
  reset(): string {
    return `${(((this.limit - this.now()) * this.windowMs) / this.limit / 1000).toFixed(3)}s`;
  }
}

export async function fakeLlm(options: FakeLlmOptions): Promise<FakeLlm> {
  const requests = new Bucket(options.rpm, options.windowMs);
  const tokens = new Bucket(options.tpm, options.windowMs);
  const served: Served[] = [];
  const headers = (res: ServerResponse) => {
    res.setHeader('x-ratelimit-limit-requests', String(requests.limit));
    res.setHeader('x-ratelimit-remaining-requests', String(Math.max(0, Math.floor(requests.now()))));
    res.setHeader('x-ratelimit-reset-requests', requests.reset());
    res.setHeader('x-ratelimit-limit-tokens', String(tokens.limit));
    res.setHeader('x-ratelimit-remaining-tokens', String(Math.max(0, Math.floor(tokens.now()))));
    res.setHeader('x-ratelimit-reset-tokens', tokens.reset());
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text) as {
      model: string;
      messages: Array<{ content: string }>;
      max_tokens: number;
      stream?: boolean;
    };
    const prompt = promptTokens(body.messages);
    const estimate = prompt + body.max_tokens;
    const stream = body.stream === true;
    if (requests.now() < 1 || tokens.now() < estimate) {
      headers(res);
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after-ms': '100' });
      res.end(JSON.stringify({ error: { type: 'rate_limit_exceeded' } }));
      served.push({ at: Date.now(), status: 429, tokens: 0, stream });
      return;
    }
    const completion = options.completion(body.max_tokens);
    const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
    requests.take(1);
    tokens.take(usage.total_tokens);
    served.push({ at: Date.now(), status: 200, tokens: usage.total_tokens, stream });
    headers(res);
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model: body.model, choices: [{ message: { content: 'ok' } }], usage }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const word of ['Hello', ' there', '.']) {
      res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: word } }], usage: null })}\n\n`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    res.write(`data: ${JSON.stringify({ choices: [], usage })}\n\n`);
    res.end('data: [DONE]\n\n');
  };
  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
