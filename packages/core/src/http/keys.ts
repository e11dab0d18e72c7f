import { createHash } from 'node:crypto';
import { configError } from '../errors.js';
import { checkFunction, checkOptions } from './check-options.js';
import { ipBucket, MAX_ADDRESS_LENGTH } from './ip-address.js';
import type { RequestView } from './request-view.js';

/**
 * Turns a request into the key its counters live under. `undefined` (or `''`) means "no key for this
 * request": the limiter then counts it by IP address and logs TOLLGATE_MISSING_KEY once.
 */
export type KeyFunction<Req> = (req: Req) => string | undefined | Promise<string | undefined>;

export interface ByIpOptions {
  /**
   * IPv6 addresses are counted per network of this prefix length, since one client usually holds a
   * whole /64 or /56. `128` counts every address on its own.
   * @default 56
   */
  ipv6Subnet?: number;
}

export interface FallbackOptions<Req> {
  /**
   * The key for requests without the header, e.g. `byIp()`.
   * @default none: such requests are counted by IP, with a TOLLGATE_MISSING_KEY warning once
   */
  fallback?: KeyFunction<Req>;
}

// Each helper has its own prefix, and a header name cannot contain `:`, so keys of different kinds
// never collide: `ip:1.2.3.4`, `hdr:x-org:1.2.3.4`, `key:<sha256>`.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Counts by the client address the framework trusts (never a raw `X-Forwarded-For`). */
export function byIp(options: ByIpOptions = {}): (view: RequestView) => string | undefined {
  checkOptions(options, ['ipv6Subnet'], '`byIp()` options');
  const { ipv6Subnet = 56 } = options;
  if (!Number.isInteger(ipv6Subnet) || ipv6Subnet < 1 || ipv6Subnet > 128) {
    throw configError('ipv6Subnet', 'an integer from 1 to 128', ipv6Subnet);
  }
  // Clients come back: remember the last few thousand addresses' keys rather than parse each time
  // (never input too long to be an address: the cache holds at most 4096 short strings).
  const seen = new Map<string, string>();
  return function byIp(view) {
    const ip = view.ip;
    if (!ip) return undefined;
    if (ip.length > MAX_ADDRESS_LENGTH) return INVALID_IP_KEY;
    let key = seen.get(ip);
    if (key === undefined) {
      const bucket = ipBucket(ip, ipv6Subnet);
      key = bucket === undefined ? INVALID_IP_KEY : `ip:${bucket}`;
      if (seen.size >= 4096) seen.clear();
      seen.set(ip, key);
    }
    return key;
  };
}

/**
 * The one key of every request whose address is no address (a proxy that writes junk): they share
 * one bucket rather than each getting its own, and the limiter says so once (TOLLGATE_INVALID_IP).
 */
export const INVALID_IP_KEY = 'ip:invalid';

/** Counts by the value of a request header, e.g. a tenant id set by the authentication in front. */
export function byHeader(name: string, options: FallbackOptions<RequestView> = {}): KeyFunction<RequestView> {
  const read = headerReader(name);
  return withFallback(read, fallbackOf(options, '`byHeader()` options'));
}

function headerReader(name: string): (view: RequestView) => string | undefined {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw configError('name', 'an HTTP header name', name);
  const header = name.toLowerCase();
  return (view) => {
    const value = view.header(header)?.trim();
    return value ? `hdr:${header}:${value}` : undefined;
  };
}

/**
 * Counts by API key: the token of `Authorization: Bearer <token>`, else `X-API-Key`. The key is a
 * SHA-256 digest of the secret, so secrets never reach the store (or Redis) in clear.
 */
export function byApiKey(options: FallbackOptions<RequestView> = {}): KeyFunction<RequestView> {
  return withFallback(apiKeyOf, fallbackOf(options, '`byApiKey()` options'));
}

function apiKeyOf(view: RequestView): string | undefined {
  const secret = BEARER.exec(view.header('authorization') ?? '')?.[1] ?? view.header('x-api-key')?.trim();
  return secret ? `key:${createHash('sha256').update(secret).digest('base64url')}` : undefined;
}

function fallbackOf<Req>(
  options: FallbackOptions<Req> | undefined,
  what: string,
): KeyFunction<Req> | undefined {
  if (options === undefined) return undefined;
  checkOptions(options, ['fallback'], what);
  checkFunction(options.fallback, 'fallback');
  return options.fallback;
}

function withFallback<Req>(
  read: (req: Req) => string | undefined,
  fallback: KeyFunction<Req> | undefined,
): KeyFunction<Req> {
  if (fallback === undefined) return read;
  return (req) => read(req) ?? fallback(req);
}

/** The key helpers an adapter exports, taking its framework's request. */
export interface KeyHelpers<Req> {
  /** Counts by the client address the framework trusts; IPv6 per /56 network by default. */
  byIp(options?: ByIpOptions): (req: Req) => string | undefined;
  /** Counts by a request header's value; mount the limiter after the authentication that sets it. */
  byHeader(name: string, options?: FallbackOptions<Req>): KeyFunction<Req>;
  /** Counts by `Authorization: Bearer` or `X-API-Key`, hashed. */
  byApiKey(options?: FallbackOptions<Req>): KeyFunction<Req>;
}

/** Binds the key helpers to a framework: `toView` maps its request to a RequestView. */
export function keyHelpers<Req>(toView: (req: Req) => RequestView): KeyHelpers<Req> {
  const bind = (read: (view: RequestView) => string | undefined) => (req: Req) => read(toView(req));
  return {
    byIp: (options) => bind(byIp(options)),
    byHeader: (name, options) =>
      withFallback(bind(headerReader(name)), fallbackOf(options, '`byHeader()` options')),
    byApiKey: (options) => withFallback(bind(apiKeyOf), fallbackOf(options, '`byApiKey()` options')),
  };
}
