/**
 * An API in front of an LLM, limited by tokens: per API key, 10 000 tokens a minute and 200 000 a
 * day. A call's tokens are known only once the LLM answers (`usage.total_tokens`), so the limiter
 * reserves an estimate when the request arrives (`cost`) and settles the actual when the response
 * closes (`settle`): usage is exact, a call that used more than its estimate is charged in full even
 * past the limit (up to `maxDebt`), and a key in debt waits until it has paid it off.
 *
 *   node --import tsx examples/llm-proxy/server.ts      # PORT=3000; starts the fake LLM too
 *   curl -H 'Authorization: Bearer sk-test-1' -H 'content-type: application/json' \
 *     -d '{"messages":[{"role":"user","content":"Say hello in 40 words"}],"max_tokens":100}' \
 *     localhost:3000/v1/chat/completions -i
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { byApiKey, type Logger, type Policy, rateLimit, type Store } from '@tollgate/express';
import express, { type Express, type Request, type Response } from 'express';
import { type ChatRequest, startFakeLlm, tokensOf } from './fake-llm.ts';

/** Tokens per minute and per calendar day (UTC), per API key. */
export const TOKEN_POLICIES: Policy[] = [
  { name: 'tpm', limit: 10_000, window: '1m' },
  { name: 'tpd', algorithm: 'fixed-window', limit: 200_000, window: { calendar: 'day' } },
];

export interface LlmProxyOptions {
  /** The LLM's base URL (the fake's, or e.g. https://api.openai.com). */
  upstream: string;
  policies?: Policy[];
  store?: Store;
  logger?: Logger;
}

/**
 * What a call is reserved at: its prompt's tokens plus what it may generate (`max_tokens`), capped
 * at the smallest capacity: an estimate above a policy's capacity is denied for ever
 * (TOLLGATE_ESTIMATE_ABOVE_CAPACITY), and settling charges whatever the call really used anyway.
 */
function estimate(policies: Policy[]) {
  const capacity = Math.min(...policies.map((p) => p.burst ?? p.limit));
  return (req: Request): number => {
    const body = req.body as Partial<ChatRequest> | undefined;
    const prompt = (body?.messages ?? []).map((m) => String(m?.content ?? '')).join('\n');
    const maxTokens = Number.isSafeInteger(body?.max_tokens) ? body!.max_tokens! : 256;
    return Math.min(capacity, tokensOf(prompt) + Math.max(0, maxTokens));
  };
}

export function createApp(options: LlmProxyOptions): Express {
  const policies = options.policies ?? TOKEN_POLICIES;
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  // Mount after your authentication in a real app: the key is only as good as the check behind it.
  app.post(
    '/v1/chat/completions',
    rateLimit({
      policies,
      key: byApiKey(),
      cost: estimate(policies),
      // Read when the response closes: what the LLM said the call used. Undefined (the LLM failed
      // before answering) keeps the estimate; refund gives it back when the upstream failed.
      settle: (_req, res) => (res as Response).locals.usage?.total_tokens,
      refund: { onFailure: true, isFailure: (status) => status >= 500 },
      ...(options.store === undefined ? {} : { store: options.store }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    }),
    async (req: Request, res: Response) => {
      try {
        const upstream = await fetch(`${options.upstream}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(req.body),
        });
        const answer = (await upstream.json()) as { usage?: { total_tokens?: number } };
        res.locals.usage = answer.usage;
        res.status(upstream.status).json(answer);
      } catch {
        res.status(502).json({ error: 'the LLM could not be reached' });
      }
    },
  );
  return app;
}

const runDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (runDirectly) {
  const llm = await startFakeLlm(Number(process.env.LLM_PORT ?? 0));
  const port = Number(process.env.PORT ?? 3000);
  createApp({ upstream: process.env.LLM_URL ?? llm.url }).listen(port, (error) => {
    if (error) throw error;
    console.log(`llm-proxy listening on http://localhost:${port} (fake LLM at ${llm.url})`);
  });
}
