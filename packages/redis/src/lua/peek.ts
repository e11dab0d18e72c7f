import { algorithmsLua, CODES, type Code, PROLOGUE_LUA } from './algorithms.js';

/**
 * What a cost-1 request would get, per policy, writing nothing: the twin of `peekOutcomes` in
 * packages/core/src/evaluate.ts. Replies like the consume script, 5 integers per policy.
 */
export function peekScript(codes: readonly Code[]): string {
  return `-- KEYS[1]: the state of one (policy set, key): 3 binary doubles per policy
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: ignored (the cost slot of the shared argument layout)
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${algorithmsLua(codes, ['step'])}${PROLOGUE_LUA}
local out = {}
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local code, L, W, B, D = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]),
    tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local s1, s2, s3 = st[j], st[j + 1], st[j + 2]
  local _, remaining, reset = step(code, s1, s2, s3, now, L, W, B, D, 0)
  local ok, _, _, retry, delay = step(code, s1, s2, s3, now, L, W, B, D, 1)
  local o = 5 * i - 5
  out[o + 1], out[o + 2], out[o + 3], out[o + 4], out[o + 5] = ok, remaining, reset, retry, delay
end
return out
`;
}

/** The peek script for sets of any algorithms. */
export const PEEK_SCRIPT: string = peekScript(CODES);
