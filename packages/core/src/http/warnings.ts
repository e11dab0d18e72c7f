import { WARNINGS, Warner } from '../warnings.js';

/** The warning codes that only the HTTP layer raises (all are also in `WARNINGS`). */
export const HTTP_WARNINGS = {
  PERMISSIVE_TRUST_PROXY: WARNINGS.PERMISSIVE_TRUST_PROXY,
  UNSTABLE_POLICIES: WARNINGS.UNSTABLE_POLICIES,
  HEADERS_SENT: WARNINGS.HEADERS_SENT,
  INVALID_IP: WARNINGS.INVALID_IP,
} as const;

export type HttpWarningCode = (typeof HTTP_WARNINGS)[keyof typeof HTTP_WARNINGS];

/** The Warner of the HTTP layer (kept as a name for its users; every code is a core code). */
export class HttpWarner extends Warner {}
