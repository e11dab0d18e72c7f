import { Warner, type WarningCode } from '../warnings.js';

/**
 * Warning codes of the HTTP layer beyond the core's `WARNINGS`. Like those, each is logged once per
 * limiter through its `logger`.
 */
export const HTTP_WARNINGS = {
  /**
   * The app trusts every hop of `X-Forwarded-For` (Express `trust proxy: true`, Koa `proxy` with
   * `maxIpsCount` 0), so any client can claim any address and get a fresh bucket per request.
   */
  PERMISSIVE_TRUST_PROXY: 'TOLLGATE_PERMISSIVE_TRUST_PROXY',
  /**
   * A `policies` function returned new objects equal to earlier ones: each is validated again on
   * every request. Define tier policies once, outside the function.
   */
  UNSTABLE_POLICIES: 'TOLLGATE_UNSTABLE_POLICIES',
  /** The response had started before the limiter decided: it could set no headers and send no 429. */
  HEADERS_SENT: 'TOLLGATE_HEADERS_SENT',
} as const;

export type HttpWarningCode = (typeof HTTP_WARNINGS)[keyof typeof HTTP_WARNINGS];

/** A Warner that also takes the HTTP layer's codes. */
export class HttpWarner extends Warner {
  override warn(code: WarningCode | HttpWarningCode, message: string): void {
    super.warn(code as WarningCode, message);
  }
}
