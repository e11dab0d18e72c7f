import { algorithmsLua, CODES, type Code, PROLOGUE_LUA, STORE_LUA } from './algorithms.js';

/**
 * Gives `cost` back to every policy: the twin of `refundStates` in packages/core/src/evaluate.ts.
 * Never below zero, never reviving an expired window; a policy left with nothing to keep loses its
 * state, and the key goes when no policy has state left. Replies 1 if a state was written, else 0.
 */
export function refundScript(codes: readonly Code[]): string {
  return `-- KEYS[1]: the state of one (policy set, key): 3 binary doubles per policy
-- ARGV[1]: now in ms, or '' to use Redis TIME
-- ARGV[2]: cost to give back
-- ARGV[3..]: per policy: algorithm code, limit, window ms, burst, delay (1/0)
${algorithmsLua(codes, ['refund', 'expires'])}${PROLOGUE_LUA}${STORE_LUA}
local any, kept, new = false, false, 0
for i = 1, n do
  local at, j = 5 * i - 2, 3 * i - 2
  local s1 = st[j]
  if s1 then
    any = true
    local code, L, W, B = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    local n1, n2, n3 = refund(code, s1, st[j + 1], st[j + 2], now, L, W, B, cost)
    st[j], st[j + 1], st[j + 2] = n1, n2, n3
    if n1 then
      kept = true
      new = max(new, expires(code, n1, n2, L, W, B))
    end
  end
end
if not kept then
  if any then call('DEL', key) end
  return 0
end
-- A refund rewrites the state: its deadline is set again.
store(st, new, nil)
return 1
`;
}

/** The refund script for sets of any algorithms. */
export const REFUND_SCRIPT: string = refundScript(CODES);
