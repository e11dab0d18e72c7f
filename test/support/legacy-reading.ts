// One `X-RateLimit-*` answer as the client reads it (no window stated, the reset an epoch instant in
// whole seconds): the Quota tests that feed a legacy quota by hand share it.
import type { QuotaReading } from '../../packages/client/src/read-headers.js';

export const legacyReading = (limit: number, remaining: number, resetMs: number): QuotaReading => ({
  key: 'legacy:',
  unit: 'requests',
  limit,
  remaining,
  reset: { server: resetMs, grain: 1000 },
  windowMs: undefined,
});
