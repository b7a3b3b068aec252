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

  it('events relay: off without EVENTS_AMQP_URL; the URL validated and hidden, credentials applied, a log form without them', () => {
    expect(loadConfig({ DATA_DIR: dir }).events).toMatchObject({ amqp: undefined, progressIntervalMs: 20_000, retentionMs: 168 * 3600_000 });
    const c = loadConfig({ DATA_DIR: dir, EVENTS_AMQP_URL: 'amqp://mq.internal/hcm', EVENTS_AMQP_USER: 'svc', EVENTS_AMQP_PASSWORD: 'p@ss:w/rd', EVENTS_EXCHANGE: 'hcm.events' });
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
    expect(loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', AUTH_JWT_SECRET: 'x'.repeat(32) }).seedDefaultZone).toBe(false);
  });
});
