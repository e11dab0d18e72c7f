import { defineAlgorithm } from '../types.js';
import { fixedWindowStep } from './kernel.js';
import { FIXED_WINDOW_LUA } from './lua.js';

export const fixedWindow = defineAlgorithm({
  ...fixedWindowStep,
  name: 'fixed-window',
  tag: 'fw',
  params: ['L', 'W'],
  lua: FIXED_WINDOW_LUA,
});
