import {
  type AlgorithmDefinition,
  BAN_ARGS,
  BAN_COUNT_LUA,
  BAN_END_LUA,
  type LuaParam,
  REGISTRY,
} from '@tollgate/core/internal';

/**
 * Every script the store sends, built from the algorithms' Lua bodies (each in its folder of
 * packages/core/src/algorithms, the contract in its types.ts): string building only, so that no
 * algorithm exists here a second time. A body is inlined flat wherever a script runs it, never
 * wrapped in a `local function`, which Lua would build anew on every call.
 *
 * Two layouts of the state in Redis, both three binary doubles per policy in one string key, read
 * with one GET and written with one SET: one policy (most limiters), whose ARGV carries only the
 * parameters its algorithm reads, and several policies, applied all or nothing (`manyScripts`, the
 * twin of `evaluate` in packages/core/src/evaluate.ts). Every script reads before it writes, and a
 * denial writes nothing, so a blocked key is still answered when Redis refuses writes (out of
 * memory under `maxmemory-policy noeviction`).
 *
 * ARGV[1] is now in ms ('' for Redis TIME), ARGV[2] the cost; a refund's ARGV[3] is when the units
 * were counted ('' if unknown), and so is a settle's, whose ARGV[4] is the policies' `maxDebt`; the
 * policies' parameters follow. Every consume and peek replies with 5 integers per policy, allowed
 * (1/0), remaining, resetMs, retryAfterMs (-1: never) and delayMs, then `now` (a Decision's
 * `countedAt`); a settle replies as a peek after it, with the units each policy left uncharged
 * before `now`. A refund replies 1 when it kept state, else 0.
 *
 * A calendar policy's parameters carry the period the caller expects `now` in (S, its start, and
 * W, its length: see LuaParam): the store computes periods in TypeScript (time zones need Intl)
 * around its estimate of Redis time. When `now` is outside it (a boundary crossed within the
 * estimate's error, a Redis clock far from ours) the script changes nothing and replies
 * `{ PERIOD_MISS, now }`, and the store sends the call again with the period that holds that `now`:
 * Redis's own clock decides which period a request falls in.
 *
 * A set with a concurrency policy (an algorithm that `holds`) keeps its leases in a second key of
 * the same hash tag, a sorted set (KEYS[2]), touched by the same script: still one command per
 * decision. Its consume and peek take the request's lease id as ARGV[3] (the parameters follow
 * from ARGV[4]); a release is one more command, the `release` script, on the sorted set alone.
 *
 * A set with bans (`ban`: the twin of `applyBanned` in evaluate.ts) keeps a ban slot, 4 more
 * doubles, after the policies' states in the same key, and its ARGV ends with the ban's parameters
 * (BAN_ARGS). A banned key is answered from the slot without running a policy; a denial is counted
 * in it, the one write a denial makes (by `redis.pcall`, so that when Redis refuses writes, out of
 * memory, the denial is still answered, uncounted). Consume and peek reply with two more integers:
 * the ms of ban left (0: not banned), and the offence when this request started the ban (else 0).
 */

/** A script's first reply element when `now` is outside a calendar policy's period (see above). */
export const PERIOD_MISS = -2;

/**
 * With a caller's `clock`, keys live this much longer than their state. Redis expires keys on its
 * own clock; a clock that runs slower than Redis's (a virtual clock in tests) would otherwise see
 * state vanish before it says it expires. With Redis TIME (the default) TTLs are exact.
 */
export const CLOCK_TTL_GRACE_MS = 60_000;

/** The scripts of one layout. */
export interface ScriptTexts {
  readonly consume: string;
  readonly peek: string;
  readonly refund: string;
  readonly settle: string;
  /** Sets with a concurrency policy: lets a lease go (KEYS[1] the sorted set of leases). */
  readonly release?: string;
}

/** An algorithm's code in the scripts of several policies: its place in the registry, from 1. */
export const codeOf = (algorithm: AlgorithmDefinition): number => REGISTRY.indexOf(algorithm as never) + 1;

/** Every code: the scripts of sets of any algorithms. */
export const CODES: readonly number[] = REGISTRY.map((_, i) => i + 1);

interface Sections {
  /** The state as seen at `now`, shared by the two others. */
  readonly view: string;
  readonly consume: string;
  readonly refund: string;
  readonly charge: string;
  /** Algorithms that hold requests: runs once the whole request is allowed. */
  readonly hold?: string;
  /** Algorithms that hold requests: the release script's body. */
  readonly release?: string;
}

