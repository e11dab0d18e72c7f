/**
 * `pnpm demo`: starts the express-basic example with a small limit, sends it a burst of requests and
 * shows what a client sees: the RateLimit headers on every response, then the 429 with its
 * Retry-After and problem+json body. Then it explains why a sliding window's Reset and Retry-After
 * can exceed the window, waits Retry-After and shows the next request admitted. Needs no build and
 * no services (counters live in memory).
 *
 * The live dashboard is mounted beside the app meanwhile (its URL is printed first); with
 * `pnpm demo --dashboard` the server stays up afterwards, with a light stream of requests, until
 * Ctrl-C.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { dashboard } from '@tollgate/express';
import express from 'express';
import { createApp } from './express-basic/server.ts';

const LIMIT = 5;
// Short, so that waiting out a 429 takes seconds: up to two windows, see below.
const WINDOW_SECONDS = 5;
const REQUESTS = 8;
const HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy'];

const keepDashboard = process.argv.includes('--dashboard');
const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

const app = express();
// Mounted before the example's limiter, so that the page and its live stream are not counted. The
// guard admits this machine only: in your app, check your operators' session instead.
const live = dashboard({ guard: (req) => LOOPBACK.has(req.socket.remoteAddress ?? '') });
app.use(live);
app.use(createApp({ policies: { limit: LIMIT, window: `${WINDOW_SECONDS}s` as const } }));
const server = app.listen(keepDashboard ? Number(process.env.PORT ?? 0) : 0, '127.0.0.1');
await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

interface Sent {
  status: number;
  headers: Headers;
  body: string;
}

/** Sends request number `n` and prints its status and rate-limit headers on one line. */
async function send(n: number): Promise<Sent> {
  const response = await fetch(url);
  const body = await response.text();
  const headers = HEADERS.map((name) => `${name}: ${response.headers.get(name)}`);
  if (response.status === 429) headers.push(`Retry-After: ${response.headers.get('retry-after')}`);
  const status = `${response.status} ${response.statusText}`.padEnd(21);
  console.log(`#${n}  ${status}  ${headers.join('  ')}`);
  return { status: response.status, headers: response.headers, body };
}

console.log(`tollgate demo: the express-basic example on ${url}`);
console.log(
  `Live dashboard: ${url}tollgate  (open it now; \`pnpm demo --dashboard\` keeps it up after the demo)`,
);
console.log(
  `Policy: ${LIMIT} requests per ${WINDOW_SECONDS}s per client IP (sliding window, in-memory store).`,
);
console.log(`Sending ${REQUESTS} requests, one after another:\n`);

try {
  const sent: Sent[] = [];
  for (let n = 1; n <= REQUESTS; n++) sent.push(await send(n));

  console.log(
    `\nRateLimit-Remaining: requests left. RateLimit-Reset: seconds until the full quota is back.\n` +
      `RateLimit-Policy: ${LIMIT};w=${WINDOW_SECONDS} means ${LIMIT} requests per ${WINDOW_SECONDS}-second window.`,
  );

  const denials = sent.filter((s) => s.status === 429);
  const firstDenial = denials[0];
  const lastDenial = denials.at(-1);
  if (firstDenial === undefined || lastDenial === undefined) {
    console.error(`\nNo request was denied: expected a 429 after ${LIMIT} requests.`);
    process.exitCode = 1;
  } else {
    const retryAfter = Number(lastDenial.headers.get('retry-after'));
    const reset = lastDenial.headers.get('ratelimit-reset');
    console.log(
      `\nThe first 429 said: wait ${firstDenial.headers.get('retry-after')} s (Retry-After). Its body (Content-Type: ${firstDenial.headers.get('content-type')}):\n`,
    );
    console.log(JSON.stringify(JSON.parse(firstDenial.body), null, 2));
    console.log(
      `\nSliding window: a request counts in its own window and, fading, through the next one. So RateLimit-Reset (${reset} s)\n` +
        `is when all are forgotten (up to 2 x ${WINDOW_SECONDS} s), and Retry-After (${retryAfter} s) when enough has faded for one more request.`,
    );
    console.log(
      `\nA denied request consumes nothing. Waiting Retry-After (${retryAfter} s), then one more:\n`,
    );
    await sleep(retryAfter * 1000);
    const next = await send(REQUESTS + 1);
    if (next.status !== 200) {
      console.error(`\nExpected the request after Retry-After to be admitted, got ${next.status}.`);
      process.exitCode = 1;
    } else {
      console.log('\nAdmitted: a client that waits Retry-After gets in.');
    }
  }
} finally {
  if (!keepDashboard) {
    live.close();
    server.close();
    server.closeAllConnections();
  }
}

if (keepDashboard) {
  console.log(
    `\nThe dashboard stays up at ${url}tollgate with a request every 300 ms (most of them limited). Ctrl-C ends it.`,
  );
  for (;;) {
    await sleep(300);
    await fetch(url).then(
      (response) => response.arrayBuffer(),
      () => undefined,
    );
  }
}
