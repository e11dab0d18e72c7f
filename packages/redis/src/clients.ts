import { createHash } from 'node:crypto';

/** The parts of an ioredis `Redis` or `Cluster` the store uses. */
export interface IoRedisLike {
  readonly status: string;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  del(...keys: string[]): Promise<number>;
  connect(): Promise<void>;
}

/** The parts of a node-redis (v4, v5) client from `createClient` the store uses. */
export interface NodeRedisClientLike {
  readonly isReady: boolean;
  readonly isOpen: boolean;
  sendCommand(args: string[]): Promise<unknown>;
}

/** The parts of a node-redis (v4.6+, v5) cluster from `createCluster` the store uses. */
export interface NodeRedisClusterLike {
  readonly isOpen: boolean;
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>;
  nodeClient(node: never): unknown;
}

export type RedisClientLike = IoRedisLike | NodeRedisClientLike | NodeRedisClusterLike;

export interface Script {
  readonly operation: 'consume' | 'peek' | 'refund';
  readonly lua: string;
  readonly sha: string;
  /** The ioredis command name: unique per script text, so two versions never clobber each other. */
  readonly name: string;
}

export function script(operation: Script['operation'], lua: string): Script {
  const sha = createHash('sha1').update(lua).digest('hex');
  return { operation, lua, sha, name: `tollgate_${operation}_${sha.slice(0, 12)}` };
}

/** One Redis client behind the few operations the store needs. */
export interface Connection {
  readonly kind: 'ioredis' | 'node-redis' | 'node-redis-cluster';
  /** Why a command must not be sent now (it would wait in the client's offline queue), or undefined. */
  notReady(): string | undefined;
  /** EVALSHA `script` on `key` with ARGV `now`, `cost`, ...`args`; one command (EVAL if not cached). */
  run(script: Script, key: string, now: string, cost: string, args: readonly string[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';

/** Which client this is, or undefined for anything else. */
export function connect(client: unknown, scripts: readonly Script[]): Connection | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const c = client as Record<string, unknown>;
  if (isFunction(c.defineCommand) && typeof c.status === 'string' && isFunction(c.del)) {
    return new IoRedisConnection(client as IoRedisLike, scripts);
  }
  // A cluster's sendCommand takes the key first; it has node accessors a client has not.
  if (isFunction(c.sendCommand) && (isFunction(c.nodeClient) || isFunction(c.getMasters))) {
    return new NodeRedisConnection(client as NodeRedisClusterLike, true);
  }
  if (isFunction(c.sendCommand) && typeof c.isReady === 'boolean') {
    return new NodeRedisConnection(client as NodeRedisClientLike, false);
  }
  return undefined;
}

type ScriptCommand = (key: string, now: string, cost: string, args: readonly string[]) => Promise<unknown>;

/**
 * ioredis: scripts registered with `defineCommand`, which sends EVALSHA and falls back to EVAL on
 * NOSCRIPT (after SCRIPT FLUSH, a restart or a failover) by itself, and works with auto-pipelining.
 */
class IoRedisConnection implements Connection {
  readonly kind = 'ioredis';
  private readonly commands = new Map<Script, ScriptCommand>();

  constructor(
    private readonly client: IoRedisLike,
    scripts: readonly Script[],
  ) {
    const methods = client as unknown as Record<string, ScriptCommand | undefined>;
    for (const s of scripts) {
      // The name holds the script's hash: an existing command of that name is this very script.
      if (typeof methods[s.name] !== 'function')
        client.defineCommand(s.name, { lua: s.lua, numberOfKeys: 1 });
      this.commands.set(s, methods[s.name]!);
    }
  }

  notReady(): string | undefined {
    const { status } = this.client;
    if (status === 'ready') return undefined;
    // lazyConnect: connect now so that the next request finds the client ready.
    if (status === 'wait') this.client.connect().catch(() => undefined);
    return `the ioredis client is not ready (status '${status}')`;
  }

  run(script: Script, key: string, now: string, cost: string, args: readonly string[]): Promise<unknown> {
    // ioredis flattens one level of arrays in arguments, so the static part goes as it is.
    return this.commands.get(script)!.call(this.client, key, now, cost, args);
  }

  del(key: string): Promise<unknown> {
    return this.client.del(key);
  }
}

const isNoScript = (error: unknown): boolean =>
  error instanceof Error && typeof error.message === 'string' && error.message.startsWith('NOSCRIPT');

/**
 * node-redis: EVALSHA through `sendCommand`, and EVAL when the server answers NOSCRIPT. A cluster's
 * `sendCommand` takes the key first, to route the command to the key's slot.
 */
class NodeRedisConnection implements Connection {
  readonly kind: 'node-redis' | 'node-redis-cluster';

  constructor(
    private readonly client: NodeRedisClientLike | NodeRedisClusterLike,
    private readonly cluster: boolean,
  ) {
    this.kind = cluster ? 'node-redis-cluster' : 'node-redis';
  }

  notReady(): string | undefined {
    if (this.cluster) {
      // A cluster only says whether it is open, not whether the node of this key is connected: to
      // keep its node clients from queueing, create it with `defaults: { disableOfflineQueue: true }`.
      const cluster = this.client as Partial<NodeRedisClusterLike> & { isReady?: boolean };
      const ready = cluster.isReady ?? cluster.isOpen ?? true;
      return ready ? undefined : 'the node-redis cluster is not open (call `await cluster.connect()`)';
    }
    const client = this.client as NodeRedisClientLike;
    if (client.isReady) return undefined;
    return client.isOpen
      ? 'the node-redis client is reconnecting'
      : 'the node-redis client is not open (call `await client.connect()`)';
  }

  run(script: Script, key: string, now: string, cost: string, args: readonly string[]): Promise<unknown> {
    const command = ['EVALSHA', script.sha, '1', key, now, cost];
    for (const arg of args) command.push(arg);
    return this.send(key, command).catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      // The server lost its script cache (SCRIPT FLUSH, restart, failover): send the script itself.
      const retry = command.slice();
      retry[0] = 'EVAL';
      retry[1] = script.lua;
      return this.send(key, retry);
    });
  }

  del(key: string): Promise<unknown> {
    return this.send(key, ['DEL', key]);
  }

  private send(key: string, args: string[]): Promise<unknown> {
    return this.cluster
      ? (this.client as NodeRedisClusterLike).sendCommand(key, false, args)
      : (this.client as NodeRedisClientLike).sendCommand(args);
  }
}