/** The parts a script runs: a section of a body, with the state it sees. */
type Part = Exclude<keyof Sections, 'view' | 'hold' | 'release'>;

const cache = new Map<AlgorithmDefinition, Sections>();

/** A body's three sections (see `AlgorithmDefinition.lua`). */
function sections(algorithm: AlgorithmDefinition): Sections {
  let found = cache.get(algorithm);
  if (found === undefined) {
    const lines = algorithm.lua.trim().split('\n');
    const start = (name: string) => lines.findIndex((line) => line.startsWith(`-- ${name}:`));
    const consume = start('consume');
    const refund = start('refund');
    const charge = start('charge');
    if (consume < 0 || refund < consume || charge < refund) {
      throw new Error(
        `The Lua body of ${algorithm.name} needs a '-- consume:', then a '-- refund:', then a '-- charge:' section.`,
      );
    }
    const text = (from: number, to?: number) => lines.slice(from, to).join('\n').trim();
    if (algorithm.holds === undefined) {
      found = {
        view: text(0, consume),
        consume: text(consume, refund),
        refund: text(refund, charge),
        charge: text(charge),
      };
    } else {
      const hold = start('hold');
      const release = start('release');
      if (hold < charge || release < hold) {
        throw new Error(
          `The Lua body of ${algorithm.name}, which holds requests, needs '-- hold:' and then '-- release:' sections after '-- charge:'.`,
        );
      }
      found = {
        view: text(0, consume),
        consume: text(consume, refund),
        refund: text(refund, charge),
        charge: text(charge, hold),
        hold: text(hold, release),
        release: text(release),
      };
    }
    cache.set(algorithm, found);
  }
  return found;
}

const indent = (text: string, depth: number): string => text.replace(/^(?=.)/gm, ' '.repeat(depth));

/** `part` of `algorithm` with the state it sees, as one block of statements. */
const body = (algorithm: AlgorithmDefinition, part: Part): string => {
  const s = sections(algorithm);
  return `${s.view}\n${s[part]}`;
};

/** `do ... end` around `part`, so its locals stay in it. */
const block = (algorithm: AlgorithmDefinition, part: Part, depth = 0): string =>
  indent(`do\n${indent(body(algorithm, part), 2)}\nend`, depth);

/** `part` of whichever algorithm `code` names: an if chain (a table of functions is built per call). */
function dispatch(codes: readonly number[], part: Part, depth: number): string {
  const lines = codes.map(
    (code, i) =>
      `${i === 0 ? 'if' : 'elseif'} code == ${code} then\n${indent(body(REGISTRY[code - 1]!, part), 2)}`,
  );
  return indent(`${lines.join('\n')}\nend`, depth);
}

/** The outputs of a consume section, at their starting values. */
const OUTPUTS =
  'local ok, remaining, reset, retry, delay, n1, n2, n3, old, new = 0, 0, 0, 0, 0, nil, nil, 0, 0, 0';

const HEAD = `local INF, NONE = -1, -1 / 0
local floor, ceil, max, min, fmod = math.floor, math.ceil, math.max, math.min, math.fmod
local call = redis.call
local key = KEYS[1]`;

/**
 * `now`: ARGV[1], or Redis TIME when it is '' (the replay guard's reading, `guard_now`, when it made
 * one: see GUARD in clients.ts); `grace` (see CLOCK_TTL_GRACE_MS).
 */
const NOW = `local now, grace = ARGV[1], 0
if now == '' then
  now = guard_now
  if not now then
    -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
    if redis.replicate_commands then redis.replicate_commands() end
    local t = call('TIME')
    now = t[1] * 1000 + floor(t[2] / 1000)
  end
else
  now, grace = now + 0, ${CLOCK_TTL_GRACE_MS}
end`;

const COUNTED_AT = "-- ARGV[3]: when the units were counted, in ms, or '' if unknown";
const LEASE_ID = "-- ARGV[3]: the request's lease id, held if it takes a slot ('' for a peek)";
const LEASES = '-- KEYS[2]: its leases: a sorted set of lease ids scored by when they end';
/** `lkey`, the sorted set of leases, and `lease`, the lease id, when ARGV[3] is one (`extras`). */
const leaseLocals = (extras: readonly string[]) =>
  extras[0] === LEASE_ID ? 'local lkey, lease = KEYS[2], ARGV[3]' : 'local lkey = KEYS[2]';

