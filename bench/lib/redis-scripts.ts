import { type RateAlgorithm, resolvePolicySet } from '../../packages/core/src/internal.ts';
import { layoutFor } from '../../packages/redis/src/layout.ts';
import type { LuaSubject } from './redis-lua.ts';

const HUGE = 1_000_000_000;
const WINDOW_MS = 3_600_000;

/** rate-limit-redis 4's increment script, as it sends it (source/scripts.ts). */
const RLR_INCREMENT = `
local windowMs = tonumber(ARGV[2])
local resetOnChange = ARGV[1] == "1"
local timeToExpire = redis.call("PTTL", KEYS[1])
if timeToExpire <= 0 then
  redis.call("SET", KEYS[1], 1, "PX", windowMs)
  return { 1, windowMs }
end
local totalHits = redis.call("INCR", KEYS[1])
if resetOnChange then
  redis.call("PEXPIRE", KEYS[1], windowMs)
  timeToExpire = windowMs
end
return { totalHits, timeToExpire }
`
  .replaceAll(/^\s+/gm, '')
  .trim();

/** rate-limiter-flexible 11's RateLimiterRedis script (lib/RateLimiterRedis.js). */
const RLF_INCR_TTL = `redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX') \
local consumed = redis.call('incrby', KEYS[1], ARGV[1]) \
local ttl = redis.call('pttl', KEYS[1]) \
if ttl == -1 then \
  redis.call('expire', KEYS[1], ARGV[2]) \
  ttl = 1000 * ARGV[2] \
end \
return {consumed, ttl} \
`;

/** A deadline no run reaches: year 5138 in ms. */
const FAR_DEADLINE = 99_999_999_999_999;

/**
 * tollgate's consume script for a one-policy set of `algorithm`, exactly as the store sends it on
 * Redis time (no caller clock, as in production).
 */
function tollgate(algorithm: RateAlgorithm, name: string): LuaSubject {
  const set = resolvePolicySet({ limit: HUGE, window: WINDOW_MS, algorithm }, 'bench');
  const layout = layoutFor(set, 'bench:');
  return {
    label: `tollgate ${name}`,
    lua: layout.scripts.consume.lua,
    key: `bench:lua:{tg-${name}}`,
    // '' for `now`: the script reads Redis TIME. Last, the replay guard's deadline (Redis time, ms),
    // far ahead so that the guard does the work it does in production and never refuses.
    args: ['', '1', ...layout.args, String(FAR_DEADLINE)],
  };
}

/** Every script whose cost bench/redis.ts measures; the first two are the peers'. */
export function luaSubjects(): LuaSubject[] {
  return [
    {
      label: 'rate-limit-redis increment',
      lua: RLR_INCREMENT,
      key: 'bench:lua:rlr',
      args: ['0', String(WINDOW_MS)],
    },
    {
      label: 'rate-limiter-flexible incr',
      lua: RLF_INCR_TTL,
      key: 'bench:lua:rlf',
      args: ['1', String(WINDOW_MS / 1000), String(HUGE), String(WINDOW_MS / 1000)],
    },
    tollgate('fixed-window', 'fixed'),
    tollgate('sliding-window', 'sliding'),
    tollgate('token-bucket', 'token'),
    tollgate('leaky-bucket', 'leaky'),
  ];
}
