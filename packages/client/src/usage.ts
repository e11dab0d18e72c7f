import type { CallInfo } from './limits.js';

/**
 * A token estimate for an LLM call, before it is sent: the characters of its prompt / 4 (the
 * providers' own rule of thumb for English text), rounded up, plus the most it may generate
 * (`max_tokens`, `max_completion_tokens` or `max_output_tokens`). Undefined for a body that names
 * no model. An estimate only paces; the charge is settled to the response's usage.
 */
export function estimateTokens(call: CallInfo): number | undefined {
  const body = call.json;
  if (call.model === undefined || typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  let chars = 0;
  for (const field of ['messages', 'prompt', 'input', 'system', 'instructions', 'tools']) {
    chars += textLength(b[field], 0);
  }
  const most = [b.max_tokens, b.max_completion_tokens, b.max_output_tokens].find(
    (n): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0,
  );
  return Math.ceil(chars / 4) + (most ?? 0);
}

/** The characters of every string in `value` (message contents, parts), bounded in depth. */
function textLength(value: unknown, depth: number): number {
  if (typeof value === 'string') return value.length;
  if (depth > 8 || typeof value !== 'object' || value === null) return 0;
  let sum = 0;
  for (const item of Array.isArray(value) ? value : Object.values(value)) sum += textLength(item, depth + 1);
  return sum;
}

/**
 * The tokens one answer says it used: OpenAI's `usage.total_tokens` (chat, completions,
 * embeddings, responses), else `usage.input_tokens + usage.output_tokens` (Anthropic, the
 * Responses API), else `usage.prompt_tokens + usage.completion_tokens`.
 */
export function usageTokens(body: unknown): number | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const usage = (body as { usage?: unknown }).usage;
  if (typeof usage !== 'object' || usage === null) return undefined;
  const u = usage as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
  const total = n(u.total_tokens);
  if (total !== undefined) return total;
  const input = n(u.input_tokens) ?? n(u.prompt_tokens);
  const output = n(u.output_tokens) ?? n(u.completion_tokens);
  if (input === undefined && output === undefined) return undefined;
  return (input ?? 0) + (output ?? 0);
}

/** The most of a body read for its usage: past this, the estimate stands. */
const MAX_BODY = 16 * 1024 * 1024;

/**
 * Reads a response (a clone: the caller reads the original) to the end and returns the tokens its
 * usage states, or undefined when it states none. A JSON body is parsed whole; a Server-Sent
 * Events stream (`text/event-stream`) is read event by event: OpenAI's last chunk carries `usage`
 * (with `stream_options: { include_usage: true }`); Anthropic's `message_start` carries the input
 * tokens and each `message_delta` the output tokens so far. `read` replaces the JSON rule.
 */
export async function readUsage(
  response: Response,
  read: (body: unknown) => number | undefined,
): Promise<number | undefined> {
  const type = response.headers.get('content-type') ?? '';
  if (response.body === null) return undefined;
  if (type.includes('text/event-stream')) return readStream(response.body, read);
  if (!type.includes('json')) {
    await response.body.cancel();
    return undefined;
  }
  const text = await readText(response.body);
  if (text === undefined) return undefined;
  try {
    return read(JSON.parse(text));
  } catch {
    return undefined;
  }
}

async function readText(body: ReadableStream<Uint8Array>): Promise<string | undefined> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of body) {
    text += decoder.decode(chunk, { stream: true });
    if (text.length > MAX_BODY) {
      await body.cancel().catch(() => {});
      return undefined;
    }
  }
  return text + decoder.decode();
}

async function readStream(
  body: ReadableStream<Uint8Array>,
  read: (body: unknown) => number | undefined,
): Promise<number | undefined> {
  const decoder = new TextDecoder();
  let pending = '';
  let total: number | undefined;
  let input: number | undefined;
  let output: number | undefined;
  let seen = 0;
  const event = (data: string) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const p = parsed as { type?: unknown; message?: { usage?: unknown }; usage?: unknown };
    if (p.type === 'message_start' && p.message !== undefined) {
      const u = p.message.usage as Record<string, unknown> | undefined;
      if (typeof u?.input_tokens === 'number') input = u.input_tokens;
      if (typeof u?.output_tokens === 'number') output = u.output_tokens;
      return;
    }
    if (p.type === 'message_delta') {
      const u = p.usage as Record<string, unknown> | undefined;
      if (typeof u?.output_tokens === 'number') output = u.output_tokens;
      if (typeof u?.input_tokens === 'number') input = u.input_tokens;
      return;
    }
    const tokens = read(parsed);
    if (tokens !== undefined) total = tokens;
  };
  for await (const chunk of body) {
    seen += chunk.byteLength;
    if (seen > MAX_BODY) {
      await body.cancel().catch(() => {});
      break;
    }
    pending += decoder.decode(chunk, { stream: true });
    let end = pending.indexOf('\n');
    while (end >= 0) {
      const line = pending.slice(0, end).replace(/\r$/, '');
      pending = pending.slice(end + 1);
      if (line.startsWith('data:')) {
        const data = line.slice(5).trim();
        if (data !== '' && data !== '[DONE]') event(data);
      }
      end = pending.indexOf('\n');
    }
  }
  if (total !== undefined) return total;
  if (input === undefined && output === undefined) return undefined;
  return (input ?? 0) + (output ?? 0);
}
