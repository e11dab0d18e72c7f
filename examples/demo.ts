/**
 * `pnpm demo`: starts the express-basic example with a small limit, sends it a burst of requests and
 * shows what a client sees: the RateLimit headers on every response, then the 429 with its
 * Retry-After and problem+json body. Needs no build and no services (counters live in memory).
 */
import type { AddressInfo } from 'node:net';
import { createApp } from './express-basic/server.ts';

const LIMIT = 5;
const WINDOW_SECONDS = 10;
const WINDOW = `${WINDOW_SECONDS}s`;
const REQUESTS = 8;
const HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy'];

const app = createApp({ policies: { limit: LIMIT, window: WINDOW } });
const server = app.listen(0, '127.0.0.1');
await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

console.log(`tollgate demo: the express-basic example on ${url}`);
console.log(`Policy: ${LIMIT} requests per ${WINDOW} per client IP (sliding window, in-memory store).`);
console.log(`Sending ${REQUESTS} requests, one after another:\n`);

let firstDenial: { retryAfter: string | null; contentType: string | null; body: string } | undefined;
try {
  for (let i = 1; i <= REQUESTS; i++) {
    const response = await fetch(url);
    const body = await response.text();
    const headers = HEADERS.map((name) => `${name}: ${response.headers.get(name)}`);
    if (response.status === 429) headers.push(`Retry-After: ${response.headers.get('retry-after')}`);
    const status = `${response.status} ${response.statusText}`.padEnd(21);
    console.log(`#${i}  ${status}  ${headers.join('  ')}`);
    if (response.status === 429 && firstDenial === undefined) {
      firstDenial = {
        retryAfter: response.headers.get('retry-after'),
        contentType: response.headers.get('content-type'),
        body,
      };
    }
  }
} finally {
  server.close();
  server.closeAllConnections();
}

console.log(
  `\nRateLimit-Remaining: requests left. RateLimit-Reset: seconds until the full quota is back.\n` +
    `RateLimit-Policy: ${LIMIT};w=${WINDOW_SECONDS} means ${LIMIT} requests per ${WINDOW_SECONDS}-second window.`,
);

if (firstDenial === undefined) {
  console.error(`\nNo request was denied: expected a 429 after ${LIMIT} requests.`);
  process.exitCode = 1;
} else {
  console.log(
    `\nThe first 429 said: wait ${firstDenial.retryAfter} s (Retry-After: ${firstDenial.retryAfter}).`,
  );
  console.log(`Its body (Content-Type: ${firstDenial.contentType}):\n`);
  console.log(JSON.stringify(JSON.parse(firstDenial.body), null, 2));
  console.log('\nA denied request consumes nothing: a client that waits Retry-After gets in.');
}
