import { type AlgorithmDefinition, type LuaParam, REGISTRY } from '@tollgate/core/internal';

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
}

/** The parts a script runs: a section of a body, with the state it sees. */
type Part = Exclude<keyof Sections, 'view'>;

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
    found = {
      view: text(0, consume),
      consume: text(consume, refund),
      refund: text(refund, charge),
      charge: text(charge),
    };
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

/** `now`: ARGV[1], or Redis TIME when it is ''; `grace` (see CLOCK_TTL_GRACE_MS). */
const NOW = `local now, grace = ARGV[1], 0
if now == '' then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = call('TIME')
  now = t[1] * 1000 + floor(t[2] / 1000)
else
  now, grace = now + 0, ${CLOCK_TTL_GRACE_MS}
end`;

const COUNTED_AT = "-- ARGV[3]: when the units were counted, in ms, or '' if unknown";
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
export function singleScripts(algorithm: AlgorithmDefinition): ScriptTexts {
  const { params } = algorithm;
  const header = (
    operation: string,
    extras: readonly string[] = [],
    from = 3 + extras.length,
  ) => `-- KEYS[1]: the state of one (policy, key): 3 binary doubles
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ${operation}${extras.map((line) => `\n${line}`).join('')}
${params.map((p, i) => `-- ARGV[${i + from}]: ${NAMES[p]}`).join('\n')}
${HEAD}
${NOW}
local ${params.join(', ')} = ${params.map((p, i) => read(p, String(i + from))).join(', ')}${params.includes('S') ? `\n${PERIOD_CHECK}` : ''}
local raw = call('GET', key)
local s1, s2, s3
if raw then
  if #raw ~= 24 then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not 1 policies long')
  end
  s1, s2, s3 = struct.unpack('<ddd', raw)
  if s1 == NONE then s1 = nil end
end`;
  const consume = `${header('cost')}
local cost = ARGV[2] + 0
${OUTPUTS}
${block(algorithm, 'consume')}
-- Denied: nothing is written.
if ok == 0 then return { 0, remaining, reset, retry, delay, now } end
${keep("struct.pack('<ddd', n1, n2, n3)", 'new', 'old')}
return { 1, remaining, reset, 0, delay, now }
`;
  const peek = `${header('ignored (the cost slot of the shared argument layout)')}
${peekOne(algorithm)}`;
  const refund = `${header('cost to give back', [COUNTED_AT])}
local cost = ARGV[2] + 0
${AT}
if not s1 then return 0 end
local n1, n2, n3, new = nil, nil, 0, 0
${block(algorithm, 'refund')}
if not n1 then
  call('DEL', key)
  return 0
end
${keep("struct.pack('<ddd', n1, n2, n3)", 'new')}
return 1
`;
  const settle = `${header(DELTA, [COUNTED_AT, '-- ARGV[4]: maxDebt, units over its capacity the policy may owe'])}
local delta = ARGV[2] + 0
${AT}
local debt = ARGV[4] + 0
local n1, n2, n3, new, charged = nil, nil, 0, 0, 0
${settleOne(block(algorithm, 'refund', 4), block(algorithm, 'charge', 2))}
local uncharged = max(0, delta) - charged
if n1 then
  ${keep("struct.pack('<ddd', n1, n2, n3)", 'new')}
elseif raw then
  call('DEL', key)
end
-- What a cost-1 request gets now.
s1, s2, s3 = n1, n2, n3
${peekBody(block(algorithm, 'consume'))}
return { ok, idleRemaining, idleReset, retry, delay, uncharged, now }
`;
  return { consume, peek, refund, settle };
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
const peekOne = (algorithm: AlgorithmDefinition): string =>
  `${peekBody(block(algorithm, 'consume'))}\nreturn { ok, idleRemaining, idleReset, retry, delay, now }\n`;

/** ARGV per policy in the scripts of several policies: code, L, W, B, D, shadow (1/0), S. */
export const PER_POLICY = 7;

/**
 * The scripts of a set of several policies of the algorithms `codes`: ARGV now, cost, then per
 * policy its code, limit, window ms, burst, delay (1/0), mode (1: shadow, 0: enforce) and calendar
 * period start ('' for none: see LuaParam S). One key holds every policy's state, three doubles
 * each (policy i at 3i-2 .. 3i of `st`), NONE (-inf, which no state holds) first for a policy
 * without state: one GET and one SET, cheaper for Redis than a hash's HMGET, HSET and PEXPIRE.
 */
export function manyScripts(codes: readonly number[]): ScriptTexts {
  const header = (
    operation: string,
    extras: readonly string[] = [],
    from = 3 + extras.length,
  ) => `-- KEYS[1]: the state of one (policy set, key): 3 binary doubles per policy
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ${operation}${extras.map((line) => `\n${line}`).join('')}
-- ARGV[${from}..]: per policy: algorithm code, limit, window ms, burst, delay (1/0), shadow (1/0),
-- period start
${HEAD}
${NOW}
local n = (#ARGV - ${from - 1}) / ${PER_POLICY}
local format = '<' .. string.rep('d', 3 * n)
local raw = call('GET', key)
local st = {}
if raw then
  if #raw ~= 24 * n then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not ' .. n .. ' policies long')
  end
  st = { struct.unpack(format, raw) }
  for j = 1, 3 * n, 3 do
    if st[j] == NONE then st[j] = nil end
  end
end`;
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
${keep(`struct.pack(format, unpack(${states}, 1, 3 * n))`, deadline, old)}`;

  const consume = `${header('cost')}
local cost = ARGV[2] + 0
local out, states, allowed, keyOld, keyNew, shadowed = {}, {}, true, 0, 0, false
for i = 1, n do
${policy(2)}
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
out[5 * n + 1] = now
if allowed then
  if shadowed then
    -- The state kept may outlive every state written: the key keeps at least the time it had.
    local ttl = call('PTTL', key)
    if ttl > 0 then keyNew = max(keyNew, now + ttl - grace) end
  end
${indent(write('states', 'keyNew', 'keyOld'), 2)}
  return out
end
-- Denied as a whole, so nothing is written, and the policies that allowed report their state
-- untouched: as with cost 0.
for i = 1, n do
  local o = 5 * i - 5
  if out[o + 1] == 1 then
${policy(4)}
    local cost = 0
    ${OUTPUTS}
${dispatch(codes, 'consume', 4)}
    out[o + 2], out[o + 3], out[o + 4], out[o + 5] = remaining, reset, 0, 0
  end
end
return out
`;
  const peek = `${header('ignored (the cost slot of the shared argument layout)')}
local out = {}
for i = 1, n do
${policy(2)}
${peekBody(dispatch(codes, 'consume', 0), 2)}
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, idleRemaining, idleReset, retry, delay
end
out[5 * n + 1] = now
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
end
if not kept then
  if any then call('DEL', key) end
  return 0
end
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
end
if kept then
${indent(write('st', 'keyNew'), 2)}
elseif any then
  call('DEL', key)
end
-- What a cost-1 request gets now, from the states just written.
for i = 1, n do
${policy(2, 5)}
  if s1 == NONE then s1 = nil end
${peekBody(dispatch(codes, 'consume', 0), 2)}
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, idleRemaining, idleReset, retry, delay
end
out[6 * n + 1] = now
return out
`;
  return { consume, peek, refund, settle };
}

const ANY = manyScripts(CODES);
/** The consume script for sets of any algorithms (the store sends one per combination it meets). */
export const CONSUME_SCRIPT: string = ANY.consume;
/** The peek script for sets of any algorithms. */
export const PEEK_SCRIPT: string = ANY.peek;
/** The refund script for sets of any algorithms. */
export const REFUND_SCRIPT: string = ANY.refund;
/** The settle script for sets of any algorithms. */
export const SETTLE_SCRIPT: string = ANY.settle;
