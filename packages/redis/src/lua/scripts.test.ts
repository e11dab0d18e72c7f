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
        "many 1": "23931c4a81b9a6961bc5640067faec174102adbe 0f1fd4a55cd5a7b7ccdbacb6a991c2c8a2ca385e 9ca034204bb0616fe3928cc275653ad313296994 2f6274706973060b7dfa1bf43bb892d8e598ba78",
        "many 1,2": "750f8c99f51da4a348f411c5431120cdd16c8537 15ef3ffb447cca1738fd30a0c0079f580a3b8e45 c6692ef5ebc209c65d84e7c02b6e1ce4037f3014 40fe84704822a71da487cb1c58b050071a172453",
        "many 1,2,3": "18c480a415ddafce7b14d6ef30bdbdfecb335b5f ea5868949ffb4c83d25c1e08e0a2ae9ab26e2625 29bc098f7448effa6044b22456869c26db1cac95 bdae4b553450bc43504e5be03f444f2fbef0e01a",
        "many 1,2,3,4": "4f893492a762bb047888af1cd38c115f5b236b76 084dc58a9d0dd8d84089d95ac0d4a53736411128 832cf7fc6bf27983c8befd96205ac8dc2bd46c22 beb07eb1e928bc4907aeb64ca7d72904931ba5b1",
        "many 1,2,4": "53091a6779d7788eea7895c5991191a21de05c69 a9ea598c64979bc4d7057be485f06844389bd233 b2a4529dbf3575becbcbb0d315cba0d06f9c85da cca3ac1a9a6aa85d83214ddfa315037d637de57a",
        "many 1,3": "e3c048b0ba5f7fa4eac0de192f1df919c28afe2d ecbc698adfdc666845f9392208fe1ed170763edd 986619a483f7831630830c3b1cf7f105d54f8dfc 209bebbae9c1d0f3db9d3f255cd51078a89ffd6d",
        "many 1,3,4": "259b7b21c13936c372ff9dac26070be6fd357f9e fe8fd4be7dbcbf8b7b7cfff4e53137e4989e6c73 b2c3523b35f565bc55d9cbe0eebb383bcc2adc55 733201d76f89b34b4db5c2ce5cf221971c5594ba",
        "many 1,4": "0009d1928dab83aeac9cbf06147ba5040e846365 a552f3f1bca01d91d936b66fb1773e188886b994 031494365d7a7030c0f568d7557d25f08502c1ab 471d766d38492f00fe75bdb88d9e80448fac8d88",
        "many 2": "f0045c057501d76bef4a0e0d06225618e111647f 048d35d5934cf53e8c937f26daf37ff9743be7ad d0c72a9e4b72790304e1f8c54ce99420315928a1 c9c5764c84c6f5c98bc7cf7a7d63f6dce09d4dc6",
        "many 2,3": "217fe1043e75afc239fc13ad8a670bfd313747ec e0cb66f8f2244d71f820032e6d86db988f6452b6 ae08450e8964b0f86cceb221fe952f73d6a07e08 4559b6c610d72f682ebf514ae450666f93260415",
        "many 2,3,4": "66f1f784eb5aad89dbcc22bd2a8124b008f7b40f de204c982406320e1cc01063597537411f95ca85 adb771f053a71732d69fc2e7deced87fc6cbc9de d5a21efe2bc2ee51908e1f54b386ba13ab5f0668",
        "many 2,4": "45c1ece43e34374d6924d600593ad6e230372337 9b21a6a58dec2b11f4fd58c5163d64ab3e5a9fe7 2a075b800894f1a3a53959d078c960f3e9bd3742 eed9cce39d37b727889049c7bf504d6d9b8966bd",
        "many 3": "400ff2c9d6d0b176ac824eb9550d4b449b80ed56 4acb238874aaa2deea88a76d82b17e19f59caaec 66ff59881c58476b89d26228f6b336ddbd6dfb6a fe8b8588b4a503f2f3d5cffb76482d01f2b82492",
        "many 3,4": "af6d4dbd468dd259c5e2486024ca2ff74116c906 ade2f3ceb589bb9fba0bf23b57bdb7e7b30ef269 902da05eb95b20eb56b1e558e8bac57dd9765f33 e4fe2ed3150303f2e28853bccc9dd5ca0bbe2fd1",
        "many 4": "95d3400b3dcf59cabd9a3f96a81ed6cb894f5bab a1da7551afdbaf72f796f265fad453646b4f0e70 44eca87786be5cde49241866c89d730b874e4848 7322a2ef88f31d78b5d7cfc4701e74e16c050871",
        "single fixed-window": "099be826ffdb3b13af45fb8b5be72a2aa6c599cd fd7072bc4b19afb45f10e592ff1476e9379cbd74 218e11de42347b8f1e09ecd4fd3428a67566710a 9ed5c6d757da3ded075d97cdf06fd657134dafb7",
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
