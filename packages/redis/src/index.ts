export type {
  IoRedisLike,
  NodeRedisClientLike,
  NodeRedisClusterLike,
  RedisClientLike,
} from './clients.js';
export { CONSUME_SCRIPT, PEEK_SCRIPT, REFUND_SCRIPT } from './lua/scripts.js';
export type { RedisStoreOptions } from './redis-store.js';
export { RedisStore } from './redis-store.js';
