import type { Usage } from '../usage/index.js';

/** One route's numbers as the page shows them. */
export interface RouteCounts {
  readonly route: string;
  readonly requests: number;
  readonly limited: number;
}

/** The part of `createUsage()`'s recorder the dashboard reads. */
export type UsageSource = Pick<Usage, 'topRoutes'>;

/** The usage part of a snapshot: the busiest routes of the last hour. */
export interface UsageSnapshot {
  period: 'hour';
  routes: RouteCounts[];
  /** When the routes were read (epoch ms). */
  at: number;
  /** Why the last read failed (the routes are then the previous ones). */
  error?: string;
}

/** Routes shown; the usage recorder folds the rest into `(other)` itself. */
const ROUTES_SHOWN = 10;

/**
 * Reads the usage recorder's busiest routes at most once per `everyMs` (on Redis it is a round
 * trip), only while someone asks: frames take the latest answer, never wait for one.
 */
export class UsagePoller {
  private latest: UsageSnapshot | undefined;
  private inFlight: Promise<void> | undefined;
  private lastAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly source: UsageSource,
    private readonly everyMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The latest routes read; starts a new read when the last is older than `everyMs`. */
  current(): UsageSnapshot | undefined {
    if (this.inFlight === undefined && this.clock() - this.lastAt >= this.everyMs) void this.refresh();
    return this.latest;
  }

  /** Reads the routes now (or joins the read under way). Never rejects: a failure is kept in `error`. */
  refresh(): Promise<void> {
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<void> {
    this.lastAt = this.clock();
    try {
      const routes = await this.source.topRoutes({ period: 'hour', limit: ROUTES_SHOWN });
      this.latest = {
        period: 'hour',
        routes: routes.map(({ route, requests, limited }) => ({ route, requests, limited })),
        at: this.clock(),
      };
    } catch (error) {
      this.latest = {
        period: 'hour',
        routes: this.latest?.routes ?? [],
        at: this.latest?.at ?? this.clock(),
        error: error instanceof Error ? error.message.slice(0, 200) : String(error).slice(0, 200),
      };
    }
  }
}
