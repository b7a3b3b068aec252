import { createHmac, createPublicKey, createVerify, KeyObject, timingSafeEqual } from 'node:crypto';
import { AuthConfig } from '../config/app-config';
import { AppError } from '../common/errors';
import { Principal, Role } from './principal';

const ROLES = new Set<string>(Object.values(Role));
const ID = /^[A-Za-z0-9._:@-]{1,64}$/;

const b64url = (buf: Buffer | string) => Buffer.from(buf).toString('base64url');

export interface TokenClaims {
  sub: string;
  name?: string;
  dept: string;
  role: Role | string;
  iat?: number;
  exp?: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
}

/** Signs an HS256 token (used by `npm run token` and the tests). */
export function signToken(claims: TokenClaims, secret: string, ttlSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const body = { iat: now, exp: now + ttlSeconds, ...claims };
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(body));
  const sig = createHmac('sha256', secret).update(`${head}.${payload}`).digest('base64url');
  return `${head}.${payload}.${sig}`;
}

const invalid = (why: string) => new AppError('AUTH_TOKEN_INVALID', `Invalid token: ${why}`);

/** Verifies HS256 (shared secret) or RS256 (configured public key) tokens and returns the principal. */
export class JwtVerifier {
  private readonly publicKey?: KeyObject;

  constructor(private readonly cfg: AuthConfig) {
    if (cfg.publicKey) this.publicKey = createPublicKey(cfg.publicKey);
  }

  verify(token: string): Principal {
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw invalid('not a JWT');
    const [h, p, s] = parts;
    let header: { alg?: string };
    let claims: TokenClaims;
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    } catch {
      throw invalid('undecodable header or payload');
    }
    if (!header || typeof header !== 'object' || !claims || typeof claims !== 'object') throw invalid('undecodable');
    const signed = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, 'base64url');
    if (header.alg === 'HS256' && this.cfg.secret) {
      const expected = createHmac('sha256', this.cfg.secret).update(signed).digest();
      if (sig.length !== expected.length || !timingSafeEqual(sig, expected)) throw invalid('bad signature');
    } else if (header.alg === 'RS256' && this.publicKey) {
      const ok = createVerify('RSA-SHA256').update(signed).verify(this.publicKey, sig);
      if (!ok) throw invalid('bad signature');
    } else {
      throw invalid(`algorithm ${String(header.alg)} not accepted`);
    }
    const now = Math.floor(Date.now() / 1000);
    const skew = this.cfg.clockSkewSeconds;
    if (claims.exp === undefined || typeof claims.exp !== 'number') throw invalid('no exp claim');
    if (now - skew >= claims.exp) throw new AppError('AUTH_TOKEN_EXPIRED', 'The token has expired');
    if (typeof claims.nbf === 'number' && now + skew < claims.nbf) throw invalid('not valid yet');
    if (this.cfg.issuer && claims.iss !== this.cfg.issuer) throw invalid('wrong issuer');
    if (this.cfg.audience) {
      const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
      if (!aud.includes(this.cfg.audience)) throw invalid('wrong audience');
    }
    if (typeof claims.sub !== 'string' || !ID.test(claims.sub)) throw invalid('sub must be an id of 1-64 characters [A-Za-z0-9._:@-]');
    if (typeof claims.dept !== 'string' || !ID.test(claims.dept)) throw invalid('dept must be an id of 1-64 characters');
    if (typeof claims.role !== 'string' || !ROLES.has(claims.role)) throw invalid(`role must be one of ${[...ROLES].join(', ')}`);
    const name = typeof claims.name === 'string' ? claims.name.slice(0, 128) : claims.sub;
    return { userId: claims.sub, name, departmentId: claims.dept, role: claims.role as Role };
  }
}
