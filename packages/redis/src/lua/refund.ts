import { ALGORITHMS_LUA, PROLOGUE_LUA } from './algorithms.js';

/**
 * Gives `cost` back to every policy: the twin of `refundStates` in packages/core/src/evaluate.ts.
 * Never below zero, never reviving an expired window; a policy left with nothing to keep loses its
 * fields, and the key goes when no policy has state left. Replies 1 if a state was written, else 0.
 */
export const REFUND_SCRIPT: string = `-- KEYS[1]: the hash of one (policy set, key): policy i's state in fields 3i-2, 3i-1, 3i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost to give back
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local hset, hdel, m, any, new = {}, {}, 0, false, 0
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local s1 = tonumber(raw[j])
  if s1 then
    any = true
    local code, L, W, B = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    local n1, n2, n3 = refund(code, s1, tonumber(raw[j + 1]), tonumber(raw[j + 2]), now, L, W, B, cost)
    if n1 then
      hset[m + 1], hset[m + 2], hset[m + 3], hset[m + 4] = j, n1, j + 1, n2
      m = m + 4
      if n3 then
        hset[m + 1], hset[m + 2] = j + 2, n3
        m = m + 2
      end
      new = max(new, expires_at(code, n1, n2, L, W, B))
    else
      local d = #hdel
      hdel[d + 1], hdel[d + 2], hdel[d + 3] = j, j + 1, j + 2
    end
  end
end
if m == 0 then
  if any then call('DEL', key) end
  return 0
end
call('HSET', key, unpack(hset))
if #hdel > 0 then call('HDEL', key, unpack(hdel)) end
call('PEXPIRE', key, max(1, new - now) + grace)
return 1
`;
