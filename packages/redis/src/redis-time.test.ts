// RedisTime on given readings (no Redis): which offset each deadline is in, on one server and on a
// Cluster whose masters' clocks differ.
import { describe, expect, it } from 'vitest';
import { RedisTime } from './redis-time.js';

const AFTER = 1000;

describe('RedisTime on one server', () => {
  it('is unguarded until a reading, then takes every reply as one', () => {
    const time = new RedisTime(false);
    expect(time.deadline(100, -1, AFTER)).toBe('');
    // Redis said 5000 (whole ms: 5000.5) for a call out from 99 to 101: offset 4900.5, rtt 2.
    time.replied(5000, 99, 101, -1);
    expect(time.deadline(200, -1, AFTER)).toBe(String(Math.ceil(200 + 4900.5 + AFTER + 2 + 5)));
    // A reply that waited in a queue (rtt 40 > 2 x 2 + 1) does not replace the better reading.
    time.replied(9000, 300, 340, -1);
    expect(time.deadline(400, -1, AFTER)).toBe(String(Math.ceil(400 + 4900.5 + AFTER + 2 + 5)));
  });

  it('asks TIME only when no reading came for 10 s, and after a LATE', () => {
    const time = new RedisTime(false);
    expect(time.shouldAsk(0)).toBe(true);
    expect(time.shouldAsk(1)).toBe(false);
    time.answered(1_000_000, 0, 2);
    expect(time.shouldAsk(10_001)).toBe(false);
    // Replies keep it fresh: no TIME at 30 s.
    time.replied(1_010_000, 9_999, 10_000, -1);
    time.replied(1_020_000, 19_999, 20_000, -1);
    expect(time.shouldAsk(29_000)).toBe(false);
    // Idle for more than 10 s: ask.
    expect(time.shouldAsk(30_100)).toBe(true);
    time.answered(undefined, 30_100, 30_100);
    time.late(-1);
    expect(time.shouldAsk(30_101)).toBe(true);
  });
});

describe('RedisTime on a Cluster whose masters disagree', () => {
  it('keeps a reading per slot; a slot not read yet gets the highest offset read so far', () => {
    const time = new RedisTime(true);
    // TIME answered by a master at offset 1000.
    time.answered(1000 + 50, 49, 51);
    expect(time.deadline(100, 7, AFTER)).toBe(String(Math.ceil(100 + 1000 + AFTER + 2 + 5)));
    // Slot 7's master is 1500 ms ahead; slot 9's agrees with TIME's.
    time.replied(2549, 48, 50, 7); // 2549.5 - 49 = 2500.5
    time.replied(1049, 48, 50, 9); // 1000.5
    expect(time.deadline(100, 7, AFTER)).toBe(String(Math.ceil(100 + 2500.5 + AFTER + 2 + 5)));
    expect(time.deadline(100, 9, AFTER)).toBe(String(Math.ceil(100 + 1000.5 + AFTER + 2 + 5)));
    // Slot 8, never read: the fastest master's offset, never too early for any master read.
    expect(time.deadline(100, 8, AFTER)).toBe(String(Math.ceil(100 + 2500.5 + AFTER + 2 + 5)));
  });

  it('a slot whose command came back LATE sends its next one unguarded, and its reply reads again', () => {
    const time = new RedisTime(true);
    time.answered(1050, 49, 51);
    time.replied(1049, 48, 50, 3);
    time.late(3);
    expect(time.deadline(100, 3, AFTER)).toBe('');
    // Other slots keep theirs.
    expect(time.deadline(100, 4, AFTER)).toBe(String(Math.ceil(100 + 1000.5 + AFTER + 2 + 5)));
    // The unguarded reply: the master is 3000 ms further ahead than thought (a slower reply is taken).
    time.replied(4049, 40, 60, 3);
    expect(time.deadline(100, 3, AFTER)).toBe(String(Math.ceil(100 + 3999.5 + AFTER + 20 + 5)));
  });
});
