import { createHash } from 'node:crypto';
import { keySlot } from './slot.js';

/** A socket as ioredis holds it: writes can be corked for the rest of a tick. */
interface CorkableStream {
  cork(): void;
  uncork(): void;
}

type Reply = Promise<unknown>;

/** The parts of an ioredis `Redis` or `Cluster` by which the store recognizes one. */
export interface IoRedisLike {
  readonly status: string;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  del(...keys: string[]): Promise<number>;
  connect(): Promise<void>;
}

/** What the store calls on an ioredis client (overloaded in ioredis's types, so kept apart). */
interface IoRedisCalls extends IoRedisLike {
  evalshaBuffer(sha: string, numberOfKeys: string, ...args: (string | readonly string[])[]): Reply;
  evalBuffer(lua: string, numberOfKeys: string, ...args: (string | readonly string[])[]): Reply;
  sendCommand?(command: IoRedisCommand): Reply;
  readonly isCluster?: boolean;
  /** Cluster: the nodes (`host:port`, master first) serving each slot. */
  readonly slots?: readonly (readonly string[] | undefined)[];
  readonly options?: { enableAutoPipelining?: boolean; keyPrefix?: string };
  readonly stream?: Partial<CorkableStream>;
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
  sendCommand(firstKey: string, isReadonly: boolean, args: string[]): Promise<unknown>;
  nodeClient(node: never): unknown;
}

/** The clients a `RedisStore` takes: an ioredis `Redis` or `Cluster`, a node-redis client or cluster. */
export type RedisClientLike = IoRedisLike | NodeRedisClientLike | NodeRedisClusterLike;

/** ioredis's `Command` (a public export, also `Redis.Command`): what the store needs of it. */
interface IoRedisCommand {
  name: string;
  args: unknown[];
  toWritable(socket: unknown): string | Buffer;
}
type IoRedisCommandClass = new (
  name: string,
  args: unknown,
  options: { replyEncoding: null; keyPrefix?: string },
) => IoRedisCommand;

/**
 * A command on its way, and its reply. ioredis resends, after a reconnect, every command that got
 * no answer (`autoResendUnfulfilledCommands`, on by default), including those the store already
 * answered with a timeout: a request counted after it was refused or let through. `neutralize`,
 * where the client may do that, turns such a command into a PING, so a resend changes nothing.
 */
export interface Sent {
  readonly reply: Reply;
  neutralize?(): void;
}

export interface Script {
  readonly operation: 'consume' | 'peek' | 'refund';
  readonly lua: string;
  readonly sha: string;
}

