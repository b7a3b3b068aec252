import { createSign, generateKeyPairSync } from 'node:crypto';
import { AppError } from '../common/errors';
import { JwtVerifier, signToken } from './jwt';

const SECRET = 's'.repeat(40);
const cfg = { secret: SECRET, clockSkewSeconds: 30, generatedSecret: false };
const claims = { sub: 'u1', dept: 'd1', role: 'user', name: 'U' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as AppError).code;
  }
  return undefined;
}

describe('JwtVerifier', () => {
  it('returns the principal of a valid HS256 token', () => {
    expect(new JwtVerifier(cfg).verify(signToken(claims, SECRET))).toEqual({ userId: 'u1', name: 'U', departmentId: 'd1', role: 'user' });
  });

  it('accepts an expiry within the clock skew and refuses one past it', () => {
    const v = new JwtVerifier(cfg);
    expect(codeOf(() => v.verify(signToken(claims, SECRET, -10)))).toBeUndefined();
    expect(codeOf(() => v.verify(signToken(claims, SECRET, -31)))).toBe('AUTH_TOKEN_EXPIRED');
  });

  it('checks issuer and audience when configured', () => {
    const v = new JwtVerifier({ ...cfg, issuer: 'hcm-iam', audience: 'image-service' });
    expect(codeOf(() => v.verify(signToken({ ...claims, iss: 'hcm-iam', aud: ['x', 'image-service'] }, SECRET)))).toBeUndefined();
    expect(codeOf(() => v.verify(signToken({ ...claims, iss: 'other', aud: 'image-service' }, SECRET)))).toBe('AUTH_TOKEN_INVALID');
    expect(codeOf(() => v.verify(signToken({ ...claims, iss: 'hcm-iam', aud: 'other' }, SECRET)))).toBe('AUTH_TOKEN_INVALID');
  });

  it('verifies RS256 tokens with a configured public key, and refuses HS256 when no secret is set', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const v = new JwtVerifier({ publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), clockSkewSeconds: 0, generatedSecret: false });
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, exp: now + 60 })).toString('base64url')}`;
    const sig = createSign('RSA-SHA256').update(unsigned).sign(privateKey).toString('base64url');
    expect(v.verify(`${unsigned}.${sig}`).userId).toBe('u1');
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const bad = createSign('RSA-SHA256').update(unsigned).sign(other).toString('base64url');
    expect(codeOf(() => v.verify(`${unsigned}.${bad}`))).toBe('AUTH_TOKEN_INVALID');
    expect(codeOf(() => v.verify(signToken(claims, SECRET)))).toBe('AUTH_TOKEN_INVALID');
  });
});
