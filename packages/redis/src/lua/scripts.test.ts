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
        "many 1": "f864e4d368df03a66de3117a8ed0cfae134b3e97 97d02bc58877f4d275487401b104de91e88b3840 64a6f5d4784ba09afcac96253589a435d1255f13",
        "many 1,2": "23ecc4480484233e4464b9ddaca2d88749e01f65 8ecedbecc7a1ec86471b8d18eccbbbf43e8c1385 2474a6f788de26b7c6929c062eaf5632ee3a69ef",
        "many 1,2,3": "bce3525f1d205fb841849452f7113d4977f8333a 9cba2ba25fd8890ad0fe1815fef4ad14a150f1b5 4911ca43ef7524f6f3b7ded30384c5f053b94ff9",
        "many 1,2,3,4": "f1d80e4eab74268335fdc8cc31f42cceee50179b 380091a6bd7b5acfcbf8a888bb0e9a586128f074 ffa0f45c3cdba4d286cd561e6aa8d5ebd29bd3d0",
        "many 1,2,4": "1f36b7f841ec85a72c2f9c3c4ae17654680f8d5d d00be1cb2bf9f9cc5ca434e4c62f3d5a963c10b4 4e6971aa81d7660e72d3c417bf64d79a6f09f585",
        "many 1,3": "b8a3bc6fcb55be79a0c7b5161b1ea47f8e026a16 7c3cc419b7f8136910eca5c6659a5361b0e237e5 59074f203c41153255ed002327e9fb21d93fb599",
        "many 1,3,4": "6550f676447ed36e54ae553b498be45d8d21ea05 3446d502071abc66508213a7e68024850aaadcfa c5b560893f713149d909b901d37c42fda701b574",
        "many 1,4": "e938bae93f9b94cc8f9f948baa92148c0fec22f7 5eeda922d6278d6144e86b54af9f8477d7975ab2 2fabe740db41d693febbb22708321a0c63cca2f9",
        "many 2": "3fdbb909251ae3f1f08fd5aa04d22e2f7befc6c2 bb38de63ff95939808d8692b8fe9fe2f76ebed29 31f68d618d9718d02ff886d58193e8dce5ccbe97",
        "many 2,3": "720d6cc6a339b8b119a3a5cc0cf9b52b70489c9b 609dd71b585b8cf96c2b05e48a723b0afe24e152 3a3f693ffc77c09eb56da6745a90d5376f63f8ce",
        "many 2,3,4": "6d646c979ef8f80b61d966ff0b92bd5aa600ddcb 8280fbcb41496e3b3b89e4b3ddc4bb5620e97b89 3325a9282d24bfaadf0efd2f2669c3f3ca3d7867",
        "many 2,4": "b0d0a527034a40dd4e96910eda797fc2ab97b49c 76410f7694d09281f3738d7e2178e025d6aee3b9 3312c25ee7dd3871c6bbe44d941ad41ba75e6c47",
        "many 3": "a3d5f53beb50a59bb9dd76b5b6eaeca6e3345238 8798aaba4ce047def764d2dd63fbbdb7ecdd7435 de5d2c84763ab91d5cad7bd0e4239bee6dcfdec0",
        "many 3,4": "8cb381cc63418b52201347e12493c821ecf363f6 d37f0c9d7c67ca5608e1fa527c235228bc6d6a97 eb52e3f286fc2422ba2fc632384e55b96ff92b31",
        "many 4": "97a1763bb5643b08ba0b72d9c3ce8fdf79344f38 9a561994f24a1af5c792e65dc335a46954ee80f5 8cc37a0c82c273e2322e6c13f1817e9b7a7902cf",
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
