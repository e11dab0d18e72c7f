import { isIPv6 } from 'node:net';

/**
 * Longer input is no address in any spelling (the longest, a bracketed IPv6 address with an
 * embedded IPv4 tail, a zone id and a port, is about 70 characters): it is refused before any work.
 */
export const MAX_ADDRESS_LENGTH = 100;

/**
 * The bucket an address belongs to, the same for every spelling of one client (issue 9):
 * - a port is dropped (`1.2.3.4:8080`, `[2001:db8::1]:443`), and so are brackets and a zone id
 *   (`fe80::1%eth0`: the link does not tell clients apart);
 * - IPv4 is read as `inet_aton` and URL parsers read it (WHATWG URL, "IPv4 parser"): parts in
 *   decimal, octal (a leading `0`) or hex (`0x`), one to four of them (`16909060`, `1.2.772`),
 *   a trailing dot allowed; so `010.0.0.1` is `8.0.0.1`, as `ping` would reach it;
 * - IPv4-mapped (`::ffff:1.2.3.4`) and IPv4-compatible (`::1.2.3.4`, RFC 4291 §2.5.5.1) IPv6
 *   addresses are the IPv4 address; `::` and `::1` stay IPv6 (unspecified, loopback);
 * - any other IPv6 address is its `/subnet` network in RFC 5952 form (`2001:db8:0:100::/56`),
 *   because one IPv6 client usually holds a whole /64 or /56 and could otherwise rotate addresses.
 * `undefined` when the input is none of these.
 */
