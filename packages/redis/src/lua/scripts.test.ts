/**
 * The SHA1 of every script the store can send, pinned: a change to an algorithm's Lua body or to the
 * generator shows here in review (update with `pnpm vitest run -u packages/redis/src/lua`). What the
 * scripts compute is judged by test/store-conformance.test.ts.
 */
import { createHash } from 'node:crypto';
import { REGISTRY } from '@tollgate/core/internal';
import { describe, expect, it } from 'vitest';
import { CODES, counterScripts, manyScripts, type ScriptTexts, singleScripts } from './scripts.js';

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
      if (algorithm.counter) pinned[`counter ${algorithm.name}`] = shas(counterScripts(algorithm));
    }
    for (const codes of combinations(CODES)) pinned[`many ${codes.join(',')}`] = shas(manyScripts(codes));
    expect(pinned).toMatchInlineSnapshot(`
      {
        "counter fixed-window": "a584d5e2de8649b5f8cf0a08e8830f46a95c16cd 5eec9d403c28fb4afe88080f756e2c1d0e72dbf5 87db62136508d32e90dcf43ee2d374ff7436769a",
        "many 1": "afdeb758036e0dcbec5ae7ce3ec036f0fa496ab2 92796d75e8ec360c29ec150b395cf02654bb162f 5a009a0661b9b36b69289652c502852af061761e",
        "many 1,2": "d5f9d2938de7949f07877b4e3cbd0c2f351e2fe0 1c317b456d2145275e00918a43426e12490d872f 88e7a53baa8a0e72373545500b491bd4a945691d",
        "many 1,2,3": "f37b90b0c8b4c49418a63669d4b77cef9b0c8dd8 9c8facaab679412a491ad4260d2c303ae3c8b3aa be58ccc8c3999520fbd4258bb59e671241eab6a0",
        "many 1,2,3,4": "410ed8d4ab1daed22a470a404efb435109b51572 752fc41e875521c0d80e7611af362a99954aa258 377b6c20dcf659d1acef0b528e3fc479eaf088f8",
        "many 1,2,4": "724e6ff94cbbb600762407cf69ada718bbc3b744 7e342fb90627ea0636246c11440be1177b1def53 8ab234a4e53e43ba1aa7e0c92aaca1025e5162dd",
        "many 1,3": "51f93aef105f91506109ce7f5a8eb2536e4df584 d4c8a4a7afe4a82e32949e6ed1fa7364ded1aff8 aa890fc92baf409c807f8430bee0408c3efefb94",
        "many 1,3,4": "c6150fb71a2be40c37114202e6857a973d998de5 d675f720b52b5b8ae6dc8b04de17c349680d5723 a77632a12844eeb5f25802566a91ffda312d7332",
        "many 1,4": "b89d80747e94eae0bc0889c4b8af93541f349543 786fc71bd57104789ad10c2dd96d02a0a3c4c4e5 3a5bdd13221e62adb886ef238fa49643b6f4f71f",
        "many 2": "1338a715ede5bef645053801a14577e0f44f2263 dd9de777f14cd682efcbbe82652dbd65e30dd52f bd0c2f8ac7479dea7766c5db3def73bb05e4c64d",
        "many 2,3": "9c8aab1acb5baaa1e2bb2742daca740e35513ae5 55162c4d56029fa7ea3ea6212a756b91b42ecf2b 42ec420069e38164bed1a9c9c34c6f919865f067",
        "many 2,3,4": "f49691642ee1fe108a0a28f81e3d7a3561afd159 6ae5b470aa70df8ddd8c78284f6dc7f38dcdd742 e072630477ad7cc6641e7e4ef23c31866495a0f2",
        "many 2,4": "22a9f463d95c4f83fdd105d4d969fdd05008929d ab15120b7709e814402d50a3e69b4369885c2cef ba2d46029f2a4608c92c592da8c3135f350715e3",
        "many 3": "ab7b231e3ba3212a6d264fe14fb59b09b1db7004 03f34a91488f72bbd1c11e280c80d553c81a07eb 79a4fcafa0693469da650a65ed650fc2dbc289c4",
        "many 3,4": "0c0944d254de879d3c823e85e4ea536504345159 61428cf6e4746692511757582ecca1d9501be417 ab7e5206cad0575144ed2d2191de3915dff5a6b5",
        "many 4": "3dd01aaa7ca8fd318404227ec051e89187aac49d e93c428166677948a73de010345389cbe2d63e5f cb400ccb63450df264de48062bf445ee4af01dd6",
        "single fixed-window": "fe48b9f83e813a5f7b313e6b770e7383e9589bdc accb1ee69f1965c2c8da7062115cc8465c909a3b 792523676038b028e1a52683d8ff9631985e6554",
        "single leaky-bucket": "3e0239a838a1f59f21a7adaa85a29c6073ef433f 42c2d097e2f8fce3d8849d40bc7dab1bb5b84057 1980257feb0b89d558c9c3341b2ada016cacf44b",
        "single sliding-window": "f26d2304dea5fe6699b78f0a374cfb841a857079 5cd47fb9d3662834e89e4b29c0175979783848d2 6ce48095f440e40e6997adb7af7197151dc2e030",
        "single token-bucket": "6603d188f216d17e52f4a125e324b6c77fb9a809 0184ac545d9fc2e635bf5be4572d42205d3f8452 2649b81601d3c8d1861371db6ea188f238bcb696",
      }
    `);
  });

  it('open with their KEYS and ARGV', () => {
    const scripts = REGISTRY.flatMap((a) => [
      singleScripts(a),
      ...(a.counter ? [counterScripts(a)] : []),
      manyScripts([CODES[REGISTRY.indexOf(a)]!]),
    ]);
    for (const { consume, peek, refund } of scripts) {
      for (const lua of [consume, peek, refund]) expect(lua).toMatch(/^-- KEYS\[1\]: .*\n-- ARGV\[1\]: /);
    }
  });
});
