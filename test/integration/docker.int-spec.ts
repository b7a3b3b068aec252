import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDocker, type Problem } from '../../scripts/check-docker';

const root = join(__dirname, '..', '..');

/**
 * docker/ cannot be run here (no Docker engine), so `npm run docker:check` stands in: the compose file against
 * the Compose Specification schema and dclint, the service's variables against EnvVars, the Dockerfile through
 * dockerfile-utils and the project's policy. This proves the check passes on the committed files and fails,
 * naming the problem, on broken copies.
 */
describe('docker/ check (npm run docker:check)', () => {
  let dir: string;
  beforeEach(() => {
    // a copy of the layout the compose file builds from: <context>/.dockerignore and <context>/docker/*
    dir = mkdtempSync(join(tmpdir(), 'hcm-docker-'));
    mkdirSync(join(dir, 'docker'));
    copyFileSync(join(root, '.dockerignore'), join(dir, '.dockerignore'));
    for (const f of ['docker-compose.yml', 'Dockerfile']) copyFileSync(join(root, 'docker', f), join(dir, 'docker', f));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const edit = (file: string, from: string | RegExp, to: string) => {
    const path = join(dir, 'docker', file);
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(from);
    writeFileSync(path, text.replace(from, to));
  };
  const checkCopy = () => checkDocker({ composeFile: join(dir, 'docker', 'docker-compose.yml') });
  const summary = (problems: Problem[]) => problems.map((p) => `${p.check} ${p.line ?? ''} ${p.message}`);

  it('passes on the committed compose file and Dockerfile', () => {
    const report = checkDocker();
    expect(summary(report.problems)).toEqual([]);
    expect(report.dockerfile).toBe(join(root, 'docker', 'Dockerfile'));
    expect(report.passed).toHaveLength(6);
    expect(report.skipped).toEqual([]);
    expect(report.serviceVariables).toEqual(
      expect.arrayContaining(['DB_TYPE', 'DB_HOST', 'AUTH_JWT_SECRET', 'QUEUE_DRIVER', 'REDIS_URL', 'STORAGE_DRIVER', 'MINIO_ENDPOINT', 'LOG_LEVEL']),
    );
    expect(report.serviceVariables.filter((v) => v.startsWith('SMB_'))).toEqual([]);
  });

  it('passes on an unchanged copy (so every failure below is the edit alone)', () => {
    expect(summary(checkCopy().problems)).toEqual([]);
  });

  it('fails naming a variable the service does not read', () => {
    edit('docker-compose.yml', '      LOG_LEVEL: ${LOG_LEVEL:-log}\n', '      LOG_LEVEL: ${LOG_LEVEL:-log}\n      SMB_HOST: smb\n');
    const { problems } = checkCopy();
    expect(problems).toEqual([
      expect.objectContaining({
        check: 'compose-env',
        line: expect.any(Number),
        message: expect.stringContaining('sets SMB_HOST, which the service does not read'),
      }),
    ]);
  });

  it('fails on a value the service would refuse at boot, but not on one the operator supplies', () => {
    edit('docker-compose.yml', 'LOG_LEVEL: ${LOG_LEVEL:-log}', 'LOG_LEVEL: info');
    expect(summary(checkCopy().problems)).toEqual([expect.stringMatching(/^compose-env \d+ the service would refuse to start: LOG_LEVEL="info"/)]);
  });

  it('fails on a key the Compose Specification does not have, naming it and its line', () => {
    edit('docker-compose.yml', /^ {4}healthcheck:$/m, '    helthcheck:');
    const { problems, skipped } = checkCopy();
    const schema = problems.filter((p) => p.check === 'compose-schema');
    expect(skipped).toEqual([expect.stringContaining("dclint's rules, which do not run on a file that fails the schema")]);
    expect(schema).toEqual([expect.objectContaining({ message: 'services.minio.helthcheck: is not a Compose Specification key', line: expect.any(Number) })]);
    // and the dependency on a health check that is no longer there
    expect(problems.filter((p) => p.check === 'compose-refs').map((p) => p.message)).toEqual([
      expect.stringContaining('waits for "minio" to be healthy, but minio has no healthcheck'),
    ]);
  });

  it("fails on dclint's rules (an image without a version tag)", () => {
    edit('docker-compose.yml', 'image: redis:7-alpine', 'image: redis');
    expect(summary(checkCopy().problems)).toEqual([expect.stringMatching(/^compose-lint \d+ error service-image-require-explicit-tag: Service "redis"/)]);
  });

  it('fails on a Dockerfile the Docker builder would reject', () => {
    edit('Dockerfile', 'EXPOSE 3000', 'EXPOSE 3000/icmp');
    expect(summary(checkCopy().problems)).toEqual([expect.stringMatching(/^dockerfile-lint \d+ .*icmp/i)]);
  });

  it('fails on a Dockerfile whose final stage runs as root or keeps dev dependencies', () => {
    edit('Dockerfile', /^USER .*$/m, '');
    edit('Dockerfile', '    && npm prune --omit=dev --no-audit --no-fund', '    && echo keeping dev dependencies');
    const messages = checkCopy().problems.map((p) => `${p.check}: ${p.message}`);
    expect(messages).toEqual([
      expect.stringContaining('dockerfile-policy: the final stage runs as root'),
      expect.stringContaining('dockerfile-policy: node_modules copied from stage build, which never drops dev dependencies'),
    ]);
  });

  it('fails on a base image that runs another Node major than .nvmrc (the project ships on the Node it is tested on)', () => {
    expect(readFileSync(join(root, '.nvmrc'), 'utf8')).toMatch(/^24\./);
    expect(summary(checkCopy().problems)).toEqual([]);
    edit('Dockerfile', 'ARG NODE_IMAGE=node:24-bookworm-slim', 'ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(summary(checkCopy().problems)).toEqual([
      expect.stringMatching(/^dockerfile-policy \d+ base image node:20-bookworm-slim runs Node 20, but the project runs on Node 24 \(\.nvmrc\)/),
      expect.stringMatching(/^dockerfile-policy \d+ base image node:20-bookworm-slim runs Node 20, but the project runs on Node 24 \(\.nvmrc\)/),
    ]);
  });
});
