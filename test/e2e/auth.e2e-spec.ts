import { createHmac } from 'node:crypto';
import { signToken } from '../../src/access/jwt';
import { apiClient, reply } from '../support/api-client';
import { SHAPES, startApp, TEST_SECRET, TestApp } from '../support/app';

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
function handMade(header: object, claims: object, secret = TEST_SECRET): string {
  const unsigned = `${b64(header)}.${b64(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const good = { sub: 'u1', dept: 'd1', role: 'user', name: 'U One' };

describe.each(SHAPES)('authentication (%s)', (shape) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(shape, 'auth');
  });
  afterAll(() => t?.close());

  it.each([
    ['no header', undefined, 'AUTH_TOKEN_MISSING'],
    ['not bearer', 'Basic dTpw', 'AUTH_TOKEN_INVALID'],
    ['garbage', 'Bearer abc', 'AUTH_TOKEN_INVALID'],
    ['undecodable parts', 'Bearer a.b.c', 'AUTH_TOKEN_INVALID'],
    ['wrong secret', `Bearer ${signToken(good, 'another-secret-another-secret-000000')}`, 'AUTH_TOKEN_INVALID'],
    ['expired', `Bearer ${handMade({ alg: 'HS256' }, { ...good, exp: now() - 3600 })}`, 'AUTH_TOKEN_EXPIRED'],
    ['no exp', `Bearer ${handMade({ alg: 'HS256' }, good)}`, 'AUTH_TOKEN_INVALID'],
    ['alg none', `Bearer ${b64({ alg: 'none' })}.${b64({ ...good, exp: now() + 60 })}.`, 'AUTH_TOKEN_INVALID'],
    ['unknown role', `Bearer ${handMade({ alg: 'HS256' }, { ...good, role: 'root', exp: now() + 60 })}`, 'AUTH_TOKEN_INVALID'],
    ['missing dept', `Bearer ${handMade({ alg: 'HS256' }, { sub: 'u1', role: 'user', exp: now() + 60 })}`, 'AUTH_TOKEN_INVALID'],
    ['sub not a string', `Bearer ${handMade({ alg: 'HS256' }, { ...good, sub: 42, exp: now() + 60 })}`, 'AUTH_TOKEN_INVALID'],
    ['not yet valid', `Bearer ${handMade({ alg: 'HS256' }, { ...good, nbf: now() + 3600, exp: now() + 7200 })}`, 'AUTH_TOKEN_INVALID'],
  ])('refuses %s with 401', async (_what, header, code) => {
    // the typed client with no token of its own: each case sends its Authorization header (or none)
    const res = await reply((await apiClient(t)).GET('/images', header ? { headers: { Authorization: header } } : {}));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ code, message: expect.any(String), correlationId: expect.any(String) });
  });

  it('accepts a valid HS256 token', async () => {
    const res = await reply((await apiClient(t)).GET('/images', { headers: { Authorization: `Bearer ${signToken(good, TEST_SECRET)}` } }));
    expect(res.status).toBe(200);
  });

  it('refuses zone changes from non-super-admins with 403 FORBIDDEN', async () => {
    const res = await reply(
      (await apiClient(t)).POST('/zones', {
        headers: { Authorization: `Bearer ${signToken({ ...good, role: 'admin' }, TEST_SECRET)}` },
        body: { name: 'z', hypervisor: 'KVM' },
      }),
    );
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN');
  });
});
