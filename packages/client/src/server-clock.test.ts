// ServerClock: a `Date` that disagrees with our clock by more than a day is ignored.
import { describe, expect, it } from 'vitest';
import { MAX_SKEW_MS, ServerClock } from './server-clock.js';

const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);

describe('ServerClock', () => {
  it('a Date 30 s ahead: the server’s times are read 30 s earlier on our clock', () => {
    const clock = new ServerClock();
    clock.observe(NOW + 30_000, NOW);
    expect(clock.skew).toBe(30_000);
    expect(clock.toLocal({ server: NOW + 60_000, grain: 0 }, NOW, NOW)).toEqual({
      lo: NOW + 29_000,
      hi: NOW + 30_000,
    });
  });

  it('a Date in 1990: ignored, a reset 2 s away still reads 2 s away (not 36 years)', () => {
    const clock = new ServerClock();
    clock.observe(Date.UTC(1990, 0, 1), NOW);
    expect(clock.skew).toBe(0);
    expect(clock.toLocal({ server: NOW + 2000, grain: 1000 }, NOW, NOW)).toEqual({
      lo: NOW + 1000,
      hi: NOW + 2000,
    });
  });

  it('a day off is still a skew; a day and a second is not', () => {
    const clock = new ServerClock();
    clock.observe(NOW - MAX_SKEW_MS - 1000, NOW);
    expect(clock.skew).toBe(0);
    clock.observe(NOW - MAX_SKEW_MS, NOW);
    expect(clock.skew).toBe(-MAX_SKEW_MS);
  });

  it('after a sane Date, one far off leaves the skew as it was', () => {
    const clock = new ServerClock();
    clock.observe(NOW + 5000, NOW);
    clock.observe(Date.UTC(9999, 0, 1), NOW + 100);
    expect(clock.skew).toBe(5000);
  });
});
