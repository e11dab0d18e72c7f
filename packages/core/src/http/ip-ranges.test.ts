import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAddress } from './ip-address.js';
import { firstOverlap, type IpRange, isPrivateAddress, parseRange, RangeSet } from './ip-ranges.js';

const range = (entry: string) => {
  const parsed = parseRange(entry);
  if (typeof parsed === 'string') throw new Error(`${entry}: ${parsed}`);
  return parsed;
};

describe('parseRange', () => {
  it('reads addresses and CIDR ranges of both families', () => {
    expect(range('203.0.113.7')).toEqual({ family: 4, start: 0xcb007107n, end: 0xcb007107n });
    expect(range('10.0.0.0/8')).toEqual({ family: 4, start: 0x0a000000n, end: 0x0affffffn });
    expect(range('0.0.0.0/0')).toEqual({ family: 4, start: 0n, end: 0xffffffffn });
    expect(range('2001:db8::/32')).toEqual({
      family: 6,
      start: 0x20010db8n << 96n,
      end: (0x20010db8n << 96n) | ((1n << 96n) - 1n),
    });
    expect(range('::1')).toEqual({ family: 6, start: 1n, end: 1n });
    expect(range('::/0')).toEqual({ family: 6, start: 0n, end: (1n << 128n) - 1n });
  });

  it('folds IPv4-mapped and IPv4-compatible ranges to IPv4, as client addresses are', () => {
    expect(range('::ffff:10.0.0.0/104')).toEqual(range('10.0.0.0/8'));
    expect(range('::ffff:a00:0/104')).toEqual(range('10.0.0.0/8'));
    expect(range('::ffff:1.2.3.4')).toEqual(range('1.2.3.4'));
    expect(range('::1.2.3.4')).toEqual(range('1.2.3.4'));
    // Wider than the embedded IPv4 space: an IPv6 range.
    expect(range('::fffe:0:0/95').family).toBe(6);
  });

  it.each([
    ['10.0.0.0/33', 'The prefix length of an IPv4 range is a whole number from 0 to 32.'],
    ['2001:db8::/129', 'The prefix length of an IPv6 range is a whole number from 0 to 128.'],
    ['10.0.0.0/08', 'The prefix length of an IPv4 range is a whole number from 0 to 32.'],
    ['10.0.0.0/', 'The prefix length of an IPv4 range is a whole number from 0 to 32.'],
    ['10.0.0.0/-1', 'The prefix length of an IPv4 range is a whole number from 0 to 32.'],
    [
      '10.1.2.3/8',
      "It has address bits set past its /8 prefix: write '10.0.0.0/8' for the range, or '10.1.2.3' for the one address.",
    ],
    [
      '2001:db8::1/48',
      "It has address bits set past its /48 prefix: write '2001:db8::/48' for the range, or '2001:db8::1' for the one address.",
    ],
    [
      '010.0.0.1',
      'It is no IPv4 or IPv6 address: write each part in decimal from 0 to 255, without leading zeros.',
    ],
    [
      '256.0.0.1',
      'It is no IPv4 or IPv6 address: write each part in decimal from 0 to 255, without leading zeros.',
    ],
    ['10.0.0', 'It is no IPv4 or IPv6 address: write all four parts of an IPv4 address in decimal.'],
    [' 10.0.0.1', 'It is no IPv4 or IPv6 address: remove the spaces around it.'],
    ['10.0.0.1:80', 'It is no IPv4 or IPv6 address: an entry has no port.'],
    ['[2001:db8::1]', 'It is no IPv4 or IPv6 address: write an IPv6 address without brackets.'],
    ['fe80::1%eth0', 'It is no IPv4 or IPv6 address: an entry has no zone id.'],
    [
      '10.*',
      "It is no IPv4 or IPv6 address: write a wildcard as a CIDR range, e.g. '10.0.0.0/8' for '10.*'.",
    ],
    [
      '10.0.0.1-10.0.0.9',
      "It is no IPv4 or IPv6 address: write a span of addresses as CIDR ranges, e.g. '10.0.0.0/24'.",
    ],
    ['localhost', 'It is no IPv4 or IPv6 address.'],
    ['', 'It is no IPv4 or IPv6 address.'],
  ])('refuses %j, saying why and the fix', (entry, why) => {
    expect(parseRange(entry)).toBe(why);
  });
});

