import { describe, expect, test } from 'vitest';
import { isConfigError } from '../../errors.js';
import { createLimiter } from '../../limiter.js';
import { resolvePolicy } from '../../policy.js';
import type { Policy } from '../../types.js';
import { WARNINGS } from '../../warnings.js';
import { Calendar, resolveCalendar } from './calendar.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NY = 'America/New_York';
const utc = (...parts: [number, number, ...number[]]) => Date.UTC(...parts);

describe('calendar periods (Intl, exact across DST and month lengths)', () => {
  const period = (c: Calendar, t: number) => {
    const p = c.periodAt(t);
    return `${new Date(p.start).toISOString()} .. ${new Date(p.end).toISOString()}: ${(p.end - p.start) / HOUR} h`;
  };

  test('months in UTC: 28, 29, 30 and 31 days; the 15th as billing day', () => {
    const month = new Calendar('month', 'UTC', 1);
    expect(period(month, utc(2026, 1, 10))).toBe(
      '2026-02-01T00:00:00.000Z .. 2026-03-01T00:00:00.000Z: 672 h',
    );
    expect(period(month, utc(2028, 1, 29, 23, 59))).toBe(
      '2028-02-01T00:00:00.000Z .. 2028-03-01T00:00:00.000Z: 696 h',
    );
    expect(period(month, utc(2026, 3, 30))).toBe(
      '2026-04-01T00:00:00.000Z .. 2026-05-01T00:00:00.000Z: 720 h',
    );
    expect(period(month, utc(2026, 11, 31, 23, 59, 59, 999))).toBe(
      '2026-12-01T00:00:00.000Z .. 2027-01-01T00:00:00.000Z: 744 h',
    );
    const billing = new Calendar('month', 'UTC', 15);
    expect(period(billing, utc(2026, 0, 14))).toBe(
      '2025-12-15T00:00:00.000Z .. 2026-01-15T00:00:00.000Z: 744 h',
    );
    expect(period(billing, utc(2026, 0, 15))).toBe(
      '2026-01-15T00:00:00.000Z .. 2026-02-15T00:00:00.000Z: 744 h',
    );
    expect(period(billing, utc(2026, 1, 20))).toBe(
      '2026-02-15T00:00:00.000Z .. 2026-03-15T00:00:00.000Z: 672 h',
    );
  });

  test('New York: local midnight, days of 23 and 25 hours, months an hour short or long', () => {
    const day = new Calendar('day', NY, 1);
    // Sunday 8 March 2026: clocks go from 2:00 EST to 3:00 EDT.
    expect(period(day, utc(2026, 2, 8, 12))).toBe(
      '2026-03-08T05:00:00.000Z .. 2026-03-09T04:00:00.000Z: 23 h',
    );
    // Sunday 1 November 2026: clocks go back from 2:00 EDT to 1:00 EST.
    expect(period(day, utc(2026, 10, 1, 12))).toBe(
      '2026-11-01T04:00:00.000Z .. 2026-11-02T05:00:00.000Z: 25 h',
    );
    expect(period(day, utc(2026, 10, 2, 4, 59, 59, 999))).toBe(
      '2026-11-01T04:00:00.000Z .. 2026-11-02T05:00:00.000Z: 25 h',
    );
    const month = new Calendar('month', NY, 1);
    expect(period(month, utc(2026, 2, 20))).toBe(
      '2026-03-01T05:00:00.000Z .. 2026-04-01T04:00:00.000Z: 743 h',
    );
    expect(period(month, utc(2026, 10, 20))).toBe(
      '2026-11-01T04:00:00.000Z .. 2026-12-01T05:00:00.000Z: 721 h',
    );
    // Just before midnight on 31 October in New York is already November in UTC.
    expect(period(month, utc(2026, 10, 1, 3, 59, 59, 999))).toBe(
      '2026-10-01T04:00:00.000Z .. 2026-11-01T04:00:00.000Z: 744 h',
    );
  });

  test('hours: the clock hours of the zone, each 60 minutes across DST; half-hour zones', () => {
    const hour = new Calendar('hour', NY, 1);
    // The 1 AM hour happens twice on 1 November 2026: two periods.
    expect(period(hour, utc(2026, 10, 1, 5, 30))).toBe(
      '2026-11-01T05:00:00.000Z .. 2026-11-01T06:00:00.000Z: 1 h',
    );
    expect(period(hour, utc(2026, 10, 1, 6, 30))).toBe(
      '2026-11-01T06:00:00.000Z .. 2026-11-01T07:00:00.000Z: 1 h',
    );
    // 1 AM EST is followed by 3 AM EDT, an hour later.
    expect(period(hour, utc(2026, 2, 8, 6, 59))).toBe(
      '2026-03-08T06:00:00.000Z .. 2026-03-08T07:00:00.000Z: 1 h',
    );
    // India is 5:30 ahead: its hours start at half past in UTC.
    expect(period(new Calendar('hour', 'Asia/Kolkata', 1), utc(2026, 5, 1, 10, 10))).toBe(
      '2026-06-01T09:30:00.000Z .. 2026-06-01T10:30:00.000Z: 1 h',
    );
    // Lord Howe moves its clocks by half an hour: that night one clock hour lasts 90 minutes.
    expect(period(new Calendar('hour', 'Australia/Lord_Howe', 1), utc(2026, 9, 3, 15, 40))).toBe(
      '2026-10-03T14:30:00.000Z .. 2026-10-03T16:00:00.000Z: 1.5 h',
    );
  });

  test('weeks start on Monday (ISO 8601), or on the weekday startDay names', () => {
    // Thursday 3 December 2026.
    expect(period(new Calendar('week', 'UTC', 1), utc(2026, 11, 3))).toBe(
      '2026-11-30T00:00:00.000Z .. 2026-12-07T00:00:00.000Z: 168 h',
    );
    expect(period(new Calendar('week', 'UTC', 7), utc(2026, 11, 3))).toBe(
      '2026-11-29T00:00:00.000Z .. 2026-12-06T00:00:00.000Z: 168 h',
    );
    // The week of the spring change in New York (Sunday 8 March) is an hour short.
    expect(period(new Calendar('week', NY, 1), utc(2026, 2, 5))).toBe(
      '2026-03-02T05:00:00.000Z .. 2026-03-09T04:00:00.000Z: 167 h',
    );
  });

  test('midnights that do not exist start the day when the clocks jump; a skipped day is no period', () => {
    // Santiago moves from 0:00 to 1:00 on 6 September 2026: that day starts at 1:00, 23 hours long.
    expect(period(new Calendar('day', 'America/Santiago', 1), utc(2026, 8, 6, 12))).toBe(
      '2026-09-06T04:00:00.000Z .. 2026-09-07T03:00:00.000Z: 23 h',
    );
    // Samoa skipped 30 December 2011: the 29th is followed by the 31st.
    expect(period(new Calendar('day', 'Pacific/Apia', 1), utc(2011, 11, 30, 9))).toBe(
      '2011-12-29T10:00:00.000Z .. 2011-12-30T10:00:00.000Z: 24 h',
    );
    expect(period(new Calendar('day', 'Pacific/Apia', 1), utc(2011, 11, 30, 10))).toBe(
      '2011-12-30T10:00:00.000Z .. 2011-12-31T10:00:00.000Z: 24 h',
    );
  });

  test('the periods of 2026 in New York tile it: each ends where the next starts', () => {
    // Hours over March to November (both changes), the others over the year, from midnight UTC.
    const from = {
      hour: utc(2026, 2, 1),
      day: utc(2026, 0, 1),
      week: utc(2026, 0, 1),
      month: utc(2026, 0, 1),
    };
    const to = {
      hour: utc(2026, 10, 30),
      day: utc(2027, 0, 1),
      week: utc(2027, 0, 1),
      month: utc(2027, 0, 1),
    };
    for (const unit of ['hour', 'day', 'week', 'month'] as const) {
      const c = new Calendar(unit, NY, unit === 'week' ? 3 : 1);
      let t = from[unit];
      let periods = 0;
      while (t < to[unit]) {
        const p = c.periodAt(t);
        expect(p.start).toBeLessThanOrEqual(t);
        expect(c.periodAt(p.end - 1)).toBe(p);
        expect(c.periodAt(p.end).start).toBe(p.end);
        t = p.end;
        periods++;
      }
      // Hours are real hours; the first day and month are those of 31 December 2025 in New York.
      expect(periods).toBe({ hour: (to.hour - from.hour) / HOUR, day: 366, week: 53, month: 13 }[unit]);
    }
  });
});

