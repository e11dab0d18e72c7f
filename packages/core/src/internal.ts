/**
 * `@tollgate/core/internal`: what sibling packages (`@tollgate/redis`, the adapters) and the tests
 * share. No stability promise and not documented for users: the public names are in `./index.ts`.
 */

export type { AlgorithmDefinition, LuaParam } from './algorithms/index.js';
export { REGISTRY } from './algorithms/index.js';
export * from './index.js';
export { keyDigest } from './key-digest.js';
