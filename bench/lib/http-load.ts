/**
 * autocannon's programmatic API (it ships no types: the parts used here), one load run at a time.
 */
import { createRequire } from 'node:module';
import { KEY_HEADER } from './http-variants.ts';

interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  /** Called before each request is sent; returns the request to send. */
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  /** Requests sent on a connection before its first response comes back. */
  pipelining?: number;
  /** Seconds. */
  duration: number;
  /** Milliseconds between samples; the run ends on the first sample after `duration`. */
  sampleInt?: number;
  requests?: AutocannonRequest[];
}

/** The fields of autocannon's result this bench reads. */
export interface LoadResult {
  /** `total`: responses received during the run. */
  requests: { total: number };
  /** Wall time of the run, seconds. */
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  resets: number;
  latency: { p50: number; p99: number };
}

type Autocannon = (options: AutocannonOptions, done: (error: unknown, result: LoadResult) => void) => unknown;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadOptions {
  port: number;
  connections: number;
  pipelining: number;
  seconds: number;
  /** Distinct X-API-Key values, cycled per connection; 1 sends no key header (limiters key by IP). */
  keys: number;
  /** Instead of `keys`: every request carries a new X-API-Key, this prefix and a counter. */
  freshKeys?: string;
}

const requestsCache = new Map<number, AutocannonRequest[]>();

/**
 * The requests of a run: a plain `GET /`, or one prebuilt request per key (autocannon cycles
 * through them on each connection without rebuilding anything per request).
 */
function requestsFor(keys: number): AutocannonRequest[] | undefined {
  if (keys <= 1) return undefined;
  let requests = requestsCache.get(keys);
  if (requests === undefined) {
    requests = Array.from({ length: keys }, (_, i) => ({
      method: 'GET',
      path: '/',
      headers: { [KEY_HEADER]: `key-${i.toString(36).padStart(4, '0')}` },
    }));
    requestsCache.set(keys, requests);
  }
  return requests;
}

/** One request template whose X-API-Key is new each time it is sent. */
function freshRequests(prefix: string): AutocannonRequest[] {
  let sent = 0;
  return [
    {
      method: 'GET',
      path: '/',
      setupRequest: (request) => ({
        ...request,
        headers: { [KEY_HEADER]: `${prefix}${(sent++).toString(36)}` },
      }),
    },
  ];
}

export function load({
  port,
  connections,
  pipelining,
  seconds,
  keys,
  freshKeys,
}: LoadOptions): Promise<LoadResult> {
  const requests = freshKeys === undefined ? requestsFor(keys) : freshRequests(freshKeys);
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `http://127.0.0.1:${port}/`,
        connections,
        pipelining,
        duration: seconds,
        sampleInt: 100,
        ...(requests === undefined ? {} : { requests }),
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
}