export function ipBucket(address: string, subnet = 56): string | undefined {
  const parsed = parseAddress(address);
  if (parsed === undefined) return undefined;
  if (typeof parsed === 'number') return formatIPv4(parsed);
  if (subnet >= 128) return formatIPv6(parsed);
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, subnet - i * 16));
    parsed[i] = parsed[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIPv6(parsed)}/${subnet}`;
}

/**
 * A client address read as `ipBucket` reads it (every spelling, a port, brackets and a zone id
 * dropped, IPv4-mapped and IPv4-compatible IPv6 folded): IPv4 as a 32-bit number, any other IPv6
 * address as its eight 16-bit groups (a new array, the caller's to change). `undefined` when the
 * input is none of these.
 */
export function parseAddress(address: string): number | number[] | undefined {
  if (address.length > MAX_ADDRESS_LENGTH) return undefined;
  const host = withoutPort(address.trim().toLowerCase());
  if (host === undefined) return undefined;
  if (!host.includes(':')) return parseIPv4(host);
  const zone = host.indexOf('%');
  const ip = zone === -1 ? host : host.slice(0, zone);
  if (!isIPv6(ip)) return undefined;
  const groups = parseIPv6(ip);
  return embeddedIPv4(groups) ?? groups;
}

const PORT = /^\d{1,5}$/;

/** The host of `host`, `host:port`, `[host]` or `[host]:port`; an unbracketed IPv6 address has no port. */
function withoutPort(text: string): string | undefined {
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    const rest = text.slice(close + 1);
    if (rest !== '' && !(rest.startsWith(':') && PORT.test(rest.slice(1)))) return undefined;
    // In a URL a zone id's `%` is written `%25` (RFC 6874).
    return text.slice(1, close).replace('%25', '%');
  }
  const colon = text.indexOf(':');
  if (colon === -1 || text.indexOf(':', colon + 1) !== -1) return text;
  // One colon: IPv4 with a port (an IPv6 address has at least two).
  return PORT.test(text.slice(colon + 1)) ? text.slice(0, colon) : undefined;
}

const DECIMAL = /^\d+$/;
const OCTAL = /^[0-7]+$/;
const HEX = /^[0-9a-f]*$/;

/** An IPv4 address as a 32-bit number, read as the WHATWG URL standard's IPv4 parser reads a host. */
function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length > 4) return undefined;
  let address = 0;
  for (let i = 0; i < parts.length; i++) {
    const value = parseIPv4Part(parts[i]!);
    if (value === undefined) return undefined;
    const last = i === parts.length - 1;
    // Each part but the last is one byte; the last fills the bytes that remain (`1.2.772` = 1.2.3.4).
    const room = last ? 2 ** (8 * (4 - i)) : 256;
    if (value >= room) return undefined;
    address = last ? address * room + value : address * 256 + value;
  }
  return address;
}

function parseIPv4Part(part: string): number | undefined {
  if (part === '' || part.length > 12) return undefined;
  if (part.startsWith('0x')) {
    const digits = part.slice(2);
    return HEX.test(digits) ? (digits === '' ? 0 : Number.parseInt(digits, 16)) : undefined;
  }
  if (part.length > 1 && part.startsWith('0')) {
    return OCTAL.test(part) ? Number.parseInt(part, 8) : undefined;
  }
  return DECIMAL.test(part) ? Number(part) : undefined;
}

export const formatIPv4 = (address: number): string =>
  `${address >>> 24}.${(address >>> 16) & 0xff}.${(address >>> 8) & 0xff}.${address & 0xff}`;

/** The IPv4 address an IPv4-mapped (`::ffff:0:0/96`) or IPv4-compatible (`::/96`) address carries. */
export function embeddedIPv4(groups: readonly number[]): number | undefined {
  for (let i = 0; i < 5; i++) if (groups[i] !== 0) return undefined;
  const address = groups[6]! * 0x10000 + groups[7]!;
  if (groups[5] === 0xffff) return address;
  // `::` (unspecified) and `::1` (loopback) are IPv6 addresses of their own, not 0.0.0.0 and 0.0.0.1.
  if (groups[5] === 0 && address > 1) return address;
  return undefined;
}

/** Eight 16-bit groups of an address `net.isIPv6` accepted (`::`, embedded IPv4 allowed). */
export function parseIPv6(ip: string): number[] {
  const tail = ip.lastIndexOf(':');
  if (ip.includes('.', tail)) {
    const [a, b, c, d] = ip
      .slice(tail + 1)
      .split('.')
      .map(Number) as [number, number, number, number];
    ip = `${ip.slice(0, tail + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = ip.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => Number.parseInt(g, 16));
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run of two or more zero groups as `::`. */
export function formatIPv6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/**
 * `parseAddress` for lists, looked up per request: the usual spellings (dotted decimal IPv4, IPv6 in
 * hex groups with at most one `::`) are read in one pass over the characters, into `scratch` for
 * IPv6, with no string or array made; anything else (a port, brackets, a zone id, a dotted IPv6 tail,
 * spaces, octal or hex IPv4) goes to `parseAddress`. The result is `parseAddress`'s, except that an
 * IPv6 address may be `scratch` itself: read it before the next call.
 */
export function readAddress(text: string, scratch: number[]): number | number[] | undefined {
  const v4 = quickIPv4(text);
  if (v4 !== -1) return v4;
  if (quickIPv6(text, scratch)) return embeddedIPv4(scratch) ?? scratch;
  return parseAddress(text);
}

/** Plain dotted decimal (four parts, 0-255, no leading zeros) as a number, else -1. */
function quickIPv4(text: string): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      // A leading zero is octal to inet_aton: the full parser decides.
      if (digits === 1 && part === 0) return -1;
      part = part * 10 + c - 48;
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  return dots === 3 && digits > 0 ? value * 256 + part : -1;
}

/** A hex digit's value, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/** IPv6 of hex groups and at most one `::` into `out` (eight groups); false for anything else. */
function quickIPv6(text: string, out: number[]): boolean {
  const n = text.length;
  if (n < 2 || n > 39) return false;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let value = 0;
    let digits = 0;
    for (let h = hexValue(text.charCodeAt(i)); h !== -1 && i < n; h = hexValue(text.charCodeAt(++i))) {
      value = value * 16 + h;
      if (++digits > 4) return false;
    }
    if (digits === 0 || count === 8) return false;
    out[count++] = value;
    if (i === n) break;
    if (text.charCodeAt(i) !== 58 || ++i === n) return false;
    if (text.charCodeAt(i) === 58) {
      if (gap !== -1) return false;
      gap = count;
      i++;
    }
  }
  if (gap === -1) return count === 8;
  // `::` stands for one zero group at least: move the groups after it to the end, zeros between.
  if (count > 7) return false;
  const tail = count - gap;
  for (let k = 1; k <= tail; k++) out[8 - k] = out[count - k]!;
  for (let k = gap; k < 8 - tail; k++) out[k] = 0;
  return true;
}