/** The algorithms of `codes` that hold requests (concurrency). */
const holding = (codes: readonly number[]): AlgorithmDefinition[] =>
  codes.map((code) => REGISTRY[code - 1]! as AlgorithmDefinition).filter((a) => a.holds !== undefined);

/**
 * The release script of `algorithm`, which holds requests: KEYS[1] the sorted set of leases, ARGV
 * now and the lease id. Replies `now`, so the caller can tell a release that came after the lease.
 */
function releaseScript(algorithm: AlgorithmDefinition): string {
  return `-- KEYS[1]: the leases of one (policy set, key): a sorted set of lease ids scored by when they end
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: the lease id to let go
${HEAD}
${NOW}
local lkey, lease = key, ARGV[2]
${sections(algorithm).release!}
return now
`;
}

/** A settle's ARGV[2]. */
const DELTA = 'units to add even past the limit (actual cost - estimate), or to give back when negative';
/** `at`: a refund's ARGV[3], nil when unknown. */
const AT = "local at = ARGV[3]\nif at == '' then at = nil else at = at + 0 end";

const NAMES: Record<LuaParam, string> = {
  L: 'limit',
  W: 'window ms',
  B: 'burst',
  D: 'delay (1/0)',
  S: "a calendar period's start in ms, W its length ('' for a rolling window)",
};

/** How a script reads parameter `param` from ARGV[i]: S may be '' (nil), the others are numbers. */
const read = (param: LuaParam, i: string) => (param === 'S' ? `tonumber(ARGV[${i}])` : `ARGV[${i}] + 0`);

/** Outside the calendar period the caller expects: nothing is changed (see PERIOD_MISS). */
const PERIOD_CHECK = `if S and (now < S or now >= S + W) then return { ${PERIOD_MISS}, now } end`;

/**
 * The scripts of a set of one policy of `algorithm`: ARGV now, cost, then the parameters the
 * algorithm reads (`params`: Redis makes a Lua string of every argument on every call). Numbers are
 * read with `+ 0`, not tonumber(), which parses a string twice: the same strtod, the same double.
 */
