import { FIELDS, GRAINS, OTHER } from './model.js';

/** How long Redis remembers a batch id, so that a batch sent again (after a timeout) is added once. */
export const BATCH_MEMORY_MS = GRAINS.m.keep;

const lua = (text: string) => text.replaceAll('\t', '\\t');

/**
 * The Lua twin of `MemoryUsageStore.add`: the same buckets, fields, caps and peaks (the usage
 * conformance suite compares their reports). Every key shares one hash tag (see RedisUsageStore).
 */
export const USAGE_ADD_LUA = `-- KEYS[1]: the tenant registry, a sorted set: tenant -> the last minute it was seen (ms)
-- ARGV[1]: now (ms); ARGV[2]: max tenants; ARGV[3]: max routes per bucket
-- ARGV[4]: the bucket keys' head (prefix and hash tag); ARGV[5]: the batch id
-- ARGV[6..]: entries, 5 values each: tenant, route, result, minute start (ms), count
local now = tonumber(ARGV[1])
local maxTenants = tonumber(ARGV[2])
local maxRoutes = tonumber(ARGV[3])
local head = ARGV[4]
local OTHER = '${OTHER}'
-- A batch sent again after a timeout that Redis had in fact run adds nothing twice.
if not redis.call('SET', head .. 'batch:' .. ARGV[5], '1', 'PX', ${BATCH_MEMORY_MS}, 'NX') then return 0 end
local registry = KEYS[1]
redis.call('ZREMRANGEBYSCORE', registry, '-inf', '(' .. string.format('%d', now - ${GRAINS.d.keep}))
-- grain, bucket length, keep time (ms)
local GRAINS = { { 'm', ${GRAINS.m.length}, ${GRAINS.m.keep} }, { 'h', ${GRAINS.h.length}, ${GRAINS.h.keep} }, { 'd', ${GRAINS.d.length}, ${GRAINS.d.keep} } }

-- Adds one entry to one bucket: the route as itself while the bucket names fewer than maxRoutes
-- routes (or already names it), else as OTHER. tenant: in an all-tenants bucket, its own counts.
local function addTo(key, route, result, count, tenant, ttl)
  if route ~= OTHER and redis.call('HEXISTS', key, '${lua(FIELDS.route)}' .. route) == 0 then
    local named = tonumber(redis.call('HGET', key, '${FIELDS.routes}') or '0')
    if named >= maxRoutes then route = OTHER else redis.call('HSET', key, '${FIELDS.routes}', named + 1) end
  end
  redis.call('HINCRBY', key, '${lua(FIELDS.route)}' .. route, count)
  redis.call('HINCRBY', key, '${lua(FIELDS.count)}' .. result .. '\\t' .. route, count)
  if tenant then redis.call('HINCRBY', key, '${lua(FIELDS.tenant)}' .. result .. '\\t' .. tenant, count) end
  local all = redis.call('HINCRBY', key, '${FIELDS.all}', count)
  redis.call('PEXPIRE', key, ttl)
  return all
end

-- An hour or day bucket's busiest minute: the most requests, the earliest minute on a tie.
local function raisePeak(key, requests, minute, minuteText)
  if not requests then return end
  local peak = tonumber(redis.call('HGET', key, '${FIELDS.peak}') or '0')
  if requests > peak or (requests == peak and minute < tonumber(redis.call('HGET', key, '${FIELDS.peakMinute}') or '0')) then
    redis.call('HSET', key, '${FIELDS.peak}', requests, '${FIELDS.peakMinute}', minuteText)
  end
end

for i = 6, #ARGV, 5 do
  local tenant, route, result, minuteText = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local minute, count = tonumber(minuteText), tonumber(ARGV[i + 4])
  if tenant ~= OTHER then
    local seen = redis.call('ZSCORE', registry, tenant)
    if not seen and redis.call('ZCARD', registry) >= maxTenants then
      tenant = OTHER
    elseif not seen or tonumber(seen) < minute then
      redis.call('ZADD', registry, minuteText, tenant)
    end
  end
  local own, all
  for _, grain in ipairs(GRAINS) do
    local start = minute - minute % grain[2]
    local ttl = start + grain[3] - now
    if ttl > 0 then
      local stem = head .. grain[1] .. ':' .. string.format('%d', start) .. ':'
      local ownKey, allKey = stem .. 't:' .. tenant, stem .. '*'
      local o = addTo(ownKey, route, result, count, nil, ttl)
      local a = addTo(allKey, route, result, count, tenant, ttl)
      if grain[1] == 'm' then
        own, all = o, a
      else
        raisePeak(ownKey, own, minute, minuteText)
        raisePeak(allKey, all, minute, minuteText)
      end
    end
  end
end
return 1
`;

/**
 * Reads buckets: one HGETALL per key, in one call.
 * KEYS[1]: the tenant registry (it names the hash tag the buckets share); ARGV: the bucket keys.
 */
export const USAGE_READ_LUA = `-- KEYS[1]: the tenant registry (for the hash tag); ARGV: bucket keys
local buckets = {}
for i = 1, #ARGV do buckets[i] = redis.call('HGETALL', ARGV[i]) end
return buckets
`;
