/**
 * With a caller's `clock`, keys live this much longer than their state. Redis expires keys on its
 * own clock; a clock that runs slower than Redis's (a virtual clock in tests) would otherwise see
 * state vanish before it says it expires. With Redis TIME (the default) TTLs are exact.
 */
export const CLOCK_TTL_GRACE_MS = 60_000;

/** Algorithm codes as the scripts see them (ALGORITHM_CODES in ../layout.ts maps names to them). */
export type Code = 1 | 2 | 3 | 4;
export const CODES: readonly Code[] = [1, 2, 3, 4];

interface Chunk {
  /** Prefix of the algorithm's functions. */
  name: string;
  /** Its comment, and the functions its step and refund share. */
  helpers: string;
  step: string;
  refund: string;
  expires: string;
}

/**
 * Lua twins of packages/core/src/algorithms/*.ts, one chunk per algorithm, so that a script carries
 * only the algorithms of the sets it serves: Lua builds every `local function` of a script on every
 * call, so unused ones cost time. The TypeScript steps are the specification: every expression below
 * is the same expression in the same order, so the doubles (Lua 5.1 numbers are doubles too) come
 * out bit for bit the same. Tied together by test/store-conformance.test.ts.
 *
 * A policy is (L, W, B, D): limit, window in ms, burst (capacity; = limit for the windows) and
 * delay (1 or 0, leaky-bucket only). A state is up to three numbers s1, s2, s3 as in TypeScript's
 * arrays; s1 == nil means no state. Scalars, not tables: this runs on every request, and a table
 * costs Redis more than the arithmetic does.
 *
 * Per algorithm: X_step(_, s1, s2, s3, now, L, W, B, D, cost) returns allowed (1/0), remaining,
 * resetMs, retryAfterMs (INF: never), delayMs and, when allowed, the next state (the third number
 * nil for the algorithms with two); X_refund(_, s1, s2, s3, now, L, W, B, cost) returns the next
 * state or nil; X_expires(_, s1, s2, L, W, B) is `expiresAt`. The first argument, the algorithm
 * code, is unused: it is there so that a script of one algorithm calls its functions directly.
 *
 * States travel as binary doubles (struct.pack), never through tostring() or '..', whose '%.14g'
 * would drop digits above 1e14 (scaled states reach 2^53).
 */