export function script(operation: Script['operation'], lua: string): Script {
  return { operation, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

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
   * EVALSHA `script` on `key` with ARGV `first`, then `second` unless undefined, then `args`: one
   * command; EVAL with the script's text instead when `send` (after NOSCRIPT: see `isNoScript`).
   * `company`: other calls are in flight, so this one may wait a moment to share a write.
   */
  run(
    script: Script,
    key: string,
    first: string,
    second: string | undefined,
    args: readonly string[],
    send: boolean,
    company: boolean,
  ): Sent;
  del(key: string): Sent;
}

const isFunction = (value: unknown): value is (...args: never[]) => unknown => typeof value === 'function';

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

/**
 * Most commands held back in one corked write. Small enough that Redis works on a write while the
 * client builds the next: a whole burst in one write would leave the two taking turns (a burst of
 * 100 calls in one write halved the throughput against writes of 16, for the same CPU per call).
 */
const MAX_BATCH = 16;

type ScriptCommand = (key: string, ...args: (string | readonly string[])[]) => Reply;

const EMPTY: readonly never[] = [];

/**
 * ioredis's Command class. Its `Redis` has it as a static, but `client.constructor` is not `Redis`
 * (a mixin leaves EventEmitter there), so it is caught from a command the client builds: a PING
 * handed to a stand-in for `sendCommand`, never sent.
 */
function commandClass(client: IoRedisCalls): IoRedisCommandClass | undefined {
  const declared = (client.constructor as { Command?: unknown }).Command;
  if (typeof declared === 'function') return declared as IoRedisCommandClass;
  let built: unknown;
  const probe = Object.create(client) as Record<string, unknown>;
  probe.options = { ...client.options, enableAutoPipelining: false, showFriendlyErrorStack: false };
  probe.sendCommand = (command: object) => {
    built = command.constructor;
    return Promise.resolve();
  };
  try {
    (probe.ping as (() => unknown) | undefined)?.call(probe);
  } catch {
    return undefined;
  }
  if (typeof built !== 'function') return undefined;
  const prototype = (built as { prototype?: Partial<IoRedisCommand> }).prototype;
  return typeof prototype?.toWritable === 'function' ? (built as IoRedisCommandClass) : undefined;
}

/** An EVALSHA the store can neutralize, written as one string built here. */
interface EvalshaCommand extends IoRedisCommand, Sent {
  reply: Reply;
}
type EvalshaCommandClass = new (argv: string[], resp: string) => EvalshaCommand;

/**
 * ioredis's Command for EVALSHA, made cheaper where it costs the most per call: its constructor
 * flattens the arguments with `Array.prototype.flat` (about a microsecond in V8, more than the
 * rest of the command), and `toWritable` measures and joins them one by one. This one is handed
 * no arguments to flatten (`args` is set after), and writes the request the store has already
 * built. Once neutralized it is a PING, written by ioredis's own `toWritable`.
 */
function evalshaClass(Command: IoRedisCommandClass): EvalshaCommandClass {
  const Base = Command as unknown as new (...args: unknown[]) => IoRedisCommand;
  const OPTIONS = { replyEncoding: null };
  return class extends Base implements EvalshaCommand {
    reply!: Reply;
    constructor(
      argv: string[],
      private readonly resp: string,
    ) {
      super('evalsha', EMPTY, OPTIONS);
      this.args = argv;
    }
    override toWritable(socket: unknown): string | Buffer {
      return this.name === 'evalsha' ? this.resp : super.toWritable(socket);
    }
    neutralize(): void {
      this.name = 'ping';
      this.args = [];
    }
  };
}

/** `$<length>\r\n<arg>\r\n`: one RESP bulk string of ASCII `arg`. */
const bulk = (arg: string): string => `$${arg.length}\r\n${arg}\r\n`;

/**
 * ioredis. On a `Redis`: EVALSHA (EVAL after NOSCRIPT); replies come unconverted
 * (`evalshaBuffer`: the scripts answer integers only). On a `Cluster`: the scripts registered with
 * `defineCommand`, whose first argument is the key, because Cluster auto-pipelining groups commands
 * by their first argument (for EVALSHA, the script's hash); ioredis then handles NOSCRIPT itself.
 *
 * Without auto-pipelining, ioredis writes every command to the socket on its own: one system call
 * each, most of a call's CPU time at high concurrency. So on a `Redis`, a call made while others
 * are in flight corks the socket, and a `setImmediate` uncorks it once the event loop has run what
 * it had (as ioredis's own auto-pipelining and node-redis do): the calls made meanwhile (all the
 * requests a burst of replies or of incoming connections set going) leave in writes of up to
 * MAX_BATCH, with no added wait. A call alone in flight is written at once. Nothing else changes:
 * the same commands in the same order, each with its own reply, error and timeout.
 */
class IoRedisConnection implements Connection {
  readonly kind = 'ioredis';
  /** The socket corked until the next `setImmediate`, if any. */
  private corked: CorkableStream | undefined;
  private readonly uncork = () => {
    const stream = this.corked;
    this.corked = undefined;
    stream?.uncork();
  };
  /** Commands written into the corked socket since it was last let go. */
  private batched = 0;
  private readonly cork: boolean;
  readonly cluster: boolean;
  /** Cluster: the commands defined for each script. */
  private readonly defined = new Map<Script, ScriptCommand>();

  /** To build commands the store can neutralize after a timeout (see `Sent`). */
  private readonly Command: IoRedisCommandClass | undefined;
  /** The same, lighter, when no `keyPrefix` has to be put in front of the key. */
  private readonly Evalsha: EvalshaCommandClass | undefined;

  constructor(private readonly client: IoRedisCalls) {
    this.cluster = client.isCluster === true;
    this.Command =
      !this.cluster && typeof client.sendCommand === 'function' ? commandClass(client) : undefined;
    this.Evalsha =
      this.Command !== undefined && !client.options?.keyPrefix ? evalshaClass(this.Command) : undefined;
    // Auto-pipelining batches by itself.
    this.cork = !this.cluster && client.options?.enableAutoPipelining !== true;
  }

  shardOf(key: string): string {
    const slot = keySlot(key);
    return this.client.slots?.[slot]?.[0] ?? `slot ${slot}`;
  }

  notReady(): string | undefined {
    const { status } = this.client;
    if (status === 'ready') return undefined;
    // lazyConnect: connect now so that the next request finds the client ready.
    if (status === 'wait') this.client.connect().catch(() => undefined);
    return `the ioredis client is not ready (status '${status}')`;
  }

  run(
    script: Script,
    key: string,
    first: string,
    second: string | undefined,
    args: readonly string[],
    send: boolean,
    company: boolean,
  ): Sent {
    // ioredis flattens one level of arrays in arguments, so the static part goes as it is.
    if (this.cluster) {
      // ioredis sends the script's text itself when a node does not know it.
      const command = this.defined.get(script) ?? this.define(script);
      return {
        reply:
          second === undefined
            ? command.call(this.client, key, first, args)
            : command.call(this.client, key, first, second, args),
      };
    }
    if (this.cork && company) this.corkSocket();
    if (send) {
      return {
        reply:
          second === undefined
            ? this.client.evalBuffer(script.lua, '1', key, first, args)
            : this.client.evalBuffer(script.lua, '1', key, first, second, args),
      };
    }
    const { Evalsha } = this;
    if (Evalsha !== undefined) {
      const argv = [script.sha, '1', key, first];
      let count = 5 + args.length;
      let resp = `${bulk(script.sha)}$1\r\n1\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n${bulk(first)}`;
      if (second !== undefined) {
        argv.push(second);
        resp += bulk(second);
        count++;
      }
      for (const arg of args) {
        argv.push(arg);
        resp += bulk(arg);
      }
      const command = new Evalsha(argv, `*${count}\r\n$7\r\nevalsha\r\n${resp}`);
      command.reply = this.client.sendCommand!(command);
      return command;
    }
    const { Command } = this;
    if (Command !== undefined) {
      const argv =
        second === undefined
          ? [script.sha, '1', key, first, args]
          : [script.sha, '1', key, first, second, args];
      const keyPrefix = this.client.options?.keyPrefix;
      const command = new Command(
        'evalsha',
        argv,
        keyPrefix ? { replyEncoding: null, keyPrefix } : { replyEncoding: null },
      );
      return {
        reply: this.client.sendCommand!(command),
        neutralize() {
          command.name = 'ping';
          command.args = [];
        },
      };
    }
    return {
      reply:
        second === undefined
          ? this.client.evalshaBuffer(script.sha, '1', key, first, args)
          : this.client.evalshaBuffer(script.sha, '1', key, first, second, args),
    };
  }

  del(key: string): Sent {
    return { reply: this.client.del(key) };
  }

  private define(script: Script): ScriptCommand {
    // The name holds the script's hash: an existing command of that name is this very script.
    const name = `tollgate_${script.operation}_${script.sha.slice(0, 12)}`;
    const methods = this.client as unknown as Record<string, ScriptCommand | undefined>;
    if (typeof methods[`${name}Buffer`] !== 'function') {
      this.client.defineCommand(name, { lua: script.lua, numberOfKeys: 1 });
    }
    const command = methods[`${name}Buffer`]!;
    this.defined.set(script, command);
    return command;
  }

  private corkSocket(): void {
    const { stream } = this.client;
    const corked = this.corked;
    if (corked !== undefined && stream === corked) {
      // A burst goes in several writes, so that Redis starts on it while the rest is built.
      if (this.batched === MAX_BATCH) {
        corked.uncork();
        corked.cork();
        this.batched = 0;
      }
      this.batched++;
      return;
    }
    if (typeof stream?.cork !== 'function') return;
    // A reconnect meanwhile: let the old socket go at once.
    if (this.corked !== undefined) this.corked.uncork();
    else setImmediate(this.uncork);
    stream.cork();
    this.corked = stream as CorkableStream;
    this.batched = 1;
  }
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

  run(
    script: Script,
    key: string,
    first: string,
    second: string | undefined,
    args: readonly string[],
    send: boolean,
  ): Sent {
    // node-redis batches the writes of a tick by itself.
    const command = send ? ['EVAL', script.lua, '1', key, first] : ['EVALSHA', script.sha, '1', key, first];
    if (second !== undefined) command.push(second);
    for (const arg of args) command.push(arg);
    return { reply: this.send(key, command) };
  }

  del(key: string): Sent {
    return { reply: this.send(key, ['DEL', key]) };
  }

  private send(key: string, args: string[]): Reply {
    return this.cluster
      ? (this.client as NodeRedisClusterLike).sendCommand(key, false, args)
      : (this.client as NodeRedisClientLike).sendCommand(args);
  }
}
