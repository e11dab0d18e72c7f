import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type Attributes,
  type Histogram,
  type MeterProvider,
  metrics,
  type ObservableCounter,
  type ObservableGauge,
  type ObservableResult,
  ValueType,
} from '@opentelemetry/api';
import {
  DECISION_CHANNEL,
  type DecisionMessage,
  type DecisionResult,
  STORE_CALL_CHANNEL,
  type StoreCallMessage,
} from '@tollgate/core';
import {
  ConfigError,
  checkOptions,
  configError,
  DECISION_RESULTS,
  describeValue,
} from '@tollgate/core/internal';

/** Options of `instrument()`. */
export interface InstrumentOptions {
  /**
   * Where the metrics go. Pass the SDK's `MeterProvider` (the one your Prometheus or OTLP reader is
   * registered on), or leave it out to use the global one (`metrics.setGlobalMeterProvider`, which
   * the Node SDK's `start()` sets).
   * @default metrics.getMeterProvider()
   */
  meterProvider?: MeterProvider;
  /**
   * The MemoryStores whose size `tollgate.memory_store.keys` reports, by a name of your choice (the
   * `tollgate.store` attribute): your own stores, a fallback, or a `rateLimit()`'s own store
   * (`mw.limiter.store`). Stores are not found by themselves: only the ones named here are reported.
   * @example { api: apiLimit.limiter.store, fallback: redisFallback }
   */
  memoryStores?: Record<string, { readonly size: number }>;
}

/** What `instrument()` returns: stops recording when you are done (tests, a hot reload). */
export interface Instrumentation {
  /**
   * Unsubscribes from the limiter's events and removes the callbacks of the asynchronous instruments
   * (`tollgate.decisions`, the gauge): nothing more is counted. Idempotent.
   */
  stop(): void;
}

/** Histogram buckets for one store call, in seconds: 50 µs (memory) to 2.5 s (a Redis timeout). */
const DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/**
 * Records tollgate's events as OpenTelemetry metrics: `tollgate.decisions` (a counter by
 * `tollgate.limiter`, `tollgate.policy` and `tollgate.result`), `tollgate.store.duration` (a
 * histogram in seconds by `tollgate.limiter`, `tollgate.operation` and `tollgate.outcome`) and
 * `tollgate.memory_store.keys` (a gauge of each store in `memoryStores`, by `tollgate.store`). Keys
 * are never attributes: every attribute comes from your configuration (limiter and policy names).
 */
