import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IPV4_SPELLINGS, IPV6_SPELLINGS } from '../../../../test/support/address-spellings.js';
import { ipBucket, parseAddress, readAddress } from './ip-address.js';

describe('ipBucket', () => {
  it('keeps IPv4 addresses as they are', () => {
    expect(ipBucket('1.2.3.4')).toBe('1.2.3.4');
    expect(ipBucket(' 10.0.0.1 ')).toBe('10.0.0.1');
  });

  it('folds IPv4-mapped IPv6 into IPv4, dotted or hex', () => {
    expect(ipBucket('::ffff:1.2.3.4')).toBe('1.2.3.4');
    expect(ipBucket('::FFFF:1.2.3.4')).toBe('1.2.3.4');
    expect(ipBucket('::ffff:102:304')).toBe('1.2.3.4');
    expect(ipBucket('0:0:0:0:0:ffff:7f00:1')).toBe('127.0.0.1');
  });

  it('masks IPv6 to its /56 network by default, in RFC 5952 form', () => {
    expect(ipBucket('2001:db8:1234:56ab:cdef::1')).toBe('2001:db8:1234:5600::/56');
    expect(ipBucket('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::/56');
    expect(ipBucket('2001:db8:1234:56ff:ffff:ffff:ffff:ffff')).toBe('2001:db8:1234:5600::/56');
  });

  it('honours other prefix lengths', () => {
    expect(ipBucket('2001:db8:1234:56ab:cdef::1', 64)).toBe('2001:db8:1234:56ab::/64');
    expect(ipBucket('2001:db8:1234:56ab:cdef::1', 48)).toBe('2001:db8:1234::/48');
    expect(ipBucket('2001:db8:1234:56ab:cdef::1', 60)).toBe('2001:db8:1234:56a0::/60');
    expect(ipBucket('2001:db8:1234:56ab:cdef::1', 1)).toBe('::/1');
    expect(ipBucket('2001:db8:1234:56ab:cdef:0:0:1', 128)).toBe('2001:db8:1234:56ab:cdef::1');
  });

  it('compresses the longest zero run, the first one on a tie, and never a single group', () => {
    expect(ipBucket('1:0:0:2:0:0:0:3', 128)).toBe('1:0:0:2::3');
    expect(ipBucket('1:0:0:2:3:0:0:4', 128)).toBe('1::2:3:0:0:4');
    expect(ipBucket('1:0:2:3:4:5:6:7', 128)).toBe('1:0:2:3:4:5:6:7');
    expect(ipBucket('::1', 128)).toBe('::1');
    expect(ipBucket('::', 128)).toBe('::');
  });

  it('drops a zone id and handles an embedded IPv4 tail', () => {
    expect(ipBucket('fe80::1%eth0', 128)).toBe('fe80::1');
    expect(ipBucket('64:ff9b::1.2.3.4', 128)).toBe('64:ff9b::102:304');
  });

  it('puts every address of one /56 in one bucket and neighbours outside it elsewhere', () => {
    const buckets = new Set<string | undefined>();
    for (let i = 0; i < 256; i++)
      buckets.add(ipBucket(`2001:db8:aa:bb${i.toString(16).padStart(2, '0')}::${i}`));
    expect([...buckets]).toEqual(['2001:db8:aa:bb00::/56']);
    expect(ipBucket('2001:db8:aa:bc00::1')).toBe('2001:db8:aa:bc00::/56');
  });

  it('reads every spelling of one IPv4 client as that address', () => {
    const spellings = [...IPV4_SPELLINGS, ' 1.2.3.4 '];
    expect(spellings.map((s) => ipBucket(s))).toEqual(spellings.map(() => '1.2.3.4'));
  });

  it('reads octal and hex parts as inet_aton and URL parsers do', () => {
    expect(ipBucket('010.0.0.1')).toBe('8.0.0.1');
    expect(ipBucket('0x7f.1')).toBe('127.0.0.1');
    expect(ipBucket('0x.0.0.0')).toBe('0.0.0.0');
    expect(ipBucket('4294967295')).toBe('255.255.255.255');
  });

  it('reads every spelling of one IPv6 client as one address', () => {
    expect(IPV6_SPELLINGS.map((s) => ipBucket(s, 128))).toEqual(IPV6_SPELLINGS.map(() => '2001:db8::1'));
    expect(IPV6_SPELLINGS.map((s) => ipBucket(s))).toEqual(IPV6_SPELLINGS.map(() => '2001:db8::/56'));
  });

  it('keeps the unspecified and loopback IPv6 addresses apart from IPv4', () => {
    expect(ipBucket('::1', 128)).toBe('::1');
    expect(ipBucket('::', 128)).toBe('::');
    expect(ipBucket('::0.0.0.1', 128)).toBe('::1');
    // IPv4-compatible, so no longer grouped with ::1 in ::/56.
    expect(ipBucket('::1.2.3.4')).toBe('1.2.3.4');
  });

  it('refuses what is no address in any spelling', () => {
    for (const junk of [
      '',
      'unknown',
      '1.2.3.256',
      '1.2.3.4.5',
      '1..2.3',
      '08.0.0.1',
      '0xg.0.0.1',
      '4294967296',
      '1.2.3.4:port',
      '1.2.3.4:123456',
      '[2001:db8::1',
      '[2001:db8::1]x',
      '2001:db8::1:2:3:4:5:6:7',
      ':::1',
      `1.2.3.4${' '.repeat(200)}`,
      '9'.repeat(15_000),
    ]) {
      expect(ipBucket(junk), junk.slice(0, 40)).toBeUndefined();
    }
  });
});

describe('readAddress', () => {
  const same = (text: string) => {
    const scratch = new Array<number>(8).fill(-1);
    const read = readAddress(text, scratch);
    expect(Array.isArray(read) ? [...read] : read, text).toEqual(parseAddress(text));
  };

  it('reads every spelling parseAddress reads, and refuses what it refuses', () => {
    for (const text of [
      ...IPV4_SPELLINGS,
      ...IPV6_SPELLINGS,
      '0.0.0.0',
      '255.255.255.255',
      '::',
      '::1',
      '1::',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8',
      '1:2:3:4:5:6:7:8::',
      '1::2::3',
      ':1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:',
      '12345::',
      'g::1',
      '1.2.3',
      '1.2.3.4.',
      '256.1.1.1',
      '1.2.3.04',
      '',
      ':',
      ':::',
      '::ffff:a00:1',
      'FE80::ABCD',
    ]) {
      same(text);
    }
  });

  it('agrees with parseAddress on random text (property)', () => {
    const group = fc.integer({ min: 0, max: 0xffff }).map((g) => g.toString(16));
    const v6 = fc
      .tuple(fc.array(group, { minLength: 0, maxLength: 9 }), fc.nat({ max: 9 }), fc.boolean())
      .map(([groups, at, compress]) => {
        const text = compress
          ? `${groups.slice(0, at).join(':')}::${groups.slice(at).join(':')}`
          : groups.join(':');
        return text;
      });
    const v4 = fc
      .array(fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.constantFrom('00', '01', '0x1')), {
        minLength: 1,
        maxLength: 5,
      })
      .map((parts) => parts.join('.'));
    const noise = fc.string({
      unit: fc.constantFrom(...'0123456789abcdefABCDEF:.[]% '.split('')),
      maxLength: 45,
    });
    fc.assert(
      fc.property(
        fc.oneof(
          v6,
          v4,
          noise,
          v6.map((t) => t.toUpperCase()),
        ),
        (text) => same(text),
      ),
      { numRuns: 3000 },
    );
  });
});
