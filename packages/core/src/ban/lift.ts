import { keyDigest } from '../key-digest.js';
import type { PolicySet } from '../types.js';

/**
 * What names a lifted ban between processes (see `Store.onLift`): the SHA-256 (base64url) of the
 * set's id and the key. Every process computes the same one for the same limiter policies and key
 * (`set.id` is built from the namespace and the policies' values alone), and a user's key never
 * travels in clear.
 */
export function liftId(key: string, set: PolicySet): string {
  return keyDigest(`${set.id}\n${key}`);
}
