/**
 * Twenty spellings of one IPv4 client (1.2.3.4) and twenty of one IPv6 client (2001:db8::1), as
 * proxies and hand-written configs produce them (issue 9): byIp() must count each group as one
 * client. Shared by the unit test of the parser and the HTTP parity suite.
 */
export const IPV4_SPELLINGS: readonly string[] = [
  '1.2.3.4',
  '1.2.3.4:8080',
  '1.2.3.4.',
  '01.02.03.04',
  '001.002.003.004',
  '0x1.0x2.0x3.0x4',
  '0X01.2.0x3.04',
  '16909060',
  '0x01020304',
  '0100401404',
  '1.2.772',
  '1.131844',
  '::ffff:1.2.3.4',
  '::FFFF:102:304',
  '[::ffff:1.2.3.4]:443',
  '0:0:0:0:0:ffff:0102:0304',
  '::1.2.3.4',
  '[::102:304]',
  '::ffff:1.2.3.4%eth0',
  '1.2.3.4:65535',
];

export const IPV6_SPELLINGS: readonly string[] = [
  '2001:db8::1',
  '2001:DB8::1',
  '2001:0db8:0000:0000:0000:0000:0000:0001',
  '2001:db8:0:0:0:0:0:1',
  '2001:db8::0:1',
  '2001:db8:0::1',
  '2001:0DB8::0001',
  '2001:db8::00:01',
  '2001:DB8:0:0:0::1',
  '[2001:db8::1]',
  '[2001:db8::1]:443',
  '[2001:DB8:0:0::1]:8080',
  '2001:db8::1%eth0',
  '[2001:db8::1%25eth0]:443',
  '[2001:db8::1%eth0]',
  '2001:db8::0.0.0.1',
  '2001:db8:0:0:0:0:0.0.0.1',
  '2001:0db8::0:0:1',
  '2001:db8:0000::1',
  '[2001:0db8:0:0:0:0:0:1]:1',
];
