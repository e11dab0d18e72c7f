/**
 * Vitest globalSetup: one throwaway standalone Redis and one 3-master Redis Cluster for the whole run,
 * reachable from tests through `inject('redisPort')` and `inject('clusterNodes')`.
 */
import type { TestProject } from 'vitest/node';
import {
  type ClusterNode,
  type RedisCluster,
  type RedisServer,
  redisAvailable,
  startCluster,
  startRedis,
} from './redis-servers.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Port of a throwaway standalone Redis on 127.0.0.1; use a random key prefix per test. */
    redisPort: number;
    /** Seed nodes (every master) of a throwaway 3-master Redis Cluster on 127.0.0.1. */
    clusterNodes: ClusterNode[];
  }
}

export default async function setup({ provide }: Pick<TestProject, 'provide'>): Promise<() => Promise<void>> {
  if (!redisAvailable()) {
    throw new Error(
      'The tests need `redis-server` and `redis-cli` on PATH: they start their own throwaway Redis ' +
        'servers and never use the one on 6379. Install them with `apt-get install redis-server` ' +
        '(Debian/Ubuntu) or `brew install redis` (macOS).',
    );
  }
  const [standalone, clustered] = await Promise.allSettled([startRedis(), startCluster()]);
  const failure =
    standalone.status === 'rejected' ? standalone : clustered.status === 'rejected' ? clustered : undefined;
  if (failure || standalone.status === 'rejected' || clustered.status === 'rejected') {
    await Promise.allSettled([
      standalone.status === 'fulfilled' ? standalone.value.stop() : undefined,
      clustered.status === 'fulfilled' ? clustered.value.stop() : undefined,
    ]);
    throw failure?.reason;
  }
  const server: RedisServer = standalone.value;
  const cluster: RedisCluster = clustered.value;
  provide('redisPort', server.port);
  provide('clusterNodes', cluster.nodes);

  return async function teardown() {
    await Promise.all([server.stop(), cluster.stop()]);
  };
}
