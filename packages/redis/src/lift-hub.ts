import type { LiftListener } from '@tollgate/core/internal';
import type { Connection } from './clients.js';
import type { Subscriber } from './lifts.js';

/** How a store hears of its subscriber's failures (its `onError`). */
export type Report = (error: Error) => void;

/**
 * The subscriber for lifted bans of one client and one channel (one prefix), shared by every
 * RedisStore made on that client with that prefix: one connection and one listener for the
 * client's end however many stores there are (a store per route is common). Made once some store
 * has a listener and the client is ready; closed when the last listener leaves, and when the
 * client ends (made again by the first call of a store that finds the client ready).
 */
export class LiftHub {
  /** Each store's listeners, by the store's `report`. */
  private readonly members = new Map<Report, Set<LiftListener>>();
  private subscriber: Subscriber | undefined;
  /** Someone listens, and the subscriber waits for a call that finds the client ready. */
  private pending = false;
  /** The subscriber is subscribed. */
  private listening = false;
  /** Removes the listener for the end of the client. */
  private unEnd: (() => void) | undefined;
  /** Lift ids this process published, by the callbacks waiting to hear them come back. */
  private readonly awaited = new Map<string, (() => void)[]>();

  constructor(
    private readonly connection: Connection,
    private readonly channel: string,
  ) {}

  /** Adds a store's listener; returns its removal. */
  add(listener: LiftListener, report: Report): () => void {
    let own = this.members.get(report);
    if (own === undefined) {
      own = new Set();
      this.members.set(report, own);
    }
    own.add(listener);
    if (this.listening) listener.listening(true);
    else if (this.subscriber === undefined) this.start();
    return () => {
      const set = this.members.get(report);
      if (set === undefined || !set.delete(listener)) return;
      if (set.size === 0) this.members.delete(report);
      this.stopIfAlone();
    };
  }

  /** A store closes: its listeners hear they no longer listen, and leave. */
  leave(report: Report): void {
    const own = this.members.get(report);
    if (own === undefined) return;
    this.members.delete(report);
    if (this.listening) for (const listener of own) listener.listening(false);
    this.stopIfAlone();
  }

  /**
   * Resolves once the subscriber hears `id` (a lift this process publishes), or after `withinMs`;
   * at once while it is not subscribed. Never rejects.
   */
  heard(id: string, withinMs: number): Promise<void> {
    if (!this.listening) return Promise.resolve();
    return new Promise((resolve) => {
      let waiters = this.awaited.get(id);
      if (waiters === undefined) {
        waiters = [];
        this.awaited.set(id, waiters);
      }
      const timer = setTimeout(() => {
        const left = this.awaited.get(id)?.filter((waiter) => waiter !== done);
        if (left === undefined || left.length === 0) this.awaited.delete(id);
        else this.awaited.set(id, left);
        resolve();
      }, withinMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      waiters.push(done);
    });
  }

  /** A store's call found the client ready: the subscriber that waits for that is made now. */
  poke(): void {
    if (this.pending && this.subscriber === undefined) this.start();
  }

  private stopIfAlone(): void {
    if (this.members.size > 0) return;
    this.stop();
    this.pending = false;
  }

  /**
   * Makes the subscriber now if the client is ready, else once it is (when it is connecting) or at
   * the first call that finds it ready (a lazy client is not connected for this).
   */
  private start(): void {
    if (this.connection.notReady() !== undefined) {
      if (!this.pending) {
        this.pending = true;
        this.connection.ready(false)?.then((ready) => {
          if (ready) this.poke();
        });
      }
      return;
    }
    this.pending = false;
    this.subscriber = this.connection.subscribe(
      this.channel,
      {
        message: (id) => {
          this.tell((listener) => listener.lifted(id));
          const waiters = this.awaited.get(id);
          if (waiters !== undefined) {
            this.awaited.delete(id);
            for (const waiter of waiters) waiter();
          }
        },
        listening: (on, cause) => {
          this.listening = on;
          if (!on) this.releaseAwaited();
          this.tell((listener) => listener.listening(on, cause));
        },
      },
      (error) => {
        for (const report of this.members.keys()) report(error);
      },
    );
    // The client's end ends the subscriber too; a later call that finds it ready again makes another.
    this.unEnd = this.connection.onEnd(() => {
      this.unEnd = undefined;
      this.stop();
      if (this.members.size > 0) this.pending = true;
    });
  }

  /** Nobody will hear the lifts awaited: their publishers go on. */
  private releaseAwaited(): void {
    const all = [...this.awaited.values()];
    this.awaited.clear();
    for (const waiters of all) for (const waiter of waiters) waiter();
  }

  private stop(): void {
    this.releaseAwaited();
    this.unEnd?.();
    this.unEnd = undefined;
    const { subscriber } = this;
    this.subscriber = undefined;
    subscriber?.close();
    if (this.listening) {
      this.listening = false;
      this.tell((listener) => listener.listening(false));
    }
  }

  private tell(notify: (listener: LiftListener) => void): void {
    for (const own of this.members.values()) for (const listener of own) notify(listener);
  }
}

/** The hubs of each client, by channel. */
const hubs = new WeakMap<object, Map<string, LiftHub>>();

/** The hub of `client` (whose `connection` a store made) and `channel`. */
export function liftHub(client: object, connection: Connection, channel: string): LiftHub {
  let byChannel = hubs.get(client);
  if (byChannel === undefined) {
    byChannel = new Map();
    hubs.set(client, byChannel);
  }
  let hub = byChannel.get(channel);
  if (hub === undefined) {
    hub = new LiftHub(connection, channel);
    byChannel.set(channel, hub);
  }
  return hub;
}