const CHUNKS: Record<Code, Chunk> = {
  1: {
    name: 'fw',
    helpers: `
-- fixed-window. State: windowStart, count.
`,
    step: `
local function fw_step(_, s1, s2, s3, now, L, W, B, D, cost)
  local start, count, reset = now, 0, 0
  if s1 and now < s1 + W then
    start, count, reset = s1, s2, s1 + W - now
  end
  if cost > L then return 0, L - count, reset, INF, 0 end
  if count + cost > L then return 0, L - count, reset, reset, 0 end
  local used = count + cost
  return 1, L - used, start + W - now, 0, 0, start, used
end
`,
    refund: `
local function fw_refund(_, s1, s2, s3, now, L, W, B, cost)
  if not s1 or now >= s1 + W then return nil end
  return s1, max(0, s2 - cost)
end
`,
    expires: `
local function fw_expires(_, s1, s2, L, W, B)
  return s1 + W
end
`,
  },
  2: {
    name: 'sw',
    helpers: `
-- sliding-window. State: currentWindowStart, currentCount, previousCount; windows aligned to W.
local function sw_shift(s1, s2, s3, now, W)
  -- fmod truncates like the % of JavaScript.
  local start = now - fmod(now, W)
  if not s1 then return start, 0, 0 end
  if s1 == start then return start, s2, s3 end
  if s1 == start - W then return start, 0, s2 end
  return start, 0, 0
end

local function sw_reset(start, curr, prev, now, W)
  if curr > 0 then return start + 2 * W - now end
  if prev > 0 then return start + W - now end
  return 0
end

local function sw_retry(start, curr, prev, now, W, L, cost)
  local elapsed = now - start
  local k = (L - curr - cost) * W
  if prev > 0 and k >= 0 then
    local q = floor(k / prev)
    if q >= 1 then return W - q - elapsed end
  end
  local nxt = start + W
  if curr == 0 then return nxt - now end
  local q2 = floor(((L - cost) * W) / curr)
  return nxt + max(0, W - q2) - now
end
`,
    step: `
local function sw_step(_, s1, s2, s3, now, L, W, B, D, cost)
  local start, curr, prev = sw_shift(s1, s2, s3, now, W)
  local used = prev * (W - (now - start)) + curr * W
  if cost > L then
    return 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W), INF, 0
  end
  if used + cost * W > L * W then
    return 0, floor((L * W - used) / W), sw_reset(start, curr, prev, now, W),
      sw_retry(start, curr, prev, now, W, L, cost), 0
  end
  local nxt = curr + cost
  return 1, floor((L * W - used - cost * W) / W), sw_reset(start, nxt, prev, now, W), 0, 0, start, nxt, prev
end
`,
    refund: `
local function sw_refund(_, s1, s2, s3, now, L, W, B, cost)
  if not s1 then return nil end
  local start, curr, prev = sw_shift(s1, s2, s3, now, W)
  if curr == 0 and prev == 0 then return nil end
  local fromCurr = min(curr, cost)
  return start, curr - fromCurr, max(0, prev - (cost - fromCurr))
end
`,
    expires: `
local function sw_expires(_, s1, s2, L, W, B)
  return s1 + 2 * W
end
`,
  },
  3: {
    name: 'tb',
    helpers: `
-- token-bucket. State: tokens * W, lastRefill.
local function tb_tokens(s1, s2, now, L, W, B)
  local capacity = B * W
  if not s1 then return capacity end
  local elapsed = max(0, now - s2)
  -- Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if elapsed >= ceil((capacity - s1) / L) then return capacity end
  return s1 + elapsed * L
end
`,
    step: `
local function tb_step(_, s1, s2, s3, now, L, W, B, D, cost)
  local capacity = B * W
  local tokens = tb_tokens(s1, s2, now, L, W, B)
  local need = cost * W
  if cost > B then return 0, floor(tokens / W), ceil((capacity - tokens) / L), INF, 0 end
  if tokens < need then
    return 0, floor(tokens / W), ceil((capacity - tokens) / L), ceil((need - tokens) / L), 0
  end
  local left = tokens - need
  return 1, floor(left / W), ceil((capacity - left) / L), 0, 0, left, now
end
`,
    refund: `
local function tb_refund(_, s1, s2, s3, now, L, W, B, cost)
  if not s1 then return nil end
  local capacity = B * W
  local tokens = min(capacity, tb_tokens(s1, s2, now, L, W, B) + cost * W)
  if tokens == capacity then return nil end
  return tokens, now
end
`,
    expires: `
local function tb_expires(_, s1, s2, L, W, B)
  return s2 + ceil((B * W - s1) / L)
end
`,
  },
  4: {
    name: 'lb',
    helpers: `
-- leaky-bucket. State: level * W, lastLeak.
local function lb_level(s1, s2, now, L)
  if not s1 then return 0 end
  local elapsed = max(0, now - s2)
  if elapsed >= ceil(s1 / L) then return 0 end
  return s1 - elapsed * L
end
`,
    step: `
local function lb_step(_, s1, s2, s3, now, L, W, B, D, cost)
  local capacity = B * W
  local level = lb_level(s1, s2, now, L)
  local need = cost * W
  if cost > B then return 0, floor((capacity - level) / W), ceil(level / L), INF, 0 end
  if level + need > capacity then
    return 0, floor((capacity - level) / W), ceil(level / L), ceil((level + need - capacity) / L), 0
  end
  local nxt = level + need
  local delay = 0
  if D == 1 then delay = ceil(level / L) end
  return 1, floor((capacity - nxt) / W), ceil(nxt / L), 0, delay, nxt, now
end
`,
    refund: `
local function lb_refund(_, s1, s2, s3, now, L, W, B, cost)
  if not s1 then return nil end
  local level = max(0, lb_level(s1, s2, now, L) - cost * W)
  if level == 0 then return nil end
  return level, now
end
`,
    expires: `
local function lb_expires(_, s1, s2, L, W, B)
  return s2 + ceil(s1 / L)
end
`,
  },
};

