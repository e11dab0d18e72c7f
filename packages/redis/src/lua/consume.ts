import { ALGORITHMS_LUA, PROLOGUE_LUA } from './algorithms.js';

/**
 * Applies one request to every policy of a set, all or nothing: the twin of `evaluate` in
 * packages/core/src/evaluate.ts. When any policy denies, nothing is written and the allowing
 * policies report their state as with cost 0. When all allow, every state is written and the key's
 * TTL set to the latest expiry.
 *
 * Replies with 5 integers per policy: allowed (1/0), remaining, resetMs, retryAfterMs (-1 for
 * never), delayMs.
 */
export const CONSUME_SCRIPT = `-- KEYS[1]: the hash holding every policy's state for one (policy set, key); field i = policy i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local out, nexts = {}, {}
local allowed = true
for i = 1, n do
  local s, ok, remaining, reset, retry, delay = STEP[algo[i]](states[i], now, L[i], W[i], B[i], D[i], cost)
  nexts[i] = s
  local at = (i - 1) * 5
  out[at + 1], out[at + 2], out[at + 3], out[at + 4], out[at + 5] = ok, remaining, reset, retry, delay
  if ok == 0 then allowed = false end
end

if not allowed then
  if n > 1 then
    for i = 1, n do
      local at = (i - 1) * 5
      if out[at + 1] == 1 then
        -- Allowed here but the request as a whole is denied: report this policy as untouched.
        local _, _, remaining, reset = STEP[algo[i]](states[i], now, L[i], W[i], B[i], D[i], 0)
        out[at + 2], out[at + 3], out[at + 4], out[at + 5] = remaining, reset, 0, 0
      end
    end
  end
  return out
end

local hset, expires = {}, now
for i = 1, n do
  hset[2 * i - 1] = fields[i]
  hset[2 * i] = encode(nexts[i])
  expires = max(expires, EXPIRES[algo[i]](nexts[i], L[i], W[i], B[i]))
end
redis.call('HSET', key, unpack(hset))
redis.call('PEXPIRE', key, string.format('%d', max(1, expires - now) + grace))
return out
`;
