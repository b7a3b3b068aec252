import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { lintOpenApi } from './openapi-lint';
import { OPERATION_IDS } from './openapi';

const committed = () => parse(readFileSync(join(__dirname, '..', 'openapi.yaml'), 'utf8'));

/** A document with one operation and one schema, each breaking the rules in the ways the old document did. */
function oldStyle(): Record<string, any> {
  return {
    tags: [
      { name: 'images', description: 'Images.' },
      { name: 'unused', description: '' },
    ],
    paths: {
      '/images': {
        get: {
          operationId: 'Catalog_list',
          tags: ['images'],
          summary: "List images and ISOs the caller may see, in a view (R11), filtered (R12), sorted and paged. Another user's private images never appear.",
          parameters: [{ name: 'page', in: 'query', schema: { type: 'number' } }],
          responses: {
            '200': { description: '' },
            '429': { description: 'Too many.', headers: { 'X-Correlation-Id': { $ref: '#/components/headers/XCorrelationId' } } },
          },
        },
      },
      '/images/{id}/file': {
        get: {
          operationId: 'downloadImageFile',
          tags: ['images'],
          summary: 'Download the file of an image.',
          description: 'Download the file of an image.',
          responses: { '206': { description: 'A range.', headers: { 'X-Correlation-Id': {} } } },
        },
      },
      '/zones': {
        get: {
          operationId: 'listZones',
          tags: ['zones'],
          summary: 'List zones',
          description: 'The zones images are created in, every caller may list them.',
          responses: {},
        },
      },
    },
    components: {
      schemas: {
        ImagePage: { type: 'object', properties: { total: { type: 'number' }, view: { type: 'string', description: 'The view (R11).', example: 'all' } } },
      },
    },
  };
}

describe('openapi.yaml reads well for someone who never saw the code', () => {
  it('has no problem by the reading rules: summaries, descriptions, operationIds, examples, integers, headers, tags', () => {
    expect(lintOpenApi(committed())).toEqual([]);
  });

  it('names every operation from the OPERATION_IDS table, each id once', () => {
    const doc = committed();
    const ids = Object.values<Record<string, { operationId: string }>>(doc.paths).flatMap((item) => Object.values(item).map((op) => op.operationId));
    expect([...ids].sort()).toEqual(Object.values(OPERATION_IDS).sort());
    expect(new Set(Object.values(OPERATION_IDS)).size).toBe(Object.values(OPERATION_IDS).length);
  });

  it('declares one shared X-Correlation-Id header, referenced by every response', () => {
    const doc = committed();
    expect(doc.components.headers.XCorrelationId.schema.type).toBe('string');
    for (const [path, item] of Object.entries<Record<string, { responses: Record<string, { headers: Record<string, { $ref: string }> }> }>>(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, r] of Object.entries(op.responses)) {
          expect([method, path, status, r.headers['X-Correlation-Id']]).toEqual([method, path, status, { $ref: '#/components/headers/XCorrelationId' }]);
        }
      }
    }
    expect(doc.paths['/images'].post.responses['201'].headers.Location).toEqual({ $ref: '#/components/headers/Location' });
    expect(doc.paths['/images/{id}/file'].get.responses['206'].headers['Content-Range']).toEqual({ $ref: '#/components/headers/ContentRange' });
  });

  it('finds every kind of problem the document had before (the rules can fail)', () => {
    const problems = lintOpenApi(oldStyle());
    expect(problems).toEqual(
      expect.arrayContaining([
        'tag unused: no description',
        'tag unused: no operation uses it',
        'GET /images: operationId Catalog_list is not camelCase verbNoun',
        expect.stringMatching(/^GET \/images: summary of \d+ characters \(at most 80\)$/),
        'GET /images summary: cites a requirement number (R11)',
        'GET /images: no real description',
        'GET /images parameter query page: no description',
        'GET /images parameter query page: no example',
        'GET /images parameter query page: type number, not integer',
        'GET /images 200: no description',
        'GET /images 200: X-Correlation-Id not declared',
        'GET /images 429: Retry-After not declared',
        'GET /images/{id}/file: summary ends with a period',
        'GET /images/{id}/file: no real description',
        'GET /images/{id}/file 206: Content-Range not declared',
        'GET /zones: tag zones is not declared',
        'schema ImagePage.total: no description',
        'schema ImagePage.total: no example',
        'schema ImagePage.total: type number, not integer',
        'schema ImagePage.view: cites a requirement number (R11)',
      ]),
    );
  });
});
