import { isIPv4, isIPv6 } from 'node:net';

/**
 * The bucket an address belongs to: IPv4 as is, IPv4-mapped IPv6 (`::ffff:1.2.3.4`) as the IPv4
 * address, any other IPv6 address as its `/subnet` network in RFC 5952 form (`2001:db8:0:100::/56`),
 * because one IPv6 client usually holds a whole /64 or /56 and could otherwise rotate addresses.
 * Anything unparseable is returned trimmed and lower-cased.
 */
export function ipBucket(address: string, subnet = 56): string {
  let ip = address.trim().toLowerCase();
  const zone = ip.indexOf('%');
  if (zone !== -1) ip = ip.slice(0, zone);
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return ip;
  const groups = parseIPv6(ip);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0) {
    if (groups[5] === 0xffff) {
      const hi = groups[6]!;
      const lo = groups[7]!;
      return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
    }
  }
  if (subnet >= 128) return formatIPv6(groups);
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, subnet - i * 16));
    groups[i] = groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIPv6(groups)}/${subnet}`;
}

/** Eight 16-bit groups of an address `net.isIPv6` accepted (`::`, embedded IPv4 allowed). */
function parseIPv6(ip: string): number[] {
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
function formatIPv6(groups: readonly number[]): string {
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
