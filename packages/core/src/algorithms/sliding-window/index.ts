import { defineAlgorithm } from '../types.js';
import { slidingWindowStep } from './kernel.js';
import { SLIDING_WINDOW_LUA } from './lua.js';

export const slidingWindow = defineAlgorithm({
  ...slidingWindowStep,
  name: 'sliding-window',
  tag: 'sw',
  params: ['L', 'W'],
  lua: SLIDING_WINDOW_LUA,
});