export function singleScripts(algorithm: AlgorithmDefinition, ban = false): ScriptTexts {
  const { params } = algorithm;
  const holds = algorithm.holds !== undefined;
  /** Consume's and peek's ARGV[3] with a concurrency policy: the lease id. */
  const leaseArg = holds ? [LEASE_ID] : [];
  const header = (operation: string, extras: readonly string[] = [], from = 3 + extras.length) => {
    const banFrom = from + params.length;
    return `-- KEYS[1]: the state of one (policy, key): 3 binary doubles${ban ? ', then the ban slot: 4 more' : ''}${holds ? `\n${LEASES}` : ''}
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ${operation}${extras.map((line) => `\n${line}`).join('')}
${params.map((p, i) => `-- ARGV[${i + from}]: ${NAMES[p]}`).join('\n')}${ban ? `\n-- ARGV[${banFrom}..${banFrom + BAN_ARGS.length - 1}]: ${BAN_NAMES}` : ''}
${HEAD}${holds ? `\n${leaseLocals(extras)}` : ''}
${NOW}
local ${params.join(', ')} = ${params.map((p, i) => read(p, String(i + from))).join(', ')}${params.includes('S') ? `\n${PERIOD_CHECK}` : ''}${ban ? `\n${banLocals((i) => `ARGV[${banFrom + i}]`)}` : ''}
local raw = call('GET', key)
local s1, s2, s3${ban ? ', b1, b2, b3, b4' : ''}
if raw then
  if #raw ~= ${ban ? 56 : 24} then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not 1 policies${ban ? ' and a ban' : ''} long')
  end
  ${ban ? `s1, s2, s3, b1, b2, b3, b4 = struct.unpack('${SINGLE_BAN_FORMAT}', raw)` : "s1, s2, s3 = struct.unpack('<ddd', raw)"}
  if s1 == NONE then s1 = nil end${ban ? '\n  if b1 == NONE then b1 = nil end' : ''}
end`;
  };
  const pack = (n: string) =>
    ban
      ? `struct.pack('${SINGLE_BAN_FORMAT}', ${n}, b1 or NONE, b2 or 0, b3 or 0, b4 or 0)`
      : `struct.pack('<ddd', ${n})`;
  const consume = ban
    ? `${header('cost', leaseArg)}
local cost = ARGV[2] + 0
${BANNED_SINGLE}
${OUTPUTS}
${block(algorithm, 'consume')}
if ok == 0 then
  local banLength = 0
${indent(countDenial("struct.pack('<ddddddd', s1 or NONE, s2 or 0, s3 or 0, b1, b2, b3, b4)"), 2)}
  if banLength > 0 then return { 0, 0, banLength, banLength, 0, now, banLength, b2 } end
  return { 0, remaining, reset, retry, delay, now, 0, 0 }
end
${BAN_END_LUA.trim()}
new, old = max(new, banEnd), max(old, banEnd)
${keep(pack('n1, n2, n3'), 'new', 'old')}${holds ? `\n${sections(algorithm).hold!}` : ''}
return { 1, remaining, reset, 0, delay, now, 0, 0 }
`
    : `${header('cost', leaseArg)}
local cost = ARGV[2] + 0
${OUTPUTS}
${block(algorithm, 'consume')}
-- Denied: nothing is written.
if ok == 0 then return { 0, remaining, reset, retry, delay, now } end
${keep("struct.pack('<ddd', n1, n2, n3)", 'new', 'old')}${holds ? `\n${sections(algorithm).hold!}` : ''}
return { 1, remaining, reset, 0, delay, now }
`;
  const peek = `${header('ignored (the cost slot of the shared argument layout)', leaseArg)}
${ban ? `${BANNED_SINGLE}\n` : ''}${peekOne(algorithm, ban)}`;
  const refund = `${header('cost to give back', [COUNTED_AT])}
local cost = ARGV[2] + 0
${AT}
if not s1 then return 0 end
local n1, n2, n3, new = nil, nil, 0, 0
${block(algorithm, 'refund')}${ban ? `\n${BAN_END_LUA.trim()}` : ''}
if not n1 then${
    ban
      ? `
  -- No policy state left, but the ban slot still matters: keep it alone.
  if banEnd > now then
    ${keep(`struct.pack('${SINGLE_BAN_FORMAT}', NONE, 0, 0, b1, b2, b3, b4)`, 'banEnd')}
    return 0
  end`
      : ''
  }
  call('DEL', key)
  return 0
end${ban ? '\nnew = max(new, banEnd)' : ''}
${keep(pack('n1, n2, n3'), 'new')}
return 1
`;
  const settle = `${header(DELTA, [COUNTED_AT, '-- ARGV[4]: maxDebt, units over its capacity the policy may owe'])}
local delta = ARGV[2] + 0
${AT}
local debt = ARGV[4] + 0
local n1, n2, n3, new, charged = nil, nil, 0, 0, 0
${settleOne(block(algorithm, 'refund', 4), block(algorithm, 'charge', 2))}
local uncharged = max(0, delta) - charged${
    ban
      ? `
${BAN_END_LUA.trim()}
if n1 then
  new = max(new, banEnd)
  ${keep(pack('n1, n2, n3'), 'new')}
elseif banEnd > now then
  -- No policy state left, but the ban slot still matters: keep it alone.
  ${keep(`struct.pack('${SINGLE_BAN_FORMAT}', NONE, 0, 0, b1, b2, b3, b4)`, 'banEnd')}
elseif raw then
  call('DEL', key)
end`
      : `
if n1 then
  ${keep("struct.pack('<ddd', n1, n2, n3)", 'new')}
elseif raw then
  call('DEL', key)
end`
  }
-- What a cost-1 request gets now${ban ? ', then the ban left (0: none)' : ''}.${ban ? '\nif b1 and b1 > now then return { 0, 0, b1 - now, b1 - now, 0, uncharged, now, b1 - now } end' : ''}
s1, s2, s3 = n1, n2, n3
${peekBody(block(algorithm, 'consume'))}
return { ok, idleRemaining, idleReset, retry, delay, uncharged, now${ban ? ', 0' : ''} }
`;
  return holds
    ? { consume, peek, refund, settle, release: releaseScript(algorithm) }
    : { consume, peek, refund, settle };
}

/** The layout of one policy and a ban slot. */
const SINGLE_BAN_FORMAT = '<ddddddd';

const BAN_NAMES = 'the ban: after (0: manual bans only), within ms, for ms, factor, max ms, memory ms';

/** The ban's parameters as locals, from where `arg(i)` says its i-th is. */
const banLocals = (arg: (i: number) => string) =>
  `local ${BAN_ARGS.join(', ')} = ${BAN_ARGS.map((_, i) => `${arg(i)} + 0`).join(', ')}`;

