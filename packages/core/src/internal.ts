/**
 * `@tollgate/core/internal`: what sibling packages (`@tollgate/redis`, the adapters) and the tests
 * share. No stability promise and not documented for users: the public names are in `./index.ts`.
 */
export * from './index.js';
