import { defineAlgorithm } from '../types.js';
import { concurrencyStep } from './kernel.js';
import { CONCURRENCY_LUA } from './lua.js';

/** Requests in flight: `limit` slots, each held until released or its lease (`W`) ends. */
export const concurrency = defineAlgorithm({
  ...concurrencyStep,
  name: 'concurrency',
  tag: 'cc',
  params: ['L', 'W'],
  lua: CONCURRENCY_LUA,
});