/** One policy, banned: refused for the ban's time left, no policy run, nothing written. */
const BANNED_SINGLE = `-- Banned: refused for the ban's time left; no policy runs, nothing is written.
if b1 and b1 > now then return { 0, 0, b1 - now, b1 - now, 0, now, b1 - now, 0 } end`;

/**
 * A denial with bans: counted in the ban slot (which may start a ban: `banLength`), then `value`
 * written, by pcall: when Redis refuses writes (out of memory) the denial is answered uncounted.
 * The key lives as long as its policies' state (PTTL) or its ban slot, whichever is longer.
 */
function countDenial(value: string): string {
  return `if after > 0 then
${indent(BAN_COUNT_LUA.trim(), 2)}
${indent(BAN_END_LUA.trim(), 2)}
  redis.pcall('SET', key, ${value}, 'PX', max(call('PTTL', key), max(1, banEnd - now) + grace))
end`;
}

/**
 * One policy's settle: a refund of -delta when delta is negative (to a state that exists), else a
 * charge of delta, `refund` and `charge` being the parts as blocks.
 */
const settleOne = (refund: string, charge: string): string => `if delta < 0 then
  if s1 then
    local cost = -delta
${refund}
  end
else
  local cost = delta
${charge}
end`;

/**
 * Writes `value` at `key` until the deadline `deadline`. SET with KEEPTTL (Redis 6+, used from 7
 * on, which scripts detect through REDIS_VERSION_NUM) when the deadline did not move (`old`, the
 * stored state's, is the same), which spares Redis the expiry bookkeeping on most calls of a window.
 * Without `old` (a refund) the deadline is set again.
 */
function keep(value: string, deadline: string, old?: string): string {
  const set = `call('SET', key, ${value}, 'PX', max(1, ${deadline} - now) + grace)`;
  if (old === undefined) return set;
  return `if raw and grace == 0 and ${deadline} == ${old} and ${deadline} > now and redis.REDIS_VERSION_NUM then
  call('SET', key, ${value}, 'KEEPTTL')
else
  ${set}
end`;
}

/** What a cost-1 request would get, writing nothing: `consume` run with cost 0, then with cost 1. */
function peekBody(consume: string, depth = 0): string {
  return indent(
    `local idleRemaining, idleReset
do
  local cost = 0
  ${OUTPUTS}
${indent(consume, 2)}
  idleRemaining, idleReset = remaining, reset
end
local cost = 1
${OUTPUTS}
${consume}`,
    depth,
  );
}

/** The peek of a set of one policy of `algorithm`, after its state is read. */
const peekOne = (algorithm: AlgorithmDefinition, ban = false): string =>
  `${peekBody(block(algorithm, 'consume'))}\nreturn { ok, idleRemaining, idleReset, retry, delay, now${ban ? ', 0, 0' : ''} }\n`;

/** ARGV per policy in the scripts of several policies: code, L, W, B, D, shadow (1/0), S. */
export const PER_POLICY = 7;

/**
 * The scripts of a set of several policies of the algorithms `codes`: ARGV now, cost, then per
 * policy its code, limit, window ms, burst, delay (1/0), mode (1: shadow, 0: enforce) and calendar
 * period start ('' for none: see LuaParam S). One key holds every policy's state, three doubles
 * each (policy i at 3i-2 .. 3i of `st`), NONE (-inf, which no state holds) first for a policy
 * without state: one GET and one SET, cheaper for Redis than a hash's HMGET, HSET and PEXPIRE.
 */
