/**
 * Preload (`node --import tsx --import ./test/support/multi-process/skewed-clock.ts`) that moves this
 * process's wall clock by TOLLGATE_TEST_CLOCK_SKEW_MS milliseconds, as on an app server whose clock is
 * off: `Date.now()` and `new Date()` are skewed. The RedisStore must not care (it reads Redis TIME).
 */
const skewMs = Number(process.env.TOLLGATE_TEST_CLOCK_SKEW_MS ?? '0');
if (!Number.isFinite(skewMs)) {
  throw new Error(
    `TOLLGATE_TEST_CLOCK_SKEW_MS must be a number of ms, got ${process.env.TOLLGATE_TEST_CLOCK_SKEW_MS}`,
  );
}

const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);

class SkewedDate extends RealDate {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(realNow() + skewMs);
    else super(...(args as ConstructorParameters<DateConstructor>));
  }

  static override now(): number {
    return realNow() + skewMs;
  }
}

globalThis.Date = SkewedDate as DateConstructor;
