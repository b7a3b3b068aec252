import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAppConfig } from '../feature-configs';
import { ConfigError, loadConfig } from './app-config';

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the embedded default with no settings, generating and keeping a development secret', () => {
    const a = loadConfig({ DATA_DIR: dir });
    expect(a).toMatchObject({
      port: 3000,
      db: { type: 'sqlite', path: join(dir, 'hcm-images.sqlite') },
      seedDefaultZone: true,
      auth: { generatedSecret: true },
    });
    expect(a.auth.secret).toHaveLength(64);
    expect(readFileSync(join(dir, 'dev-jwt-secret'), 'utf8').trim()).toBe(a.auth.secret);
    expect(loadConfig({ DATA_DIR: dir }).auth.secret).toBe(a.auth.secret);
  });

  it('names every bad key at once, hiding secret values', () => {
    let err: ConfigError | undefined;
    try {
      loadAppConfig({
        DATA_DIR: dir,
        PORT: 'eighty',
        DB_TYPE: 'postgres',
        AUTH_JWT_SECRET: 'short',
        LOG_LEVEL: 'loud',
        DB_LOG: 'maybe',
        QUOTA_RECONCILE_ON_START: 'sometimes',
      });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    for (const key of [
      'PORT="eighty"',
      'DB_TYPE="postgres"',
      'AUTH_JWT_SECRET=(hidden)',
      'LOG_LEVEL="loud"',
      'DB_LOG="maybe"',
      'QUOTA_RECONCILE_ON_START="sometimes"',
    ])
      expect(text).toContain(key);
    expect(text).not.toContain('short');
  });

  it('events relay: off without EVENTS_AMQP_URL; the URL validated and hidden, credentials applied, a log form without them', () => {
    expect(loadConfig({ DATA_DIR: dir }).events).toMatchObject({ amqp: undefined, progressIntervalMs: 20_000, retentionMs: 168 * 3600_000 });
    const c = loadConfig({
      DATA_DIR: dir,
      EVENTS_AMQP_URL: 'amqp://mq.internal/hcm',
      EVENTS_AMQP_USER: 'svc',
      EVENTS_AMQP_PASSWORD: 'p@ss:w/rd',
      EVENTS_EXCHANGE: 'hcm.events',
    });
    expect(c.events.amqp).toMatchObject({ exchange: 'hcm.events', safeUrl: 'amqp://mq.internal:5672/hcm', intervalMs: 100, batch: 200, leaseMs: 10_000 });
    expect(new URL(c.events.amqp!.url)).toMatchObject({ username: 'svc', password: encodeURIComponent('p@ss:w/rd'), hostname: 'mq.internal' });
    let err: ConfigError | undefined;
    try {
      loadConfig({ DATA_DIR: dir, EVENTS_AMQP_URL: 'http://user:secret@host', EVENTS_EXCHANGE: 'bad name!', EVENTS_RELAY_BATCH: '0' });
    } catch (e) {
      err = e as ConfigError;
    }
    const text = err!.problems.join('\n');
    for (const key of ['EVENTS_AMQP_URL=(hidden)', 'EVENTS_EXCHANGE="bad name!"', 'EVENTS_RELAY_BATCH="0"']) expect(text).toContain(key);
    expect(text).not.toContain('secret');
    expect(() => loadConfig({ DATA_DIR: dir, EVENTS_EXCHANGE: 'x' })).toThrow(/EVENTS_AMQP_URL: required/);
  });

  it('requires a secret or public key outside the embedded default', () => {
    expect(() => loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb' })).toThrow(/AUTH_JWT_SECRET: required/);
    expect(loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', AUTH_JWT_SECRET: 'x'.repeat(32), PUBLIC_BASE_URL: 'https://images.hcm.test' }).seedDefaultZone).toBe(
      false,
    );
  });

  it('validates the JWKS settings at boot: an http(s) URL, a readable key set file, the intervals, not both', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', ...env });
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
      return '';
    };
    expect(problems({ AUTH_JWKS_URL: 'ftp://iam/jwks.json' })).toMatch(/AUTH_JWKS_URL="ftp:\/\/iam\/jwks.json": AUTH_JWKS_URL must be an http\(s\) URL/);
    expect(problems({ AUTH_JWKS_URL: 'https://u:p@iam/jwks.json' })).toMatch(/AUTH_JWKS_URL=.*without credentials/);
    expect(
      problems({ AUTH_JWKS_URL: 'https://iam.example/jwks', AUTH_JWKS_REFRESH_SECONDS: '0', AUTH_JWKS_COOLDOWN_SECONDS: '-1', AUTH_JWKS_TIMEOUT_MS: 'soon' }),
    ).toMatch(/AUTH_JWKS_REFRESH_SECONDS="0"[\s\S]*AUTH_JWKS_COOLDOWN_SECONDS="-1"[\s\S]*AUTH_JWKS_TIMEOUT_MS="soon"/);
    const file = join(dir, 'jwks.json');
    writeFileSync(file, '{"keys": "none"}');
    expect(problems({ AUTH_JWKS_FILE: file })).toMatch(/AUTH_JWKS_FILE: not a JWKS/);
    expect(problems({ AUTH_JWKS_FILE: join(dir, 'missing.json') })).toMatch(/AUTH_JWKS_FILE: cannot read/);
    writeFileSync(file, JSON.stringify({ keys: [{ ...generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }), kid: 'k' }] }));
    expect(problems({ AUTH_JWKS_FILE: file, AUTH_JWKS_URL: 'https://iam.example/jwks' })).toMatch(/either AUTH_JWKS_URL or AUTH_JWKS_FILE/);
    // a JWKS alone is enough outside the embedded default (with a download URL secret for the fs store)
    expect(problems({ AUTH_JWKS_FILE: file })).toMatch(/DOWNLOAD_URL_SECRET: required/);
    const cfg = loadConfig({
      DATA_DIR: dir,
      DB_TYPE: 'mariadb',
      AUTH_JWKS_URL: 'https://iam.example/.well-known/jwks.json',
      DOWNLOAD_URL_SECRET: 'd'.repeat(32),
      PUBLIC_BASE_URL: 'https://images.hcm.test',
    });
    expect(cfg.auth).toMatchObject({
      secret: undefined,
      jwks: { url: 'https://iam.example/.well-known/jwks.json', refreshSeconds: 600, cooldownSeconds: 30, timeoutMs: 5000 },
    });
    const pem = join(dir, 'key.pem');
    writeFileSync(pem, generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).publicKey.export({ type: 'spki', format: 'pem' }));
    expect(problems({ AUTH_JWT_PUBLIC_KEY_FILE: pem })).toMatch(/AUTH_JWT_PUBLIC_KEY_FILE: file is not a usable PEM public key: only P-256/);
  });

  it('names the replica after its host unless WORKER_ID says otherwise, and checks the lost-job interval', () => {
    const a = loadConfig({ DATA_DIR: dir });
    expect(a.queue.workerId).toBe(
      hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 64) || 'hcm',
    );
    expect(a.ingestion.lostJobCheckMs).toBe(2000);
    const b = loadConfig({ DATA_DIR: dir, WORKER_ID: 'images-0', INGEST_LOST_JOB_CHECK_MS: '0' });
    expect(b.queue.workerId).toBe('images-0');
    expect(b.ingestion.lostJobCheckMs).toBe(0);
    expect(() => loadConfig({ DATA_DIR: dir, WORKER_ID: 'a b@c' })).toThrow(/WORKER_ID/);
    expect(() => loadConfig({ DATA_DIR: dir, INGEST_LOST_JOB_CHECK_MS: '-1' })).toThrow(/INGEST_LOST_JOB_CHECK_MS/);
  });
});
