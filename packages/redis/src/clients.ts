import { createHash } from 'node:crypto';
import { ConfigError, checkOptions, configError } from '@tollgate/core/internal';
import {
  type IoRedisSubscriberLike,
  ioRedisClientSubscriber,
  ioRedisClusterSubscriber,
  type NodeRedisSubscriberLike,
  nodeRedisClusterSubscriber,
  nodeRedisSubscriber,
  publishToAll,
  type Subscriber,
  type SubscriberEvents,
} from './lifts.js';
import { keySlot } from './slot.js';

type Reply = Promise<unknown>;
type Arg = string | readonly string[];

/** The parts of an ioredis `Redis` or `Cluster` by which the store recognizes one. */
export interface IoRedisLike {
  readonly status: string;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  del(...keys: string[]): Promise<number>;
  connect(): Promise<void>;
}

/** What the store calls on an ioredis client (overloaded in ioredis's types, so kept apart). */
interface IoRedisCalls extends IoRedisLike {
  evalshaBuffer(sha: string, numberOfKeys: string, ...args: Arg[]): Reply;
  evalBuffer(lua: string, numberOfKeys: string, ...args: Arg[]): Reply;
  time(): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  once(event: 'ready' | 'end', listener: () => void): unknown;
  off(event: 'ready' | 'end', listener: () => void): unknown;
  readonly isCluster?: boolean;
  /** `Redis`: a new client with the same options (and these overrides). */
  duplicate?(override?: Record<string, unknown>): IoRedisSubscriberLike;
  /** `Cluster`: a client per node. */
  nodes?(role: 'master'): IoRedisSubscriberLike[];
  /** Cluster: the nodes (`host:port`, master first) serving each slot. */
  readonly slots?: readonly (readonly string[] | undefined)[];
  readonly options?: { enableAutoPipelining?: boolean };
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
  /** v5: each slot's master. */
  readonly slots?: readonly ({ master?: { address?: string } } | undefined)[];
  /** v4: the same, by a method. */
  getSlotMaster?(slot: number): { address?: string } | undefined;
  sendCommand(firstKey: string | undefined, isReadonly: boolean, args: string[]): Promise<unknown>;
  nodeClient(node: never): unknown;
}

/** The clients a `RedisStore` takes: an ioredis `Redis` or `Cluster`, a node-redis client or cluster. */
export type RedisClientLike = IoRedisLike | NodeRedisClientLike | NodeRedisClusterLike;

export interface Script {
  /** What it does: the rate-limit operations, or writing and reading usage buckets. */
  readonly operation:
    | 'consume'
    | 'peek'
    | 'refund'
    | 'settle'
    | 'release'
    | 'usage_add'
    | 'usage_read'
    | 'ban';
  /** The script as sent: the guard below, then the generated script. */
  readonly lua: string;
  readonly sha: string;
  /** How many of its arguments are keys: 2 for the scripts of sets with a concurrency policy. */
  readonly keys: 1 | 2;
}

/**
 * The replay guard, put in front of every script. Its last ARGV is the store's deadline for the
 * call in Redis time (ms), or '' for none. A command that reaches Redis after it (a command ioredis
 * resends after a reconnect, `autoResendUnfulfilledCommands`, when the store has long answered it
 * by timeout; or one held up on the way) changes nothing and answers LATE. The script after it
 * sees ARGV without the deadline (removed in place: a copy of ARGV cost ~0.3 us per call), and
 * `guard_now`, the Redis TIME the guard read in ms (nil without a deadline), so that a script on
 * Redis time does not read TIME a second time (~1.4 us per call with the copy; BENCHMARKS.md).
 */
const GUARD = `-- ARGV[#ARGV]: the caller's deadline, Redis TIME in ms ('' for none): later, change nothing.
local deadline, guard_now = tonumber(ARGV[#ARGV]), nil
ARGV[#ARGV] = nil
if deadline then
  -- Redis < 5 replicates scripts verbatim and refuses writes after TIME unless told otherwise.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  guard_now = t[1] * 1000 + math.floor(t[2] / 1000)
  if guard_now > deadline then
    return redis.error_reply('LATE tollgate: the command arrived after its deadline; nothing was changed')
  end
end
`;

export function script(operation: Script['operation'], lua: string, keys: 1 | 2 = 1): Script {
  const guarded = GUARD + lua;
  return { operation, lua: guarded, sha: createHash('sha1').update(guarded).digest('hex'), keys };
}

/** The guard's answer to a command that came too late (see `GUARD`). */
export const isLate = (error: unknown): boolean =>
  error instanceof Error && typeof error.message === 'string' && error.message.startsWith('LATE tollgate:');

