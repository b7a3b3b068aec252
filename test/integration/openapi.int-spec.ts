import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ERROR_CODES } from '../../src/common/errors';
import { ensureBuilt } from '../support/build';

const root = join(__dirname, '..', '..');
/** the routes that need no token: probes, metrics, and signed download URLs */
// no token needed (POST /dev/tokens mints one, in the embedded default only)
const PUBLIC = ['/health/live', '/health/ready', '/metrics', '/downloads/{id}', '/dev/tokens'];

/**
 * openapi.yaml is the contract other platform services build against: it must be what the code generates
 * (with the Swagger CLI plugin, so through `nest build`), valid, and complete about errors.
 */
describe('openapi.yaml', () => {
  beforeAll(() => {
    ensureBuilt();
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
          for (const [status, r] of errors) {
            const codes: string[] = r['x-error-codes'];
            // every code the status lists is one of that status, with an example; a HEAD answer has no body to describe
            expect([
              `${method} ${path} ${status}`,
              codes.length > 0 && codes.every((c) => String(ERROR_CODES[c as keyof typeof ERROR_CODES]) === status),
            ]).toEqual([`${method} ${path} ${status}`, true]);
            if (method === 'head') expect([`${method} ${path} ${status}`, r.content]).toEqual([`${method} ${path} ${status}`, undefined]);
            else {
              expect(Object.keys(r.content['application/json'].examples).sort()).toEqual([...codes].sort());
              expect(r.content['application/json'].schema.allOf[1].properties.code.enum).toEqual(codes);
            }
          }
          expect([`${method} ${path}`, op.security]).toEqual([`${method} ${path}`, [{ bearer: [] }]]);
        }
        expect([`${method} ${path}`, typeof op.description === 'string' || typeof op.summary === 'string']).toEqual([`${method} ${path}`, true]);
      }
    }
  });

  it('declares what every route answers because of what it is: 401 with a token, 413/415 with a JSON body, 503 behind a dependency', () => {
    const doc = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8'));
    const codes = (path: string, method: string, status: number): string[] => doc.paths[path][method].responses[status]?.['x-error-codes'] ?? [];
    expect(codes('/images', 'post', 400)).toEqual(expect.arrayContaining(['VALIDATION_FAILED', 'MALFORMED_JSON', 'URL_NOT_ALLOWED', 'FILE_PATH_INVALID']));
    expect(codes('/images', 'post', 404)).toEqual(expect.arrayContaining(['ZONE_NOT_FOUND', 'FILE_NOT_FOUND', 'FILE_SOURCE_NOT_FOUND']));
    expect(codes('/images', 'post', 413)).toEqual(['PAYLOAD_TOO_LARGE']);
    expect(codes('/images', 'post', 415)).toEqual(['UNSUPPORTED_MEDIA_TYPE']);
    expect(codes('/images', 'post', 429)).toEqual(['RATE_LIMITED']);
    expect(codes('/images', 'post', 503)).toEqual(['FILE_SOURCE_UNAVAILABLE', 'DEPENDENCY_UNAVAILABLE']);
    expect(codes('/images/{id}/launches', 'post', 403)).toEqual(['FORBIDDEN', 'IMAGE_NOT_USABLE']);
    expect(codes('/zones/{id}', 'patch', 401)).toEqual(['AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED']);
    expect(codes('/health/live', 'get', 503)).toEqual([]);
    expect(Object.keys(doc.paths['/metrics'].get.responses)).toEqual(['200']);
  });

  it('lists the sections in the order a person learns the service, and no description holds text a browser takes for an HTML tag', () => {
    const doc = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8'));
    expect(doc.tags.map((t: { name: string }) => t.name)).toEqual([
      'images',
      'file-sources',
      'zones',
      'quotas',
      'vm-links',
      'quota-reservations',
      'events',
      'downloads',
      'health',
      'metrics',
      'development',
    ]);
    for (const t of doc.tags) expect([t.name, typeof t.description === 'string' && t.description.length > 0]).toEqual([t.name, true]);
    const tagLike: string[] = [];
    const walk = (v: unknown, at: string): void => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${at}/${i}`));
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${at}/${k}`);
      else if (typeof v === 'string' && /\/description$/.test(at)) {
        // Swagger UI renders descriptions as Markdown with HTML: <JWT> outside a code span vanishes
        const outsideCode = v.replace(/`[^`]*`/g, '');
        if (/<[A-Za-z\/!?]/.test(outsideCode)) tagLike.push(at);
      }
    };
    walk(doc, '');
    expect(tagLike).toEqual([]);
  });
});