export function manyScripts(codes: readonly number[], ban = false): ScriptTexts {
  // With bans, the ban slot follows the policies' 3 * n doubles: `width` in all.
  const width = ban ? 'width' : '3 * n';
  const holders = holding(codes);
  const holds = holders.length > 0;
  /** Consume's and peek's ARGV[3] with a concurrency policy: the lease id. */
  const leaseArg = holds ? [LEASE_ID] : [];
  const header = (
    operation: string,
    extras: readonly string[] = [],
    from = 3 + extras.length,
  ) => `-- KEYS[1]: the state of one (policy set, key): 3 binary doubles per policy${ban ? ', then the ban slot: 4 more' : ''}${holds ? `\n${LEASES}` : ''}
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ${operation}${extras.map((line) => `\n${line}`).join('')}
-- ARGV[${from}..]: per policy: algorithm code, limit, window ms, burst, delay (1/0), shadow (1/0),
-- period start${ban ? `\n-- the last ${BAN_ARGS.length} ARGV: ${BAN_NAMES}` : ''}
${HEAD}${holds ? `\n${leaseLocals(extras)}` : ''}
${NOW}
local n = (#ARGV - ${from - 1}${ban ? ` - ${BAN_ARGS.length}` : ''}) / ${PER_POLICY}${
    ban ? `\nlocal width = 3 * n + 4\n${banLocals((i) => `ARGV[#ARGV - ${BAN_ARGS.length - 1 - i}]`)}` : ''
  }
local format = '<' .. string.rep('d', ${width})
local raw = call('GET', key)
local st = {}
if raw then
  if #raw ~= ${ban ? '8 * width' : '24 * n'} then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not ' .. n .. ' policies${ban ? ' and a ban' : ''} long')
  end
  st = { struct.unpack(format, raw) }
  for j = 1, 3 * n, 3 do
    if st[j] == NONE then st[j] = nil end
  end
end${
    ban
      ? `
local b1, b2, b3, b4 = st[3 * n + 1], st[3 * n + 2], st[3 * n + 3], st[3 * n + 4]
if b1 == NONE then b1 = nil end`
      : ''
  }`;
  /** Policy i's parameters and stored state. */
  const policy = (depth: number, from = 3) =>
    indent(
      `local a, j = ${PER_POLICY} * i - ${PER_POLICY - from}, 3 * i - 2
local code, L, W, B, D = ARGV[a] + 0, ARGV[a + 1] + 0, ARGV[a + 2] + 0, ARGV[a + 3] + 0, ARGV[a + 4] + 0
local S = ${read('S', 'a + 6')}
${PERIOD_CHECK}
local s1, s2, s3 = st[j], st[j + 1], st[j + 2]`,
      depth,
    );
  const write = (states: string, deadline: string, old?: string) => `for j = 1, 3 * n, 3 do
  if ${states}[j] == nil then ${states}[j], ${states}[j + 1], ${states}[j + 2] = NONE, 0, 0 end
end
${keep(`struct.pack(format, unpack(${states}, 1, ${width}))`, deadline, old)}`;
  /** The reply of a banned key: every policy refused for `left` ms, then now, `left`, `offence`. */
  const banned = (left: string, offence: string) => `for i = 1, n do
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = 0, 0, ${left}, ${left}, 0
end
out[5 * n + 1], out[5 * n + 2], out[5 * n + 3] = now, ${left}, ${offence}
return out`;
  const bannedAtEntry = `-- Banned: refused for the ban's time left; no policy runs, nothing is written.
if b1 and b1 > now then
  local out, left = {}, b1 - now
${indent(banned('left', '0'), 2)}
end
`;

  const from = 3 + leaseArg.length;
  // Once the whole request is allowed, the policy that holds requests takes its lease.
  const hold = holders.map(
    (a) => `
  for i = 1, n do
${policy(4, from)}
    if code == ${codeOf(a)} then
      local n1 = states[j]
${indent(sections(a).hold!, 6)}
    end
  end`,
  );
  const consume = `${header('cost', leaseArg)}
local cost = ARGV[2] + 0
${ban ? bannedAtEntry : ''}local out, states, allowed, keyOld, keyNew, shadowed = {}, {}, true, 0, 0, false
for i = 1, n do
${policy(2, from)}
  ${OUTPUTS}
${dispatch(codes, 'consume', 2)}
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, remaining, reset, retry, delay
  if ok == 1 then
    states[j], states[j + 1], states[j + 2] = n1, n2, n3
    keyOld, keyNew = max(keyOld, old), max(keyNew, new)
  elseif ARGV[a + 5] == '1' then
    -- A shadow policy that would deny keeps its state, as a denial does, and never denies the request.
    states[j], states[j + 1], states[j + 2] = s1, s2, s3
    shadowed = true
  else
    allowed = false
  end
end
out[5 * n + 1] = now${ban ? '\nout[5 * n + 2], out[5 * n + 3] = 0, 0' : ''}
if allowed then
  if shadowed then
    -- The state kept may outlive every state written: the key keeps at least the time it had.
    local ttl = call('PTTL', key)
    if ttl > 0 then keyNew = max(keyNew, now + ttl - grace) end
  end
${indent(ban ? ALLOWED_BAN_WRITE : '', 2)}${indent(write('states', 'keyNew', 'keyOld'), 2)}${hold.join('')}
  return out
end
-- Denied as a whole, so nothing is written, and the policies that allowed report their state
-- untouched: as with cost 0.
for i = 1, n do
  local o = 5 * i - 5
  if out[o + 1] == 1 then
${policy(4, from)}
    local cost = 0
    ${OUTPUTS}
${dispatch(codes, 'consume', 4)}
    out[o + 2], out[o + 3], out[o + 4], out[o + 5] = remaining, reset, 0, 0
  end
end
${
  ban
    ? `local banLength = 0
${countDenialMany()}
if banLength > 0 then
${indent(banned('banLength', 'b2'), 2)}
end
`
    : ''
}return out
`;
  const peek = `${header('ignored (the cost slot of the shared argument layout)', leaseArg)}
${ban ? bannedAtEntry : ''}local out = {}
for i = 1, n do
${policy(2, from)}
${peekBody(dispatch(codes, 'consume', 0), 2)}
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, idleRemaining, idleReset, retry, delay
end
out[5 * n + 1] = now${ban ? '\nout[5 * n + 2], out[5 * n + 3] = 0, 0' : ''}
return out
`;
  const refund = `${header('cost to give back', [COUNTED_AT])}
local cost = ARGV[2] + 0
${AT}
-- A policy left with nothing to keep loses its state; the key goes when no policy has any left.
local any, kept, keyNew = false, false, 0
for i = 1, n do
  if st[3 * i - 2] then
${policy(4, 4)}
    any = true
    local n1, n2, n3, new = nil, nil, 0, 0
${dispatch(codes, 'refund', 4)}
    st[j], st[j + 1], st[j + 2] = n1, n2, n3
    if n1 then
      kept, keyNew = true, max(keyNew, new)
    end
  end
end${ban ? `\n${BAN_END_LUA.trim()}` : ''}
if not kept then${
    ban
      ? `
  -- No policy state left, but the ban slot still matters: keep it alone.
  if banEnd > now then
${indent(write('st', 'banEnd'), 4)}
    return 0
  end`
      : ''
  }
  if any then call('DEL', key) end
  return 0
end${ban ? '\nkeyNew = max(keyNew, banEnd)' : ''}
${write('st', 'keyNew')}
return 1
`;
  const settle = `${header(DELTA, [COUNTED_AT, "-- ARGV[4]: every policy's maxDebt, comma separated"])}
local delta = ARGV[2] + 0
${AT}
local debts = {}
for d in string.gmatch(ARGV[4], '[^,]+') do debts[#debts + 1] = d + 0 end
-- As a refund: a policy left with nothing loses its state, the key goes when none has any left.
local out, any, kept, keyNew = {}, false, false, 0
for i = 1, n do
${policy(2, 5)}
  local debt = debts[i]
  local n1, n2, n3, new, charged = nil, nil, 0, 0, 0
  if s1 then any = true end
${indent(settleOne(dispatch(codes, 'refund', 4), dispatch(codes, 'charge', 2)), 2)}
  st[j], st[j + 1], st[j + 2] = n1, n2, n3
  if n1 then
    kept, keyNew = true, max(keyNew, new)
  end
  out[5 * n + i] = max(0, delta) - charged
end${
    ban
      ? `
${BAN_END_LUA.trim()}
if kept or banEnd > now then
  st[3 * n + 1] = st[3 * n + 1] or NONE
  st[3 * n + 2], st[3 * n + 3], st[3 * n + 4] = st[3 * n + 2] or 0, st[3 * n + 3] or 0, st[3 * n + 4] or 0
  keyNew = max(keyNew, banEnd)
${indent(write('st', 'keyNew'), 2)}`
      : `
if kept then
${indent(write('st', 'keyNew'), 2)}`
  }
elseif any then
  call('DEL', key)
end
-- What a cost-1 request gets now, from the states just written.${
    ban
      ? `
if b1 and b1 > now then
  for i = 1, n do
    local o, left = 5 * i - 5, b1 - now
    out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = 0, 0, left, left, 0
  end
  out[6 * n + 1], out[6 * n + 2] = now, b1 - now
  return out
end`
      : ''
  }
for i = 1, n do
${policy(2, 5)}
  if s1 == NONE then s1 = nil end
${peekBody(dispatch(codes, 'consume', 0), 2)}
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, idleRemaining, idleReset, retry, delay
end
out[6 * n + 1] = now${ban ? '\nout[6 * n + 2] = 0' : ''}
return out
`;
  const release = holders[0] === undefined ? undefined : releaseScript(holders[0]);
  return release === undefined
    ? { consume, peek, refund, settle }
    : { consume, peek, refund, settle, release };
}

