import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { describe, inject, test } from 'vitest';
import {
  type ClusterNode,
  findFreePort,
  keySlot,
  redisAvailable,
  startCluster,
  startRedis,
} from './redis-servers.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

function client(server: ClusterNode): Redis {
  // No reconnects: a test that kills a server must not leave a client retrying in the background.
  return new Redis({
    host: server.host,
    port: server.port,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

// Every test starts its own servers, so they run concurrently to keep the file fast.
describe.concurrent('redis-servers', () => {
  test('redis-server and redis-cli are on PATH', ({ expect }) => {
    expect(redisAvailable(), 'install them with `apt-get install redis-server`').toBe(true);
  });

  test('findFreePort hands out distinct, bindable ports and never 6379', async ({ expect }) => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => findFreePort()));
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports).not.toContain(6379);
    for (const port of ports) expect(await refusesConnections(port)).toBe(true);
  });

  test('startRedis answers PING without persistence, and stop() ends it and removes its dir', async ({
    expect,
    onTestFinished,
  }) => {
    const server = await startRedis();
    onTestFinished(() => server.stop());
    const redis = client(server);
    try {
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
      expect(server.port).not.toBe(6379);
      expect(await redis.ping()).toBe('PONG');
      expect(await redis.config('GET', 'save')).toEqual(['save', '']);
      expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
      expect(await redis.config('GET', 'dir')).toEqual(['dir', server.dir]);
    } finally {
      redis.disconnect();
    }
    const dir = server.dir!;
    await server.stop();
    expect(await refusesConnections(server.port)).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(server.dir).toBeUndefined();
    await server.stop();
  });

  test('startRedis fails fast with the server output when redis-server cannot start', async ({ expect }) => {
    await expect(startRedis({ args: ['--no-such-directive', 'yes'] })).rejects.toThrow(
      /stopped before answering PING \(exit code 1\)\. Its output:\n[\s\S]*no-such-directive/,
    );
    await expect(startRedis({ port: 6379 })).rejects.toThrow(/refusing port 6379/);
  });

  test('kill() crashes the server; restart() brings it back, empty, on the same port', async ({
    expect,
    onTestFinished,
  }) => {
    const server = await startRedis();
    onTestFinished(() => server.stop());
    const before = client(server);
    await before.set('crash-test', '1');
    before.disconnect();

    await server.kill();
    expect(await refusesConnections(server.port)).toBe(true);
    await server.restart();
    const after = client(server);
    try {
      expect(await after.ping()).toBe('PONG');
      expect(await after.get('crash-test')).toBeNull();
    } finally {
      after.disconnect();
    }

    await server.stop();
    await server.restart();
    const again = client(server);
    try {
      expect(await again.ping()).toBe('PONG');
    } finally {
      again.disconnect();
    }
  });

  test('a replica started with replicaOf follows its primary and rejects writes with READONLY', async ({
    expect,
    onTestFinished,
  }) => {
    const primary = await startRedis();
    onTestFinished(() => primary.stop());
    const replica = await startRedis({ replicaOf: primary.port });
    onTestFinished(() => replica.stop());
    const writer = client(primary);
    const reader = client(replica);
    onTestFinished(() => {
      writer.disconnect();
      reader.disconnect();
    });

    await expect(reader.set('replica-test', '1')).rejects.toThrow(/^READONLY/);
    await writer.set('replica-test', 'from-primary');
    await expect.poll(() => reader.get('replica-test'), { timeout: 10_000 }).toBe('from-primary');
  });

  test('the injected cluster is ok and serves keys whose slots live on different masters', async ({
    expect,
    onTestFinished,
  }) => {
    const nodes = inject('clusterNodes');
    expect(nodes).toHaveLength(3);
    const cluster = new Cluster(nodes, { clusterRetryStrategy: () => null });
    onTestFinished(() => cluster.disconnect());

    for (const node of nodes) {
      const direct = client(node);
      try {
        expect(await direct.cluster('INFO')).toContain('cluster_state:ok');
      } finally {
        direct.disconnect();
      }
    }
    expect(await cluster.cluster('INFO')).toContain('cluster_state:ok');

    // One key per master, found from the slot map rather than assumed.
    const slots = await cluster.cluster('SLOTS');
    const prefix = crypto.randomUUID();
    const keys = slots.map(([start, end]) => {
      for (let index = 0; ; index++) {
        const key = `${prefix}:${index}`;
        const slot = keySlot(key);
        if (start <= slot && slot <= end) return key;
      }
    });
    expect(new Set(keys.map(keySlot)).size).toBe(3);
    for (const key of keys) {
      expect(await cluster.cluster('KEYSLOT', key)).toBe(keySlot(key));
      await cluster.set(key, `value of ${key}`, 'EX', 60);
    }
    for (const key of keys) expect(await cluster.get(key)).toBe(`value of ${key}`);
  });

  test('startCluster maps slots to masters and stop() ends every node', async ({
    expect,
    onTestFinished,
  }) => {
    await expect(startCluster({ masters: 2 })).rejects.toThrow(/at least 3/);

    const cluster = await startCluster();
    onTestFinished(() => cluster.stop());
    const ports = cluster.nodes.map((node: ClusterNode) => node.port);
    try {
      expect(cluster.servers.map((server) => server.port)).toEqual(ports);
      for (const key of ['a', 'b', 'c', '{user:1}:x', '123456789']) {
        const owner = cluster.masterForSlot(keySlot(key));
        const direct = client(owner);
        try {
          // The owner accepts the key; any other master would answer MOVED.
          expect(await direct.set(key, '1')).toBe('OK');
        } finally {
          direct.disconnect();
        }
      }
      expect(() => cluster.masterForSlot(16_384)).toThrow(RangeError);
    } finally {
      await cluster.stop();
    }
    for (const port of ports) expect(await refusesConnections(port)).toBe(true);
  });

  test.for(['exit', 'SIGTERM'] as const)(
    'servers do not outlive a process that ends by %s',
    async (ending, { expect }) => {
      // `process.exit` fires 'exit' listeners; a SIGTERM (how Vitest stops fork workers) does not.
      const script = `
      import { startRedis } from './test/support/redis-servers.ts';
      const server = await startRedis();
      console.log(server.port);
      if (${JSON.stringify(ending)} === 'exit') process.exit(0);
      else process.kill(process.pid, 'SIGTERM');
      setInterval(() => {}, 1000);
    `;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
      );
      expect(ending === 'exit' ? code : signal).toBe(ending === 'exit' ? 0 : 'SIGTERM');
      const port = Number.parseInt(stdout, 10);
      expect(port).toBeGreaterThan(0);
      await expect.poll(() => refusesConnections(port), { timeout: 2_000 }).toBe(true);
    },
  );
});
