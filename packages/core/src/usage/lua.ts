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

-- Each key is read once and written once per batch, however many entries touch it: the entries
-- are applied in order to these copies (the same steps as MemoryUsageStore.add), then written.
local tenants = { count = redis.call('ZCARD', registry), seen = {} }
local buckets = {}

-- The tenant as counted: itself if known or if there is room, else OTHER; its last minute seen.
local function admit(tenant, minute)
  if tenant == OTHER then return tenant end
  local seen = tenants.seen[tenant]
  if seen == nil then
    seen = tonumber(redis.call('ZSCORE', registry, tenant) or '-1')
    if seen < 0 then
      if tenants.count >= maxTenants then return OTHER end
      tenants.count = tenants.count + 1
    end
  end
  if minute > seen then seen = minute end
  tenants.seen[tenant] = seen
  return tenant
end

local function bucket(key, ttl)
  local b = buckets[key]
  if b == nil then
    local v = redis.call('HMGET', key, '${FIELDS.routes}', '${FIELDS.all}', '${FIELDS.peak}', '${FIELDS.peakMinute}')
    b = { named = tonumber(v[1] or '0'), all = tonumber(v[2] or '0'), peak = tonumber(v[3] or '0'),
          peakMinute = tonumber(v[4] or '0'), known = {}, add = {}, ttl = ttl }
    buckets[key] = b
  end
  return b
end

local function increment(b, field, count)
  b.add[field] = (b.add[field] or 0) + count
end

-- Adds one entry to one bucket: the route as itself while the bucket names fewer than maxRoutes
-- routes (or already names it), else as OTHER. tenant: in an all-tenants bucket, its own counts.
-- Returns the bucket.
local function addTo(key, ttl, route, result, count, tenant)
  local b = bucket(key, ttl)
  if route ~= OTHER then
    local known = b.known[route]
    if known == nil then known = redis.call('HEXISTS', key, '${lua(FIELDS.route)}' .. route) == 1 end
    if not known and b.named < maxRoutes then
      b.named = b.named + 1
      b.namesChanged = true
      known = true
    end
    b.known[route] = known
    if not known then route = OTHER end
  end
  increment(b, '${lua(FIELDS.route)}' .. route, count)
  increment(b, '${lua(FIELDS.count)}' .. result .. '\t' .. route, count)
  if tenant then increment(b, '${lua(FIELDS.tenant)}' .. result .. '\t' .. tenant, count) end
  b.all = b.all + count
  increment(b, '${FIELDS.all}', count)
  return b
end

-- An hour or day bucket's busiest minute: the most requests, the earliest minute on a tie.
local function raisePeak(b, requests, minute)
  if not requests then return end
  if requests > b.peak or (requests == b.peak and minute < b.peakMinute) then
    b.peak, b.peakMinute, b.peakChanged = requests, minute, true
  end
end

for i = 6, #ARGV, 5 do
  local route, result = ARGV[i + 1], ARGV[i + 2]
  local minute, count = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local tenant = admit(ARGV[i], minute)
  local own, all
  for _, grain in ipairs(GRAINS) do
    local start = minute - minute % grain[2]
    local ttl = start + grain[3] - now
    if ttl > 0 then
      local stem = head .. grain[1] .. ':' .. string.format('%d', start) .. ':'
      local o = addTo(stem .. 't:' .. tenant, ttl, route, result, count, nil)
      local a = addTo(stem .. '*', ttl, route, result, count, tenant)
      if grain[1] == 'm' then
        own, all = o.all, a.all
      else
        raisePeak(o, own, minute)
        raisePeak(a, all, minute)
      end
    end
  end
end

for tenant, seen in pairs(tenants.seen) do redis.call('ZADD', registry, string.format('%d', seen), tenant) end
for key, b in pairs(buckets) do
  for field, count in pairs(b.add) do redis.call('HINCRBY', key, field, count) end
  if b.namesChanged then redis.call('HSET', key, '${FIELDS.routes}', b.named) end
  if b.peakChanged then
    redis.call('HSET', key, '${FIELDS.peak}', b.peak, '${FIELDS.peakMinute}', string.format('%d', b.peakMinute))
  end
  redis.call('PEXPIRE', key, b.ttl)
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
