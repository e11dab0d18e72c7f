import { createHash } from 'node:crypto';
import type { Algorithm, PolicySet } from '@tollgate/core';
import { type Script, script } from './clients.js';
import type { Code } from './lua/algorithms.js';
import { consumeScript } from './lua/consume.js';
import {
  FIXED_WINDOW_CONSUME_SCRIPT,
  FIXED_WINDOW_PEEK_SCRIPT,
  FIXED_WINDOW_REFUND_SCRIPT,
} from './lua/fixed-window.js';
import { peekScript } from './lua/peek.js';
import { refundScript } from './lua/refund.js';
import { SINGLE_PARAMS, singleScripts } from './lua/single.js';

/** The algorithm codes the Lua scripts dispatch on. */
export const ALGORITHM_CODES: Record<Algorithm, Code> = {
  'fixed-window': 1,
  'sliding-window': 2,
  'token-bucket': 3,
  'leaky-bucket': 4,
};

/**
 * Keys used as they are: short, and only characters that mean nothing to Redis or to us. Everything
 * else (braces, which would move the hash tag; `*`, spaces, CR/LF, Unicode, long keys) is hashed.
 * `|` separates the namespace from the key and `#` marks a hashed key, so neither is allowed raw.
 */
const RAW_KEY = /^[A-Za-z0-9_.:/@+=~-]{0,100}$/;

const sha256 = (text: string): string =>
  // utf16le encodes every JavaScript string losslessly, lone surrogates included (utf8 would map
  // all of them to U+FFFD and make distinct keys collide).
  createHash('sha256').update(text, 'utf16le').digest('base64url');

/** A user key as it appears inside the Redis key: itself, or `#` + its SHA-256 (43 characters). */
export function encodeKey(key: string): string {
  return RAW_KEY.test(key) ? key : `#${sha256(key)}`;
}

/** The three scripts of one layout. */
export interface Scripts {
  readonly consume: Script;
  readonly peek: Script;
  readonly refund: Script;
}

/** What a store computes once per policy set (cached in a WeakMap keyed by the frozen set). */
export interface Layout {
  /**
   * `counter`: one fixed-window policy on Redis time, the count as an integer expiring with the
   * window (lua/fixed-window.ts); ARGV is cost, then `args`. `packed`: anything else, the states as
   * binary doubles (lua/algorithms.ts); ARGV is now, cost, then `args` (per policy: code, limit,
   * window, burst, delay; for one policy only what its algorithm reads, lua/single.ts).
   */
  readonly kind: 'counter' | 'packed';
  /** Number of policies. */
  readonly size: number;
  /** `counter`: the policy's limit, which the store needs to read the scripts' replies. */
  readonly limit: number;
  /** The Redis key is `head + encodeKey(key) + tail`. */
  readonly head: string;
  readonly tail: string;
  /** The static end of every script's ARGV. */
  readonly args: readonly string[];
  readonly scripts: Scripts;
}

const COUNTER: Scripts = {
  consume: script('consume', FIXED_WINDOW_CONSUME_SCRIPT),
  peek: script('peek', FIXED_WINDOW_PEEK_SCRIPT),
  refund: script('refund', FIXED_WINDOW_REFUND_SCRIPT),
};

/**
 * Packed-layout scripts by the set of algorithms they carry (at most 15 combinations), bit 0 set
 * for sets of one policy, which have scripts of their own (lua/single.ts).
 */
const PACKED = new Map<number, Scripts>();

function packedScripts(codes: ReadonlySet<Code>, single: boolean): Scripts {
  let mask = single ? 1 : 0;
  for (const code of codes) mask |= 1 << code;
  let scripts = PACKED.get(mask);
  if (scripts === undefined) {
    const list = [...codes];
    const lua = single
      ? singleScripts(list[0]!)
      : { consume: consumeScript(list), peek: peekScript(list), refund: refundScript(list) };
    scripts = {
      consume: script('consume', lua.consume),
      peek: script('peek', lua.peek),
      refund: script('refund', lua.refund),
    };
    PACKED.set(mask, scripts);
  }
  return scripts;
}

/**
 * Redis key of one (policy set, key): `${prefix}{${namespace}|${encodedKey}}:${setHash}`, one key
 * per request.
 *
 * - The hash tag `{namespace|key}` keeps the key in one cluster slot whatever the rest is; the prefix
 *   is checked to hold no braces, and neither namespace nor encoded key can hold any, so the tag is
 *   always ours.
 * - `|` cannot occur in a namespace (core's name pattern) nor in a raw key, so (namespace, key)
 *   pairs never run into each other; a hashed key starts with `#`, which no raw key can.
 * - `setHash` (16 characters of SHA-256 of the layout and `set.id`) separates sets with different
 *   policies under one namespace: changing a limiter's policies starts fresh counters instead of
 *   misreading old state. The layout is part of it, so two layouts never read each other's values.
 *
 * `redisTime`: the scripts read Redis TIME (no caller clock); only then can a fixed window live in
 * the key's TTL.
 */
export function layoutFor(set: PolicySet, prefix: string, redisTime: boolean): Layout {
  const only = set.policies.length === 1 ? set.policies[0]! : undefined;
  const kind = redisTime && only?.algorithm === 'fixed-window' ? 'counter' : 'packed';
  const args: string[] = [];
  const codes = new Set<Code>();
  if (kind === 'counter') {
    args.push(String(only!.limit), String(only!.window));
  } else if (only !== undefined) {
    const code = ALGORITHM_CODES[only.algorithm];
    codes.add(code);
    const values = { L: only.limit, W: only.window, B: only.burst, D: only.delay ? 1 : 0 };
    for (const param of SINGLE_PARAMS[code]) args.push(String(values[param]));
  } else {
    for (const policy of set.policies) {
      codes.add(ALGORITHM_CODES[policy.algorithm]);
      args.push(
        String(ALGORITHM_CODES[policy.algorithm]),
        String(policy.limit),
        String(policy.window),
        String(policy.burst),
        policy.delay ? '1' : '0',
      );
    }
  }
  return {
    kind,
    size: set.policies.length,
    limit: only?.limit ?? 0,
    head: `${prefix}{${set.namespace}|`,
    tail: `}:${sha256(`${kind === 'counter' ? 'c1' : 'p1'}\n${set.id}`).slice(0, 16)}`,
    args,
    scripts: kind === 'counter' ? COUNTER : packedScripts(codes, only !== undefined),
  };
}