// The acceptance numbers on every store (this one included): test/calendar-windows.test.ts.

describe('policy resolution', () => {
  const message = (policy: unknown) => {
    try {
      resolvePolicy(policy as Policy);
    } catch (error) {
      expect(isConfigError(error)).toBe(true);
      return (error as Error).message;
    }
    throw new Error('no ConfigError');
  };

  test('fixed-window by default, a name after the unit, one id per unit, zone and start day', () => {
    const p = resolvePolicy({ limit: 100, window: { calendar: 'month' } });
    expect(p).toMatchObject({
      algorithm: 'fixed-window',
      name: '100-per-month',
      window: 31 * DAY,
      id: 'fw:100:month:UTC:1',
    });
    expect(p.calendar).toMatchObject({ unit: 'month', timeZone: 'UTC', startDay: 1 });
    const ny = resolvePolicy({
      limit: 5,
      window: { calendar: 'day', timeZone: 'us/eastern' },
      algorithm: 'fixed-window',
    });
    expect(ny).toMatchObject({ name: '5-per-day', window: DAY, id: 'fw:5:day:America/New_York:1' });
    expect(resolvePolicy({ limit: 5, window: { calendar: 'week', startDay: 7 } }).id).toBe('fw:5:week:UTC:7');
    expect(resolvePolicy({ limit: 5, window: { calendar: 'month', startDay: 15 } }).id).toBe(
      'fw:5:month:UTC:15',
    );
  });

  test('policies naming one calendar share its periods', () => {
    const a = resolveCalendar({ calendar: 'day', timeZone: NY }, 'policy');
    expect(resolveCalendar({ calendar: 'day', timeZone: 'America/New_York', startDay: undefined }, 'p')).toBe(
      a,
    );
  });

  test('every mistake is a ConfigError naming the option and the fix', () => {
    expect(message({ algorithm: 'sliding-window', limit: 100, window: { calendar: 'month' } })).toBe(
      "`policy.window` is a calendar period, which only 'fixed-window' counts (a quota that resets on the calendar), not 'sliding-window'. Set `policy.algorithm` to 'fixed-window', or give a rolling window such as '30d'.",
    );
    expect(message({ algorithm: 'token-bucket', limit: 1, window: { calendar: 'day' } })).toContain(
      "not 'token-bucket'",
    );
    expect(message({ limit: 1, window: { calendar: 'year' } })).toBe(
      "Expected `policy.window.calendar` to be one of 'hour', 'day', 'week', 'month', got \"year\" (string).",
    );
    expect(message({ limit: 1, window: { calendar: 'day', timeZone: 'Mars/Olympus' } })).toBe(
      "Expected `policy.window.timeZone` to be an IANA time zone that Intl knows, such as 'UTC', 'Europe/Berlin' or 'America/New_York', got \"Mars/Olympus\" (string).",
    );
    expect(message({ limit: 1, window: { calendar: 'day', timeZone: 5 } })).toContain('got `5` (number)');
    expect(message({ limit: 1, window: { calendar: 'month', startDay: 31 } })).toBe(
      'Expected `policy.window.startDay` to be a whole day of the month from 1 to 28, got `31` (number). Days 29 to 31 are missing from some months; a billing day there is usually taken as the 1st of the next month.',
    );
    expect(message({ limit: 1, window: { calendar: 'week', startDay: 0 } })).toBe(
      'Expected `policy.window.startDay` to be an ISO weekday from 1 (Monday) to 7 (Sunday), got `0` (number).',
    );
    expect(message({ limit: 1, window: { calendar: 'day', startDay: 2 } })).toBe(
      "`policy.window.startDay` applies to 'month' (the day of the month) and 'week' (the weekday) calendars only, not 'day'. Remove it.",
    );
    expect(message({ limit: 1, window: { calendar: 'day', timezone: NY } })).toBe(
      'Unknown option `timezone` in `policy.window`. Did you mean `timeZone`? It takes `calendar`, `timeZone`, `startDay`.',
    );
  });
});

