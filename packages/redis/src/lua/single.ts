import { algorithmsLua, CLOCK_TTL_GRACE_MS, type Code } from './algorithms.js';

/**
 * The consume step of each algorithm written out flat, for sets of one policy (most limiters):
 * no `local function`, which Lua would build anew on every call, no tables but the reply, no
 * dispatch. Each is the X_step of ./algorithms.ts (and so of the TypeScript step) with its helpers
 * inlined, the same expressions in the same order, so the doubles come out bit for bit the same
 * (test/store-conformance.test.ts runs single-policy sets of every algorithm through this script).
 *
 * In: s1, s2, s3 (s1 nil: no state), now, L, W, B, D, cost. A denial returns its reply at once
 * (nothing is written). An allowance leaves the next state in n1, n2 (n3 nil: 0), `remaining`,
 * `reset` and `delay`; `old` is the stored state's expiry (0 without state) and `new` the next
 * state's, as X_expires computes them.
 */
const STEPS: Record<Code, string> = {
  1: `
local start, count, r = now, 0, 0
if s1 and now < s1 + W then
  start, count, r = s1, s2, s1 + W - now
end
if cost > L then return { 0, L - count, r, INF, 0 } end
if count + cost > L then return { 0, L - count, r, r, 0 } end
if s1 then old = max(0, s1 + W) end
local used = count + cost
n1, n2 = start, used
remaining, reset = L - used, start + W - now
new = max(0, n1 + W)
`,
  2: `
-- fmod truncates like the % of JavaScript.
local start = now - fmod(now, W)
local curr, prev = 0, 0
if s1 == start then curr, prev = s2, s3
elseif s1 == start - W then prev = s2 end
local used = prev * (W - (now - start)) + curr * W
if cost > L or used + cost * W > L * W then
  local reset = 0
  if curr > 0 then reset = start + 2 * W - now
  elseif prev > 0 then reset = start + W - now end
  local retry = INF
  if cost <= L then
    local elapsed = now - start
    local k = (L - curr - cost) * W
    local q = 0
    if prev > 0 and k >= 0 then q = floor(k / prev) end
    if q >= 1 then
      retry = W - q - elapsed
    else
      local nxt = start + W
      if curr == 0 then retry = nxt - now
      else retry = nxt + max(0, W - floor(((L - cost) * W) / curr)) - now end
    end
  end
  return { 0, floor((L * W - used) / W), reset, retry, 0 }
end
if s1 then old = max(0, s1 + 2 * W) end
local nxt = curr + cost
n1, n2, n3 = start, nxt, prev
remaining = floor((L * W - used - cost * W) / W)
if nxt > 0 then reset = start + 2 * W - now
elseif prev > 0 then reset = start + W - now end
new = max(0, n1 + 2 * W)
`,
  3: `
local capacity = B * W
local tokens = capacity
if s1 then
  local elapsed = max(0, now - s2)
  -- Compare before multiplying: elapsed * L may exceed 2^53 after a long idle time.
  if elapsed < ceil((capacity - s1) / L) then tokens = s1 + elapsed * L end
end
local need = cost * W
if cost > B then return { 0, floor(tokens / W), ceil((capacity - tokens) / L), INF, 0 } end
if tokens < need then
  return { 0, floor(tokens / W), ceil((capacity - tokens) / L), ceil((need - tokens) / L), 0 }
end
if s1 then old = max(0, s2 + ceil((B * W - s1) / L)) end
local left = tokens - need
n1, n2 = left, now
remaining, reset = floor(left / W), ceil((capacity - left) / L)
new = max(0, n2 + ceil((B * W - n1) / L))
`,
  4: `
local capacity = B * W
local level = 0
if s1 then
  local elapsed = max(0, now - s2)
  if elapsed < ceil(s1 / L) then level = s1 - elapsed * L end
end
local need = cost * W
if cost > B then return { 0, floor((capacity - level) / W), ceil(level / L), INF, 0 } end
if level + need > capacity then
  return { 0, floor((capacity - level) / W), ceil(level / L), ceil((level + need - capacity) / L), 0 }
end
if s1 then old = max(0, s2 + ceil(s1 / L)) end
local nxt = level + need
if D == 1 then delay = ceil(level / L) end
n1, n2 = nxt, now
remaining, reset = floor((capacity - nxt) / W), ceil(nxt / L)
new = max(0, n2 + ceil(n1 / L))
`,
};

