import { createHmac, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/app-config';
import { DownloadUrlSigner, listeningBaseUrl } from './download-url';

const SECRET = 'download-secret-0123456789abcdef0123456789';
const ID = '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23';

describe('DownloadUrlSigner', () => {
  const signer = new DownloadUrlSigner(SECRET);
  const now = Date.UTC(2026, 10, 20, 8, 0, 0);
  const expires = now / 1000 + 3600;

  it('builds <base>/downloads/<id>?expires&signature and accepts its own URL until it expires', () => {
    const url = new URL(signer.url('https://images.hcm.test/api', { imageId: ID, expires }));
    expect(url.origin + url.pathname).toBe(`https://images.hcm.test/api/downloads/${ID}`);
    expect(url.searchParams.get('expires')).toBe(String(expires));
    const sig = url.searchParams.get('signature')!;
    expect(sig).toMatch(/^[0-9a-f]{64}$/);
    expect(() => signer.verify({ imageId: ID, expires }, sig, now)).not.toThrow();
    expect(() => signer.verify({ imageId: ID, expires }, sig, expires * 1000 - 1)).not.toThrow();
    expect(() => signer.verify({ imageId: ID, expires }, sig, expires * 1000)).toThrow(expect.objectContaining({ code: 'DOWNLOAD_URL_EXPIRED' }));
  });

  it('refuses another id, another expiry, another key and anything that is not the signature as DOWNLOAD_URL_INVALID', () => {
    const sig = signer.sign({ imageId: ID, expires });
    const invalid = expect.objectContaining({ code: 'DOWNLOAD_URL_INVALID', status: 403 });
    expect(() => signer.verify({ imageId: ID.replace('0b7e', '0b7f'), expires }, sig, now)).toThrow(invalid);
    // an altered expiry is invalid, not merely expired or extended
    expect(() => signer.verify({ imageId: ID, expires: expires + 1 }, sig, now)).toThrow(invalid);
    expect(() => signer.verify({ imageId: ID, expires: expires - 7200 }, sig, now)).toThrow(invalid);
    expect(() => new DownloadUrlSigner(`${SECRET}x`).verify({ imageId: ID, expires }, sig, now)).toThrow(invalid);
    for (const bad of ['', sig.toUpperCase(), sig.slice(0, 63), `${sig}00`, 'z'.repeat(64)]) {
      expect(() => signer.verify({ imageId: ID, expires }, bad, now)).toThrow(invalid);
    }
  });

  it('never signs with the secret itself, and without a secret signs nothing and accepts nothing', () => {
    const sig = signer.sign({ imageId: ID, expires });
    expect(sig).not.toBe(createHmac('sha256', SECRET).update(`download\n${ID}\n${expires}`).digest('hex'));
    const none = new DownloadUrlSigner(undefined);
    expect(() => none.sign({ imageId: ID, expires })).toThrow(/no download URL secret/);
    expect(() => none.verify({ imageId: ID, expires }, sig, now)).toThrow(expect.objectContaining({ code: 'DOWNLOAD_URL_INVALID' }));
  });
});

describe('VM link settings', () => {
  const base = { DB_TYPE: 'sqlite', DB_PATH: ':memory:', AUTH_JWT_SECRET: 'j'.repeat(32) };

  it('defaults: URLs for an hour, launches reserved for an hour, the JWT secret as key material, the request host', () => {
    expect(loadConfig(base).vmLinks).toEqual({
      downloadUrlTtlSeconds: 3600,
      downloadUrlSecret: 'j'.repeat(32),
      publicBaseUrl: undefined,
      launchReservationTtlSeconds: 3600,
    });
  });

  it('reads DOWNLOAD_URL_*, PUBLIC_BASE_URL (trailing slashes dropped) and LAUNCH_RESERVATION_TTL_SECONDS', () => {
    const cfg = loadConfig({
      ...base,
      DOWNLOAD_URL_TTL_SECONDS: '600',
      DOWNLOAD_URL_SECRET: SECRET,
      PUBLIC_BASE_URL: 'https://images.hcm.test:8443/api/',
      LAUNCH_RESERVATION_TTL_SECONDS: '7200',
    });
    expect(cfg.vmLinks).toEqual({
      downloadUrlTtlSeconds: 600,
      downloadUrlSecret: SECRET,
      publicBaseUrl: 'https://images.hcm.test:8443/api',
      launchReservationTtlSeconds: 7200,
    });
  });

  it('names every bad key', () => {
    const bad = () =>
      loadConfig({
        ...base,
        DOWNLOAD_URL_TTL_SECONDS: '10',
        DOWNLOAD_URL_SECRET: 'short',
        PUBLIC_BASE_URL: 'images.hcm.test',
        LAUNCH_RESERVATION_TTL_SECONDS: 'x',
      });
    expect(bad).toThrow(/DOWNLOAD_URL_TTL_SECONDS/);
    expect(bad).toThrow(/DOWNLOAD_URL_SECRET=\(hidden\)/);
    expect(bad).toThrow(/PUBLIC_BASE_URL/);
    expect(bad).toThrow(/LAUNCH_RESERVATION_TTL_SECONDS/);
    expect(() => loadConfig({ ...base, PUBLIC_BASE_URL: 'https://images.hcm.test/?x=1' })).toThrow(/PUBLIC_BASE_URL/);
  });

  it('requires PUBLIC_BASE_URL in the platform shape (DB_TYPE mariadb/mysql or STORAGE_DRIVER minio), naming it', () => {
    const minio = { STORAGE_DRIVER: 'minio', MINIO_ENDPOINT: '127.0.0.1', MINIO_ACCESS_KEY: 'a', MINIO_SECRET_KEY: 'b' };
    for (const env of [
      { ...base, DB_TYPE: 'mariadb' },
      { ...base, DB_TYPE: 'mysql' },
      { ...base, ...minio },
    ]) {
      expect(() => loadConfig(env)).toThrow(/PUBLIC_BASE_URL: required when DB_TYPE is mariadb\/mysql or STORAGE_DRIVER is minio/);
      expect(loadConfig({ ...env, PUBLIC_BASE_URL: 'https://images.hcm.test/' }).vmLinks.publicBaseUrl).toBe('https://images.hcm.test');
    }
    // the embedded shape (SQLite and the filesystem store) needs none
    expect(loadConfig(base).vmLinks.publicBaseUrl).toBeUndefined();
  });

  it('without PUBLIC_BASE_URL the embedded shape names the listening address, never a request header', () => {
    const cfg = { host: '0.0.0.0', port: 3000 };
    expect(listeningBaseUrl(null, cfg)).toBe('http://127.0.0.1:3000');
    expect(listeningBaseUrl(undefined, { host: '10.0.0.5', port: 8080 })).toBe('http://10.0.0.5:8080');
    expect(listeningBaseUrl({ address: '0.0.0.0', port: 41000 }, cfg)).toBe('http://127.0.0.1:41000');
    expect(listeningBaseUrl({ address: '::', port: 41000 }, cfg)).toBe('http://localhost:41000');
    expect(listeningBaseUrl({ address: '127.0.0.1', port: 41001 }, cfg)).toBe('http://127.0.0.1:41001');
    expect(listeningBaseUrl({ address: '::1', port: 41002 }, cfg)).toBe('http://[::1]:41002');
    // a unix socket has no URL: the configured address
    expect(listeningBaseUrl('/run/hcm.sock', cfg)).toBe('http://127.0.0.1:3000');
  });

  it('wants DOWNLOAD_URL_SECRET when only RS256 tokens are configured and the filesystem store serves the bytes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcm-vmlinks-cfg-'));
    try {
      const pem = join(dir, 'jwt.pub');
      writeFileSync(pem, generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }));
      const rs256 = { DB_TYPE: 'mariadb', AUTH_JWT_PUBLIC_KEY_FILE: pem, DATA_DIR: dir, PUBLIC_BASE_URL: 'https://images.hcm.test' };
      expect(() => loadConfig(rs256)).toThrow(/DOWNLOAD_URL_SECRET: required with STORAGE_DRIVER=fs/);
      expect(loadConfig({ ...rs256, DOWNLOAD_URL_SECRET: SECRET }).vmLinks.downloadUrlSecret).toBe(SECRET);
      const minio = { STORAGE_DRIVER: 'minio', MINIO_ENDPOINT: '127.0.0.1', MINIO_ACCESS_KEY: 'a', MINIO_SECRET_KEY: 'b' };
      expect(loadConfig({ ...rs256, ...minio }).vmLinks.downloadUrlSecret).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
