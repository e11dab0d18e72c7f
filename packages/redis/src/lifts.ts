/**
 * The store's own subscriber connection to the channel of lifted bans (see `RedisStore.onLift`),
 * made with the user's client's public `duplicate()`: on a Cluster, a duplicate of one master's
 * client (classic PUBLISH reaches the subscribers of every node), so that its connection's every
 * state is seen, which a Cluster's own subscriber hides (it resubscribes silently after a reconnect).
 */

/** What a subscriber tells its store. */
export interface SubscriberEvents {
  message(payload: string): void;
  /** `true` once subscribed (again, after each reconnect); `false` when it may miss messages. */
  listening(on: boolean, cause?: Error): void;
}

/** A subscriber connection: `close()` ends it for good. */
export interface Subscriber {
  close(): void;
}

type Listener = (...args: never[]) => void;

/** The parts of an ioredis `Redis` a subscriber uses (its duplicate, which the store owns). */
export interface IoRedisSubscriberLike {
  readonly status: string;
  duplicate(override?: Record<string, unknown>): IoRedisSubscriberLike;
  connect(): Promise<void>;
  subscribe(channel: string): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: Listener): unknown;
}

/** The parts of a node-redis client a subscriber uses (its duplicate, which the store owns). */
export interface NodeRedisSubscriberLike {
  /** False once it has stopped for good: closed, or its `reconnectStrategy` gave up. */
  readonly isOpen?: boolean;
  /** The options it was made with (a cluster's node client: its `socket` holds the node's address). */
  readonly options?: { socket?: Record<string, unknown> } | undefined;
  duplicate(overrides?: Record<string, unknown>): NodeRedisSubscriberLike;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  disconnect(): Promise<unknown>;
  unref?(): void;
  on(event: string, listener: Listener): unknown;
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/** A Cluster's subscriber, on a node that is gone, gives up after this many reconnects and moves. */
const CLUSTER_RETRIES = 5;
/** How long a Cluster's subscriber waits before it tries another master. */
const CLUSTER_MOVE_MS = 1000;

/**
 * Tracks one connection's subscription: listening from the subscribe's reply (or a `ready` after
 * the client resubscribed by itself) until the connection drops; the first failure of each outage
 * is reported through `report` and passed on as `listening(false, cause)`.
 */
class State {
  on = false;
  closed = false;
  private failedAt: Error | undefined;

  constructor(
    private readonly events: SubscriberEvents,
    private readonly report: (error: Error) => void,
  ) {}

  up(): void {
    if (this.closed || this.on) return;
    this.on = true;
    this.failedAt = undefined;
    this.events.listening(true);
  }

  down(cause?: Error): void {
    // The first failure of an outage is news also before the first subscribe (it may never come).
    const first = cause !== undefined && this.failedAt === undefined && !this.closed;
    if (first) {
      this.failedAt = cause;
      this.report(cause);
    }
    if (!this.on && !first) return;
    this.on = false;
    this.events.listening(false, this.closed ? undefined : (cause ?? new Error('the connection closed')));
  }
}

/**
 * An ioredis subscriber: `make()` duplicates a client without automatic resubscription, so that
 * the store subscribes itself on every `ready` and knows when that is done. `onGiveUp`: the
 * connection ended by itself (a Cluster's node that is gone), not by `close()`.
 */
function ioRedisSubscriber(
  make: () => IoRedisSubscriberLike,
  channel: string,
  events: SubscriberEvents,
  report: (error: Error) => void,
  onGiveUp?: () => void,
): Subscriber {
  const state = new State(events, report);
  let sub: IoRedisSubscriberLike;
  try {
    sub = make();
  } catch (error) {
    // A client that cannot be duplicated: reported, and the limiters go on as without a push.
    state.down(asError(error));
    return {
      close() {
        state.closed = true;
      },
    };
  }
  let lastError: Error | undefined;
  sub.on('error', (error: unknown) => {
    lastError = asError(error);
    state.down(lastError);
  });
  sub.on('ready', () => {
    sub.subscribe(channel).then(
      () => {
        lastError = undefined;
        state.up();
      },
      (error: unknown) => state.down(asError(error)),
    );
  });
  sub.on('message', (from: string, message: string) => {
    if (from === channel) events.message(message);
  });
  sub.on('close', () => state.down(lastError));
  sub.on('end', () => {
    state.down(lastError);
    if (!state.closed) onGiveUp?.();
  });
  if (sub.status === 'wait') sub.connect().catch((error: unknown) => state.down(asError(error)));
  return {
    close() {
      state.closed = true;
      state.down();
      sub.disconnect();
    },
  };
}

/** The options a store's ioredis subscriber overrides on the duplicate: it subscribes by itself. */
const IOREDIS_OVERRIDES = {
  autoResubscribe: false,
  lazyConnect: true,
  enableOfflineQueue: true,
  connectionName: 'tollgate-bans',
};

/** On an ioredis `Redis`: a duplicate of it. */
export function ioRedisClientSubscriber(
  client: IoRedisSubscriberLike,
  channel: string,
  events: SubscriberEvents,
  report: (error: Error) => void,
): Subscriber {
  return ioRedisSubscriber(() => client.duplicate(IOREDIS_OVERRIDES), channel, events, report);
}

/**
 * A Cluster's subscriber: `on(master, onGiveUp)` subscribes on a master drawn at random from
 * `masters()`, on a connection that gives up after a few failed reconnects (a master that is gone)
 * and then calls `onGiveUp`, upon which it moves to another master (a random one each time: the
 * dead one may be drawn again before the cluster forgets it).
 */
function movingSubscriber<Master>(
  masters: () => readonly Master[],
  on: (master: Master, onGiveUp: () => void) => Subscriber,
  report: (error: Error) => void,
): Subscriber {
  let current: Subscriber | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  const start = () => {
    timer = undefined;
    if (closed) return;
    const nodes = masters();
    const node = nodes[Math.floor(Math.random() * nodes.length)];
    if (node === undefined) {
      report(new Error('the Cluster client knows no master to subscribe on'));
      move();
      return;
    }
    current = on(node, move);
  };
  const move = () => {
    if (closed || timer !== undefined) return;
    timer = setTimeout(start, CLUSTER_MOVE_MS);
    timer.unref();
  };
  start();
  return {
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      current?.close();
    },
  };
}

