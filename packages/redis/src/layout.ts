import { createHash } from 'node:crypto';
import type { Algorithm, PolicySet } from '@tollgate/core';

/** The algorithm codes the Lua scripts dispatch on (their STEP table is indexed by them). */
export const ALGORITHM_CODES: Record<Algorithm, string> = {
  'fixed-window': '1',
  'sliding-window': '2',
  'token-bucket': '3',
  'leaky-bucket': '4',
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

/** What a store computes once per policy set (cached in a WeakMap keyed by the frozen set). */
export interface Layout {
  /** Number of policies. */
  readonly size: number;
  /** The Redis key is `head + encodeKey(key) + tail`. */
  readonly head: string;
  readonly tail: string;
  /** The static part of every script's ARGV: 5 strings per policy. */
  readonly args: readonly string[];
}

/**
 * Redis key of one (policy set, key): `${prefix}{${namespace}|${encodedKey}}:${setHash}`, one hash
 * whose field `i` holds policy i's state, so one request touches one key.
 *
 * - The hash tag `{namespace|key}` keeps the key in one cluster slot whatever the rest is; the prefix
 *   is checked to hold no braces, and neither namespace nor encoded key can hold any, so the tag is
 *   always ours.
 * - `|` cannot occur in a namespace (core's name pattern) nor in a raw key, so (namespace, key)
 *   pairs never run into each other; a hashed key starts with `#`, which no raw key can.
 * - `setHash` (16 characters of SHA-256 of `set.id`) separates sets with different policies under
 *   one namespace: changing a limiter's policies starts fresh counters instead of misreading old
 *   state.
 */
export function layoutFor(set: PolicySet, prefix: string): Layout {
  const args: string[] = [];
  for (const policy of set.policies) {
    args.push(
      ALGORITHM_CODES[policy.algorithm],
      String(policy.limit),
      String(policy.window),
      String(policy.burst),
      policy.delay ? '1' : '0',
    );
  }
  return {
    size: set.policies.length,
    head: `${prefix}{${set.namespace}|`,
    tail: `}:${sha256(set.id).slice(0, 16)}`,
    args,
  };
}
