/**
 * The SHA1 of every script the store can send, pinned: a change to an algorithm's Lua body or to the
 * generator shows here in review (update with `pnpm vitest run -u packages/redis/src/lua`). What the
 * scripts compute is judged by test/store-conformance.test.ts.
 */
import { createHash } from 'node:crypto';
import { REGISTRY } from '@tollgate/core/internal';
import { describe, expect, it } from 'vitest';
import { CODES, manyScripts, type ScriptTexts, singleScripts } from './scripts.js';

const sha1 = (lua: string) => createHash('sha1').update(lua).digest('hex');

/** Every non-empty combination of the codes, as the store meets them. */
function combinations(codes: readonly number[]): number[][] {
  const all: number[][] = [];
  for (let mask = 1; mask < 1 << codes.length; mask++) {
    all.push(codes.filter((_, i) => mask & (1 << i)));
  }
  return all;
}

function shas(scripts: ScriptTexts): string {
  return `${sha1(scripts.consume)} ${sha1(scripts.peek)} ${sha1(scripts.refund)} ${sha1(scripts.settle)}`;
}

describe('generated scripts', () => {
  it('have the pinned SHA1s (consume, peek, refund, settle)', () => {
    const pinned: Record<string, string> = {};
    for (const algorithm of REGISTRY) {
      pinned[`single ${algorithm.name}`] = shas(singleScripts(algorithm));
    }
    for (const codes of combinations(CODES)) pinned[`many ${codes.join(',')}`] = shas(manyScripts(codes));
    expect(pinned).toMatchInlineSnapshot(`
      {
        "many 1": "7a2b80b54760311d725ae195e56a8bbbbab9534c 5a758c1233d9ad10dee062f3ad5db267709b9bf5 8733a496221b2dd144886a3cbd2920e030a371a3 c4bc2a2f0be2290ad7659e573f33c2fbee336a65",
        "many 1,2": "bbe29e8e3aca88357f89eb577e0f88e94a0bde3a 70bcb53e426085e70ae6c7fd2b18a3276d60ae5f 58e1e2d57d28964274736f63011ffb8aa5d0fc26 97aae19aa584e60c4ba250e6d261d8abdbc84d26",
        "many 1,2,3": "ef8a55489558558ea257ccbf85a98963d3b8f4e3 dc7745249e378f975488bc6d70acd5441837f036 eca4a864fc8808e07674e97fd649d1efecf6cfb1 49f9314b66469354316b54efe0d7ab7f3670f447",
        "many 1,2,3,4": "e2004493381b9cfe790e7fb0d5118326f4d2ca75 22430986684b7368156ca4e175f372d0bcbbed3a 77192e8285f23a5a9fdb969b7b8143d85828a798 1303c45aaccd968f475d5c348f6330ad25e95e60",
        "many 1,2,4": "6548a0f9f3993b17fab11877914843666a8269dd 0de094ef81055d1e972265a1fd076d561b4e6001 abe04ae9cd07bb03d191a9a241cf4ec85d3dfacb 2e4ae21689c7a46c26b1308877afd2e063037e24",
        "many 1,3": "6a19ea4e488e4d9411aa389efeb51aa338026d6a f20e33c9214fcd15d1dff60f2c9ed548b2d44918 4eeb04b0c090d04a06e101e843a139a0b910354b 4d5c2b433b741dc6da591bca98b6daca7fbcad5c",
        "many 1,3,4": "e7e148b8da28cdd9c0dcefb3b44f6458e0eda516 e649282ddde768a3078efd4af843577856460f25 d21e7477dc57a66261cfa540e82a1150310b27d2 4fcb13635a2d5d47f0cf7d43f8dcf6fa6a6a473f",
        "many 1,4": "de9af9339f1010599bc646519d0ccca9097065a6 2ee36a62205c95d3b9b1632a9b2ea3b8e13cdbc0 a0ab2987ea3a6c042402323d1943e43d39ec3e39 a148893228091c03f3079c24587f02ec4a42dd6f",
        "many 2": "91256d01a2722f1f576b29b12f109bef6d21ce33 a480bd52a3b1625c754e6c6e4781917c167364e6 9e55f2373ff34471eac1e633b777b6dfc4f1c303 3bc54efcd0a8f9192097303f20e0717ade490502",
        "many 2,3": "6213d9d01f62583d5923e67545fe47eee2d0c36d e221921c964831b1a2fe34bc0e99b6c6f8933e3e b6791aa6fc4600225ec548f2a9179909f8d4b4e3 6a9a29e8b4779f18e3d41a4134f6fe5e1a999056",
        "many 2,3,4": "30758e3060e92263572f697ec5f2099764900426 7c2e5a09549ce771ba277b579f8e8752dcc7bd00 f951051faf4214314e2928919e530ca22d65c830 5721dabea91ce2d206af0b4cfa560c5d05337067",
        "many 2,4": "10af32db89d63bfe3569cd7c57f2b0b81489997d 036f0b5edc884dd6c4b5ace35b3ef7ef107e94d3 776757c75b731f3a94c63da29d05917ca6010186 c76f0840d9a95e40096e43f7da5a33181fb4e8dd",
        "many 3": "c87e81faebc6f423f293f0c3a1ad4eca130a58fe 665a4f11cd90e9c9c2d3a8ab4764bb3251ab6404 2bddb12864b9d36e2fd50556ab6f399c144ad428 cfa27788dc0debc90f826a2298405aa69db45e4d",
        "many 3,4": "85f40c714f018c878a2f9063f4b7292c0653f1f5 84c5258ed42156b5bc57bc255612d845832f8e56 9f18ce3c8a929a13b5aa0c08b36489f552eb0123 e16ef832b20c6a1c3aed0f8be7668258d2fbad7e",
        "many 4": "dfe1b68833cfcc06d2535cc7e1f2300120694f07 462f143dd4fb95ca0beb5f520f4769ef290b9b44 2215dc1c3c5cfee57a022f6fb66093d965e9f083 f6dbd18d955fc3856091090017775131c3eb7d5f",
        "single fixed-window": "c62df07fd10ece22c3b0138e9748e3a819106a44 a55e6a9bd97dde8a506ce650dde02cdb92f85223 74fdf1e0348272d06ee3061f11a4659aa6dc05b1 c31c71c823e884440084a367e0e6903fd2c2d07f",
        "single leaky-bucket": "eed592d9540620add17e25de0298abdf7a9f386d 43c62792b6286d48dac0a01c86b20d61119f10d2 59f5faf95a20817a348b04fba0b07d2d5d76e6b4 2a37dd91d764c8812918505d297d8b5813f19cc4",
        "single sliding-window": "b04b4018837544c27a46e444f5bd5e02ee7dee4b e211200b9501516ce488e17bb1b7d77b4efe0f05 0f05f2f0051468915bbbea80eb7900abffcd3797 e1f9a3b21e9efd1edaef907d7211b7081c318e64",
        "single token-bucket": "54181cd6ab6254c8296368359bfa27c783ab3868 37df05423e2dd4cecbb9d021f35f47ac5bcf3bd2 f00c1422e8f4b566930e631daa8996d42c32d88f 4f6a5043d03b20e6e284bce32722f5bc39bf881d",
      }
    `);
  });

  it('open with their KEYS and ARGV', () => {
    const scripts = REGISTRY.flatMap((a) => [singleScripts(a), manyScripts([CODES[REGISTRY.indexOf(a)]!])]);
    for (const { consume, peek, refund, settle } of scripts) {
      for (const lua of [consume, peek, refund, settle])
        expect(lua).toMatch(/^-- KEYS\[1\]: .*\n-- ARGV\[1\]: /);
    }
  });
});