/** The policy parameters each algorithm reads, in ARGV order after now and cost. */
export const SINGLE_PARAMS: Record<Code, readonly ('L' | 'W' | 'B' | 'D')[]> = {
  1: ['L', 'W'],
  2: ['L', 'W'],
  3: ['L', 'W', 'B'],
  4: ['L', 'W', 'B', 'D'],
};

const NAMES = { L: 'limit', W: 'window ms', B: 'burst', D: 'delay (1/0)' };

/**
 * The head of the three scripts of a one-policy set: `now`, the parameters and the stored state.
 * ARGV is now, cost, then only the parameters the algorithm reads (SINGLE_PARAMS): Redis makes a
 * Lua string of every argument on every call. Numbers are read with `+ 0`, not tonumber(), which
 * parses a string twice (lua_isnumber, then lua_tonumber): the same strtod, the same double.
 */
function prologue(code: Code, operation: string): string {
  const params = SINGLE_PARAMS[code];
  const unused = (['B', 'D'] as const).filter((p) => !params.includes(p));
  return `-- KEYS[1]: the state of one (policy, key): 3 binary doubles
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ${operation}
${params.map((p, i) => `-- ARGV[${i + 3}]: ${NAMES[p]}`).join('\n')}
local INF, NONE = -1, -1 / 0
local floor, ceil, max, min, fmod = math.floor, math.ceil, math.max, math.min, math.fmod
local call = redis.call
local key = KEYS[1]
local now, grace = ARGV[1], 0
if now == '' then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = call('TIME')
  now = t[1] * 1000 + floor(t[2] / 1000)
else
  now, grace = now + 0, ${CLOCK_TTL_GRACE_MS}
end
local cost, ${params.join(', ')} = ${['cost', ...params].map((_, i) => `ARGV[${i + 2}] + 0`).join(', ')}
${
  unused.length > 0
    ? `local ${unused.join(', ')}
`
    : ''
}local raw = call('GET', key)
local s1, s2, s3
if raw then
  if #raw ~= 24 then
    return redis.error_reply('ERR tollgate: the state at ' .. key .. ' is not 1 policies long')
  end
  s1, s2, s3 = struct.unpack('<ddd', raw)
  if s1 == NONE then s1 = nil end
end
`;
}

/** The three scripts of a one-policy set of algorithm `code` on the packed layout. */
export interface SingleScripts {
  consume: string;
  peek: string;
  refund: string;
}

/**
 * The scripts of a one-policy set of algorithm `code` on the packed layout: the state and replies
 * of ./consume.ts, ./peek.ts and ./refund.ts (the same key is read by either), with a shorter
 * ARGV. The consume script, which runs on every request, is the flat step above, at about half
 * the cost to Redis of the general one; peek and refund call the functions of ./algorithms.ts.
 */
export function singleScripts(code: Code): SingleScripts {
  const consume = `${prologue(code, 'cost')}local old, new, n1, n2, n3, remaining, reset, delay = 0, 0, nil, nil, 0, 0, 0, 0
${STEPS[code]}
-- As store() in ./algorithms.ts: KEEPTTL (Redis 7+) when the deadline did not move.
local value = struct.pack('<ddd', n1, n2, n3)
if raw and grace == 0 and new == old and new > now and redis.REDIS_VERSION_NUM then
  call('SET', key, value, 'KEEPTTL')
else
  call('SET', key, value, 'PX', max(1, new - now) + grace)
end
return { 1, remaining, reset, 0, delay }
`;
  const peek = `${prologue(code, 'ignored (the cost slot of the shared argument layout)')}${algorithmsLua([code], ['step'])}
local _, remaining, reset = step(${code}, s1, s2, s3, now, L, W, B, D, 0)
local ok, _, _, retry, delay = step(${code}, s1, s2, s3, now, L, W, B, D, 1)
return { ok, remaining, reset, retry, delay }
`;
  const refund = `${prologue(code, 'cost to give back')}${algorithmsLua([code], ['refund', 'expires'])}
if not s1 then return 0 end
local n1, n2, n3 = refund(${code}, s1, s2, s3, now, L, W, B, cost)
if not n1 then
  call('DEL', key)
  return 0
end
-- A refund rewrites the state: its deadline is set again.
local new = max(0, expires(${code}, n1, n2, L, W, B))
call('SET', key, struct.pack('<ddd', n1, n2, n3 or 0), 'PX', max(1, new - now) + grace)
return 1
`;
  return { consume, peek, refund };
}