describe('RangeSet', () => {
  it('merges overlapping and adjacent ranges', () => {
    const set = new RangeSet(
      ['10.0.0.0/9', '10.128.0.0/9', '10.0.0.5', '192.168.0.0/16', '2001:db8::/33', '2001:db8:8000::/33'].map(
        range,
      ),
    );
    expect(set.size).toBe(3);
  });

  it('finds addresses at the edges of ranges and not one past', () => {
    const set = new RangeSet(['10.0.0.0/8', '2001:db8::/32', '::ffff:192.0.2.0/120'].map(range));
    const has = (address: string) => set.has(parseAddress(address)!);
    expect(has('10.0.0.0')).toBe(true);
    expect(has('10.255.255.255')).toBe(true);
    expect(has('9.255.255.255')).toBe(false);
    expect(has('11.0.0.0')).toBe(false);
    expect(has('2001:db8::')).toBe(true);
    expect(has('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(has('2001:db9::')).toBe(false);
    expect(has('2001:db7:ffff:ffff:ffff:ffff:ffff:ffff')).toBe(false);
    // Every spelling of one client: mapped, hex, with a port.
    expect(has('::ffff:10.1.2.3')).toBe(true);
    expect(has('192.0.2.77')).toBe(true);
    expect(has('[::ffff:c000:201]:443')).toBe(true);
    expect(new RangeSet([]).has(parseAddress('1.2.3.4')!)).toBe(false);
  });

  it('equals a linear scan over random ranges and addresses (property)', () => {
    // Addresses clustered near a few bases, so that ranges and addresses meet often.
    const v4Base = fc.constantFrom(0, 0x0a000000, 0xc0a80000, 0xffffff00);
    const v4 = fc.tuple(v4Base, fc.integer({ min: 0, max: 0xffff })).map(([b, o]) => (b + o) >>> 0);
    const v6 = fc
      .tuple(
        fc.constantFrom([0x2001, 0x0db8], [0xfe80, 0], [0, 0]),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 6, maxLength: 6 }),
        fc.boolean(),
      )
      .map(([head, tail, sparse]) => [...head, ...tail.map((g, i) => (sparse && i < 4 ? 0 : g))]);
    const entry = fc.oneof(
      fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, p]) => {
        const masked = p === 0 ? 0 : (a & (0xffffffff << (32 - p))) >>> 0;
        return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${p}`;
      }),
      fc.tuple(v6, fc.integer({ min: 0, max: 128 })).map(([groups, p]) => {
        const masked = groups.map(
          (g, i) => g & ((0xffff << (16 - Math.min(16, Math.max(0, p - 16 * i)))) & 0xffff),
        );
        return `${masked.map((g) => g.toString(16)).join(':')}/${p}`;
      }),
      v4.map((a) => `::ffff:${(a >>> 16).toString(16)}:${(a & 0xffff).toString(16)}`),
    );
    const address = fc.oneof(
      v4.map((a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`),
      v4.map((a) => `::ffff:${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`),
      v6.map((groups) => groups.map((g) => g.toString(16)).join(':')),
    );
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 40 }),
        fc.array(address, { minLength: 1, maxLength: 40 }),
        (entries, addresses) => {
          const ranges = entries.map(range);
          const set = new RangeSet(ranges);
          for (const text of addresses) {
            const parsed = parseAddress(text)!;
            const family = typeof parsed === 'number' ? 4 : 6;
            const value =
              typeof parsed === 'number'
                ? BigInt(parsed)
                : parsed.reduce((v, g) => (v << 16n) | BigInt(g), 0n);
            const naive = ranges.some((r) => r.family === family && r.start <= value && value <= r.end);
            expect(set.has(parsed), `${text} in ${entries.join(' ')}`).toBe(naive);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('firstOverlap', () => {
  it('finds a pair sharing addresses, or none', () => {
    const allow = ['192.0.2.0/24', '10.1.0.0/16', undefined, '2001:db8::/48'].map((e) =>
      e === undefined ? undefined : range(e),
    );
    expect(firstOverlap(allow, ['10.0.0.0/8'].map(range))).toEqual([1, 0]);
    expect(firstOverlap(allow, ['198.51.100.0/24', '2001:db8:0:1::/64'].map(range))).toEqual([3, 1]);
    expect(firstOverlap(allow, ['198.51.100.0/24', '2001:db9::/32'].map(range))).toBeUndefined();
  });

  it('agrees with a pairwise check (property)', () => {
    const v4range = fc
      .tuple(
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom(8, 16, 24, 32),
      )
      .map(([a, b, p]) => range(`10.${a}.${p >= 24 ? b : 0}.0/${Math.max(p, 24)}`));
    fc.assert(
      fc.property(fc.array(v4range, { maxLength: 12 }), fc.array(v4range, { maxLength: 12 }), (a, b) => {
        const overlaps = (x: IpRange, y: IpRange) => x.start <= y.end && y.start <= x.end;
        const found = firstOverlap(a, b);
        const any = a.some((x) => b.some((y) => overlaps(x, y)));
        expect(found !== undefined).toBe(any);
        if (found) expect(overlaps(a[found[0]]!, b[found[1]]!)).toBe(true);
      }),
    );
  });
});

describe('isPrivateAddress', () => {
  it.each([
    ['10.1.2.3', true],
    ['172.31.255.255', true],
    ['172.32.0.0', false],
    ['192.168.1.1', true],
    ['127.0.0.1', true],
    ['100.64.0.1', true],
    ['::1', true],
    ['fd00::1', true],
    ['fe80::1', true],
    ['8.8.8.8', false],
    ['2001:db8::1', false],
  ])('%s: %s', (address, expected) => {
    expect(isPrivateAddress(parseAddress(address)!)).toBe(expected);
  });
});
