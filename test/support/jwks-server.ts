import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';

export type KeyKind = 'rsa' | 'ec' | 'ed25519';
const ALG: Record<KeyKind, string> = { rsa: 'RS256', ec: 'ES256', ed25519: 'EdDSA' };

export interface SigningKey {
  kid: string;
  alg: string;
  publicKey: KeyObject;
  /** the public JWK as a JWKS lists it */
  jwk: Record<string, unknown>;
  /** a token with this key's kid, 1 h valid unless `claims.exp` says otherwise */
  sign: (claims: Record<string, unknown>, header?: Record<string, unknown>) => Promise<string>;
}

/** A key pair of an identity service: RS256, ES256 or EdDSA. */
export function signingKey(kind: KeyKind, kid: string): SigningKey {
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
    sign: (claims, header = {}) => {
      const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg, kid, ...header }).setIssuedAt();
      if (claims.exp === undefined) jwt.setExpirationTime('1h');
      return jwt.sign(privateKey);
    },
  };
}

/** A JWKS endpoint on 127.0.0.1 (real HTTP): the test sets its keys, counts its fetches, stops and restarts it. */
export class JwksServer {
  keys: SigningKey[] = [];
  fetches = 0;
  private server?: Server;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
