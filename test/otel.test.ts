/**
 * Issue 14 acceptance for `@tollgate/otel`: a real OpenTelemetry SDK `MeterProvider` with two
 * readers, an in-memory exporter and a real Prometheus exporter scraped over HTTP and parsed, shows
 * the exact counts of a scripted run on Express and on Koa: allowed and limited requests on Redis,
 * `store_error` while that Redis is killed, and `fallback` on a limiter with a MemoryStore fallback.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { createLimiter, MemoryStore, type Policy } from '@tollgate/core';
import * as forExpress from '@tollgate/express';
import * as forKoa from '@tollgate/koa';
import { instrument } from '@tollgate/otel';
import { RedisStore } from '@tollgate/redis';
import express from 'express';
import { Redis } from 'ioredis';
import Koa from 'koa';
import { describe, expect, test } from 'vitest';
import { findFreePort, startRedis } from './support/redis-servers.ts';

const quiet = { warn: () => undefined, error: () => undefined };
const API: Policy = { name: 'per-minute', limit: 2, window: '1m' };
const SEARCH: Policy = { name: 'search-burst', limit: 2, window: '1m' };

interface Limiters {
  store: RedisStore;
  fallback: MemoryStore;
}

/** Two limiters on one Redis: `api` fails open, `search` falls back to a MemoryStore. */
function expressApp({ store, fallback }: Limiters) {
  const app = express();
  // A probe interval longer than the run: while Redis is down, exactly one call per limiter tries it.
  const common = { store, probeIntervalMs: '1m', logger: quiet } as const;
  const user = (req: express.Request) => `user:${String(req.query.user)}`;
  app.get('/api', forExpress.rateLimit({ ...common, name: 'api', policies: API, key: user }), (_req, res) => {
    res.send('ok');
  });
  app.get(
    '/search',
    forExpress.rateLimit({ ...common, name: 'search', policies: SEARCH, key: user, fallback }),
    (_req, res) => void res.send('ok'),
  );
  return app.listen(0, '127.0.0.1');
}

function koaApp({ store, fallback }: Limiters) {
  const app = new Koa();
  const common = { store, probeIntervalMs: '1m', logger: quiet } as const;
  const user = (ctx: Koa.Context) => `user:${String(ctx.query.user)}`;
  const api = forKoa.rateLimit({ ...common, name: 'api', policies: API, key: user });
  const search = forKoa.rateLimit({ ...common, name: 'search', policies: SEARCH, key: user, fallback });
  app.use(async (ctx, next) => {
    const limit = ctx.path === '/api' ? api : search;
    await limit(ctx, async () => {
      ctx.body = 'ok';
      await next();
    });
  });
  return app.listen(0, '127.0.0.1');
}

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the exposition format (version 0.0.4) line by line; comments and blank lines skipped. */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** `name{labels} value` for every sample of the named metrics, sorted: one string to compare. */
function render(samples: Sample[], names: string[]): string[] {
  return samples
    .filter((s) => names.includes(s.name))
    .map((s) => {
      const labels = Object.entries(s.labels)
        .filter(([key]) => key !== 'otel_scope_name' && key !== 'otel_scope_version')
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, value]) => `${key}=${value}`)
        .join(',');
      return `${s.name}{${labels}} ${s.value}`;
    })
    .sort();
}

const EXPECTED_DECISIONS = [
  'tollgate.limiter=api tollgate.policy=per-minute tollgate.result=allowed 2',
  'tollgate.limiter=api tollgate.policy=per-minute tollgate.result=limited 1',
  'tollgate.limiter=api tollgate.policy=per-minute tollgate.result=store_error 2',
  'tollgate.limiter=search tollgate.policy=search-burst tollgate.result=allowed 1',
  'tollgate.limiter=search tollgate.policy=search-burst tollgate.result=fallback 3',
];
// One store call per request while Redis is up; one failed call per limiter once it is killed (the
// others skip it until the probe interval passes). The fallback's calls are not the store's.
const EXPECTED_CALLS = [
  'tollgate.limiter=api tollgate.operation=consume tollgate.outcome=error 1',
  'tollgate.limiter=api tollgate.operation=consume tollgate.outcome=ok 3',
  'tollgate.limiter=search tollgate.operation=consume tollgate.outcome=error 1',
  'tollgate.limiter=search tollgate.operation=consume tollgate.outcome=ok 1',
];

