import { defineAlgorithm } from '../types.js';
import { tokenBucketStep } from './kernel.js';
import { TOKEN_BUCKET_LUA } from './lua.js';

export const tokenBucket = defineAlgorithm({
  ...tokenBucketStep,
  name: 'token-bucket',
  tag: 'tb',
  params: ['L', 'W', 'B'],
  lua: TOKEN_BUCKET_LUA,
});