/** A Cluster's subscriber's connection gives up after `CLUSTER_RETRIES` reconnects. */
const clusterRetry = (times: number): number | undefined =>
  times > CLUSTER_RETRIES ? undefined : Math.min(times * 100, 1000);

/**
 * On an ioredis `Cluster`: a duplicate of one master's client (`cluster.nodes('master')`), which
 * gives up after a few failed reconnects and moves to another master.
 */
export function ioRedisClusterSubscriber(
  masters: () => readonly IoRedisSubscriberLike[],
  channel: string,
  events: SubscriberEvents,
  report: (error: Error) => void,
): Subscriber {
  const overrides = {
    ...IOREDIS_OVERRIDES,
    retryStrategy: (times: number) => clusterRetry(times) ?? null,
  };
  return movingSubscriber(
    masters,
    (node, onGiveUp) => ioRedisSubscriber(() => node.duplicate(overrides), channel, events, report, onGiveUp),
    report,
  );
}

/**
 * On a node-redis cluster: a duplicate of one master's node client (`cluster.masters`,
 * `nodeClient()`), named `tollgate-bans`, whose `reconnectStrategy` gives up after a few failed
 * reconnects; it then moves to another master.
 */
export function nodeRedisClusterSubscriber(
  masters: () => readonly unknown[],
  nodeClient: (master: unknown) => NodeRedisSubscriberLike | Promise<NodeRedisSubscriberLike>,
  channel: string,
  events: SubscriberEvents,
  report: (error: Error) => void,
): Subscriber {
  const duplicate = (node: NodeRedisSubscriberLike) =>
    node.duplicate({
      name: 'tollgate-bans',
      socket: {
        ...node.options?.socket,
        // node-redis counts from 0; an Error stops the client (`isOpen` false).
        reconnectStrategy: (retries: number) =>
          clusterRetry(retries + 1) ?? new Error('the master is gone: subscribing on another'),
      },
    });
  return movingSubscriber(
    masters,
    (master, onGiveUp) => {
      let made: Promise<NodeRedisSubscriberLike>;
      try {
        made = Promise.resolve(nodeClient(master)).then(duplicate);
      } catch (error) {
        made = Promise.reject(error);
      }
      return nodeRedisSubscriber(made, channel, events, report, onGiveUp);
    },
    report,
  );
}

/**
 * A node-redis subscriber on `client`, a duplicate the store owns (`unref`'d: it never keeps the
 * process alive). node-redis resubscribes by itself after a reconnect, before it says `ready`.
 * `onGiveUp`: it stopped reconnecting by itself (a cluster's master that is gone), not by `close()`.
 */
export function nodeRedisSubscriber(
  client: Promise<NodeRedisSubscriberLike>,
  channel: string,
  events: SubscriberEvents,
  report: (error: Error) => void,
  onGiveUp?: () => void,
): Subscriber {
  const state = new State(events, report);
  let sub: NodeRedisSubscriberLike | undefined;
  let gaveUp = false;
  client.then(
    (made) => {
      if (state.closed) return;
      sub = made;
      let subscribed = false;
      made.on('error', (error: unknown) => {
        state.down(asError(error));
        // Its reconnectStrategy gave up (it closes itself before it reports the last error).
        if (onGiveUp !== undefined && made.isOpen === false && !state.closed && !gaveUp) {
          gaveUp = true;
          onGiveUp();
        }
      });
      made.on('reconnecting', () => state.down());
      made.on('end', () => state.down());
      made.on('ready', () => {
        if (subscribed) state.up();
      });
      made.unref?.();
      made
        .connect()
        .then(() => {
          if (state.closed) return undefined;
          return made.subscribe(channel, (message) => {
            events.message(message);
          });
        })
        .then(
          () => {
            subscribed = true;
            state.up();
          },
          (error: unknown) => state.down(asError(error)),
        );
    },
    (error: unknown) => state.down(asError(error)),
  );
  return {
    close() {
      state.closed = true;
      state.down();
      try {
        sub?.disconnect().catch(() => undefined);
      } catch {
        // Not open (yet, or any more): nothing to end.
      }
    },
  };
}

/**
 * PUBLISH on every master of a Cluster, each through its own client: a node hands a message to its
 * own subscribers before it replies, while one passed on by the cluster bus may come later than
 * the caller's next request elsewhere. Resolves once one master has taken it (a subscriber on a
 * master that failed has lost its connection, and drops what it knew when it subscribes again).
 */
export function publishToAll(masters: readonly (() => Promise<unknown>)[]): Promise<unknown> {
  if (masters.length === 0) return Promise.reject(new Error('the Cluster client knows no master'));
  return Promise.allSettled(masters.map((publish) => publish())).then((results) => {
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (results.some((r) => r.status === 'fulfilled')) return undefined;
    throw failed!.reason;
  });
}
