import type { PolicySet, ResolvedCalendar } from '@tollgate/core';
import { type AlgorithmDefinition, keyDigest, type LuaParam, STEPS } from '@tollgate/core/internal';
import { type Script, script } from './clients.js';
import { BAN_SCRIPT, CODES, codeOf, manyScripts, type ScriptTexts, singleScripts } from './lua/scripts.js';

/**
 * Keys used as they are: short, and only characters that mean nothing to Redis or to us. Everything
 * else (braces, which would move the hash tag; `*`, spaces, CR/LF, Unicode, long keys) is hashed.
 * `|` separates the namespace from the key and `#` marks a hashed key, so neither is allowed raw.
 */
const RAW_KEY = /^[A-Za-z0-9_.:/@+=~-]{0,100}$/;

/** A user key as it appears inside the Redis key: itself, or `#` + its SHA-256 (43 characters). */
export function encodeKey(key: string): string {
  return RAW_KEY.test(key) ? key : `#${keyDigest(key)}`;
}

/** The scripts of one layout. */
export interface Scripts {
  readonly consume: Script;
  readonly peek: Script;
  readonly refund: Script;
  readonly settle: Script;
  /** Sets with a concurrency policy: lets a lease go. */
  readonly release?: Script;
}

/** `limiter.ban()` and `unban()`, on every layout with a ban slot. */
export const BAN: Script = script('ban', BAN_SCRIPT);

/**
 * After a set's Redis key, the key of its leases (sets with a concurrency policy): a sorted set
 * with the same hash tag, so one script touches both, on Cluster too.
 */
export const LEASES_SUFFIX = ':leases';

/** What a store computes once per policy set (cached in a WeakMap keyed by the frozen set). */
export interface Layout {
  /** Number of policies. */
  readonly size: number;
  /** The Redis key is `head + encodeKey(key) + tail`. */
  readonly head: string;
  readonly tail: string;
  /** The static end of every script's ARGV (a calendar policy's W and S filled per call). */
  readonly args: readonly string[];
  /** A settle's ARGV[4]: the policies' `maxDebt`, comma separated. */
  readonly debts: string;
  readonly scripts: Scripts;
  /** The set has bans: a ban slot after the policies' states, and two more numbers in each reply. */
  readonly ban: boolean;
  /** With bans, the ban script's ARGV after now and the length: the policies' doubles, within, memory. */
  readonly banArgs: readonly string[];
  /** The calendar policies, whose W and S (see LuaParam) the store fills in per call. */
  readonly periods: readonly PeriodSlot[];
  /** The set has a concurrency policy: its scripts take the key of its leases too (`LEASES_SUFFIX`). */
  readonly leases: boolean;
}

/** Where one calendar policy's period goes in `Layout.args`, and its place in the set. */
export interface PeriodSlot {
  readonly calendar: ResolvedCalendar;
  /** The policy's index in the set. */
  readonly policy: number;
  /** Indexes in `args` of W (the period's length) and S (its start). */
  readonly w: number;
  readonly s: number;
}

function toScripts(lua: ScriptTexts): Scripts {
  const keys = lua.release === undefined ? 1 : 2;
  const scripts = {
    consume: script('consume', lua.consume, keys),
    peek: script('peek', lua.peek, keys),
    refund: script('refund', lua.refund, keys),
    settle: script('settle', lua.settle, keys),
  };
  return lua.release === undefined ? scripts : { ...scripts, release: script('release', lua.release) };
}

/** Scripts by the algorithms they run: one per algorithm alone, one per combination for several policies. */
const SCRIPTS = new Map<string, Scripts>();

function scriptsFor(id: string, build: () => ScriptTexts): Scripts {
  let scripts = SCRIPTS.get(id);
  if (scripts === undefined) {
    scripts = toScripts(build());
    SCRIPTS.set(id, scripts);
  }
  return scripts;
}

/** A parameter's static value: a calendar period's W and S are filled per call (see `periods`). */
const paramValue = (policy: PolicySet['policies'][number], param: LuaParam): string => {
  if (param === 'L') return String(policy.limit);
  if (param === 'W') return String(policy.window);
  if (param === 'B') return String(policy.burst);
  if (param === 'S') return '';
  return policy.delay ? '1' : '0';
};

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
 */
export function layoutFor(set: PolicySet, prefix: string): Layout {
  const { policies, ban } = set;
  const banned = ban !== undefined;
  const mark = banned ? ' ban' : '';
  let args: string[];
  let scripts: Scripts;
  const periods: PeriodSlot[] = [];
  // A lone shadow policy with bans takes the several-policy script, which knows the mode: the
  // one-policy script counts every denial toward a ban, and a shadow policy never denies.
  if (policies.length === 1 && !(banned && policies[0]!.mode === 'shadow')) {
    const only = policies[0]!;
    const algorithm: AlgorithmDefinition = STEPS[only.algorithm];
    // ARGV: now, cost, then only what the algorithm reads (Redis makes a Lua string of each).
    args = algorithm.params.map((param) => paramValue(only, param));
    if (only.calendar !== undefined) {
      const { params } = algorithm;
      periods.push({ calendar: only.calendar, policy: 0, w: params.indexOf('W'), s: params.indexOf('S') });
    }
    scripts = scriptsFor(`single ${algorithm.name}${mark}`, () => singleScripts(algorithm, banned));
  } else {
    args = [];
    const codes = new Set<number>();
    policies.forEach((policy, i) => {
      const code = codeOf(STEPS[policy.algorithm]);
      codes.add(code);
      if (policy.calendar !== undefined) {
        periods.push({ calendar: policy.calendar, policy: i, w: args.length + 2, s: args.length + 6 });
      }
      args.push(String(code), String(policy.limit), String(policy.window), String(policy.burst));
      args.push(policy.delay ? '1' : '0', policy.mode === 'shadow' ? '1' : '0', '');
    });
    const list = CODES.filter((code) => codes.has(code));
    scripts = scriptsFor(`many ${list.join(',')}${mark}`, () => manyScripts(list, banned));
  }
  if (ban !== undefined) {
    args.push(String(ban.after), String(ban.within), String(ban.for), String(ban.factor));
    args.push(String(ban.max), String(ban.memory));
  }
  return {
    size: policies.length,
    head: `${prefix}{${set.namespace}|`,
    tail: `}:${keyDigest(`p1\n${set.id}`).slice(0, 16)}`,
    args,
    debts: policies.map((p) => String(p.maxDebt)).join(','),
    scripts,
    periods,
    ban: banned,
    banArgs: banned ? [String(3 * policies.length), String(ban.within), String(ban.memory)] : [],
    leases: set.holder >= 0,
  };
}
