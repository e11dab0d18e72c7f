/**
 * Calendar periods for fixed-window quotas (issue 12): the hour, day, week or month that holds an
 * instant, as a time zone's clocks count it, computed with Intl (no dependency, the tz database
 * that ships with Node). Exact across daylight-saving changes and month lengths: a period is the
 * span between two instants, each found from the zone's own offsets, never a fixed number of ms.
 */

import { checkOptions } from '../../check-options.js';
import { ConfigError, configError } from '../../errors.js';
import type { CalendarUnit, ResolvedCalendar } from '../../types.js';

/** One period: `start <= t < end`, in ms since the epoch. */
export interface Period {
  readonly start: number;
  readonly end: number;
}

const HOUR = 3_600_000;
const DAY = 86_400_000;

/** The shortest a period of each unit can be, the step the search for its end takes. */
const STEP: Record<CalendarUnit, number> = { hour: HOUR, day: DAY, week: 7 * DAY, month: 28 * DAY };

/** The local clock at an instant, as `Date.UTC` would spell it, and the instant's milliseconds. */
interface Wall {
  readonly y: number;
  readonly mo: number;
  readonly d: number;
  readonly h: number;
  readonly mi: number;
  readonly s: number;
  readonly ms: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** One formatter per zone: building one costs far more than using it. */
function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/**
 * The canonical name of an IANA time zone (`'us/eastern'` -> `'America/New_York'`), or undefined
 * when Intl does not know it.
 */
export function canonicalTimeZone(timeZone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

/** The calendar periods of one zone, unit and start day, with the last few periods remembered. */
export class Calendar implements ResolvedCalendar {
  /** The periods met last, newest first: a store asks for the current one on every request. */
  private readonly recent: Period[] = [];
  private readonly utc: boolean;

  /**
   * `timeZone` must be canonical (see `canonicalTimeZone`); `startDay` is the day of the month a
   * month starts on (1-28) or the ISO weekday a week starts on (1 Monday - 7 Sunday), else 1.
   */
  constructor(
    readonly unit: CalendarUnit,
    readonly timeZone: string,
    readonly startDay: number,
  ) {
    this.utc = timeZone === 'UTC';
  }

  /** The period holding `t` (ms). */
  periodAt(t: number): Period {
    const { recent } = this;
    for (let i = 0; i < recent.length; i++) {
      const p = recent[i]!;
      if (p.start <= t && t < p.end) return p;
    }
    const start = this.startOf(t);
    const period: Period = Object.freeze({ start, end: this.nextStart(start) });
    recent.unshift(period);
    if (recent.length > 4) recent.pop();
    return period;
  }

  /** The start of the period holding `t`. */
  private startOf(t: number): number {
    if (this.unit === 'hour') return this.hourStart(t);
    const w = this.wall(t);
    let day = w.d;
    let month = w.mo;
    if (this.unit === 'week') {
      // Date.UTC's getUTCDay: 0 Sunday .. 6 Saturday; ISO: 1 Monday .. 7 Sunday.
      const iso = ((new Date(Date.UTC(w.y, w.mo - 1, w.d)).getUTCDay() + 6) % 7) + 1;
      day -= (iso - this.startDay + 7) % 7;
    } else if (this.unit === 'month') {
      if (w.d < this.startDay) month -= 1;
      day = this.startDay;
    }
    // Date.UTC carries a day or month below 1 into the month or year before.
    return this.instantOf(Date.UTC(w.y, month - 1, day));
  }

  /**
   * The last instant at or before `t` at which the local clock shows a full hour. A zone whose
   * offset changes by whole hours (nearly all) has hours of 60 minutes; one that changes by half
   * an hour (Lord Howe) has one hour of 30 or 90 minutes on those nights.
   */
  private hourStart(t: number): number {
    let at = t;
    for (;;) {
      const w = this.wall(at);
      const past = w.mi * 60_000 + w.s * 1000 + w.ms;
      if (past === 0) return at;
      at -= past;
    }
  }

  /** The first period start after `start`: found by stepping on, then back to the nearest one. */
  private nextStart(start: number): number {
    const step = STEP[this.unit];
    let probe = start + step;
    let next = this.startOf(probe);
    while (next <= start) {
      probe += step;
      next = this.startOf(probe);
    }
    // A step may pass over a short period (a 23-hour day is shorter than the step of a day).
    for (;;) {
      const before = this.startOf(next - 1);
      if (before <= start) return next;
      next = before;
    }
  }

  /** The local clock at `t`. */
  private wall(t: number): Wall {
    const ms = ((t % 1000) + 1000) % 1000;
    if (this.utc) {
      const date = new Date(t);
      return {
        y: date.getUTCFullYear(),
        mo: date.getUTCMonth() + 1,
        d: date.getUTCDate(),
        h: date.getUTCHours(),
        mi: date.getUTCMinutes(),
        s: date.getUTCSeconds(),
        ms,
      };
    }
    const fields: Record<string, number> = {};
    for (const part of formatterFor(this.timeZone).formatToParts(t)) {
      if (part.type !== 'literal') fields[part.type] = Number(part.value);
    }
    return {
      y: fields.year!,
      mo: fields.month!,
      d: fields.day!,
      h: fields.hour!,
      mi: fields.minute!,
      s: fields.second!,
      ms,
    };
  }

  /** Local time minus UTC at `t`, in ms. */
  private offsetAt(t: number): number {
    if (this.utc) return 0;
    const w = this.wall(t);
    return Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s) - (t - w.ms);
  }

  /**
   * The instant at which the local clock shows `local` (a wall time spelt as by `Date.UTC`). A time
   * shown twice (clocks go back) is its first showing; a time never shown (clocks go forward over
   * it) is the instant the clocks jump, the first one of that local day or hour: the rule
   * Temporal calls 'compatible'. Offsets are read a day either side, wider than any transition.
   */
  private instantOf(local: number): number {
    if (this.utc) return local;
    const before = this.offsetAt(local - DAY);
    const after = this.offsetAt(local + DAY);
    if (before === after) return local - before;
    const withBefore = local - before;
    const withAfter = local - after;
    const shows = (t: number) => t + this.offsetAt(t) === local;
    const first = shows(withBefore);
    const second = shows(withAfter);
    if (first && second) return Math.min(withBefore, withAfter);
    if (first) return withBefore;
    if (second) return withAfter;
    // In the gap: read with the offset before, which lands on the jump or just after it.
    return withBefore;
  }
}

const UNITS: readonly CalendarUnit[] = ['hour', 'day', 'week', 'month'];
const WINDOW_KEYS = ['calendar', 'timeZone', 'startDay'];

/** A unit's nominal length, a resolved policy's `window`: 1h, 1d, 7d, and 31d for a month. */
export const NOMINAL_MS: Record<CalendarUnit, number> = {
  hour: HOUR,
  day: DAY,
  week: 7 * DAY,
  month: 31 * DAY,
};

/**
 * One Calendar per (unit, zone, start day), shared by every policy that names it: a policies
 * function that builds its policies per request still computes each period once. Bounded by the
 * zones Intl knows.
 */
const calendars = new Map<string, Calendar>();

/**
 * Validates a policy's calendar `window` (`{ calendar, timeZone?, startDay? }`); `at` names the
 * policy in messages, e.g. `policies[1]`. A time zone Intl does not know is refused here, once.
 */
export function resolveCalendar(input: object, at: string): Calendar {
  const option = `${at}.window`;
  checkOptions(input, WINDOW_KEYS, `\`${option}\``);
  const { calendar: unit, timeZone = 'UTC', startDay } = input as Record<string, unknown>;
  if (typeof unit !== 'string' || !UNITS.includes(unit as CalendarUnit)) {
    throw configError(`${option}.calendar`, `one of ${UNITS.map((u) => `'${u}'`).join(', ')}`, unit);
  }
  const zone = typeof timeZone === 'string' ? canonicalTimeZone(timeZone) : undefined;
  if (zone === undefined) {
    throw configError(
      `${option}.timeZone`,
      "an IANA time zone that Intl knows, such as 'UTC', 'Europe/Berlin' or 'America/New_York'",
      timeZone,
    );
  }
  let day = 1;
  if (startDay !== undefined) {
    if (unit === 'month') {
      if (!Number.isInteger(startDay) || (startDay as number) < 1 || (startDay as number) > 28) {
        throw configError(
          `${option}.startDay`,
          'a whole day of the month from 1 to 28',
          startDay,
          'Days 29 to 31 are missing from some months; a billing day there is usually taken as the 1st of the next month.',
        );
      }
    } else if (unit === 'week') {
      if (!Number.isInteger(startDay) || (startDay as number) < 1 || (startDay as number) > 7) {
        throw configError(`${option}.startDay`, 'an ISO weekday from 1 (Monday) to 7 (Sunday)', startDay);
      }
    } else {
      throw new ConfigError(
        `\`${option}.startDay\` applies to 'month' (the day of the month) and 'week' (the weekday) calendars only, not '${unit}'. Remove it.`,
      );
    }
    day = startDay as number;
  }
  const id = `${unit}:${zone}:${day}`;
  let found = calendars.get(id);
  if (found === undefined) {
    found = new Calendar(unit as CalendarUnit, zone, day);
    calendars.set(id, found);
  }
  return found;
}
