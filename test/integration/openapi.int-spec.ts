import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ERROR_CODES } from '../../src/common/errors';

const root = join(__dirname, '..', '..');
/** the routes that need no token: probes, metrics, and signed download URLs */
const PUBLIC = ['/health/live', '/health/ready', '/metrics', '/downloads/{id}'];

/**
 * openapi.yaml is the contract other platform services build against: it must be what the code generates
 * (with the Swagger CLI plugin, so through `nest build`), valid, and complete about errors.
 */
describe('openapi.yaml', () => {
  beforeAll(() => {
    execFileSync('npx', ['nest', 'build'], { cwd: root, stdio: 'pipe' });
  }, 240_000);

  it('is what the code generates (run `npm run openapi` and commit it when this fails)', () => {
    const out = execFileSync('node', ['dist/scripts/openapi.js', '--check'], { cwd: root, encoding: 'utf8' });
    expect(out).toContain('up to date');
  });

  it('is valid OpenAPI by an independent validator', () => {
    const out = execFileSync('node', ['scripts/validate-openapi.mjs'], { cwd: root, encoding: 'utf8' });
    expect(out).toMatch(/is valid OpenAPI 3/);
  });

  it('declares bearer auth, the error body, and at least one error response with an example on every operation', () => {
    const doc = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8'));
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.ErrorCode.enum.sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const errors = Object.entries<any>(op.responses).filter(([status]) => Number(status) >= 400);
        if (PUBLIC.includes(path)) {
          // no token needed: documented without security
          expect([`${method} ${path}`, op.security]).toEqual([`${method} ${path}`, undefined]);
        } else {
          expect([`${method} ${path}`, errors.length > 0]).toEqual([`${method} ${path}`, true]);
          for (const [, r] of errors) expect(Object.keys(r.content['application/json'].examples ?? {}).length).toBeGreaterThan(0);
          expect([`${method} ${path}`, op.security]).toEqual([`${method} ${path}`, [{ bearer: [] }]]);
        }
        expect([`${method} ${path}`, typeof op.description === 'string' || typeof op.summary === 'string']).toEqual([`${method} ${path}`, true]);
      }
    }
  });
});
