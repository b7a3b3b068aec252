import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JwtVerifier } from '../../src/access/jwt';
import { loadConfig } from '../../src/config/app-config';

const root = join(__dirname, '..', '..');

describe('npm run token', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-token-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], env: Record<string, string> = {}) =>
    execFileSync('node', ['scripts/token.js', ...args], { cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', DATA_DIR: dir, ...env } }).trim();

  it('prints a token the embedded service accepts, with no setup (one development secret shared through DATA_DIR)', async () => {
    const token = run(['--sub', 'u1', '--dept', 'd1', '--role', 'admin', '--name', 'Ada']);
    const config = loadConfig({ DATA_DIR: dir });
    expect(await new JwtVerifier(config.auth).verify(token)).toEqual({ userId: 'u1', name: 'Ada', departmentId: 'd1', role: 'admin' });
  });

  it('signs with AUTH_JWT_SECRET when it is set', async () => {
    const secret = 'k'.repeat(40);
    const token = run(['--sub', 's1', '--dept', 'ops', '--role', 'service'], { AUTH_JWT_SECRET: secret });
    const config = loadConfig({ DATA_DIR: dir, DB_TYPE: 'mariadb', AUTH_JWT_SECRET: secret, PUBLIC_BASE_URL: 'https://images.hcm.test' });
    expect((await new JwtVerifier(config.auth).verify(token)).role).toBe('service');
  });

  it('refuses an unknown role with a usage message', () => {
    expect(() => run(['--sub', 'u1', '--dept', 'd1', '--role', 'root'])).toThrow(/--role must be one of/);
  });
});
