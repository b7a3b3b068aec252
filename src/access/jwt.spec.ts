import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { AuthConfig } from '../config/app-config';
import { AppError } from '../common/errors';
import { Role } from '../common/principal';
import { JwtVerifier, signToken } from './jwt';

const SECRET = 's'.repeat(40);
const cfg: AuthConfig = { secret: SECRET, clockSkewSeconds: 30, generatedSecret: false };
const claims = { sub: 'u1', dept: 'd1', role: 'user', name: 'U' };

async function codeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (e) {
    return (e as AppError).code;
  }
  return undefined;
}
async function errorOf(fn: () => Promise<unknown>): Promise<AppError> {
  try {
    await fn();
  } catch (e) {
    return e as AppError;
  }
  throw new Error('did not throw');
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

type Kind = 'rsa' | 'ec' | 'ed25519';
const ALG: Record<Kind, string> = { rsa: 'RS256', ec: 'ES256', ed25519: 'EdDSA' };
function keyPair(kind: Kind, kid: string) {
  const { publicKey, privateKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : kind === 'ec'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const alg = ALG[kind];
  return {
    kid,
    alg,
    publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' },
    sign: (c: object = claims, header: Record<string, unknown> = {}) =>
      new SignJWT({ ...c })
        .setProtectedHeader({ alg, kid, ...header })
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey),
  };
}

describe('JwtVerifier', () => {
  it('returns the principal of a valid HS256 token', async () => {
    expect(await new JwtVerifier(cfg).verify(signToken(claims, SECRET))).toEqual({ userId: 'u1', name: 'U', departmentId: 'd1', role: 'user' });
  });

  it('accepts an expiry within the clock skew and refuses one past it', async () => {
    const v = new JwtVerifier(cfg);
    expect(await codeOf(() => v.verify(signToken(claims, SECRET, -10)))).toBeUndefined();
    expect(await codeOf(() => v.verify(signToken(claims, SECRET, -31)))).toBe('AUTH_TOKEN_EXPIRED');
  });

  it('remembers a verified token but still refuses it once it expires, and answers copies of its principal', async () => {
    const v = new JwtVerifier(cfg);
    const token = signToken(claims, SECRET, 2);
    const first = await v.verify(token);
    first.role = Role.SuperAdmin;
    // the second answer comes from the verified-token cache: an equal principal, not the one changed above
    expect(await v.verify(token)).toEqual({ userId: 'u1', name: 'U', departmentId: 'd1', role: 'user' });
    // 40 s later: past exp + the 30 s skew, within the cache's own 60 s
    // (only Date is faked: jose reads new Date(), the cache Date.now())
    const real = Date.now();
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask'] });
    jest.setSystemTime(real + 40_000);
    try {
      expect(await codeOf(() => v.verify(token))).toBe('AUTH_TOKEN_EXPIRED');
      // and again, now that the cache let it go: jose says the same
      expect(await codeOf(() => v.verify(token))).toBe('AUTH_TOKEN_EXPIRED');
    } finally {
      jest.useRealTimers();
    }
  });

  it('never takes a token that differs from a remembered one by a byte', async () => {
    const v = new JwtVerifier(cfg);
    const token = signToken(claims, SECRET);
    await v.verify(token);
    const [h, p, sig] = token.split('.');
    const forged = `${h}.${b64({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), role: 'super_admin' })}.${sig}`;
    expect(await codeOf(() => v.verify(forged))).toBe('AUTH_TOKEN_INVALID');
    const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'AB' : 'AA'}`;
    expect(await codeOf(() => v.verify(flipped))).toBe('AUTH_TOKEN_INVALID');
  });

  it('checks issuer and audience when configured', async () => {
    const v = new JwtVerifier({ ...cfg, issuer: 'hcm-iam', audience: 'image-service' });
    expect(await codeOf(() => v.verify(signToken({ ...claims, iss: 'hcm-iam', aud: ['x', 'image-service'] }, SECRET)))).toBeUndefined();
    expect(await codeOf(() => v.verify(signToken({ ...claims, iss: 'other', aud: 'image-service' }, SECRET)))).toBe('AUTH_TOKEN_INVALID');
    expect(await codeOf(() => v.verify(signToken({ ...claims, iss: 'hcm-iam', aud: 'other' }, SECRET)))).toBe('AUTH_TOKEN_INVALID');
  });

  it('verifies RS256 tokens with a configured public key, and refuses HS256 when no secret is set', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const v = new JwtVerifier({ publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), clockSkewSeconds: 0, generatedSecret: false });
    const unsigned = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ ...claims, exp: now() + 60 })}`;
    const sig = createSign('RSA-SHA256').update(unsigned).sign(privateKey).toString('base64url');
    expect((await v.verify(`${unsigned}.${sig}`)).userId).toBe('u1');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const bad = createSign('RSA-SHA256').update(unsigned).sign(other).toString('base64url');
    expect(await codeOf(() => v.verify(`${unsigned}.${bad}`))).toBe('AUTH_TOKEN_INVALID');
    expect(await codeOf(() => v.verify(signToken(claims, SECRET)))).toBe('AUTH_TOKEN_INVALID');
  });

  it.each(['ec', 'ed25519'] as const)('verifies %s tokens with a configured PEM public key', async (kind) => {
    const k = keyPair(kind, 'pem');
    const v = new JwtVerifier({ publicKey: k.publicKey.export({ type: 'spki', format: 'pem' }).toString(), clockSkewSeconds: 0, generatedSecret: false });
    expect((await v.verify(await k.sign(claims, { kid: undefined }))).role).toBe('user');
    const other = keyPair(kind, 'pem');
    expect(await codeOf(async () => v.verify(await other.sign(claims, { kid: undefined })))).toBe('AUTH_TOKEN_INVALID');
  });

  it('refuses alg none, an HS256 token signed with the public key bytes (alg confusion), and no exp', async () => {
    const k = keyPair('rsa', 'k1');
    const pem = k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const confused = (key: string) => {
      const unsigned = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...claims, exp: now() + 60 })}`;
      return `${unsigned}.${createHmac('sha256', key).update(unsigned).digest('base64url')}`;
    };
    for (const v of [
      new JwtVerifier({ publicKey: pem, clockSkewSeconds: 0, generatedSecret: false }),
      new JwtVerifier({ secret: SECRET, publicKey: pem, clockSkewSeconds: 0, generatedSecret: false }),
    ]) {
      expect(await codeOf(() => v.verify(confused(pem)))).toBe('AUTH_TOKEN_INVALID');
      expect(await codeOf(() => v.verify(`${b64({ alg: 'none' })}.${b64({ ...claims, exp: now() + 60 })}.`))).toBe('AUTH_TOKEN_INVALID');
    }
    const noExp = `${b64({ alg: 'HS256' })}.${b64(claims)}`;
    const e = await errorOf(() => new JwtVerifier(cfg).verify(`${noExp}.${createHmac('sha256', SECRET).update(noExp).digest('base64url')}`));
    expect(e.code).toBe('AUTH_TOKEN_INVALID');
    expect(e.message).toMatch(/no exp claim/);
  });

  it('chooses keys by kid from a JWKS file: RS256, ES256 and EdDSA', async () => {
    const keys = [keyPair('rsa', 'r1'), keyPair('ec', 'e1'), keyPair('ed25519', 'd1')];
    const dir = mkdtempSync(join(tmpdir(), 'hcm-jwks-'));
    try {
      const file = join(dir, 'jwks.json');
      writeFileSync(file, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
      const v = new JwtVerifier({ jwks: { file, refreshSeconds: 600, cooldownSeconds: 30, timeoutMs: 1000 }, clockSkewSeconds: 0, generatedSecret: false });
      await v.start();
      for (const k of keys) expect((await v.verify(await k.sign())).userId).toBe('u1');
      // a token naming one key's kid but signed by another key is refused
      const forged = await keys[1].sign(claims, { kid: 'r1' });
      expect(await codeOf(() => v.verify(forged))).toBe('AUTH_TOKEN_INVALID');
      v.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A JWKS server on 127.0.0.1 whose keys, availability and answer timing the test controls. */
class JwksServer {
  keys: object[] = [];
  fetches = 0;
  private hold?: Promise<void>;
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.fetches++;
      void (this.hold ?? Promise.resolve()).then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: this.keys }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/jwks.json`;
  }
  /** Answers wait until the returned function is called. */
  holdAnswers(): () => void {
    let release!: () => void;
    this.hold = new Promise<void>((r) => (release = r));
    return () => {
      this.hold = undefined;
      release();
    };
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('JwtVerifier with a JWKS URL', () => {
  let srv: JwksServer;
  const verifiers: JwtVerifier[] = [];
  const verifier = async (cooldownSeconds: number, refreshSeconds = 600) => {
    const v = new JwtVerifier({ jwks: { url: srv.url, refreshSeconds, cooldownSeconds, timeoutMs: 2000 }, clockSkewSeconds: 0, generatedSecret: false });
    verifiers.push(v);
    await v.start();
    return v;
  };
  beforeEach(async () => {
    srv = new JwksServer();
    await srv.start();
  });
  afterEach(async () => {
    verifiers.splice(0).forEach((v) => v.stop());
    await srv.close();
  });

  it('shares one fetch among concurrent tokens with unknown kids (cooldown 0)', async () => {
    const k1 = keyPair('ec', 'k1');
    srv.keys = [k1.jwk];
    const v = await verifier(0);
    expect(srv.fetches).toBe(1);
    const release = srv.holdAnswers();
    const strangers = await Promise.all(Array.from({ length: 40 }, (_, i) => keyPair('ec', `x${i}`).sign()));
    const results = Promise.all(strangers.map((t) => errorOf(() => v.verify(t))));
    await new Promise((r) => setImmediate(r));
    release();
    const errs = await results;
    expect(errs.every((e) => e.code === 'AUTH_TOKEN_INVALID' && /no signing key with kid "x\d+"/.test(e.message))).toBe(true);
    expect(srv.fetches).toBe(2);
    // the known key never needed a fetch
    expect((await v.verify(await k1.sign())).userId).toBe('u1');
    expect(srv.fetches).toBe(2);
  });

  it('fetches at most once per cooldown however many unknown kids arrive', async () => {
    srv.keys = [keyPair('rsa', 'k1').jwk];
    const v = await verifier(60);
    const stranger = keyPair('ec', 'nope');
    for (let i = 0; i < 20; i++) {
      const e = await errorOf(async () => v.verify(await stranger.sign()));
      expect(e.message).toMatch(/kid "nope".*does not hold it \(loaded again at most every 60 s\)/);
    }
    expect(srv.fetches).toBe(1);
  });

  // the same token string again (Ed25519 is deterministic, iat in the same second): the verified-token cache
  // must not keep it alive after the load that dropped its key
  it('refreshes on the schedule, so a key removed from the set stops working without a token naming a new kid', async () => {
    const k1 = keyPair('ed25519', 'k1');
    const k2 = keyPair('ed25519', 'k2');
    srv.keys = [k1.jwk, k2.jwk];
    const v = await verifier(60, 1);
    expect((await v.verify(await k1.sign())).userId).toBe('u1');
    srv.keys = [k2.jwk];
    const before = srv.fetches;
    // waits for the scheduled load (jest's timeout ends a wait that never ends)
    for (let i = 0; i < 400 && (srv.fetches === before || v.jwks!.status().kids.includes('k1')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(v.jwks!.status().kids).toEqual(['k2']);
    expect(await codeOf(async () => v.verify(await k1.sign()))).toBe('AUTH_TOKEN_INVALID');
    expect((await v.verify(await k2.sign())).userId).toBe('u1');
  });
});
