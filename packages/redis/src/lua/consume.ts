import { algorithmsLua, CODES, type Code, PROLOGUE_LUA, STORE_LUA } from './algorithms.js';

/**
 * Applies one request to every policy of a set, all or nothing: the twin of `evaluate` in
 * packages/core/src/evaluate.ts. When any policy denies, nothing is written and the allowing
 * policies report their state as with cost 0. When all allow, every state is written and the key's
 * TTL set to the latest expiry.
 *
 * Replies with 5 integers per policy: allowed (1/0), remaining, resetMs, retryAfterMs (-1 for
 * never), delayMs. `codes`: the algorithms the script must know.
 */
export function consumeScript(codes: readonly Code[]): string {
  return `-- KEYS[1]: the state of one (policy set, key): 3 binary doubles per policy
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${algorithmsLua(codes, ['step', 'expires'])}${PROLOGUE_LUA}${STORE_LUA}
local out, states, allowed = {}, {}, true
-- The key's current deadline (the latest expiry of the stored states) and the one after this request.
local old, new = 0, 0
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local code, L, W, B = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local s1, s2, s3 = st[j], st[j + 1], st[j + 2]
  if s1 then old = max(old, expires(code, s1, s2, L, W, B)) end
  local ok, remaining, reset, retry, delay, n1, n2, n3 =
    step(code, s1, s2, s3, now, L, W, B, tonumber(ARGV[at + 4]), cost)
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, remaining, reset, retry, delay
  if ok == 1 then
    states[j], states[j + 1], states[j + 2] = n1, n2, n3
    new = max(new, expires(code, n1, n2, L, W, B))
  else
    allowed = false
  end
end

if allowed then
  store(states, new, old)
elseif n > 1 then
  for i = 1, n do
    local o = 5 * i - 5
    if out[o + 1] == 1 then
      -- Allowed here but the request as a whole is denied: report this policy as untouched.
      local at, j = 5 * i - 2, 3 * i - 2
      local _, remaining, reset = step(tonumber(ARGV[at]), st[j], st[j + 1], st[j + 2], now,
        tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), 0)
      out[o + 2], out[o + 3], out[o + 4], out[o + 5] = remaining, reset, 0, 0
    end
  end
end
return out
`;
}

/** The consume script for sets of any algorithms (the store uses one per combination it meets). */
export const CONSUME_SCRIPT: string = consumeScript(CODES);
