// Single header values as servers write them: delta seconds, epoch resets, HTTP-dates, RFC 3339
// timestamps and Go-style durations. A time is kept in the clock that produced it (`server` for an
// absolute instant on the server's clock, `delta` for a span from the response), because only the
// caller knows the skew.

/**
 * When something happens: `delta` milliseconds after the server answered, or at `server`, epoch
 * milliseconds on the server's clock. `grain` is the unit the value was written in: a value in
 * whole seconds may be up to that much later than written, never earlier (servers round up; see
 * the drafts' advice that a client never come too early).
 */
export type When = { delta: number; grain: number } | { server: number; grain: number };

const DELTA_SECONDS = /^\d{1,12}$/;

/** `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function readRetryAfter(value: string | null): When | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (DELTA_SECONDS.test(text)) return { delta: Number(text) * 1000, grain: 0 };
  const at = parseHttpDate(text);
  return at === undefined ? undefined : { server: at, grain: 0 };
}

/** An HTTP-date (IMF-fixdate, or the obsolete forms `Date.parse` also reads), in epoch ms. */
export function parseHttpDate(text: string): number | undefined {
  // Date.parse accepts far more than HTTP-dates ("1", "2024"); require a weekday and a GMT zone.
  if (!/^[A-Za-z]{3,9},? .*\bGMT$/.test(text) && !/^[A-Za-z]{3} [A-Za-z]{3} /.test(text)) return undefined;
  const ms = Date.parse(text.endsWith('GMT') ? text : `${text} GMT`);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * `X-RateLimit-Reset` as APIs send it: epoch seconds (GitHub, tollgate's `legacy`), epoch
 * milliseconds, or delta seconds (some gateways). Told apart by size: no delta is decades long.
 */
export function readLegacyReset(value: string | null): When | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!/^\d{1,16}(\.\d{1,6})?$/.test(text)) return undefined;
  const n = Number(text);
  if (n >= 1e12) return { server: n, grain: 1 };
  if (n >= 1e9) return { server: n * 1000, grain: Number.isInteger(n) ? 1000 : 1 };
  return { delta: n * 1000, grain: Number.isInteger(n) ? 1000 : 1 };
}

const GO_DURATION =
  /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/;

/** OpenAI's reset spans: `1s`, `6m0s`, `20ms`, `1h2m3.5s`. Milliseconds, or undefined. */
export function parseGoDuration(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  const m = text === '' ? null : GO_DURATION.exec(text);
  if (!m || m.slice(1).every((part) => part === undefined)) return undefined;
  const [, h = '0', min = '0', s = '0', ms = '0'] = m;
  return Math.ceil(Number(h) * 3_600_000 + Number(min) * 60_000 + Number(s) * 1000 + Number(ms));
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Anthropic's resets: an RFC 3339 timestamp, in epoch ms on the server's clock. */
export function parseRfc3339(value: string | null): When | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!RFC3339.test(text)) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? { server: ms, grain: text.includes('.') ? 1 : 1000 } : undefined;
}

/** A non-negative integer header (`X-RateLimit-Remaining: 42`), or undefined. */
export function readCount(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  return /^\d{1,15}$/.test(text) ? Number(text) : undefined;
}