export function instrument(options: InstrumentOptions = {}): Instrumentation {
  checkOptions(options, ['meterProvider', 'memoryStores'], '`instrument()` options');
  const provider = options.meterProvider ?? metrics.getMeterProvider();
  if (typeof (provider as Partial<MeterProvider> | null)?.getMeter !== 'function') {
    throw configError('meterProvider', 'an OpenTelemetry MeterProvider (with `getMeter`)', provider);
  }
  const stores = checkStores(options.memoryStores);
  const meter = provider.getMeter('@tollgate/otel');

  // Decisions are tallied here and reported at each collection (an asynchronous counter): a
  // synchronous `counter.add()` costs about 1 µs per decision in the SDK (it hashes the attributes
  // each time), several times tollgate's own decision (BENCHMARKS.md, `pnpm bench:events`).
  const tallies = new DecisionTallies();
  const decisions: ObservableCounter = meter.createObservableCounter('tollgate.decisions', {
    description: 'Rate-limit decisions, by limiter, binding policy and result.',
    unit: '{decision}',
    valueType: ValueType.INT,
  });
  const reportDecisions = (result: ObservableResult) => tallies.report(result);
  decisions.addCallback(reportDecisions);
  const durations: Histogram = meter.createHistogram('tollgate.store.duration', {
    description: "Duration of the limiter's calls to its store.",
    unit: 's',
    valueType: ValueType.DOUBLE,
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  const callAttributes = new Map<string, Attributes>();

  const onDecision = (message: unknown) => {
    const { limiter, decision, result } = message as DecisionMessage;
    tallies.add(limiter, decision.policy.name, result);
  };
  const onStoreCall = (message: unknown) => {
    const { limiter, operation, durationMs, ok } = message as StoreCallMessage;
    const outcome = ok ? 'ok' : 'error';
    const id = `${limiter}\n${operation}\n${outcome}`;
    let attributes = callAttributes.get(id);
    if (attributes === undefined) {
      attributes = Object.freeze({
        'tollgate.limiter': limiter,
        'tollgate.operation': operation,
        'tollgate.outcome': outcome,
      });
      callAttributes.set(id, attributes);
    }
    durations.record(durationMs / 1000, attributes);
  };
  subscribe(DECISION_CHANNEL, onDecision);
  subscribe(STORE_CALL_CHANNEL, onStoreCall);

  let gauge: ObservableGauge | undefined;
  const observe = (result: ObservableResult) => {
    for (const [name, store] of stores) result.observe(store.size, { 'tollgate.store': name });
  };
  if (stores.length > 0) {
    gauge = meter.createObservableGauge('tollgate.memory_store.keys', {
      description: 'Keys a MemoryStore holds (bounded by its maxKeys).',
      unit: '{key}',
      valueType: ValueType.INT,
    });
    gauge.addCallback(observe);
  }

  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe(DECISION_CHANNEL, onDecision);
      unsubscribe(STORE_CALL_CHANNEL, onStoreCall);
      decisions.removeCallback(reportDecisions);
      gauge?.removeCallback(observe);
    },
  };
}

function checkStores(value: unknown): [string, { readonly size: number }][] {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw configError(
      'memoryStores',
      'an object naming each MemoryStore, e.g. `{ api: store }`',
      value,
      Array.isArray(value) ? 'Name each store: the name becomes the `tollgate.store` attribute.' : '',
    );
  }
  const stores = Object.entries(value as Record<string, unknown>);
  for (const [name, store] of stores) {
    if (typeof (store as { size?: unknown } | null)?.size !== 'number') {
      throw new ConfigError(
        `Expected \`memoryStores.${name}\` to be a MemoryStore (with a numeric \`size\`), got ${describeValue(store)}. A RedisStore keeps its keys in Redis: watch Redis's own key count instead.`,
      );
    }
  }
  return stores as [string, { readonly size: number }][];
}

/** The six results, in the order their counts are kept. */
const RESULTS = DECISION_RESULTS;

/**
 * Decision counts by limiter, policy and result, each with its attributes object (made once). Keys
 * are configuration (limiter and policy names), so this is as bounded as the metric's series.
 */
class DecisionTallies {
  private readonly byLimiter = new Map<string, Map<string, { attributes: Attributes[]; counts: number[] }>>();

  add(limiter: string, policy: string, result: DecisionResult): void {
    let byPolicy = this.byLimiter.get(limiter);
    if (byPolicy === undefined) {
      byPolicy = new Map();
      this.byLimiter.set(limiter, byPolicy);
    }
    let tally = byPolicy.get(policy);
    if (tally === undefined) {
      tally = {
        attributes: RESULTS.map((r) =>
          Object.freeze({ 'tollgate.limiter': limiter, 'tollgate.policy': policy, 'tollgate.result': r }),
        ),
        counts: RESULTS.map(() => 0),
      };
      byPolicy.set(policy, tally);
    }
    tally.counts[RESULTS.indexOf(result)]!++;
  }

  /** Observes every count that is not zero (a result never seen makes no series). */
  report(result: ObservableResult): void {
    for (const byPolicy of this.byLimiter.values()) {
      for (const { attributes, counts } of byPolicy.values()) {
        counts.forEach((count, i) => {
          if (count > 0) result.observe(count, attributes[i]);
        });
      }
    }
  }
}