/** One Redis client behind the few operations the store needs. */
export interface Connection {
  readonly kind: 'ioredis' | 'node-redis' | 'node-redis-cluster';
  /** A Redis Cluster: its masters fail apart. */
  readonly cluster: boolean;
  /** The Cluster master serving `key` (a Redis key), or its slot while the client knows no map. */
  shardOf(key: string): string;
  /** Why a command must not be sent now (it would wait in the client's offline queue), or undefined. */
  notReady(): string | undefined;
  /**
   * Resolves once the client is ready, or with false when it cannot get there (closed, ended), so
   * that a call made while it connects for the first time waits instead of failing. Undefined
   * when waiting would not help (a node-redis client nobody asked to connect). `connect: false`:
   * never start the connection of a lazy client (ioredis `lazyConnect`) to wait for it.
   */
  ready(connect?: boolean): Promise<boolean> | undefined;
  /** Redis TIME, as [seconds, microseconds]. */
  time(): Reply;
  /**
   * EVALSHA `script` on `key` (and `key2`, its second key, when it takes two) with `argv`: one
   * command; EVAL with the script's text instead when `text` (after NOSCRIPT: see `isNoScript`).
   */
  run(script: Script, key: string, argv: readonly string[], text: boolean, key2?: string): Reply;
  /** DEL of `key` and `key2` (one hash tag: one command, also on Cluster). */
  del(key: string, key2?: string): Reply;
  /** PUBLISH `message` on `channel`; on a Cluster, on every master (see `publishToAll`). */
  publish(channel: string, message: string): Reply;
  /**
   * A subscriber connection of its own on `channel`, made with the client's public `duplicate()`
   * (see ./lifts.ts); its failures go to `report`.
   */
  subscribe(channel: string, events: SubscriberEvents, report: (error: Error) => void): Subscriber;
  /** Calls `listener` once when the user's client ends for good (quit, disconnect); returns the undo. */
  onEnd(listener: () => void): () => void;
}

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';

/** A client's `ready` and `end` events. */
interface ReadyEvents {
  once(event: 'ready' | 'end', listener: () => void): unknown;
  off?(event: 'ready' | 'end', listener: () => void): unknown;
}

/** The wait for each client's `ready`, while one runs. */
const readyWaits = new WeakMap<object, Promise<boolean>>();

/**
 * Resolves once `client` is ready, or with false when it ends first: one pair of listeners per
 * client however many stores and calls wait (a store per route: no MaxListenersExceededWarning).
 */
function whenReady(client: ReadyEvents): Promise<boolean> {
  let wait = readyWaits.get(client);
  if (wait === undefined) {
    wait = new Promise((resolve) => {
      const done = (ready: boolean) => () => {
        client.off?.('ready', onReady);
        client.off?.('end', onEnd);
        readyWaits.delete(client);
        resolve(ready);
      };
      const onReady = done(true);
      const onEnd = done(false);
      client.once('ready', onReady);
      client.once('end', onEnd);
    });
    readyWaits.set(client, wait);
  }
  return wait;
}

