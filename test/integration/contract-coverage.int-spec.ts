import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Role } from '../../src/access/principal';
import { Caller, startApp, SUPER, TestApp } from '../support/app';
import { CHECKED_MARKER, compareWithContract, ContractDoc, describeMismatches, readRecords, waitForOtherFiles } from '../support/contract-check';
import { CONTRACT_DIR_ENV, RecordedResponse } from '../support/contract-recorder';
import { iso } from '../support/disk-images';
import { createImage, createZone } from '../support/fixtures';

const root = join(__dirname, '..', '..');
const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const USER: Caller = { sub: 'u-contract', dept: 'd-contract', role: Role.User };

/** A small document with the shapes the comparison must tell apart. */
const DOC: ContractDoc = {
  components: {
    schemas: {
      Thing: {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string' }, parent: { oneOf: [{ $ref: '#/components/schemas/Ref' }, { type: 'object', nullable: true, enum: [null] }] } },
      },
      Ref: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
    },
  },
  paths: {
    '/things': {
      get: {
        responses: {
          '200': { description: 'ok' },
          // a status answered with its own body, not the error body (like readiness's 503)
          '503': { description: 'down', content: { 'application/json': { schema: { $ref: '#/components/schemas/Ref' } } } },
        },
      },
    },
    '/things/special': { get: { responses: { '200': { description: 'ok' }, '409': { description: 'x', 'x-error-codes': ['SPECIAL_CONFLICT'] } } } },
    '/things/{id}': {
      get: {
        responses: {
          '200': { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Thing' } } } },
          '404': { description: 'x', 'x-error-codes': ['THING_NOT_FOUND'], content: { 'application/json': {} } },
        },
      },
      head: {
        responses: {
          '200': { description: 'ok' },
          '404': { description: 'x', 'x-error-codes': ['THING_NOT_FOUND'] },
          '401': { description: 'x', 'x-error-codes': ['AUTH_TOKEN_MISSING'], content: { 'application/json': {} } },
        },
      },
    },
  },
};
const rec = (method: string, path: string, status: number, code: string | null = null, body?: unknown): RecordedResponse => ({
  method,
  path,
  status,
  contentType: null,
  code,
  body,
});

describe('the comparison of answers with the contract', () => {
  it('accepts declared statuses and codes, bodiless HEAD errors, and bodies that match (an object or null where nullable)', () => {
    const ok = [
      rec('get', '/things', 200),
      rec('get', '/things', 503, null, { id: 'db' }),
      rec('get', '/things/a1', 200, null, { id: 'a1', parent: null }),
      rec('get', '/things/a1', 200, null, { id: 'a1', parent: { id: 'p' } }),
      rec('get', '/things/a2', 404, 'THING_NOT_FOUND'),
      rec('head', '/things/a2', 404),
      rec('get', '/things/special', 409, 'SPECIAL_CONFLICT'),
      // no operation: an unknown route or method is not about the contract of any operation
      rec('get', '/nowhere', 404, 'ROUTE_NOT_FOUND'),
      rec('post', '/things', 404, 'ROUTE_NOT_FOUND'),
    ];
    expect(compareWithContract(DOC, ok)).toEqual([]);
  });

  it('finds every undeclared status, undeclared code, error without a code, and body that breaks its schema', () => {
    const ms = compareWithContract(DOC, [
      rec('get', '/things/a1', 503, 'DEPENDENCY_UNAVAILABLE'),
      rec('get', '/things/a1', 503, 'DEPENDENCY_UNAVAILABLE'),
      rec('get', '/things/a1', 404, 'IMAGE_NOT_FOUND'),
      rec('get', '/things/a1', 404, null),
      rec('head', '/things/a1', 500),
      rec('head', '/things/a1', 401),
      rec('get', '/things/a1', 200, null, { parent: null }),
      rec('get', '/things/a1', 200, null, { id: 'a1', parent: 'x' }),
      // a field the document does not describe (a generated client would drop it)
      rec('get', '/things/a1', 200, null, { id: 'a1', parent: { id: 'p', colour: 'red' } }),
      // /things/special is preferred over /things/{id}: its 409 code is not THING_NOT_FOUND's operation
      rec('get', '/things/special', 404, 'THING_NOT_FOUND'),
      rec('get', '/things', 503, null, { status: 'down' }),
      rec('get', '/things', 503, 'DEPENDENCY_UNAVAILABLE'),
    ]);
    expect(ms.map((m) => [m.operation, m.status, m.code, m.problem, m.count])).toEqual([
      ['GET /things', 503, '(no code)', 'body does not match the schema', 1],
      ['GET /things', 503, 'DEPENDENCY_UNAVAILABLE', 'code not declared', 1],
      ['GET /things/{id}', 200, '-', 'body does not match the schema', 3],
      ['GET /things/{id}', 404, 'IMAGE_NOT_FOUND', 'code not declared', 1],
      ['GET /things/{id}', 404, '(no code)', 'error without a code', 1],
      ['GET /things/{id}', 503, 'DEPENDENCY_UNAVAILABLE', 'status not declared', 2],
      ['GET /things/special', 404, 'THING_NOT_FOUND', 'status not declared', 1],
      ['HEAD /things/{id}', 401, '(no body)', 'declared with a body, answered without', 1],
      ['HEAD /things/{id}', 500, '(no body)', 'status not declared', 1],
    ]);
    expect(describeMismatches(ms)).toContain('GET /things/{id} -> 503 DEPENDENCY_UNAVAILABLE: status not declared, 2x, e.g. GET /things/a1');
    const extra = compareWithContract(DOC, [rec('get', '/things/a1', 200, null, { id: 'a1', parent: { id: 'p', colour: 'red' } })]);
    expect(extra.map((m) => m.detail)).toEqual(['/parent must NOT have additional properties']);
  });
});

/**
 * openapi.yaml against what the service answered in this run: every e2e and integration suite before this one
 * (test/support/contract-sequencer.js runs it last) recorded its answers (test/support/contract-recorder.ts),
 * and this file adds the answers the issue found undeclared, so it checks something when it runs alone too.
 */
describe('openapi.yaml declares every (operation, status, code) the service answered in this run', () => {
  let t: TestApp;
  const dir = process.env[CONTRACT_DIR_ENV];

  beforeAll(async () => {
    if (!dir) throw new Error(`${CONTRACT_DIR_ENV} is not set: run through jest (test/support/global-setup.ts creates it)`);
    t = await startApp('sqlite', 'contract', { HTTP_BODY_LIMIT_BYTES: '2048' });
    const su = t.auth(SUPER);
    const zoneId = await createZone(t);
    // a JSON body over HTTP_BODY_LIMIT_BYTES, and one in a charset body-parser refuses
    expect(
      (
        await t
          .http()
          .post('/images')
          .set('Authorization', su)
          .send({ name: 'x'.repeat(4096) })
      ).status,
    ).toBe(413);
    expect((await t.http().post('/zones').set('Authorization', su).set('Content-Type', 'application/json; charset=latin2').send('{"name":"z"}')).status).toBe(
      415,
    );
    expect((await t.http().patch(`/zones/${zoneId}`).set('Authorization', su).set('Content-Type', 'application/json').send('{"name":')).status).toBe(400);
    // the body-parser reads a JSON body sent to a route that takes none too
    const missing0 = '00000000-0000-4000-8000-000000000001';
    expect((await t.http().post(`/images/${missing0}/retry`).set('Authorization', su).set('Content-Type', 'application/json').send('{"a":')).status).toBe(400);
    expect(
      (
        await t
          .http()
          .delete(`/images/${missing0}`)
          .set('Authorization', su)
          .send({ pad: 'x'.repeat(4096) })
      ).status,
    ).toBe(413);
    // HEAD errors have no body
    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await t.http().head(`/images/${missing}/file`).set('Authorization', su)).status).toBe(404);
    expect((await t.http().head(`/images/${missing}/file`)).status).toBe(401);
    expect((await t.http().head(`/downloads/${missing}?expires=1&signature=x`)).status).toBe(403);
    // liveness answers without checks
    expect((await t.http().get('/health/live')).status).toBe(200);
    // a VM that only mounts an ISO was created from nothing: createdFrom is null
    const img = await createImage(t, USER, zoneId, { kind: 'ISO', format: undefined, isoUsage: 'TOOL', source: { type: 'UPLOAD' } });
    const up = await t.http().put(`/images/${img.id}/file`).set('Authorization', t.auth(USER)).set('Content-Type', 'application/octet-stream').send(iso());
    expect(up.status).toBe(200);
    const owner = { userId: USER.sub, departmentId: USER.dept };
    expect(
      (await t.http().put(`/vms/vm-contract-1/iso-mounts/${img.id}`).set('Authorization', t.auth(COMPUTE)).send({ vmName: 'c1', owner, zoneId })).status,
    ).toBe(201);
    const vm = await t.http().get('/vms/vm-contract-1/images').set('Authorization', t.auth(COMPUTE));
    expect([vm.status, vm.body.createdFrom, vm.body.isoMounts.length]).toEqual([200, null, 1]);
  }, 60_000);
  afterAll(() => t?.close());

  it(
    'finds no undeclared pair and no body that breaks its declared schema',
    async () => {
      // the files still running in the other worker answer too: wait for them (the longest file takes about 2 min)
      await waitForOtherFiles(dir!, __filename, 9 * 60_000);
      const doc = parse(readFileSync(join(root, 'openapi.yaml'), 'utf8')) as ContractDoc;
      const records = readRecords(dir!);
      // this file's own answers at least (the recorder works), more when the suites ran before it
      expect(records.filter((r) => r.path === '/vms/vm-contract-1/images').length).toBeGreaterThan(0);
      const mismatches = compareWithContract(doc, records);
      writeFileSync(join(dir!, CHECKED_MARKER), '');
      expect(describeMismatches(mismatches)).toBe('');
    },
    10 * 60_000,
  );
});
