import { defineAlgorithm } from '../types.js';
import { fixedWindowStep } from './kernel.js';
import { FIXED_WINDOW_LUA } from './lua.js';

export const fixedWindow = defineAlgorithm({
  ...fixedWindowStep,
  name: 'fixed-window',
  tag: 'fw',
  // S: a calendar period may be its window (../types.ts LuaParam).
  params: ['L', 'W', 'S'],
  wholeUnits: true,
  lua: FIXED_WINDOW_LUA,
});
