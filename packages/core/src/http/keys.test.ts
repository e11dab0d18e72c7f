import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { byApiKey, byHeader, byIp, keyHelpers } from './keys.js';
import type { RequestView } from './request-view.js';

function view(headers: Record<string, string> = {}, ...address: [string?]): RequestView {
  const ip = address.length === 0 ? '1.2.3.4' : address[0];
  return {
    method: 'GET',
    path: '/',
    header: (name) => headers[name],
    ip,
    trustProxy: false,
  };
}

const sha = (secret: string) => createHash('sha256').update(secret).digest('base64url');

describe('byIp', () => {
  it('keys by the framework-resolved address, never by X-Forwarded-For', () => {
    expect(byIp()(view({ 'x-forwarded-for': '9.9.9.9' }))).toBe('ip:1.2.3.4');
    expect(byIp()(view({}, '::ffff:1.2.3.4'))).toBe('ip:1.2.3.4');
    expect(byIp()(view({}, '2001:db8:0:1ff::7'))).toBe('ip:2001:db8:0:100::/56');
    expect(byIp({ ipv6Subnet: 64 })(view({}, '2001:db8:0:1ff::7'))).toBe('ip:2001:db8:0:1ff::/64');
  });

  it('returns undefined when the framework knows no address', () => {
    expect(byIp()(view({}, undefined))).toBeUndefined();
    expect(byIp()(view({}, ''))).toBeUndefined();
  });

  it('rejects bad options at construction', () => {
    expect(() => byIp({ ipv6Subnet: 0 })).toThrow(
      new ConfigError('Expected `ipv6Subnet` to be an integer from 1 to 128, got `0` (number).'),
    );
    expect(() => byIp({ ipv6Subnet: 56.5 })).toThrow(ConfigError);
    expect(() => byIp({ subnet: 56 } as never)).toThrow(
      new ConfigError('Unknown option `subnet` in `byIp()` options. It takes `ipv6Subnet`.'),
    );
  });
});

describe('byHeader', () => {
  it('keys by the lower-cased header name and the trimmed value', () => {
    expect(byHeader('X-Org')(view({ 'x-org': ' acme ' }))).toBe('hdr:x-org:acme');
  });

  it('uses the fallback, or returns undefined, when the header is absent or empty', async () => {
    expect(byHeader('x-org')(view())).toBeUndefined();
    expect(byHeader('x-org')(view({ 'x-org': '  ' }))).toBeUndefined();
    expect(await byHeader('x-org', { fallback: byIp() })(view())).toBe('ip:1.2.3.4');
  });

  it('cannot collide with other key kinds', () => {
    // A header value that looks like an address still lives under `hdr:`.
    expect(byHeader('x-org')(view({ 'x-org': '1.2.3.4' }))).toBe('hdr:x-org:1.2.3.4');
    // Header names cannot contain `:`, so `hdr:<name>:<value>` splits one way only.
    expect(() => byHeader('x-a:b')).toThrow(ConfigError);
  });

  it('rejects names that are not header names, and bad options', () => {
    expect(() => byHeader('x org')).toThrow(
      new ConfigError('Expected `name` to be an HTTP header name, got "x org" (string).'),
    );
    expect(() => byHeader('x-org', { fallback: 'ip' as never })).toThrow(
      new ConfigError(
        'Expected `fallback` to be a key function such as `byIp()`, got "ip" (string). For one key shared by every request without it, write `fallback: () => "ip"`.',
      ),
    );
  });
});

describe('byApiKey', () => {
  it('keys by a SHA-256 digest of the Bearer token, never the secret', () => {
    const key = byApiKey()(view({ authorization: 'Bearer s3cret-token' }));
    expect(key).toBe(`key:${sha('s3cret-token')}`);
    expect(key).not.toContain('s3cret');
    expect(byApiKey()(view({ authorization: 'bearer   s3cret-token ' }))).toBe(key);
  });

  it('falls back to X-API-Key when there is no Bearer token', () => {
    expect(byApiKey()(view({ 'x-api-key': 'abc' }))).toBe(`key:${sha('abc')}`);
    expect(byApiKey()(view({ authorization: 'Basic dXNlcjpwYXNz', 'x-api-key': 'abc' }))).toBe(
      `key:${sha('abc')}`,
    );
    expect(byApiKey()(view({ authorization: 'Bearer a', 'x-api-key': 'b' }))).toBe(`key:${sha('a')}`);
  });

  it('returns undefined without a key, or the fallback', async () => {
    expect(byApiKey()(view({ authorization: 'Basic dXNlcjpwYXNz' }))).toBeUndefined();
    expect(await byApiKey({ fallback: () => 'anon' })(view())).toBe('anon');
  });
});

describe('keyHelpers', () => {
  interface Native {
    headers: Record<string, string>;
    address: string;
  }
  const {
    byIp: ip,
    byHeader: header,
    byApiKey: apiKey,
  } = keyHelpers<Native>((req) => view(req.headers, req.address));
  const req: Native = { headers: { 'x-org': 'acme', 'x-api-key': 'k' }, address: '::ffff:5.6.7.8' };

  it('binds the helpers to a framework request', async () => {
    expect(ip()(req)).toBe('ip:5.6.7.8');
    expect(header('x-org')(req)).toBe('hdr:x-org:acme');
    expect(apiKey()(req)).toBe(`key:${sha('k')}`);
  });

  it('passes the framework request to a fallback', async () => {
    const none: Native = { headers: {}, address: '1.1.1.1' };
    expect(await header('x-org', { fallback: (r) => `addr:${r.address}` })(none)).toBe('addr:1.1.1.1');
    expect(await apiKey({ fallback: ip() })(none)).toBe('ip:1.1.1.1');
  });

  it('validates like the core helpers', () => {
    expect(() => header('bad name')).toThrow(ConfigError);
    expect(() => apiKey({ fallbak: ip() } as never)).toThrow(
      new ConfigError(
        'Unknown option `fallbak` in `byApiKey()` options. Did you mean `fallback`? It takes `fallback`.',
      ),
    );
  });
});
