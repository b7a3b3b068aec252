import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './app-config';

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the embedded default with no settings, generating and keeping a development secret', () => {
    const a = loadConfig({ DATA_DIR: dir });
    expect(a).toMatchObject({ port: 3000, db: { type: 'sqlite', path: join(dir, 'hcm-images.sqlite') }, seedDefaultZone: true, auth: { generatedSecret: true } });
    expect(a.auth.secret).toHaveLength(64);
    expect(readFileSync(join(dir, 'dev-jwt-secret'), 'utf8').trim()).toBe(a.auth.secret);
    expect(loadConfig({ DATA_DIR: dir }).auth.secret).toBe(a.auth.secret);
  });

  it('names every bad key at once, hiding secret values', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ DATA_DIR: dir, PORT: 'eighty', DB_TYPE: 'postgres', AUTH_JWT_SECRET: 'short', LOG_LEVEL: 'loud', DB_LOG: 'maybe', QUOTA_RECONCILE_ON_START: 'sometimes' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    for (const key of ['PORT="eighty"', 'DB_TYPE="postgres"', 'AUTH_JWT_SECRET=(hidden)', 'LOG_LEVEL="loud"', 'DB_LOG="maybe"', 'QUOTA_RECONCILE_ON_START="sometimes"']) expect(text).toContain(key);
    expect(text).not.toContain('short');
  });

  it('requires a secret or public key outside the embedded default', () => {
    expect(() => loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb' })).toThrow(/AUTH_JWT_SECRET: required/);
    expect(loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', AUTH_JWT_SECRET: 'x'.repeat(32) }).seedDefaultZone).toBe(false);
  });

  it("names the replica after its host unless WORKER_ID says otherwise, and checks the lost-job interval", () => {
    const a = loadConfig({ DATA_DIR: dir });
    expect(a.queue.workerId).toBe(hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64) || 'hcm');
    expect(a.ingestion.lostJobCheckMs).toBe(2000);
    const b = loadConfig({ DATA_DIR: dir, WORKER_ID: 'images-0', INGEST_LOST_JOB_CHECK_MS: '0' });
    expect(b.queue.workerId).toBe('images-0');
    expect(b.ingestion.lostJobCheckMs).toBe(0);
    expect(() => loadConfig({ DATA_DIR: dir, WORKER_ID: 'a b@c' })).toThrow(/WORKER_ID/);
    expect(() => loadConfig({ DATA_DIR: dir, INGEST_LOST_JOB_CHECK_MS: '-1' })).toThrow(/INGEST_LOST_JOB_CHECK_MS/);
  });
});
