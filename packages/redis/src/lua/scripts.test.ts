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
        "many 1": "3a609e39add2685fcb4834589c54ea0cec7e03cd 3460523bc88ea738b12e8401648c54a12591f81e 6efd13880ece1a7100036a56f7c429f1df359849 32f54d0a62ea4cb5850dc33e58995579cb565521",
        "many 1,2": "57440a86a0cbc729f41725c40321938ce3b35f30 6ac325ab71298643d0e44c22090f00281eabe95b 8170f4b5badad45985450f91bb7507e0664aa7e9 c2dcc2e2c61ae38dc7e90cf62c167933626facf3",
        "many 1,2,3": "29ea0d474c1e980c799f5e665d203f917a2f544f 9fef7a79bd0ed55e9806d735a8549c934b654d43 539dd51f55b8eab1241353925cc94e7ede2dd2b0 b6368c4f7aa889242c1a2eed19797838c10d4dd4",
        "many 1,2,3,4": "0ff78ac27526a64614a5dd73325c5f3427234372 09fdfb4f4b97f1f3f0bf66a0167e1acb3bbc3e4a db00cedcf66c39b81e050b9d459e6c6022f37b46 9441f2ac27b1945ff73aeb1b2a1c7c2fc206dc1b",
        "many 1,2,4": "9ede73003681105515538fb09fb762f5b221dc50 c82dba7176b1066547a41d2aee729e2aa413516f ac4d194b2fcbe49fba247d53ac1772aad3e37a64 4ee8ee61bf97d80349f25de526978f676580e748",
        "many 1,3": "fa6270cd12dfe55565db30233bcc0f81add6e162 5263653004d5e58d226d800e83af4250f6b11071 88ce19a366cf0278b29e4ddfced22a3229b3c884 a59d35bbd296dfe32731e8895d30aa7f871b5d9a",
        "many 1,3,4": "6fd1bffd544dcddd401a65325100fe6a936fa7ae a1c545948e2c4913b96c919a5705e846619b7c55 3103dcbc66e73dba93084a4282b67656f61a6dc1 e76652b372684a5ae72a259656df5f0253042f0e",
        "many 1,4": "268584be6e1a576028a0c2d851a2e33f9a74819a a21be93a945f9a510cecac85fdd75672fef6e577 6c87385c72f67258d72e1f74e0792c6449dd8b9b 7c7a0e7fd5b069d5b3811eae06c87f10ade2597f",
        "many 2": "6a3ce890c4fb818d87e812ad79e4e2eafa601776 6f0de794fb7fd083e7b7944a299932a559d966fc 41bcf49cf1be0e9b75d6b66bc47ecaf90b64ba83 c1ec259d3d70ca97df2680afb0ec5429a4eda540",
        "many 2,3": "90e4c2548c45450063dfab2eca7762cbb136b5a2 37e6c2302e276bf7ead531e9049ad2a4b22c398d 238673f71ed5fbbbf0d4065b19e4d55cfb59583c 8e2d90d6ca7af5f57e3f1ba6fe9ba3589fff329d",
        "many 2,3,4": "f0d3452680526965295a697ccc2a82c59bb20931 8ea84bcce67ac04df5651ac3d7c98292bd15bf78 ec416b1e24b52e55f625befe94ce73c99b3c9f17 9bfe77bb2d3bc26ea8b8e85c7d59c11a134073c3",
        "many 2,4": "50bdb14f0835f3ef8d53e11cec20e8ffb35c4220 8d461127a5460865d245656ae4284f024243dd4a fa54244759f30f4bf31cf1846adb531948bd51d5 d676d684d8be67ade9cc7d2604b31e3d92844432",
        "many 3": "df46e40050002f5fe5003a720ab55ae1d1b55a6e 5117096e8a1f941981bdd2c5a203e4c89b93aea1 6c9e9451620dcd18f04dff3cfea4c0168f25d496 4d43c839a565f392d4950350131e5f2765f08290",
        "many 3,4": "f821f48e765732aac18a310ca9b74fe07c56a677 d5b1bf4840fc7ad08e85a1ac9b92446ae8f33917 f518777aaccf1b4863b8ba2cda375b70a083e6ee 36bc305a36ef92c121e7525f95c7413633e6218b",
        "many 4": "15601dcd4ac9ebbc95f6ff8d66c7b0c81e95fbd2 ffa01d3933c9a4431997e1b083ff5adff1d25ecf 0833e0dfd5f38fefc939cbb2f89bfae598c7125d cf7b7994ef365086ffe1961acc38cecb97433a50",
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
