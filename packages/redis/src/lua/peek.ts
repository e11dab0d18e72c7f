import { ALGORITHMS_LUA, PROLOGUE_LUA } from './algorithms.js';

/**
 * What a cost-1 request would get, per policy, writing nothing: the twin of `peekOutcomes` in
 * packages/core/src/evaluate.ts. Replies like CONSUME_SCRIPT, 5 integers per policy.
 */
export const PEEK_SCRIPT: string = `-- KEYS[1]: the hash of one (policy set, key): policy i's state in fields 3i-2, 3i-1, 3i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ignored (the cost slot of the shared argument layout)
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local out = {}
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local code, L, W, B, D = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]),
    tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local s1 = tonumber(raw[j])
  local s2, s3 = s1 and tonumber(raw[j + 1]), s1 and tonumber(raw[j + 2])
  local _, remaining, reset = step(code, s1, s2, s3, now, L, W, B, D, 0)
  local ok, _, _, retry, delay = step(code, s1, s2, s3, now, L, W, B, D, 1)
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, remaining, reset, retry, delay
end
return out
`;
