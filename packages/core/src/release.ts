import { formatDuration } from './duration.js';
import type { Clock, Decision, PolicySet, ResolvedPolicy, Store } from './types.js';
import { WARNINGS, type Warner } from './warnings.js';

/** A lease handed out, watched until it is released or ends. */
interface Watched {
  readonly end: number;
  readonly policy: ResolvedPolicy;
  released: boolean;
}

/** Leases watched at most at once per limiter: past it new ones go unwatched (memory stays bounded). */
const MAX_WATCHED = 10_000;

/**
 * The `release` of a limiter's decisions that hold a slot of a concurrency policy, and the two
 * mistakes it can see: a lease that ends with no release (`TOLLGATE_LEASE_NOT_RELEASED`: a limiter
 * used without `release()`, or requests slower than the lease), and a release that comes after its
 * lease ended (`TOLLGATE_LEASE_EXPIRED`: the lease is shorter than the slowest request).
 */
export class Releases {
  /** Leases in the order handed out; the ended ones are looked at when the next one is handed out. */
  private watched: Watched[] = [];
  private head = 0;

  constructor(
    private readonly limiter: string,
    private readonly warner: Warner,
    private readonly clock: Clock,
  ) {}

  /** Gives `decision` its `release`: frees lease `lease` of `set`'s concurrency policy in `store`. */
  attach(decision: Decision, store: Store, key: string, set: PolicySet, lease: string): void {
    const policy = set.policies[set.holder]!;
    const watched = this.watch(policy);
    const { countedAt } = decision;
    let released: Promise<void> | undefined;
    decision.release = () => {
      if (watched !== undefined) watched.released = true;
      released ??= this.release(store, key, set, lease, policy, countedAt);
      return released;
    };
  }

  private async release(
    store: Store,
    key: string,
    set: PolicySet,
    lease: string,
    policy: ResolvedPolicy,
    countedAt: number | undefined,
  ): Promise<void> {
    try {
      const at = await store.release!(key, set, lease);
      if (countedAt !== undefined && at >= countedAt + policy.window) {
        this.warner.warn(
          WARNINGS.LEASE_EXPIRED,
          `A release came ${formatDuration(at - countedAt)} after its request was admitted, past the ${formatDuration(policy.window)} lease of concurrency policy '${policy.name}' of limiter '${this.limiter}': its slot had been freed while the request still ran, so more than ${policy.limit} requests may have been in flight. Make \`lease\` longer than the slowest request.`,
        );
      }
    } catch (error) {
      this.warner.logger.error(
        `[${WARNINGS.STORE_ERROR}] Release of a slot of limiter '${this.limiter}' failed (${error instanceof Error ? error.message : String(error)}); the slot is freed when its lease ends.`,
      );
    }
  }

  /** Watches a new lease of `policy`, after looking at the ones that may have ended unreleased. */
  private watch(policy: ResolvedPolicy): Watched | undefined {
    const now = this.clock();
    const { watched } = this;
    while (this.head < watched.length) {
      const first = watched[this.head]!;
      if (!first.released) {
        if (first.end > now) break;
        this.notReleased(first.policy);
      }
      this.head++;
    }
    if (this.head === watched.length) {
      this.watched = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > watched.length) {
      this.watched = watched.slice(this.head);
      this.head = 0;
    }
    if (this.watched.length - this.head >= MAX_WATCHED) return undefined;
    const entry: Watched = { end: now + policy.window, policy, released: false };
    this.watched.push(entry);
    return entry;
  }

  private notReleased(policy: ResolvedPolicy): void {
    this.warner.warn(
      WARNINGS.LEASE_NOT_RELEASED,
      `A request held a slot of concurrency policy '${policy.name}' of limiter '${this.limiter}' until its ${formatDuration(policy.window)} lease ended, with no release: every such request keeps a slot for the whole lease. Call \`decision.release()\` once the work is done (the HTTP middleware does it when the response closes); if requests do finish, the slowest take longer than the lease: raise it.`,
    );
  }
}
