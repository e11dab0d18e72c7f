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
export const CONSUME_SCRIPT: string = `-- KEYS[1]: the hash of one (policy set, key): policy i's state in fields 3i-2, 3i-1, 3i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local out, hset, m, allowed = {}, {}, 0, true
-- The key's current deadline (the latest expiry of the stored states) and the one after this request.
local old, new = 0, 0
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local code, L, W, B = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local s1, s2, s3 = tonumber(raw[j]), nil, nil
  if s1 then
    s2, s3 = tonumber(raw[j + 1]), tonumber(raw[j + 2])
    old = max(old, expires_at(code, s1, s2, L, W, B))
  end
  local ok, remaining, reset, retry, delay, n1, n2, n3 =
    step(code, s1, s2, s3, now, L, W, B, tonumber(ARGV[at + 4]), cost)
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, remaining, reset, retry, delay
  if ok == 1 then
    hset[m + 1], hset[m + 2], hset[m + 3], hset[m + 4] = j, n1, j + 1, n2
    m = m + 4
    if n3 then
      hset[m + 1], hset[m + 2] = j + 2, n3
      m = m + 2
    end
    new = max(new, expires_at(code, n1, n2, L, W, B))
  else
    allowed = false
  end
end

if allowed then
  call('HSET', key, unpack(hset))
  -- A window's expiry stays put while it runs: no need to set the same deadline again.
  if grace > 0 or new ~= old or new <= now then
    call('PEXPIRE', key, max(1, new - now) + grace)
  end
elseif n > 1 then
  for i = 1, n do
    local o = 5 * i - 5
    if out[o + 1] == 1 then
      -- Allowed here but the request as a whole is denied: report this policy as untouched.
      local at, j = 5 * i - 2, 3 * i - 2
      local s1 = tonumber(raw[j])
      local _, remaining, reset = step(tonumber(ARGV[at]), s1, s1 and tonumber(raw[j + 1]),
        s1 and tonumber(raw[j + 2]), now, tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]),
        tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), 0)
      out[o + 2], out[o + 3], out[o + 4], out[o + 5] = remaining, reset, 0, 0
    end
  end
end
return out
`;
