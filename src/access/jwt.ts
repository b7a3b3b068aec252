import { createHmac, createPublicKey, KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { CryptoKey, JSONWebKeySet, JWSHeaderParameters } from 'jose';
import type { AuthConfig } from '../config/app-config';
import { AppError } from '../common/errors';
import { algOfKey, jwksProblem, pemKeyProblem } from '../common/key-checks';
import { Principal, Role } from './principal';

const ROLES = new Set<string>(Object.values(Role));
const ID = /^[A-Za-z0-9._:@-]{1,64}$/;

const b64url = (buf: Buffer | string) => Buffer.from(buf).toString('base64url');

/** The asymmetric algorithms accepted from a PEM key or a JWKS (HS256 only ever with AUTH_JWT_SECRET). */
export const ASYMMETRIC_ALGS = ['RS256', 'ES256', 'EdDSA'] as const;

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
export { jwksProblem, pemKeyProblem };

export interface JwksStatus {
  /** successful loads of the key set (first one included) */
  loads: number;
  /** attempts to load it, successful or not */
  attempts: number;
  /** the last load's failure, cleared by the next success */
  lastError?: string;
  kids: string[];
}

/**
 * A JWKS from a URL or a file, cached in memory. It is loaded again on a schedule (`refreshSeconds`) and
 * when a token names a kid it does not hold, but never more than once per `cooldownSeconds`, and
 * concurrent requests share one load in flight: a flood of tokens with made-up kids costs one fetch per
 * cooldown. A failed load keeps the keys already held, so tokens signed with them keep working while the
 * JWKS server is down.
 */
export class KeySetCache {
  private local?: ReturnType<typeof createLocalJWKSet>;
  private kids: string[] = [];
  private lastAttempt = 0;
  private inFlight?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private readonly stats: JwksStatus = { loads: 0, attempts: 0, kids: [] };

  constructor(
    private readonly source: { url?: string; file?: string },
    private readonly opts: { refreshSeconds: number; cooldownSeconds: number; timeoutMs: number },
  ) {}

  get where(): string {
    return this.source.url ?? this.source.file ?? '?';
  }

  status(): JwksStatus {
    return { ...this.stats, kids: [...this.kids] };
  }

  /** Counts the loads of the set: a token verified under an earlier load is verified again (a key may be gone). */
  get generation(): number {
    return this.stats.loads;
  }

  /** Loads the set once and schedules the refreshes; a failure is kept in status(), not thrown. */
  async start(): Promise<void> {
    await this.refresh();
    if (!this.timer) {
      this.timer = setInterval(() => void this.refresh(true), this.opts.refreshSeconds * 1000);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Loads the set now unless a load is in flight (then waits for it) or the last one was within the cooldown. */
  refresh(force = false): Promise<void> {
    if (this.inFlight) return this.inFlight;
    if (!force && this.lastAttempt && Date.now() - this.lastAttempt < this.opts.cooldownSeconds * 1000) return Promise.resolve();
    this.lastAttempt = Date.now();
    this.stats.attempts++;
    this.inFlight = this.load()
      .then((doc) => {
        const why = jwksProblem(doc);
        if (why) throw new Error(why);
        this.local = createLocalJWKSet(doc as JSONWebKeySet);
        this.kids = (doc as JSONWebKeySet).keys.map((k) => k.kid).filter((k): k is string => typeof k === 'string');
        this.stats.loads++;
        this.stats.lastError = undefined;
      })
      .catch((e: unknown) => {
        this.stats.lastError = (e as Error).message;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }

  private async load(): Promise<unknown> {
    if (this.source.file) return JSON.parse(await readFile(this.source.file, 'utf8'));
    const res = await fetch(this.source.url as string, {
      signal: AbortSignal.timeout(this.opts.timeoutMs),
      headers: { accept: 'application/json' },
      redirect: 'error',
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return res.json();
  }

  /** The key for a token header; loads the set again (within the cooldown) when the kid is not known. */
  async key(header: JWSHeaderParameters): Promise<CryptoKey | Uint8Array> {
    const known = () => this.local !== undefined && (header.kid === undefined || this.kids.includes(header.kid));
    if (!known()) {
      await this.refresh();
      if (!known()) {
        const kid = header.kid === undefined ? 'a key' : `kid "${header.kid}"`;
        const why = this.stats.lastError
          ? `the key set at ${this.where} could not be loaded (${this.stats.lastError})`
          : `the key set at ${this.where} does not hold it (loaded again at most every ${this.opts.cooldownSeconds} s)`;
        throw invalid(`no signing key with ${kid}: ${why}`);
      }
    }
    try {
      return await (this.local as ReturnType<typeof createLocalJWKSet>)(header);
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey)
        throw invalid(`no key in the key set matches ${header.kid ? `kid "${header.kid}" and ` : ''}alg ${String(header.alg)}`);
      if (e instanceof joseErrors.JWKSMultipleMatchingKeys) throw invalid('the token names no kid and several keys match');
      throw e;
    }
  }
}

/**
 * Verifies tokens with jose: HS256 with the shared secret, RS256/ES256/EdDSA with a PEM public key or
 * a JWKS (URL or file, keys chosen by kid). exp is required; nbf, iss and aud are checked with the clock
 * skew; `alg: none` and any algorithm the configured keys cannot carry are refused, so an HS256 token
 * "signed" with a public key's bytes never verifies.
 */
/** How long, at most, a verified token is taken on its signature's word without checking it again. */
const VERIFIED_TTL_MS = 60_000;
/** Verified tokens remembered (the oldest goes first), and the longest token remembered: at most ~20 MB. */
const VERIFIED_MAX = 5000;
const VERIFIED_MAX_TOKEN = 4096;

export class JwtVerifier {
  /**
   * Tokens verified lately (a console sends the same one with every request, and the signature check was a
   * tenth of a list request's CPU, issue 16): the principal by the whole token string, kept at most
   * VERIFIED_TTL_MS and only while the JWKS is the one it was verified under; exp is checked on every use.
   */
  private readonly verified = new Map<string, { principal: Principal; exp: number; until: number; keys: number }>();
  private readonly secret?: Uint8Array;
  private readonly pem?: { key: KeyObject; alg: string };
  readonly jwks?: KeySetCache;
  private readonly algorithms: string[];

  constructor(private readonly cfg: AuthConfig) {
    if (cfg.secret) this.secret = new TextEncoder().encode(cfg.secret);
    if (cfg.publicKey) {
      const key = createPublicKey(cfg.publicKey);
      this.pem = { key, alg: algOfKey(key) };
    }
    if (cfg.jwks) {
      this.jwks = new KeySetCache(
        { url: cfg.jwks.url, file: cfg.jwks.file },
        { refreshSeconds: cfg.jwks.refreshSeconds, cooldownSeconds: cfg.jwks.cooldownSeconds, timeoutMs: cfg.jwks.timeoutMs },
      );
    }
    this.algorithms = [...(this.secret ? ['HS256'] : []), ...(this.pem ? [this.pem.alg] : []), ...(this.jwks ? ASYMMETRIC_ALGS : [])];
  }

  /** Loads the JWKS (if any) and schedules its refreshes. */
  start(): Promise<void> {
    return this.jwks?.start() ?? Promise.resolve();
  }

  stop(): void {
    this.jwks?.stop();
  }

  private async keyFor(header: JWSHeaderParameters): Promise<CryptoKey | KeyObject | Uint8Array> {
    const alg = String(header.alg);
    if (alg === 'HS256' && this.secret) return this.secret;
    // a PEM key answers tokens without a kid (or when no JWKS is configured); a kid goes to the JWKS
    if (this.pem && alg === this.pem.alg && (header.kid === undefined || !this.jwks)) return this.pem.key;
    if (this.jwks && (ASYMMETRIC_ALGS as readonly string[]).includes(alg)) return this.jwks.key(header);
    throw invalid(`algorithm ${alg} not accepted`);
  }

  async verify(token: string): Promise<Principal> {
    const hit = this.verified.get(token);
    if (hit) {
      const now = Date.now();
      if (now < hit.until && hit.keys === (this.jwks?.generation ?? 0)) {
        // jose's rule: expired once exp <= now - tolerance (seconds)
        if (hit.exp <= Math.floor(now / 1000) - this.cfg.clockSkewSeconds) {
          this.verified.delete(token);
          throw new AppError('AUTH_TOKEN_EXPIRED', 'The token has expired');
        }
        return { ...hit.principal };
      }
      this.verified.delete(token);
    }
    const { principal, exp } = await this.verifyAnew(token);
    if (token.length <= VERIFIED_MAX_TOKEN && Number.isFinite(exp)) {
      if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value as string);
      this.verified.set(token, { principal: { ...principal }, exp, until: Date.now() + VERIFIED_TTL_MS, keys: this.jwks?.generation ?? 0 });
    }
    return principal;
  }

  private async verifyAnew(token: string): Promise<{ principal: Principal; exp: number }> {
    const parts = token.split('.');
    if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) throw invalid('not a JWT');
    let header: JWSHeaderParameters;
    try {
      header = decodeProtectedHeader(token) as JWSHeaderParameters;
    } catch {
      throw invalid('undecodable header');
    }
    if (!this.algorithms.includes(String(header.alg))) throw invalid(`algorithm ${String(header.alg)} not accepted`);
    let claims: TokenClaims;
    try {
      const key = await this.keyFor(header);
      const out = await jwtVerify(token, key, {
        algorithms: this.algorithms,
        clockTolerance: this.cfg.clockSkewSeconds,
        issuer: this.cfg.issuer,
        audience: this.cfg.audience,
        requiredClaims: ['exp'],
      });
      claims = out.payload as unknown as TokenClaims;
    } catch (e) {
      if (e instanceof AppError) throw e;
      if (e instanceof joseErrors.JWTExpired) throw new AppError('AUTH_TOKEN_EXPIRED', 'The token has expired');
      if (e instanceof joseErrors.JWTClaimValidationFailed) {
        if (e.claim === 'exp' && e.reason === 'missing') throw invalid('no exp claim');
        const why: Record<string, string> = { nbf: 'not valid yet', iss: 'wrong issuer', aud: 'wrong audience' };
        throw invalid(e.reason === 'check_failed' && why[e.claim] ? why[e.claim] : e.message);
      }
      if (e instanceof joseErrors.JWSSignatureVerificationFailed) throw invalid('bad signature');
      if (e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JWSInvalid) throw invalid('undecodable header or payload');
      throw invalid((e as Error).message);
    }
    if (typeof claims.sub !== 'string' || !ID.test(claims.sub)) throw invalid('sub must be an id of 1-64 characters [A-Za-z0-9._:@-]');
    if (typeof claims.dept !== 'string' || !ID.test(claims.dept)) throw invalid('dept must be an id of 1-64 characters');
    if (typeof claims.role !== 'string' || !ROLES.has(claims.role)) throw invalid(`role must be one of ${[...ROLES].join(', ')}`);
    const name = typeof claims.name === 'string' ? claims.name.slice(0, 128) : claims.sub;
    return { principal: { userId: claims.sub, name, departmentId: claims.dept, role: claims.role as Role }, exp: Number(claims.exp) };
  }
}
