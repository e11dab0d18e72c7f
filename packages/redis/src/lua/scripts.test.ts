/**
 * The SHA1 of every script the store can send, pinned: a change to an algorithm's Lua body or to the
 * generator shows here in review (update with `pnpm vitest run -u packages/redis/src/lua`). What the
 * scripts compute is judged by test/store-conformance.test.ts.
 */
import { createHash } from 'node:crypto';
import { REGISTRY } from '@tollgate/core/internal';
import { describe, expect, it } from 'vitest';
import { BAN_SCRIPT, CODES, manyScripts, type ScriptTexts, singleScripts } from './scripts.js';

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
      pinned[`single ${algorithm.name} ban`] = shas(singleScripts(algorithm, true));
    }
    for (const codes of combinations(CODES)) {
      pinned[`many ${codes.join(',')}`] = shas(manyScripts(codes));
      pinned[`many ${codes.join(',')} ban`] = shas(manyScripts(codes, true));
    }
    pinned.ban = sha1(BAN_SCRIPT);
    expect(pinned).toMatchInlineSnapshot(`
      {
        "ban": "2c741fdfc251e19f5aaa013a900b83a3c3653ee8",
        "many 1": "7a2b80b54760311d725ae195e56a8bbbbab9534c 5a758c1233d9ad10dee062f3ad5db267709b9bf5 8733a496221b2dd144886a3cbd2920e030a371a3 c4bc2a2f0be2290ad7659e573f33c2fbee336a65",
        "many 1 ban": "86233eb1027d4404ab1f13a26eeb82d3db080282 368ef29b0d9e5c15737ff015941fefc30aeeb9a5 63d9c57657428e6a62f8cbdc8d38f02f94a7d74f 588a2dec084118a4ff6403ddfad6cd8a66494874",
        "many 1,2": "bbe29e8e3aca88357f89eb577e0f88e94a0bde3a 70bcb53e426085e70ae6c7fd2b18a3276d60ae5f 58e1e2d57d28964274736f63011ffb8aa5d0fc26 97aae19aa584e60c4ba250e6d261d8abdbc84d26",
        "many 1,2 ban": "7be92487f740df84abddf999d764e81e354f9e95 1715a8de23c74655cbaddd8db433f5cb5f5f286b fbadf13d6df0614c61e985ac772e0200329ab540 0e4ff8afaf5b8aae7d532db312dd2c3f29bf77cc",
        "many 1,2,3": "ef8a55489558558ea257ccbf85a98963d3b8f4e3 dc7745249e378f975488bc6d70acd5441837f036 eca4a864fc8808e07674e97fd649d1efecf6cfb1 49f9314b66469354316b54efe0d7ab7f3670f447",
        "many 1,2,3 ban": "56587db69510e6434c56f86795a0fee68da88763 270ee9a9ad8040687e5e4a4f3e2e5f3aa8f7f87d 872854cebb2fa1b20c83b22bbd910ab41c090028 be4ab7597e228db48a2c6337d7c49c6e4d773dbe",
        "many 1,2,3,4": "e2004493381b9cfe790e7fb0d5118326f4d2ca75 22430986684b7368156ca4e175f372d0bcbbed3a 77192e8285f23a5a9fdb969b7b8143d85828a798 1303c45aaccd968f475d5c348f6330ad25e95e60",
        "many 1,2,3,4 ban": "6b1868935a1f13b4268a494b0a1dd0b6c72c69fa c887974dedbab722b289cc36125df5d8b2b094ce 9ad361ec25866eadc740f9a0195616624c099a5d 6e17866a1935bbb59faf107084ab9e44b1d7aa9f",
        "many 1,2,4": "6548a0f9f3993b17fab11877914843666a8269dd 0de094ef81055d1e972265a1fd076d561b4e6001 abe04ae9cd07bb03d191a9a241cf4ec85d3dfacb 2e4ae21689c7a46c26b1308877afd2e063037e24",
        "many 1,2,4 ban": "dfd2f5ead39db9250528b079dc3c29509d8fe15a 4dbadf506c2c8b33abd44aa2399c8e6f670728f4 a799674a03e44b00a0387393ae2b56eeca2da403 e4ad1d21372f555ee865a477aa685a5b11759ac9",
        "many 1,3": "6a19ea4e488e4d9411aa389efeb51aa338026d6a f20e33c9214fcd15d1dff60f2c9ed548b2d44918 4eeb04b0c090d04a06e101e843a139a0b910354b 4d5c2b433b741dc6da591bca98b6daca7fbcad5c",
        "many 1,3 ban": "5e804c668e493ef940f5ee8c2e8bbf560972c1cb de51f3c2cbd7dd3a8728a092d07ebdd1cd3b5709 a27778b220cbbc48acffd020da2d019e2133c7a4 1f093af0d20bce22955ac65efe7c67639749ae72",
        "many 1,3,4": "e7e148b8da28cdd9c0dcefb3b44f6458e0eda516 e649282ddde768a3078efd4af843577856460f25 d21e7477dc57a66261cfa540e82a1150310b27d2 4fcb13635a2d5d47f0cf7d43f8dcf6fa6a6a473f",
        "many 1,3,4 ban": "968811db2ebf420018141f20c0c8fa2accc72d1c 512e80479175a854e408436f777dfa5c8e419dfc b1c3794f3f507bd772fb4c2215241eb985bf480a 4a300710704177410b5e0433870571399adcfcf2",
        "many 1,4": "de9af9339f1010599bc646519d0ccca9097065a6 2ee36a62205c95d3b9b1632a9b2ea3b8e13cdbc0 a0ab2987ea3a6c042402323d1943e43d39ec3e39 a148893228091c03f3079c24587f02ec4a42dd6f",
        "many 1,4 ban": "350fd7c382dc2f75b1c30d3737afc40c4950f447 0807ace85fbf2a90fa8cfb0f48ae767b1cc09543 df8bbb6b8277a8bbf937c2fa4c764c38d1d03f21 5c0432679a5717a7cbaff4377db4de599a2dc840",
        "many 2": "91256d01a2722f1f576b29b12f109bef6d21ce33 a480bd52a3b1625c754e6c6e4781917c167364e6 9e55f2373ff34471eac1e633b777b6dfc4f1c303 3bc54efcd0a8f9192097303f20e0717ade490502",
        "many 2 ban": "478221218a28c92ae0c95088740e24cacbbba6c9 6c1681cf5e5884865e3d36b403bd515d36c6efcb 0d98d184759a5954150b3c2112e1a951879d5b81 e9864874d09f4fc4ceda86d69c644cfd20013ca6",
        "many 2,3": "6213d9d01f62583d5923e67545fe47eee2d0c36d e221921c964831b1a2fe34bc0e99b6c6f8933e3e b6791aa6fc4600225ec548f2a9179909f8d4b4e3 6a9a29e8b4779f18e3d41a4134f6fe5e1a999056",
        "many 2,3 ban": "48f750bf2b763f58bc1f057144340a836760e868 5f164c882826761fe91dfc162be5dee67182f82d b24f8dd0c0154038c61e5f9e6c58a6711944de82 3f00ada8713b1221b18653c2fe8acf0e2934baf5",
        "many 2,3,4": "30758e3060e92263572f697ec5f2099764900426 7c2e5a09549ce771ba277b579f8e8752dcc7bd00 f951051faf4214314e2928919e530ca22d65c830 5721dabea91ce2d206af0b4cfa560c5d05337067",
        "many 2,3,4 ban": "409de217b2c1f992250c12ecbaf1aa04edc00c03 348fb8a9694091472abea34faae8b7dd591a8681 36c6a6daad4af6ace129b992936aee50c71c7cae d8a28269701bc63ef8a685062b86f4ed81740df0",
        "many 2,4": "10af32db89d63bfe3569cd7c57f2b0b81489997d 036f0b5edc884dd6c4b5ace35b3ef7ef107e94d3 776757c75b731f3a94c63da29d05917ca6010186 c76f0840d9a95e40096e43f7da5a33181fb4e8dd",
        "many 2,4 ban": "2ec727969f0bc9be4887a0e0dde639b5f227a796 343819c805cf882646c848e35fa64e440e2732d5 f828eec5968fb10c883ef78d6cf0df5dbee6b6d6 8b49fab7a795f0103711d96348f0ce04cb4a7d22",
        "many 3": "c87e81faebc6f423f293f0c3a1ad4eca130a58fe 665a4f11cd90e9c9c2d3a8ab4764bb3251ab6404 2bddb12864b9d36e2fd50556ab6f399c144ad428 cfa27788dc0debc90f826a2298405aa69db45e4d",
        "many 3 ban": "b3dff2b5a3ef5845a7350cf19f4ad432f8cb8c51 82051548bd4a41ecb0b49369612233c97a9c04f8 91b157e1df62ef849a9279b50fdc70884b5cc205 e49d673413c77e15f916d2605798c0365c394d09",
        "many 3,4": "85f40c714f018c878a2f9063f4b7292c0653f1f5 84c5258ed42156b5bc57bc255612d845832f8e56 9f18ce3c8a929a13b5aa0c08b36489f552eb0123 e16ef832b20c6a1c3aed0f8be7668258d2fbad7e",
        "many 3,4 ban": "7a5a3c7754c924ad042aba057494ebb27f29d030 8df582485b45ec06195b0b74b1f13bd46feb4080 df77cd9693adc6623a4031bffa443839108ed261 d5c056d4b849777129c10c46705a42baeb93fbb6",
        "many 4": "dfe1b68833cfcc06d2535cc7e1f2300120694f07 462f143dd4fb95ca0beb5f520f4769ef290b9b44 2215dc1c3c5cfee57a022f6fb66093d965e9f083 f6dbd18d955fc3856091090017775131c3eb7d5f",
        "many 4 ban": "585268585aa6ea932f52415843c1c6ee47cc93e7 dfb46286005fd397b8e4b7d513751f744b7f76db 8cb65909d1a9afdf72df1ee8f4f9916d1263e3f0 909764faf80297a8f252ebe9d4e18d41986dd00d",
        "single fixed-window": "c62df07fd10ece22c3b0138e9748e3a819106a44 a55e6a9bd97dde8a506ce650dde02cdb92f85223 74fdf1e0348272d06ee3061f11a4659aa6dc05b1 c31c71c823e884440084a367e0e6903fd2c2d07f",
        "single fixed-window ban": "753e882577779b432b99330a54d16b57a325306c 8cb0feeaede1dd4e4f129a3882b703c58fcc2c7f bea3a78f254a5c9c579a72058eba4e3d2ac423d5 1683ad07805249b3adc4cda98a1d9a544fcd4022",
        "single leaky-bucket": "eed592d9540620add17e25de0298abdf7a9f386d 43c62792b6286d48dac0a01c86b20d61119f10d2 59f5faf95a20817a348b04fba0b07d2d5d76e6b4 2a37dd91d764c8812918505d297d8b5813f19cc4",
        "single leaky-bucket ban": "1c78f00fba475aec29e9fbcde90d9a9fccd3481c c58a23af4e8e8c6c3b3397047c9e4c3581f0c374 729dc7deff86271cd831ef971cdce7d0fb6c806a 2a7b646618b337ef5224f2ca008f1380ff5ac6bb",
        "single sliding-window": "b04b4018837544c27a46e444f5bd5e02ee7dee4b e211200b9501516ce488e17bb1b7d77b4efe0f05 0f05f2f0051468915bbbea80eb7900abffcd3797 e1f9a3b21e9efd1edaef907d7211b7081c318e64",
        "single sliding-window ban": "ae4010bedd49ce071a4cf715e6d3dbc493405f76 3570e38ebc4a50f69a10cffd90f8a0956ded0353 e7c42482f66449cc85d6a467a223a45125b3c15e 500dbdedf2554fa32652f4bd8469b5d0b63239da",
        "single token-bucket": "54181cd6ab6254c8296368359bfa27c783ab3868 37df05423e2dd4cecbb9d021f35f47ac5bcf3bd2 f00c1422e8f4b566930e631daa8996d42c32d88f 4f6a5043d03b20e6e284bce32722f5bc39bf881d",
        "single token-bucket ban": "b64b6627a84589f1f51238ac95e03d595bef9a95 fbc719afcfae5237fe24699795e274d1d82beff5 a002d2b3b4414e1f43f4e2f43e5a6529dfdb4492 c9f7453cefb828270d29dd6afa9128605a4d83b6",
      }
    `);
  });

  it('open with their KEYS and ARGV', () => {
    const scripts = REGISTRY.flatMap((a) =>
      [false, true].flatMap((ban) => [
        singleScripts(a, ban),
        manyScripts([CODES[REGISTRY.indexOf(a)]!], ban),
      ]),
    );
    for (const { consume, peek, refund, settle } of scripts) {
      for (const lua of [consume, peek, refund, settle])
        expect(lua).toMatch(/^-- KEYS\[1\]: .*\n-- ARGV\[1\]: /);
    }
    expect(BAN_SCRIPT).toMatch(/^-- KEYS\[1\]: .*\n-- ARGV\[1\]: /);
  });
});
