import { createPublicKey, KeyObject } from 'node:crypto';
import { createLocalJWKSet } from 'jose';
import type { JSONWebKeySet } from 'jose';

/**
 * Checks of verification keys that need no feature module: config/ runs them at start-up (AUTH_JWT_PUBLIC_KEY,
 * AUTH_JWKS_FILE) and access/jwt uses them when it loads keys. They live in common/ so config/ imports no feature.
 */

/** The algorithm a PEM public key signs with. */
export function algOfKey(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'ec':
      if (key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
      throw new Error('only P-256 EC keys (ES256) are accepted');
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new Error(`key type ${String(key.asymmetricKeyType)} is not accepted (RSA, EC P-256 or Ed25519)`);
  }
}

/** Checks that a PEM text is a public key verify() can use; returns why not, or undefined. */
export function pemKeyProblem(pem: string): string | undefined {
  try {
    algOfKey(createPublicKey(pem));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Checks the shape of a JWKS document; returns why it is not one, or undefined. */
export function jwksProblem(doc: unknown): string | undefined {
  if (!doc || typeof doc !== 'object' || !Array.isArray((doc as JSONWebKeySet).keys)) return 'not a JWKS ({"keys": [...]})';
  try {
    createLocalJWKSet(doc as JSONWebKeySet);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}
