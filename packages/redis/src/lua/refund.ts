import { ALGORITHMS_LUA, PROLOGUE_LUA } from './algorithms.js';

/**
 * Gives `cost` back to every policy: the twin of `refundStates` in packages/core/src/evaluate.ts.
 * Never below zero, never reviving an expired window; a policy left with nothing to keep loses its
 * field, and the key goes when no policy has state left. Replies 1 if a state was written, else 0.
 */
export const REFUND_SCRIPT = `-- KEYS[1]: the hash holding every policy's state for one (policy set, key); field i = policy i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost to give back
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local any = false
for i = 1, n do
  if states[i] ~= nil then any = true end
end
if not any then return 0 end

local hset, hdel, expires = {}, {}, now
for i = 1, n do
  local s = REFUND[algo[i]](states[i], now, L[i], W[i], B[i], cost)
  if s == nil then
    hdel[#hdel + 1] = fields[i]
  else
    hset[#hset + 1] = fields[i]
    hset[#hset + 1] = encode(s)
    expires = max(expires, EXPIRES[algo[i]](s, L[i], W[i], B[i]))
  end
end
if #hset == 0 then
  redis.call('DEL', key)
  return 0
end
redis.call('HSET', key, unpack(hset))
if #hdel > 0 then redis.call('HDEL', key, unpack(hdel)) end
redis.call('PEXPIRE', key, string.format('%d', max(1, expires - now) + grace))
return 1
`;
