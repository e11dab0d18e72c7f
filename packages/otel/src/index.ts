// `@tollgate/otel`: OpenTelemetry metrics from tollgate's events (issue 14).
export type { Instrumentation, InstrumentOptions } from './instrument.js';
export { instrument } from './instrument.js';
