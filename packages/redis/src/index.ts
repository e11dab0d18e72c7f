export type {
  IoRedisLike,
  NodeRedisClientLike,
  NodeRedisClusterLike,
  RedisClientLike,
} from './clients.js';
export type { RedisStoreOptions } from './redis-store.js';
export { RedisStore } from './redis-store.js';
export type { RedisUsageStoreOptions } from './usage-store.js';
export { RedisUsageStore } from './usage-store.js';
