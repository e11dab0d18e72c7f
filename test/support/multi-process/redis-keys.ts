/**
 * Looking at what a test left in Redis: the keys under its prefix (SCAN on every master of a
 * cluster) and whether each has a TTL.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

export type Admin = Redis | Cluster;

/** A fresh RedisStore prefix: unique per test, no glob characters, no braces. */
export const testPrefix = (): string => `tg-test:${randomUUID()}:`;

const isCluster = (admin: Admin): admin is Cluster => 'nodes' in admin && typeof admin.nodes === 'function';

/** Every key under `prefix`, with the node that holds it. */
export async function keysUnder(admin: Admin, prefix: string): Promise<{ key: string; node: Redis }[]> {
  if (/[*?[\]\\]/.test(prefix)) throw new Error(`keysUnder: prefix ${prefix} holds glob characters`);
  const nodes = isCluster(admin) ? admin.nodes('master') : [admin];
  const found: { key: string; node: Redis }[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) found.push({ key, node });
    } while (cursor !== '0');
  }
  return found;
}

/** Keys under `prefix` that have no TTL (PTTL -1), with their PTTL; keys that vanished meanwhile are fine. */
export async function keysWithoutTtl(admin: Admin, prefix: string): Promise<{ key: string; pttl: number }[]> {
  const lacking: { key: string; pttl: number }[] = [];
  for (const { key, node } of await keysUnder(admin, prefix)) {
    const pttl = await node.pttl(key);
    // -2: expired between SCAN and PTTL, which is what a TTL is for.
    if (pttl !== -2 && pttl <= 0) lacking.push({ key, pttl });
  }
  return lacking;
}

/**
 * Collects the (server, prefix) pairs a test used; `verify()` (in afterEach) fails when any key under
 * them lacks a TTL, then forgets them.
 */
export class TtlGuard {
  private watched: { admin: Admin; prefix: string }[] = [];

  /** Watch `prefix` on `admin`; returns the prefix for convenience. */
  watch(admin: Admin, prefix: string = testPrefix()): string {
    this.watched.push({ admin, prefix });
    return prefix;
  }

  async verify(): Promise<void> {
    const watched = this.watched;
    this.watched = [];
    const problems: string[] = [];
    for (const { admin, prefix } of watched) {
      for (const { key, pttl } of await keysWithoutTtl(admin, prefix)) problems.push(`${key} (PTTL ${pttl})`);
    }
    if (problems.length > 0) throw new Error(`Keys without a TTL after the test:\n${problems.join('\n')}`);
  }
}
