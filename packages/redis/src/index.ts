export type {
  IoRedisLike,
  NodeRedisClientLike,
  NodeRedisClusterLike,
  RedisClientLike,
} from './clients.js';
export { CONSUME_SCRIPT } from './lua/consume.js';
export { PEEK_SCRIPT } from './lua/peek.js';
export { REFUND_SCRIPT } from './lua/refund.js';
export type { RedisStoreOptions } from './redis-store.js';
export { RedisStore } from './redis-store.js';
