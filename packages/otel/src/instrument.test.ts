import { hasSubscribers } from 'node:diagnostics_channel';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  createLimiter,
  DECISION_CHANNEL,
  isConfigError,
  MemoryStore,
  STORE_CALL_CHANNEL,
} from '@tollgate/core';
import { describe, expect, test } from 'vitest';
import { instrument } from './instrument.js';

function provider() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const collect = async () => {
    await reader.forceFlush();
    return (
      exporter
        .getMetrics()
        .at(-1)
        ?.scopeMetrics.flatMap((s) => s.metrics) ?? []
    );
  };
  return { meterProvider, collect };
}

describe('instrument() options', () => {
  test.each([
    [
      { meterprovider: {} },
      /Unknown option `meterprovider` in `instrument\(\)` options. Did you mean `meterProvider`\?/,
    ],
    [{ meterProvider: {} }, /Expected `meterProvider` to be an OpenTelemetry MeterProvider/],
    [
      { memoryStores: [new MemoryStore()] },
      /Expected `memoryStores` to be an object naming each MemoryStore.*Name each store/,
    ],
    [
      { memoryStores: { api: { size: '3' } } },
      /Expected `memoryStores.api` to be a MemoryStore \(with a numeric `size`\)/,
    ],
  ])('%o is a ConfigError', (options, message) => {
    let thrown: unknown;
    try {
      instrument(options as never);
    } catch (error) {
      thrown = error;
    }
    expect(isConfigError(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(message);
  });
});

test('stop() unsubscribes (and may be called twice); nothing listens before or after', async () => {
  const { meterProvider, collect } = provider();
  expect(hasSubscribers(DECISION_CHANNEL)).toBe(false);
  const instrumentation = instrument({ meterProvider });
  expect([hasSubscribers(DECISION_CHANNEL), hasSubscribers(STORE_CALL_CHANNEL)]).toEqual([true, true]);
  const limiter = createLimiter({ name: 'unit', policies: { name: 'p', limit: 1, window: '1m' } });
  await limiter.consume('k');
  await limiter.consume('k');
  const counts = async () =>
    (await collect())
      .find((m) => m.descriptor.name === 'tollgate.decisions')
      ?.dataPoints.map((p) => [p.attributes['tollgate.result'], p.value]);
  expect(await counts()).toEqual([
    ['allowed', 1],
    ['limited', 1],
  ]);
  instrumentation.stop();
  instrumentation.stop();
  expect([hasSubscribers(DECISION_CHANNEL), hasSubscribers(STORE_CALL_CHANNEL)]).toEqual([false, false]);
  await limiter.consume('k');
  // Not counted: the cumulative series keeps its last value.
  expect(await counts()).toEqual([
    ['allowed', 1],
    ['limited', 1],
  ]);
  await meterProvider.shutdown();
});

test('the gauge reports each named MemoryStore, and no gauge without stores', async () => {
  const { meterProvider, collect } = provider();
  const store = new MemoryStore();
  const limiter = createLimiter({ store, policies: { limit: 5, window: '1m' } });
  for (const key of ['a', 'b', 'c']) await limiter.consume(key);
  const instrumentation = instrument({ meterProvider, memoryStores: { api: store } });
  const gauge = (await collect()).find((m) => m.descriptor.name === 'tollgate.memory_store.keys');
  expect(gauge?.dataPoints.map((p) => [p.attributes, p.value])).toEqual([[{ 'tollgate.store': 'api' }, 3]]);
  instrumentation.stop();
  await meterProvider.shutdown();

  const other = provider();
  const none = instrument({ meterProvider: other.meterProvider });
  await createLimiter({ policies: { limit: 1, window: '1s' } }).consume('x');
  expect((await other.collect()).map((m) => m.descriptor.name)).toEqual([
    'tollgate.decisions',
    'tollgate.store.duration',
  ]);
  none.stop();
  await other.meterProvider.shutdown();
});
