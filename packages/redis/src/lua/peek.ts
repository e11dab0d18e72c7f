import { ALGORITHMS_LUA, PROLOGUE_LUA } from './algorithms.js';

/**
 * What a cost-1 request would get, per policy, writing nothing: the twin of `peekOutcomes` in
 * packages/core/src/evaluate.ts. Replies like CONSUME_SCRIPT, 5 integers per policy.
 */
export const PEEK_SCRIPT = `-- KEYS[1]: the hash holding every policy's state for one (policy set, key); field i = policy i
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ignored (the cost slot of the shared argument layout)
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${ALGORITHMS_LUA}${PROLOGUE_LUA}
local out = {}
for i = 1, n do
  local step = STEP[algo[i]]
  local _, _, remaining, reset = step(states[i], now, L[i], W[i], B[i], D[i], 0)
  local _, ok, _, _, retry, delay = step(states[i], now, L[i], W[i], B[i], D[i], 1)
  local at = (i - 1) * 5
  out[at + 1], out[at + 2], out[at + 3], out[at + 4], out[at + 5] = ok, remaining, reset, retry, delay
end
return out
`;
