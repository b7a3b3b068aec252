import { createHmac } from 'node:crypto';
import { apiClient, reply } from '../support/api-client';
import { SHAPES, startApp, TestApp } from '../support/app';
import { JwksServer, signingKey } from '../support/jwks-server';

const good = { sub: 'u1', dept: 'd1', role: 'user', name: 'U One' };
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
/** JWKS only: no HS256 secret, so an HS256 token can only be a forgery */
const jwksOnly = (srv: JwksServer, cooldown: string) => ({
  AUTH_JWT_SECRET: '',
  AUTH_JWKS_URL: srv.url,
  AUTH_JWKS_COOLDOWN_SECONDS: cooldown,
  DOWNLOAD_URL_SECRET: 'download-secret-0123456789abcdef0123456789',
});

describe.each(SHAPES)('tokens checked against a JWKS (%s)', (shape) => {
  const srv = new JwksServer();
  const k1 = signingKey('rsa', 'rsa-1');
  const k2 = signingKey('ec', 'ec-2');
  const k3 = signingKey('ed25519', 'ed-3');
  let t: TestApp;
  const get = async (token: string) => reply((await apiClient(t)).GET('/images', { headers: { Authorization: `Bearer ${token}` } }));

  beforeAll(async () => {
    srv.keys = [k1];
    await srv.start();
    t = await startApp(shape, 'jwks', jwksOnly(srv, '0'));
  });
  afterAll(async () => {
    await t?.close();
    await srv.stop();
  });

  it('accepts a token signed by a published key, loaded once at start', async () => {
    expect(srv.fetches).toBe(1);
    expect((await get(await k1.sign(good))).status).toBe(200);
    expect(srv.fetches).toBe(1);
  });

  it.each([
    ['expired', () => k1.sign({ ...good, exp: now() - 3600 }), 'AUTH_TOKEN_EXPIRED'],
    ['no exp', async () => `${b64({ alg: 'RS256', kid: 'rsa-1' })}.${b64(good)}.${'A'.repeat(342)}`, 'AUTH_TOKEN_INVALID'],
    ['alg none', async () => `${b64({ alg: 'none', kid: 'rsa-1' })}.${b64({ ...good, exp: now() + 60 })}.`, 'AUTH_TOKEN_INVALID'],
    ['unknown role', () => k1.sign({ ...good, role: 'root' }), 'AUTH_TOKEN_INVALID'],
    ['missing dept', () => k1.sign({ sub: 'u1', role: 'user' }), 'AUTH_TOKEN_INVALID'],
    ['not yet valid', () => k1.sign({ ...good, nbf: now() + 3600, exp: now() + 7200 }), 'AUTH_TOKEN_INVALID'],
    ['a kid naming a published key, signed by another key', () => k2.sign(good, { kid: 'rsa-1', alg: 'ES256' }), 'AUTH_TOKEN_INVALID'],
  ])('refuses %s with 401', async (_what, make, code) => {
    const res = await get(await make());
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ code, message: expect.any(String), correlationId: expect.any(String) });
  });

  it('refuses alg confusion: an HS256 token whose HMAC key is the public key (PEM or JWK bytes)', async () => {
    for (const keyBytes of [k1.publicKey.export({ type: 'spki', format: 'pem' }).toString(), JSON.stringify(k1.jwk)]) {
      for (const header of [{ alg: 'HS256' }, { alg: 'HS256', kid: 'rsa-1' }]) {
        const unsigned = `${b64(header)}.${b64({ ...good, role: 'super_admin', exp: now() + 60 })}`;
        const res = await get(`${unsigned}.${createHmac('sha256', keyBytes).update(unsigned).digest('base64url')}`);
        expect(res.status).toBe(401);
        expect(res.body).toMatchObject({ code: 'AUTH_TOKEN_INVALID', message: 'Invalid token: algorithm HS256 not accepted' });
      }
    }
  });

  it('refuses an unknown kid with a 401 that says the key set does not hold it', async () => {
    const stranger = signingKey('ec', 'never-published');
    const res = await get(await stranger.sign(good));
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('AUTH_TOKEN_INVALID');
    expect(res.body.message).toMatch(/no signing key with kid "never-published": the key set at .* does not hold it/);
  });

  it('follows a rotation without a restart: a new kid loads the key set again', async () => {
    srv.keys = [k1, k2];
    expect((await get(await k2.sign(good))).status).toBe(200);
    srv.keys = [k2, k3];
    expect((await get(await k3.sign(good, { alg: 'EdDSA' }))).status).toBe(200);
    // the rotated-out key went with the load the new kid caused
    const res = await get(await k1.sign(good));
    expect(res.status).toBe(401);
    expect(res.body.message).toMatch(/kid "rsa-1"/);
  });

  it('with the JWKS server down, cached keys keep working and new kids get a 401 saying why', async () => {
    await srv.stop();
    expect((await get(await k2.sign(good))).status).toBe(200);
    expect((await get(await k3.sign(good))).status).toBe(200);
    const k4 = signingKey('rsa', 'rsa-4');
    const res = await get(await k4.sign(good));
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('AUTH_TOKEN_INVALID');
    expect(res.body.message).toMatch(/no signing key with kid "rsa-4": the key set at http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json could not be loaded/);
    // back up with the new key: the next token with that kid loads it
    srv.keys = [k2, k3, k4];
    await srv.start();
    expect((await get(await k4.sign(good))).status).toBe(200);
  });
});

describe('JWKS fetches under a flood of unknown kids', () => {
  const srv = new JwksServer();
  let t: TestApp;
  beforeAll(async () => {
    srv.keys = [signingKey('ec', 'only')];
    await srv.start();
    t = await startApp('sqlite', 'jwks_flood', jwksOnly(srv, '60'));
  });
  afterAll(async () => {
    await t?.close();
    await srv.stop();
  });

  it('loads the key set at most once per cooldown, however many concurrent requests name unknown kids', async () => {
    const before = srv.fetches;
    const tokens = await Promise.all(Array.from({ length: 40 }, (_, i) => signingKey('ec', `made-up-${i}`).sign(good)));
    const api = await apiClient(t);
    const res = await Promise.all(tokens.map((tk) => reply(api.GET('/images', { headers: { Authorization: `Bearer ${tk}` } }))));
    expect(res.map((r) => r.status)).toEqual(tokens.map(() => 401));
    expect(res[0].body.message).toMatch(/loaded again at most every 60 s/);
    expect(srv.fetches - before).toBeLessThanOrEqual(1);
  });
});