describe('warnings for the mistakes users make with quotas', () => {
  const logged = () => {
    const lines: string[] = [];
    return { lines, logger: { warn: (m: string) => void lines.push(m), error: () => undefined } };
  };

  test(`${WARNINGS.ROLLING_MONTH}: a window of 28 to 31 days is rolling, not a calendar month`, () => {
    const { lines, logger } = logged();
    createLimiter({ policies: { limit: 100_000, window: '30d' }, logger });
    expect(lines).toEqual([
      "[TOLLGATE_ROLLING_MONTH] `policies.window` is 30 days, a rolling window: it counts the last days whatever the date, not the calendar month. For a monthly quota write `window: { calendar: 'month' }` (see startDay and timeZone); keep '30d' if a rolling window is meant.",
    ]);
    createLimiter({ policies: [{ algorithm: 'fixed-window', limit: 9, window: 31 * DAY }], logger });
    expect(lines[1]).toContain(
      "`policies[0].window` is 31 days, a rolling window: it opens at each key's first request, so every key's month starts on another day",
    );
    for (const window of ['27d', '32d', '720h1ms', { calendar: 'month' }] as const) {
      createLimiter({ policies: { limit: 1, window: window === '720h1ms' ? 30 * DAY + 1 : window }, logger });
    }
    expect(lines).toHaveLength(2);
  });

  test(`${WARNINGS.CALENDAR_ZONES}: calendar policies in more than 3 time zones on one limiter`, async () => {
    const { lines, logger } = logged();
    const limiter = createLimiter({ logger });
    const zones = ['UTC', 'Europe/Berlin', 'Asia/Tokyo', 'America/New_York', 'Europe/Paris'];
    for (const [i, timeZone] of zones.entries()) {
      await limiter.consume('user', { policies: { limit: 10, window: { calendar: 'month', timeZone } } });
      expect(lines).toHaveLength(i < 3 ? 0 : 1);
    }
    expect(lines[0]).toBe(
      "[TOLLGATE_CALENDAR_ZONES] Limiter 'default' has calendar policies in 4 time zones ('UTC', 'Europe/Berlin', 'Asia/Tokyo', 'America/New_York'): a time zone per user gives each zone its own counters, and a user who changes zone starts a fresh quota. Give every calendar policy one zone, the business's (billing) zone.",
    );
  });
});
