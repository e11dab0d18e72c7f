import type { PaceOptions } from './options.js';

/**
 * Starting points for a few well-known APIs, as plain data: spread one into `pace()`'s options, or
 * copy it and put in your own account's numbers (the limits below are the published entry tiers
 * as of late 2026; every provider raises them per account). The answers' own headers are learned
 * on top: where they state less, the calls wait for the lower number.
 *
 * @example
 * const openai = pace(fetch, presets.openai);
 * const mine = pace(fetch, { ...presets.openai, limits: [{ ...presets.openai.limits[0], tpm: 2_000_000 }] });
 */
export const presets = {
  /**
   * An OpenAI-compatible API (`x-ratelimit-*-requests` / `-tokens` headers, `usage` in bodies):
   * one budget per model, as OpenAI counts; POST calls retried on 429 and 503, which the API did
   * not act on.
   */
  openai: {
    limits: [{ name: 'openai', match: 'https://api.openai.com/', model: '*', rpm: 500, tpm: 30_000 }],
    retry: { methods: ['GET', 'POST', 'DELETE'], statuses: [429, 503] },
  },
  /**
   * Anthropic's Messages API (`anthropic-ratelimit-*` headers, `usage.input_tokens` and
   * `output_tokens`): 50 requests a minute per model; its input- and output-token limits are
   * learned from its headers. 529 means overloaded: retried like 429.
   */
  anthropic: {
    limits: [{ name: 'anthropic', match: 'https://api.anthropic.com/', model: '*', rpm: 50 }],
    retry: { methods: ['GET', 'POST'], statuses: [429, 503, 529] },
  },
  /**
   * GitHub's REST API: 5 000 requests an hour for a token (learned from `X-RateLimit-*` too) and
   * its secondary limit of 900 points a minute (a GET is one point); its secondary-limit
   * answers are 403 or 429 with `Retry-After` (a 403 is not retried: most are not limits).
   */
  github: {
    limits: [{ name: 'github', match: 'https://api.github.com/', rpm: 900, rph: 5_000 }],
    retry: { statuses: [429, 500, 502, 503, 504] },
  },
} as const satisfies Record<string, PaceOptions>;
