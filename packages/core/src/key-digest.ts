import { createHash } from 'node:crypto';

/**
 * A key's SHA-256 digest, base64url (43 characters): how both stores hold a key too long (or, in
 * Redis, too strange) to keep as it is. A cryptographic hash, so nobody can make two keys share a
 * digest. utf16le encodes every JavaScript string losslessly, lone surrogates included (utf8 would
 * map all of them to U+FFFD and make distinct keys collide).
 */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf16le').digest('base64url');
}