describe.each([
  ['Express', expressApp],
  ['Koa', koaApp],
] as const)('@tollgate/otel on %s', (_framework, start) => {
  test('the in-memory exporter and a Prometheus scrape count the scripted run exactly', async ({
    onTestFinished,
  }) => {
    const redis = await startRedis();
    onTestFinished(() => redis.stop());
    const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    onTestFinished(() => client.disconnect());
    const prefix = `otel-${crypto.randomUUID()}:`;
    const store = new RedisStore({ client, prefix, timeoutMs: 300 });
    const fallback = new MemoryStore();
    onTestFinished(() => fallback.close());

    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const prometheusPort = await findFreePort();
    const prometheus = new PrometheusExporter({
      host: '127.0.0.1',
      port: prometheusPort,
      preventServerStart: true,
    });
    await prometheus.startServer();
    const meterProvider = new MeterProvider({ readers: [reader, prometheus] });
    onTestFinished(() => meterProvider.shutdown());
    const instrumentation = instrument({ meterProvider, memoryStores: { 'search-fallback': fallback } });
    onTestFinished(() => instrumentation.stop());

    const server: Server = start({ store, fallback });
    onTestFinished(() => void server.close());
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const statuses = async (path: string, times: number) => {
      const got: number[] = [];
      for (let i = 0; i < times; i++) got.push((await fetch(`${base}${path}`)).status);
      return got;
    };

    // Redis up: api allows two and limits the third; search allows one.
    expect(await statuses('/api?user=ann', 3)).toEqual([200, 200, 429]);
    expect(await statuses('/search?user=ann', 1)).toEqual([200]);
    await redis.kill();
    // Redis down: api fails open (store_error); search's fallback counts from zero: 2, then 429.
    expect(await statuses('/api?user=bob', 2)).toEqual([200, 200]);
    expect(await statuses('/search?user=ann', 3)).toEqual([200, 200, 429]);

    // The in-memory exporter.
    await reader.forceFlush();
    const exported = exporter
      .getMetrics()
      .at(-1)!
      .scopeMetrics.flatMap((scope) => scope.metrics);
    const points = (name: string) => exported.find((m) => m.descriptor.name === name)?.dataPoints ?? [];
    const line = (point: DataPoint<unknown>, value: number) =>
      `${Object.entries(point.attributes)
        .map(([key, v]) => `${key}=${String(v)}`)
        .sort()
        .join(' ')} ${value}`;
    expect(
      points('tollgate.decisions')
        .map((p) => line(p, p.value as number))
        .sort(),
    ).toEqual(EXPECTED_DECISIONS);
    const calls = points('tollgate.store.duration') as DataPoint<Histogram>[];
    expect(calls.map((p) => line(p, p.value.count)).sort()).toEqual(EXPECTED_CALLS);
    for (const point of calls) {
      expect(point.value.sum).toBeGreaterThan(0);
      // A failed call is at most the store's timeout (300 ms) and then some on a loaded machine.
      expect(point.value.max).toBeLessThan(2);
    }
    const keys = points('tollgate.memory_store.keys');
    expect(keys.map((p) => line(p, p.value as number))).toEqual(['tollgate.store=search-fallback 1']);
    expect(exported.find((m) => m.descriptor.name === 'tollgate.store.duration')?.descriptor.unit).toBe('s');

    // The Prometheus endpoint, scraped over HTTP.
    const scrape = await fetch(`http://127.0.0.1:${prometheusPort}/metrics`);
    expect(scrape.status).toBe(200);
    const samples = parsePrometheus(await scrape.text());
    const asPrometheus = (lines: string[], name: string) =>
      lines
        .map((l) => {
          const parts = l.split(' ');
          const value = parts.pop()!;
          const labels = parts.map((p) => p.replace(/^tollgate\./, 'tollgate_'));
          return `${name}{${labels.sort().join(',')}} ${value}`;
        })
        .sort();
    expect(render(samples, ['tollgate_decisions_total'])).toEqual(
      asPrometheus(EXPECTED_DECISIONS, 'tollgate_decisions_total'),
    );
    expect(render(samples, ['tollgate_store_duration_count'])).toEqual(
      asPrometheus(EXPECTED_CALLS, 'tollgate_store_duration_count'),
    );
    // The buckets are in seconds: every call of this run (at most the 300 ms timeout) is under 2.5 s.
    const infinite = render(samples, ['tollgate_store_duration_bucket']).filter((l) => l.includes('le=+Inf'));
    const under = render(samples, ['tollgate_store_duration_bucket']).filter((l) => l.includes('le=2.5,'));
    expect(infinite).toHaveLength(4);
    expect(under.map((l) => l.replace('le=2.5,', ''))).toEqual(
      infinite.map((l) => l.replace('le=+Inf,', '')),
    );
    expect(render(samples, ['tollgate_memory_store_keys'])).toEqual([
      'tollgate_memory_store_keys{tollgate_store=search-fallback} 1',
    ]);
    // Keys never reach a label.
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.includes('user:')))).toBe(false);

    // Stopped: later decisions are not counted.
    instrumentation.stop();
    await statuses('/search?user=cid', 1);
    await reader.forceFlush();
    const after = exporter
      .getMetrics()
      .at(-1)!
      .scopeMetrics.flatMap((scope) => scope.metrics);
    const total = (after.find((m) => m.descriptor.name === 'tollgate.decisions')?.dataPoints ?? []).reduce(
      (sum, p) => sum + (p.value as number),
      0,
    );
    expect(total).toBe(9);
  });
});

