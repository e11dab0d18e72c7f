/**
 * A local stand-in for an OpenAI-style chat API, so the example runs without an account:
 * POST /v1/chat/completions with `messages` and `max_tokens` answers a completion and its `usage`
 * (`prompt_tokens`, `completion_tokens`, `total_tokens`). Tokens are counted as 4 characters each;
 * the reply is as long as the prompt asks ("... in N words"), at most `max_tokens`, so the numbers
 * are known in advance.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ChatRequest {
  model?: string;
  messages: { role: string; content: string }[];
  max_tokens?: number;
}

/** Tokens of a text as this fake (and the example's estimate) counts them: 4 characters each. */
export const tokensOf = (text: string): number => Math.ceil(text.length / 4);

/** The usage the fake reports for `request`. */
export function usageOf(request: ChatRequest): {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
} {
  const prompt = request.messages.map((m) => m.content).join('\n');
  const asked = Number(/in (\d+) words/.exec(prompt)?.[1] ?? 20);
  const completion = Math.min(asked, request.max_tokens ?? 256);
  const promptTokens = tokensOf(prompt);
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
  };
}

/** Starts the fake on `port` (0: any free one); resolves with its base URL and the server. */
export async function startFakeLlm(port = 0): Promise<{ url: string; server: Server }> {
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    let body = '';
    for await (const chunk of req) body += chunk;
    let request: ChatRequest;
    try {
      request = JSON.parse(body) as ChatRequest;
      if (!Array.isArray(request.messages)) throw new Error('no messages');
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad request"}');
      return;
    }
    const usage = usageOf(request);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        id: `chatcmpl-${Date.now()}`,
        object: 'chat.completion',
        model: request.model ?? 'fake-1',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: 'lorem '.repeat(usage.completion_tokens).trim() },
          },
        ],
        usage,
      }),
    );
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
