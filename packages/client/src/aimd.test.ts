import { expect, it } from 'vitest';
import { Aimd } from './aimd.js';

const options = {
  fallback: false,
  initialRate: 10,
  minRate: 2,
  maxRate: 12,
  increaseStep: 5,
  decreaseFactor: 0.5,
  backoffStatus: new Set([429, 503]),
  cooldown: 1000,
};

it('grows by increaseStep / rate per success, up to maxRate', () => {
  const aimd = new Aimd(options);
  aimd.succeeded(0);
  expect(aimd.rate).toBe(10.5);
  for (let i = 0; i < 100; i++) aimd.succeeded(0);
  expect(aimd.rate).toBe(12);
  expect(aimd.interval).toBe(1000 / 12);
});

it('is cut by decreaseFactor, down to minRate, once per cooldown, and holds meanwhile', () => {
  const aimd = new Aimd(options);
  aimd.limited(5000, 0);
  expect(aimd.rate).toBe(5);
  expect(aimd.cooldownUntil(5000)).toBe(6000);
  aimd.limited(5999, 0); // an answer to a call already in flight: same overload
  aimd.succeeded(5999);
  expect(aimd.rate).toBe(5);
  aimd.limited(6000, 0);
  expect(aimd.rate).toBe(2.5);
  aimd.limited(7000, 0);
  expect(aimd.rate).toBe(2);
  expect(aimd.cooldownUntil(8000)).toBeUndefined();
  expect([aimd.backsOff(429), aimd.backsOff(503), aimd.backsOff(500)]).toEqual([true, true, false]);
});

it('the fallback is dormant until a backoff status finds calls faster than minRate, then cuts from that rate', () => {
  const aimd = new Aimd({ ...options, fallback: true, maxRate: Number.POSITIVE_INFINITY });
  expect(aimd.engaged).toBe(false);
  aimd.succeeded(0);
  // One call in the last second (minRate is 2): a lone 429 is left to backoff and Retry-After.
  aimd.limited(1000, 1);
  expect(aimd.engaged).toBe(false);
  aimd.limited(2000, 40);
  expect([aimd.engaged, aimd.rate, aimd.cooldownUntil(2000)]).toEqual([true, 20, 3000]);
  aimd.succeeded(3000);
  expect(aimd.rate).toBe(20 + 5 / 20);
});
