import { defineAlgorithm } from '../types.js';
import { leakyBucketStep } from './kernel.js';
import { LEAKY_BUCKET_LUA } from './lua.js';

export const leakyBucket = defineAlgorithm({
  ...leakyBucketStep,
  name: 'leaky-bucket',
  tag: 'lb',
  params: ['L', 'W', 'B', 'D'],
  lua: LEAKY_BUCKET_LUA,
});
