// Processes of a fleet (`SharedPacing`, one per "process") on one real MemoryStore, on a virtual
// clock the test moves (the store's and the processes'): the client's fleet tests share it.
import { MemoryStore } from '@tollgate/core';
import { SharedPacing } from '../../packages/client/src/shared.js';

export function storeFleet(n: number, start = 1_700_000_000_000) {
  const clock = { now: start };
  const store = new MemoryStore({ clock: () => clock.now });
  const processes = Array.from({ length: n }, () => new SharedPacing(store, () => clock.now));
  return { clock, store, processes };
}