/** One OTLP/HTTP JSON data point, as the exporter sends it. */
interface OtlpPoint {
  attributes: { key: string; value: { stringValue?: string } }[];
  asInt?: string | number;
}

test("the README's OTLP wiring: an OTLP/HTTP exporter posts the counts to a collector", async ({
  onTestFinished,
}) => {
  // A collector's /v1/metrics endpoint: it keeps what it is sent.
  const bodies: unknown[] = [];
  const collector = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      bodies.push({ path: req.url, type: req.headers['content-type'], body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  }).listen(0, '127.0.0.1');
  onTestFinished(() => void collector.close());
  await new Promise((resolve) => collector.once('listening', resolve));
  const url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/metrics`;

  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url }),
    exportIntervalMillis: 3_600_000,
  });
  const meterProvider = new MeterProvider({ readers: [reader] });
  onTestFinished(() => meterProvider.shutdown());
  const instrumentation = instrument({ meterProvider });
  onTestFinished(() => instrumentation.stop());

  const limiter = createLimiter({ name: 'otlp', policies: { name: 'two', limit: 2, window: '1m' } });
  for (let i = 0; i < 5; i++) await limiter.consume('ip:10.0.0.9');
  await reader.forceFlush();

  expect(bodies).toHaveLength(1);
  const [sent] = bodies as { path: string; type: string; body: { resourceMetrics: unknown[] } }[];
  expect([sent!.path, sent!.type]).toEqual(['/v1/metrics', 'application/json']);
  const metrics = (
    sent!.body.resourceMetrics as {
      scopeMetrics: { metrics: { name: string; sum?: { dataPoints: OtlpPoint[] } }[] }[];
    }[]
  ).flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  const decisions = metrics.find((m) => m.name === 'tollgate.decisions')!.sum!.dataPoints;
  const rows = decisions
    .map(
      (p) =>
        `${p.attributes
          .map((a) => `${a.key}=${a.value.stringValue}`)
          .sort()
          .join(' ')} ${Number(p.asInt)}`,
    )
    .sort();
  expect(rows).toEqual([
    'tollgate.limiter=otlp tollgate.policy=two tollgate.result=allowed 2',
    'tollgate.limiter=otlp tollgate.policy=two tollgate.result=limited 3',
  ]);
  expect(metrics.map((m) => m.name).sort()).toEqual(['tollgate.decisions', 'tollgate.store.duration']);
});
