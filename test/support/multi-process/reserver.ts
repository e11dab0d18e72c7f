/**
 * The reservations a consumer child makes on `go` when the run asks for them (issue 12): all at
 * once, each with a random estimate, then settled with a random actual or released after a random
 * wait, so that reserves and settles of four processes interleave on one key.
 */
import type { Limiter } from '@tollgate/core';
import type { ReservationRecord, ReservationSpec } from './protocol.ts';

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function reserveAll(
  limiter: Limiter,
  key: string,
  spec: ReservationSpec,
): Promise<ReservationRecord[]> {
  const next = random(spec.seed ^ process.pid);
  const upTo = (n: number) => Math.floor(next() * (n + 1));
  const calls: Promise<ReservationRecord>[] = [];
  for (let i = 0; i < spec.count; i++) {
    const estimate = 1 + upTo(spec.maxEstimate - 1);
    const actual = next() < spec.releaseShare ? null : upTo(spec.maxActual);
    const waitMs = upTo(spec.maxWaitMs);
    calls.push(
      limiter.reserve(key, { cost: estimate }).then(async (reservation) => {
        const { decision } = reservation;
        const counted = decision.allowed && decision.reason === undefined;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
        let uncharged = decision.policies.map(() => 0);
        if (actual === null) await reservation.release();
        else uncharged = (await reservation.settle(actual)).policies.map((p) => p.uncharged ?? 0);
        return { estimate, actual, counted, uncharged };
      }),
    );
  }
  return Promise.all(calls);
}