/** Which client this is, or undefined for anything else. */
export function connect(client: unknown): Connection | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  const c = client as Record<string, unknown>;
  if (
    isFunction(c.defineCommand) &&
    isFunction(c.evalshaBuffer) &&
    typeof c.status === 'string' &&
    isFunction(c.del)
  ) {
    return new IoRedisConnection(client as IoRedisCalls);
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

/** The server does not know the script (SCRIPT FLUSH, a restart, a failover): send its text. */
export const isNoScript = (error: unknown): boolean =>
  error instanceof Error && typeof error.message === 'string' && error.message.startsWith('NOSCRIPT');

type ScriptCommand = (key: string, ...args: Arg[]) => Reply;

/**
 * ioredis, through its public API only. On a `Redis`: EVALSHA (EVAL after NOSCRIPT); replies come
 * unconverted (`evalshaBuffer`: the scripts answer integers only). On a `Cluster`: the scripts
 * registered with `defineCommand`, whose first argument is the key, because Cluster
 * auto-pipelining groups commands by their first argument (for EVALSHA, the script's hash);
 * ioredis then handles NOSCRIPT itself. Each command is written as ioredis writes it; to share
 * writes between concurrent calls, turn on the client's documented `enableAutoPipelining` (a
 * `pipeline()` of the store's own, per event-loop turn, cost more CPU per call than it saved:
 * BENCHMARKS.md).
 */
class IoRedisConnection implements Connection {
  readonly kind = 'ioredis';
  readonly cluster: boolean;
  /** Cluster: the commands defined for each script. */
  private readonly defined = new Map<Script, ScriptCommand>();
  /**
   * Cluster with auto-pipelining: scripts defined during this turn of the event loop. A pipeline
   * ioredis opened earlier in the turn lacks their command, so their calls wait for the next turn.
   */
  private fresh: Set<Script> | undefined;

  constructor(private readonly client: IoRedisCalls) {
    this.cluster = client.isCluster === true;
  }

  shardOf(key: string): string {
    const slot = keySlot(key);
    return this.client.slots?.[slot]?.[0] ?? `slot ${slot}`;
  }

  notReady(): string | undefined {
    const { status } = this.client;
    return status === 'ready' ? undefined : `the ioredis client is not ready (status '${status}')`;
  }

  ready(connect = true): Promise<boolean> | undefined {
    const { client } = this;
    // lazyConnect: the first call is the moment to connect.
    if (client.status === 'wait' && connect) client.connect().catch(() => undefined);
    if (client.status !== 'connecting' && client.status !== 'connect') return undefined;
    return whenReady(client);
  }

  time(): Reply {
    return this.client.time();
  }

  run(script: Script, key: string, argv: readonly string[], text: boolean, key2?: string): Reply {
    // ioredis flattens one level of arrays in arguments, so `argv` goes as it is.
    const rest: Arg = key2 === undefined ? argv : [key2, ...argv];
    if (this.cluster) {
      const command = this.defined.get(script) ?? this.define(script);
      if (this.fresh?.has(script)) {
        return new Promise((resolve) => setImmediate(resolve)).then(() =>
          command.call(this.client, key, rest),
        );
      }
      return command.call(this.client, key, rest);
    }
    const keys = key2 === undefined ? '1' : '2';
    return text
      ? this.client.evalBuffer(script.lua, keys, key, rest)
      : this.client.evalshaBuffer(script.sha, keys, key, rest);
  }

  del(key: string, key2?: string): Reply {
    return key2 === undefined ? this.client.del(key) : this.client.del(key, key2);
  }

  publish(channel: string, message: string): Reply {
    if (!this.cluster) return this.client.publish(channel, message);
    const masters = this.client.nodes?.('master') ?? [];
    return publishToAll(masters.map((node) => () => node.publish(channel, message)));
  }

  subscribe(channel: string, events: SubscriberEvents, report: (error: Error) => void): Subscriber {
    const { client } = this;
    if (this.cluster) {
      return ioRedisClusterSubscriber(() => client.nodes?.('master') ?? [], channel, events, report);
    }
    return ioRedisClientSubscriber(client as unknown as IoRedisSubscriberLike, channel, events, report);
  }

  onEnd(listener: () => void): () => void {
    this.client.once('end', listener);
    return () => this.client.off('end', listener);
  }

  private define(script: Script): ScriptCommand {
    // The name holds the script's hash: an existing command of that name is this very script.
    const name = `tollgate_${script.operation}_${script.sha.slice(0, 12)}`;
    const methods = this.client as unknown as Record<string, ScriptCommand | undefined>;
    if (typeof methods[`${name}Buffer`] !== 'function') {
      this.client.defineCommand(name, { lua: script.lua, numberOfKeys: script.keys });
    }
    const command = methods[`${name}Buffer`]!;
    this.defined.set(script, command);
    if (this.client.options?.enableAutoPipelining === true) {
      if (this.fresh === undefined) {
        const fresh = new Set<Script>();
        this.fresh = fresh;
        setImmediate(() => {
          if (this.fresh === fresh) this.fresh = undefined;
        });
      }
      this.fresh.add(script);
    }
    return command;
  }
}

/** A node-redis cluster's masters and their clients (public in v4.6+ and v5). */
interface NodeRedisClusterNodes {
  readonly masters: readonly unknown[];
  nodeClient(node: unknown): NodeRedisSubscriberLike | Promise<NodeRedisSubscriberLike>;
}

/**
 * node-redis: EVALSHA (EVAL after NOSCRIPT) through `sendCommand`. A cluster's `sendCommand` takes
 * the key first, to route the command to the key's slot.
 */
class NodeRedisConnection implements Connection {
  readonly kind: 'node-redis' | 'node-redis-cluster';

  constructor(
    private readonly client: NodeRedisClientLike | NodeRedisClusterLike,
    readonly cluster: boolean,
  ) {
    this.kind = cluster ? 'node-redis-cluster' : 'node-redis';
  }

  shardOf(key: string): string {
    const slot = keySlot(key);
    const cluster = this.client as NodeRedisClusterLike;
    const master = cluster.slots?.[slot]?.master ?? cluster.getSlotMaster?.(slot);
    return master?.address ?? `slot ${slot}`;
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

  ready(): Promise<boolean> | undefined {
    // Connecting for the first time: `connect()` was called (open) but no connection is up yet.
    const client = this.client as Partial<NodeRedisClientLike> & {
      once?(event: 'ready' | 'end', listener: () => void): unknown;
      off?(event: 'ready' | 'end', listener: () => void): unknown;
    };
    if (this.cluster || !client.isOpen || client.isReady || typeof client.once !== 'function')
      return undefined;
    return whenReady(client as ReadyEvents);
  }

  time(): Reply {
    return this.cluster
      ? (this.client as NodeRedisClusterLike).sendCommand(undefined, true, ['TIME'])
      : (this.client as NodeRedisClientLike).sendCommand(['TIME']);
  }

  run(script: Script, key: string, argv: readonly string[], text: boolean, key2?: string): Reply {
    // node-redis batches the writes of a tick by itself.
    const keys = key2 === undefined ? '1' : '2';
    const command = text ? ['EVAL', script.lua, keys, key] : ['EVALSHA', script.sha, keys, key];
    if (key2 !== undefined) command.push(key2);
    for (const arg of argv) command.push(arg);
    return this.send(key, command);
  }

  del(key: string, key2?: string): Reply {
    return this.send(key, key2 === undefined ? ['DEL', key] : ['DEL', key, key2]);
  }

  publish(channel: string, message: string): Reply {
    const command = ['PUBLISH', channel, message];
    if (!this.cluster) return this.send(channel, command);
    const cluster = this.client as unknown as NodeRedisClusterNodes;
    return publishToAll(
      cluster.masters.map(
        (master) => () =>
          Promise.resolve(cluster.nodeClient(master)).then((node) => node.sendCommand(command)),
      ),
    );
  }

  subscribe(channel: string, events: SubscriberEvents, report: (error: Error) => void): Subscriber {
    if (this.cluster) {
      // A duplicate of one master's client: the cluster's own subscriber hides its reconnects.
      const cluster = this.client as unknown as NodeRedisClusterNodes;
      return nodeRedisClusterSubscriber(
        () => cluster.masters,
        (master) => cluster.nodeClient(master),
        channel,
        events,
        report,
      );
    }
    let made: Promise<NodeRedisSubscriberLike>;
    try {
      made = Promise.resolve((this.client as unknown as NodeRedisSubscriberLike).duplicate());
    } catch (error) {
      made = Promise.reject(error);
    }
    return nodeRedisSubscriber(made, channel, events, report);
  }

  onEnd(listener: () => void): () => void {
    type Ends = {
      once?(event: 'end', listener: () => void): unknown;
      off?(event: 'end', listener: () => void): unknown;
    };
    if (!this.cluster) {
      const client = this.client as Ends;
      if (typeof client.once !== 'function') return () => undefined;
      client.once('end', listener);
      return () => client.off?.('end', listener);
    }
    // A cluster tells of its end only in v5 ('disconnect'); the clients of its masters end with
    // it in every version (`quit()`, `close()`, `disconnect()`). One that ends alone (a node the
    // cluster dropped) ends the subscriber too, made again by the next call that finds it open.
    const cluster = this.client as unknown as NodeRedisClusterNodes;
    const watched: Ends[] = [];
    let done = false;
    const end = () => {
      if (done) return;
      undo();
      listener();
    };
    const undo = () => {
      done = true;
      for (const node of watched) node.off?.('end', end);
    };
    for (const master of cluster.masters) {
      new Promise<NodeRedisSubscriberLike>((resolve) => resolve(cluster.nodeClient(master))).then(
        (node) => {
          const client = node as Ends;
          if (done || typeof client.once !== 'function') return;
          watched.push(client);
          client.once('end', end);
        },
        () => undefined,
      );
    }
    return undo;
  }

  private send(key: string, args: string[]): Reply {
    return this.cluster
      ? (this.client as NodeRedisClusterLike).sendCommand(key, false, args)
      : (this.client as NodeRedisClientLike).sendCommand(args);
  }
}

const PREFIX = /^[\x21-\x7a|~]{0,64}$/;

/**
 * The checks every Redis-backed store's options share (`what`: its class name): an options object
 * (not the client itself) with only `known` names, a client this module recognizes, and a `prefix`
 * that keeps keys printable and the hash tag the store puts after it intact.
 */
export function storeOptions(
  options: unknown,
  known: readonly string[],
  what: string,
): { connection: Connection; prefix: string } {
  if (typeof options !== 'object' || options === null) {
    throw configError(`${what} options`, 'an object such as `{ client: new Redis() }`', options);
  }
  if (connect(options) !== undefined) {
    throw new ConfigError(
      `${what} takes an options object, not the client itself: write \`new ${what}({ client })\`.`,
    );
  }
  checkOptions(options, known, `\`${what}\` options`);
  const { client, prefix = 'tollgate:' } = options as { client?: unknown; prefix?: unknown };
  const connection = connect(client);
  if (connection === undefined) {
    throw configError(
      'client',
      'an ioredis `Redis` or `Cluster`, or a node-redis client (`createClient`) or cluster (`createCluster`)',
      client,
    );
  }
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw configError(
      'prefix',
      'a string of at most 64 printable ASCII characters without spaces, `{` or `}`',
      prefix,
    );
  }
  return { connection, prefix };
}
