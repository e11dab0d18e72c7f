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
        "many 1": "dc911567d60b689d5d4d47a5ded4705a2ffde113 2d48319d86ea2390e8011303162418f845890ea2 db38e45a138b574b5a243c8a02cf5abe7a95775d",
        "many 1,2": "128529d0b8a3ff696aedb1680c0e92502edba230 8c65c0690e70f64435b9ea42f02dad8eb5a290fe 3afd15ce35f96e23934f1ffa8aa79c6c18c2f84d",
        "many 1,2,3": "9fb63d71de5ad55ae203c1fabf7e29ffa514e1a7 06056b2595e6ee97f08169162374a20058940db9 456e44f601139f43a7eb248fa478a02a3ef00746",
        "many 1,2,3,4": "98fab8b57c308d29518b28376acf8ef180f64f7e f255ba3ec2174d148d68ad7b4a696c1f5ace50e0 9167c27bdc1734a733e925fb15781d67cb6627e1",
        "many 1,2,4": "c8b69214fbd96755e47346a1a0164cb9d9d7654a 7ce3c9a14d9975d9c540846d8980a164e3e5dfa9 9609a4b85a8101d7ece209cea429950e1adf0701",
        "many 1,3": "1e4ec048f5cf674c1cc7100ba97bd8e986f0f22a e56cc9b63c67834a37f047d856692bd9b9c35abb 3ec54a7c4fc05ef103017a7ad0591e9461c65637",
        "many 1,3,4": "901ae612e99693464d556c9ef7d88bf1b3abb37c 042fb8b16d46d3931a2e65f60fcfa13011cab124 d0e6e13a0b3eb05e95a3c962afeb523062bffebf",
        "many 1,4": "ca205d7cc485e00eb85f607b756e99785fb6ff86 f7e518900e04f9873de457523178b266fe7af435 30d790003a97e4e5ac9cc03ccc802bb40c613956",
        "many 2": "5bd7a6e1db6f06cbd200332f8d74fbae2d6d5110 8e56699d0d92a5f2e615466b5a9dfe0c51ebca4c 55f449a5847bc7218a14a3c4fcc183bd45327588",
        "many 2,3": "e88f809c8af1a090bac37bee65c714da3e8489fa 18732128d115eec1510fb0f274d1571672143933 2a4129cb78fa96930ee0315cf750e4a8592fc75c",
        "many 2,3,4": "e1e211caaf3287e4429777e4be15e66d160941f4 80c7bf8aa4c9667c0dd18b632be85d46de8157e2 d7be39aa9d45e618262101ea7a3dfabec932737f",
        "many 2,4": "eea92df25164d29ebed4248dc7bf5cc2c7f8a703 7f793362685840ef56753965434809b1f292c004 dbe7e22b5c2b3cf23000fe93a16a16792dac6c02",
        "many 3": "ee73bcee8489ab4c3d0d5520f212667964ad0088 e001cc4662eedd6c606ef50a35343711553ef884 c75b6f2b482b718f1125f4c560611018da6639ec",
        "many 3,4": "e35e8a60432a86b4ee964858e24cd17418d55d43 3adf63d77ee216d6f94ac7ccf36c59a6cceb43be a5df7be8ce9397a084ab3ca5a1b60b566418183a",
        "many 4": "28cc8b6910c1a2702e0d6bbe69bb5299a8620d53 0722d0bf792a95dcf049189ba28e30d5ad366d8a 63ac54ea430780e45552d582df8e95ef111f3b9a",
        "single fixed-window": "1780117d86f4edfc976a59a46488f4755e9cd2e9 84794996df644c71ba82dfeaad6cb2a631faf404 4f645aa6d6314aba784eb38425f4517ed22fb482",
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
