import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
    expect(loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', AUTH_JWT_SECRET: 'x'.repeat(32), PUBLIC_BASE_URL: 'https://images.hcm.test' }).seedDefaultZone).toBe(false);
  });
});
