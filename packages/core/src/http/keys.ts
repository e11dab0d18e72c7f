import { createHash } from 'node:crypto';
import { checkOptions } from '../check-options.js';
import { CallbackError, configError, describeValue } from '../errors.js';
import { WARNINGS, type Warner } from '../warnings.js';
import { ipBucket, MAX_ADDRESS_LENGTH } from './ip-address.js';
import type { RequestView } from './request-view.js';

/**
 * Turns a request into the key its counters live under. `undefined` (or `''`) means "no key for this
 * request": the limiter then counts it by IP address and logs TOLLGATE_MISSING_KEY once.
 */
export type KeyFunction<Req> = (req: Req) => string | undefined | Promise<string | undefined>;

/** Options of `byIp()`. */
export interface ByIpOptions {
  /**
   * IPv6 addresses are counted per network of this prefix length, since one client usually holds a
   * whole /64 or /56. `128` counts every address on its own.
   * @default 56
   */
  ipv6Subnet?: number;
}

/** Options of `byHeader()` and `byApiKey()`: what counts a request that lacks the header. */
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
  const { fallback } = options;
  if (fallback !== undefined && typeof fallback !== 'function') {
    throw configError(
      'fallback',
      'a key function such as `byIp()`',
      fallback,
      typeof fallback === 'string'
        ? `For one key shared by every request without it, write \`fallback: () => ${JSON.stringify(fallback)}\`.`
        : '',
    );
  }
  return fallback;
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

/** The key of a request when the limiter has no `key` option: its client address. */
export const defaultKey: (view: RequestView) => string | undefined = byIp();

/**
 * Checks what a key function returned, per limiter: a string, or nothing (then the client address
 * stands in). Warns once each when requests arrive through a proxy the app does not trust (or
 * trusts too much), when a key is missing and when the address is no address.
 */
export class KeyCheck {
  private proxyChecked = false;
  private forwardedChecked = false;
  private portChecked = false;

  constructor(
    private readonly warner: Warner,
    private readonly limiterName: string,
  ) {}

  check(view: RequestView, key: unknown): string {
    if (typeof key !== 'string' && key !== undefined && key !== null) {
      throw new CallbackError(
        'key',
        `Expected the \`key\` function of limiter '${this.limiterName}' to return a string or undefined, got ${describeValue(key)}.`,
      );
    }
    let resolved = key;
    if (!resolved) {
      resolved = defaultKey(view) ?? 'ip:unknown';
      this.warner.warn(
        WARNINGS.MISSING_KEY,
        `The key function of limiter '${this.limiterName}' returned no key for ${view.method} ${view.path}; such requests are counted by IP address (${resolved}). Return a key for every request, or give byHeader()/byApiKey() a \`fallback\`.`,
      );
    }
    if (resolved.startsWith('ip:')) {
      if (!this.proxyChecked) this.checkProxy(view);
      if (!this.forwardedChecked) this.checkForwarded(view);
      if (!this.portChecked && resolved !== INVALID_IP_KEY) this.checkPort(view);
    }
    if (resolved === INVALID_IP_KEY) {
      this.warner.warn(
        WARNINGS.INVALID_IP,
        `The client address of ${view.method} ${view.path} is no IP address (${JSON.stringify(view.ip?.slice(0, 64))}); every such request shares the rate-limit key '${INVALID_IP_KEY}'. Check what the proxy in front writes into X-Forwarded-For.`,
      );
    }
    return resolved;
  }

  private checkForwarded(view: RequestView): void {
    if (view.header('forwarded') === undefined) return;
    this.forwardedChecked = true;
    if (!view.trustProxy) {
      this.warner.warn(
        WARNINGS.FORWARDED_HEADER,
        "A Forwarded header arrived but the app does not trust proxies, so every client behind the proxy shares one rate-limit key. Trust the proxy (Express: app.set('trust proxy', 1); Koa: app.proxy = true and app.maxIpsCount = 1) and have it send X-Forwarded-For, the header Express and Koa read.",
      );
    }
  }

  /** An address with a port: `1.2.3.4:80` (one colon) or `[::1]:80` (a bracket). */
  private checkPort(view: RequestView): void {
    const ip = view.ip;
    if (!ip) return;
    const colon = ip.indexOf(':');
    if (!(ip.startsWith('[') || (colon !== -1 && colon === ip.lastIndexOf(':')))) return;
    this.portChecked = true;
    this.warner.warn(
      WARNINGS.IP_WITH_PORT,
      `The client address of ${view.method} ${view.path} carries a port (${JSON.stringify(ip.slice(0, 64))}); byIp() drops it, so each client still has one bucket. Something in front writes host:port into X-Forwarded-For (some cloud load balancers do): check the proxy setup.`,
    );
  }

  private checkProxy(view: RequestView): void {
    if (view.header('x-forwarded-for') === undefined) return;
    this.proxyChecked = true;
    if (!view.trustProxy) {
      this.warner.warn(
        WARNINGS.TRUST_PROXY,
        "X-Forwarded-For arrived but the app does not trust proxies, so every client behind the proxy shares one rate-limit key. Express: app.set('trust proxy', 1); Koa: app.proxy = true and app.maxIpsCount = 1 (the number of proxies in front).",
      );
    } else if (view.trustAnyProxy === true) {
      this.warner.warn(
        WARNINGS.PERMISSIVE_TRUST_PROXY,
        "The app trusts every X-Forwarded-For hop, so a client can claim any address and get a fresh rate-limit bucket with each request. Trust only your proxies: Express app.set('trust proxy', 1); Koa app.maxIpsCount = 1.",
      );
    }
  }
}