/** Several policies, allowed, with bans: the ban slot is stored as it was; the key lives as long as it matters. */
const ALLOWED_BAN_WRITE = `states[3 * n + 1], states[3 * n + 2], states[3 * n + 3], states[3 * n + 4] = b1 or NONE, b2 or 0, b3 or 0, b4 or 0
${BAN_END_LUA.trim()}
keyOld, keyNew = max(keyOld, banEnd), max(keyNew, banEnd)
`;

/** `countDenial` for several policies: the policies' states as stored (none: NONE), the slot counted. */
const countDenialMany = () =>
  countDenial(`struct.pack(format, unpack(st, 1, width))`).replace(
    '  redis.pcall(',
    `  st[3 * n + 1], st[3 * n + 2], st[3 * n + 3], st[3 * n + 4] = b1, b2, b3, b4
  for j = 1, 3 * n, 3 do
    if st[j] == nil then st[j], st[j + 1], st[j + 2] = NONE, 0, 0 end
  end
  redis.pcall(`,
  );

/**
 * \`limiter.ban()\` and \`unban()\`, for every layout with a ban slot (the twins of \`banStates\` and
 * \`unbanStates\` in evaluate.ts). ARGV: now, the ban's length in ms (0: unban), the number of
 * doubles before the ban slot, within ms and memory ms (how long the slot matters). A ban replies
 * { ban end, offence }; an unban 1 when it lifted state, else 0.
 */