/** The functions a script calls: `step`, `refund`, `expires`. */
export type Part = 'step' | 'refund' | 'expires';

const PARAMS: Record<Part, string> = {
  step: 's1, s2, s3, now, L, W, B, D, cost',
  refund: 's1, s2, s3, now, L, W, B, cost',
  expires: 's1, s2, L, W, B',
};

/**
 * `part` over the algorithms present: with one, the algorithm's own function (they all take the
 * code first, unused, for this); with several, a dispatch on the code, an if chain, because a
 * table of functions would be built on every call.
 */
function dispatcher(part: Part, codes: readonly Code[]): string {
  const target = (code: Code) => `${CHUNKS[code].name}_${part}`;
  if (codes.length === 1) return `local ${part} = ${target(codes[0]!)}\n`;
  const params = PARAMS[part];
  const lines = [`local function ${part}(code, ${params})`];
  for (const code of codes.slice(0, -1)) {
    lines.push(`  if code == ${code} then return ${target(code)}(code, ${params}) end`);
  }
  lines.push(`  return ${target(codes.at(-1)!)}(code, ${params})`, 'end');
  return `${lines.join('\n')}\n`;
}

/**
 * The Lua of `parts` for the algorithms of `codes`: `step(code, ...)`, `refund(code, ...)` and
 * `expires(code, ...)` as asked, with the arguments of the per-algorithm functions. Only what a
 * script calls: Lua builds every function of a script on every call.
 */
export function algorithmsLua(codes: readonly Code[], parts: readonly Part[]): string {
  // Sliding first: the default algorithm goes first in the if chain.
  const sorted = [...codes].sort((a, b) => (a === 2 ? -1 : b === 2 ? 1 : a - b));
  const lua = [
    `
local INF = -1
local floor, ceil, max, min, fmod = math.floor, math.ceil, math.max, math.min, math.fmod
local tonumber, unpack, call, ARGV = tonumber, unpack, redis.call, ARGV
`,
  ];
  for (const code of sorted) {
    const chunk = CHUNKS[code];
    lua.push(chunk.helpers, '\n');
    for (const part of parts) lua.push(chunk[part], '\n');
  }
  for (const part of parts) lua.push(dispatcher(part, sorted));
  return lua.join('');
}

/**
 * The head of every script on the packed layout: `now`, and the stored states.
 *
 * The key holds one binary string: three little-endian doubles per policy (policy i at 3i-2 .. 3i
 * of `st`), the third 0 for the algorithms with two numbers, and NONE (-inf, which no state holds)
 * as the first of a policy without state (after a refund emptied it). One GET and one SET with the
 * TTL, instead of a hash's HMGET, HSET and PEXPIRE: every call into Redis costs the script more
 * than its arithmetic does.
 *
 * Policy i's parameters are ARGV[5i-2 .. 5i+2].
 */
export const PROLOGUE_LUA = `
local NONE = -1 / 0
local key = KEYS[1]
local now = tonumber(ARGV[1])
local grace = 0
if not now then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
else
  grace = ${CLOCK_TTL_GRACE_MS}
end
local cost = tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
local format = n == 1 and '<ddd' or '<' .. string.rep('d', 3 * n)
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
end
`;

/**
 * store(states, new, old) writes `states` (3 numbers per policy; a nil first number is written as
 * NONE) with the key's deadline `new`. SET with KEEPTTL (Redis 6+, used from 7 on, which scripts
 * can detect through REDIS_VERSION_NUM) when the deadline `old` did not move, which spares Redis
 * the expiry bookkeeping on most calls of a window.
 */
export const STORE_LUA = `
local function store(states, new, old)
  for j = 1, 3 * n, 3 do
    if states[j] == nil then states[j], states[j + 1], states[j + 2] = NONE, 0, 0 end
    if states[j + 2] == nil then states[j + 2] = 0 end
  end
  local value = struct.pack(format, unpack(states, 1, 3 * n))
  if raw and grace == 0 and new == old and new > now and redis.REDIS_VERSION_NUM then
    call('SET', key, value, 'KEEPTTL')
  else
    call('SET', key, value, 'PX', max(1, new - now) + grace)
  end
end
`;
