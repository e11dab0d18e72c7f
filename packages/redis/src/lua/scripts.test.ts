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
  return `${sha1(scripts.consume)} ${sha1(scripts.peek)} ${sha1(scripts.refund)}`;
}

describe('generated scripts', () => {
  it('have the pinned SHA1s (consume, peek, refund)', () => {
    const pinned: Record<string, string> = {};
    for (const algorithm of REGISTRY) {
      pinned[`single ${algorithm.name}`] = shas(singleScripts(algorithm));
    }
    for (const codes of combinations(CODES)) pinned[`many ${codes.join(',')}`] = shas(manyScripts(codes));
    expect(pinned).toMatchInlineSnapshot(`
      {
        "many 1": "058acbcc6e5feed1708009c031ac93f73180b4f9 033a52c0f842de27ee5b0ee69783b32d9d519878 254d4b8ea1f7ed1dd249cc4bf205ff22570a5e4f",
        "many 1,2": "a22e4e59ec8f153a71a1dedd438f25bbbcc1a965 3cd8b5f8f6322d158404fbd02e28b32d88a5c34f 9a94e7a559292ecf396de2792a30399dbac3055b",
        "many 1,2,3": "e08fae25a7c4cbe66ee8afc5315f7c561452dc08 4822ef464881e28bfeac7e3909cfec6619eb0d7b 3a15e3de24b3ae2f53763619c5f407624d8841d9",
        "many 1,2,3,4": "6cba80a4c7136bdecb8c985477f8e23d49ba43fb e8ce211337397a75dbf4e171ed513a5acc367e05 9f05726899a4ba76695c81951cb2779e6916d79b",
        "many 1,2,4": "0a0daee5ab9d7731ae10a8069dec4b67a497bcd9 4c32b68911c257633f83d69562ee7b42e5f09bc0 e1b5bfb0a6eaf2ee6099c720eea6e6024702b180",
        "many 1,3": "91e9af0cd0c89cfeab1e3d4fa974cb3b446270dd 029091327cd4413e225b9911c47dde2eac25ade1 139b080ea0e1de0f28337f409332f687647ec10b",
        "many 1,3,4": "a3f056d7b2d332cf525c4eced412a4f55d46f99a 5de2043b06ada99de76febd51bcae1446acaa574 d90eea62261668f6efc18e7386b38d88bf6984f9",
        "many 1,4": "0dd9b53e83ef16f7f0a34476545975f17a6717a3 18ffcf6c099f1dfd5e78c0efc3bac3bd1185541e 456cb10aebbff1ade516f9ece2bcc424b05c2ab6",
        "many 2": "f9fe31b56dda8c3b4235b0581fa5922a1c2347e9 1bf203ceae7edbdbddfd378b2336114f5dac246e 1f71ef3622d73a82c344293c014224ca3c71a574",
        "many 2,3": "1d3bef1acfa13c6391031350cffc13178ff6c7df 1c87da972ebf1a4ba94613a267c763d8bb1c9dc0 9a5204cbf3069f5de83614189d23d33a78d20219",
        "many 2,3,4": "749302b16c9a4e171aae884b3587fdbaf23a00be 56538e29f794a658e21054fa7ecc4ae3c0587e7b 14ac7b3346e65646a9f2ae2163cb87d90e562766",
        "many 2,4": "805a4c8c6eff676d8791bd3af4b68233cf92d42b e28800895b44943c101bdf5215c3f8445e195089 867d8f244739ddf96c655ca4045cd69d6d1dde6a",
        "many 3": "80b4000c21935f1a523bafdbc8a64880a92be110 ceb1f704179113b8f4dc0b3355bed3e268f36ef2 aefe5a71f6c8211c0ed0f114f2d027a719bf9e90",
        "many 3,4": "91ae8547ca317ea570e9c9403d01f056198a4666 62393143f1b6fe3009e022e8935fb612c128fd5d 56030017560c1022deb75034cec04fd769ebda56",
        "many 4": "cc0087071438d1dadacd9185392d72a28105452c 97a6fb10db2b63187ae5d4cc522e213a427857b5 87bd295c4e8db5f2bc1f8491509dd15de2e36c87",
        "single fixed-window": "8fda90ead90f44bdbb6325fda5d5a512fd8980e2 6ec13251986629bcbbdc4907073da8d44b96e999 69e5be9ddee6ed010f89f2d6fa7fdf113882f0b2",
        "single leaky-bucket": "09c806256191f65c3a407dff99dc28cbba4dc0fe ad4d6df8271aa075a21de550ae8aec61fb374cfc ee8876c85ffc222a21f2cae96dffe31a0bd00f0f",
        "single sliding-window": "b6ac1967934d35192229d25a7d092af0f3b5a017 b5765e8bf96129688790f5bfc8c88c7bcf490a89 f8c54e98d975ef5aeb2bf85da4369b8814432447",
        "single token-bucket": "51640d06433dddca48461f411b7f673dc0e80b96 aa84af76fdd30ae139873ecbbc3d3708f7720805 7469d50713b5a8a6ef4f0ce39fce411c5671bf56",
      }
    `);
  });

  it('open with their KEYS and ARGV', () => {
    const scripts = REGISTRY.flatMap((a) => [singleScripts(a), manyScripts([CODES[REGISTRY.indexOf(a)]!])]);
    for (const { consume, peek, refund } of scripts) {
      for (const lua of [consume, peek, refund]) expect(lua).toMatch(/^-- KEYS\[1\]: .*\n-- ARGV\[1\]: /);
    }
  });
});