export const BAN_SCRIPT = `-- KEYS[1]: the state of one (policy set, key): the policies' doubles, then the ban slot: 4 more
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: the ban's length in ms; 0 to lift it
-- ARGV[3]: how many doubles the policies' states take, before the ban slot
-- ARGV[4], ARGV[5]: within ms, memory ms
${HEAD}
${NOW}
local duration, w, within, memory = ARGV[2] + 0, ARGV[3] + 0, ARGV[4] + 0, ARGV[5] + 0
local format = '<' .. string.rep('d', w + 4)
local raw = call('GET', key)
local st = {}
if raw then
  if #raw ~= 8 * (w + 4) then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not ' .. (w / 3) .. ' policies and a ban long')
  end
  st = { struct.unpack(format, raw) }
else
  if duration == 0 then return 0 end
  for j = 1, w, 3 do st[j], st[j + 1], st[j + 2] = NONE, 0, 0 end
  st[w + 1] = NONE
end
local b1, b2, b3, b4 = st[w + 1], st[w + 2], st[w + 3], st[w + 4]
if b1 == NONE then b1 = nil end
if duration > 0 then
  -- Banned until now + duration, whatever ban there was; counted denials kept, and the offence
  -- while it is remembered: past that it is forgotten, stored or not (setBan in kernel.ts).
  if not b1 then
    b2, b3, b4 = 0, 0, 0
  elseif now >= b1 + memory then
    b2 = 0
  end
  b1 = now + duration
  st[w + 1], st[w + 2], st[w + 3], st[w + 4] = b1, b2, b3, b4
${indent(BAN_END_LUA.trim(), 2)}
  call('SET', key, struct.pack(format, unpack(st, 1, w + 4)), 'PX', max(call('PTTL', key), max(1, banEnd - now) + grace))
  return { b1, b2 }
end
-- Lifted: the slot emptied; the key goes when no policy has state either.
if not b1 then return 0 end
local any = false
for j = 1, w, 3 do
  if st[j] ~= NONE then any = true end
end
if not any then
  call('DEL', key)
  return 1
end
st[w + 1], st[w + 2], st[w + 3], st[w + 4] = NONE, 0, 0, 0
call('SET', key, struct.pack(format, unpack(st, 1, w + 4)), 'PX', max(1, call('PTTL', key)))
return 1
`;

const ANY = manyScripts(CODES);
/** The consume script for sets of any algorithms (the store sends one per combination it meets). */
export const CONSUME_SCRIPT: string = ANY.consume;
/** The peek script for sets of any algorithms. */
export const PEEK_SCRIPT: string = ANY.peek;
/** The refund script for sets of any algorithms. */
export const REFUND_SCRIPT: string = ANY.refund;
/** The settle script for sets of any algorithms. */
export const SETTLE_SCRIPT: string = ANY.settle;
