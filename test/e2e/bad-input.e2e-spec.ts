import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { MAX_JSON_DEPTH } from '../../src/common/json-depth';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone, imageBody } from '../support/fixtures';

/**
 * Bodies a caller may send by mistake or on purpose that used to answer 500: JSON nested thousands of levels
 * deep (class-transformer overflowed the stack), and null for a field (class-validator's IsOptional let it
 * through to a NOT NULL column). Each must answer 400 with a code, and change nothing.
 */

type Json = Record<string, any>;
const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const ALICE: Caller = { sub: 'alice', dept: 'bad-input-dept', role: Role.User };
const BYTES = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251));

/** `{"a":{"a":...}}` or `[[[...]]]` nested `depth` levels, as text (JSON.stringify would overflow first). */
const nested = (depth: number, kind: 'object' | 'array', inner = '1'): string =>
  kind === 'object' ? '{"a":'.repeat(depth) + inner + '}'.repeat(depth) : '['.repeat(depth) + inner + ']'.repeat(depth);

/** Every path of a body worth nulling: each property, each nested property, each array element. */
function nullVariants(body: Json, prefix = ''): Array<{ path: string; body: Json }> {
  const out: Array<{ path: string; body: Json }> = [];
  for (const [k, v] of Object.entries(body)) {
    const path = prefix ? `${prefix}.${k}` : k;
    out.push({ path, body: { ...body, [k]: null } });
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      for (const inner of nullVariants(v as Json, path)) out.push({ path: inner.path, body: { ...body, [k]: inner.body } });
    }
    if (Array.isArray(v) && v.length) out.push({ path: `${path}[0]`, body: { ...body, [k]: [null, ...v.slice(1)] } });
  }
  return out;
}

describe.each(SHAPES)('bad input answers 400, never 500 (%s)', (shape) => {
  let t: TestApp;
  // placeholders until beforeAll: the table of cases is built when the file is collected, the bodies again in each test
  let zoneId = 'pending';
  let image: Json = { id: 'pending' }; // ACTIVE, alice's, an upload
  let iso: Json = { id: 'pending' }; // ACTIVE OS ISO
  let reservationId = 'pending';
  let launchReservationId = 'pending';

  beforeAll(async () => {
    t = await startApp(shape, 'badinput', { QUOTA_SWEEP_INTERVAL_SECONDS: '0', INGEST_SWEEP_INTERVAL_SECONDS: '0' });
    zoneId = await createZone(t);
    const storage = t.app.get(ObjectStorage);
    const catalog = t.app.get(CatalogService);
    const activate = async (over: Json) => {
      const img = await createImage(t, ALICE, zoneId, { source: { type: 'UPLOAD' }, ...over });
      await storage.putStream(objectKeys.imageDisk(img.id), Readable.from(BYTES));
      await catalog.transition(img.id, ImagePhase.Importing);
      await catalog.transition(img.id, ImagePhase.Verifying, { sizeBytes: BYTES.length });
      await catalog.transition(img.id, ImagePhase.Ready, { sizeBytes: BYTES.length, checksum: createHash('sha256').update(BYTES).digest('hex') });
      return (await t.http().get(`/images/${img.id}`).set('Authorization', t.auth(SUPER))).body;
    };
    image = await activate({ tags: ['linux', 'base'], description: 'a base image' });
    iso = await activate({ kind: 'ISO', format: undefined, isoUsage: 'OS' });
    const r = await t
      .http()
      .post('/quota-reservations')
      .set('Authorization', t.auth(COMPUTE))
      .send({ key: `bad-input-${randomUUID()}`, departmentId: ALICE.dept, amounts: { VM_COUNT: 1 } });
    expect(r.status).toBe(201);
    reservationId = r.body.id;
    const l = await t
      .http()
      .post(`/images/${image.id}/launches`)
      .set('Authorization', t.auth(COMPUTE))
      .send({ idempotencyKey: `l-${randomUUID()}`, owner: { userId: ALICE.sub, departmentId: ALICE.dept }, zoneId, count: 2 });
    expect(l.status).toBe(201);
    launchReservationId = l.body.reservationId;
  });
  afterAll(() => t?.close());

  const get = async (path: string, as: Caller = SUPER): Promise<unknown> => {
    const res = await t.http().get(path).set('Authorization', t.auth(as));
    return { status: res.status, body: res.body };
  };

  /**
   * Every JSON body of the API: route, who calls it, a valid body, and what must stay the same when a
   * variant of it is refused (read back over HTTP).
   */
  const routes = (): Array<{
    name: string;
    method: 'post' | 'patch' | 'put';
    path: () => string;
    as: Caller;
    body: () => Json;
    state: () => Promise<unknown>;
  }> => [
    {
      name: 'POST /zones',
      method: 'post',
      path: () => '/zones',
      as: SUPER,
      body: () => ({ name: `z-${randomUUID().slice(0, 8)}`, hypervisor: 'KVM', description: 'a zone' }),
      state: () => get('/zones?pageSize=200'),
    },
    {
      name: 'PATCH /zones/{id}',
      method: 'patch',
      path: () => `/zones/${zoneId}`,
      as: SUPER,
      body: () => ({ name: `z-${randomUUID().slice(0, 8)}`, hypervisor: 'KVM', description: 'renamed' }),
      state: () => get(`/zones/${zoneId}`),
    },
    {
      name: 'POST /images (URL)',
      method: 'post',
      path: () => '/images',
      as: ALICE,
      body: () =>
        imageBody(zoneId, {
          description: 'd',
          osName: 'CentOS',
          osVersion: '7.9',
          osBits: 64,
          hypervisor: 'KVM',
          scope: 'PRIVATE',
          tags: ['a', 'b'],
          expectedSizeBytes: 1024,
          expectedChecksum: `sha256:${'0'.repeat(64)}`,
        }),
      state: () => get('/images/counts'),
    },
    {
      name: 'POST /images (FILE)',
      method: 'post',
      path: () => '/images',
      as: ALICE,
      body: () => ({
        kind: 'ISO',
        name: 'an iso',
        osCategory: 'CENTOS',
        isoUsage: 'OS',
        format: 'iso',
        zoneId,
        source: { type: 'FILE', fileSource: 'share', path: 'isos/a.iso' },
      }),
      state: () => get('/images/counts'),
    },
    {
      name: 'PATCH /images/{id}',
      method: 'patch',
      path: () => `/images/${image.id}`,
      as: ALICE,
      body: () => ({
        name: 'renamed',
        description: 'd2',
        osCategory: 'UBUNTU',
        osName: 'Ubuntu',
        osVersion: '22.04',
        osBits: 32,
        scope: 'PUBLIC',
        tags: ['x'],
      }),
      state: () => get(`/images/${image.id}`),
    },
    {
      name: 'PATCH /images/{id} (ISO usage)',
      method: 'patch',
      path: () => `/images/${iso.id}`,
      as: ALICE,
      body: () => ({ isoUsage: 'TOOL' }),
      state: () => get(`/images/${iso.id}`),
    },
    {
      name: 'POST /images/{id}/disable',
      method: 'post',
      path: () => `/images/${image.id}/disable`,
      as: SUPER,
      body: () => ({ reason: 'superseded' }),
      state: () => get(`/images/${image.id}`),
    },
    {
      name: 'PATCH /quotas/{departmentId}',
      method: 'patch',
      path: () => `/quotas/${ALICE.dept}`,
      as: SUPER,
      body: () => ({ limits: { IMAGE_COUNT: 50, IMAGE_BYTES: 'unlimited', VM_COUNT: 10, VCPU: 40, MEMORY_BYTES: 1 << 30, DISK_BYTES: 1 << 30 } }),
      state: () => get(`/quotas/${ALICE.dept}`),
    },
    {
      name: 'POST /quotas/reconcile',
      method: 'post',
      path: () => '/quotas/reconcile',
      as: SUPER,
      body: () => ({ departmentId: ALICE.dept, dryRun: true }),
      state: () => get(`/quotas/${ALICE.dept}`),
    },
    {
      name: 'POST /quota-reservations',
      method: 'post',
      path: () => '/quota-reservations',
      as: COMPUTE,
      body: () => ({
        key: `k-${randomUUID()}`,
        departmentId: ALICE.dept,
        amounts: { IMAGE_COUNT: 0, IMAGE_BYTES: 0, VM_COUNT: 1, VCPU: 1, MEMORY_BYTES: 1, DISK_BYTES: 1 },
        ttlSeconds: 60,
      }),
      state: () => get(`/quotas/${ALICE.dept}`),
    },
    {
      name: 'POST /quota-reservations/{id}/grow',
      method: 'post',
      path: () => `/quota-reservations/${reservationId}/grow`,
      as: COMPUTE,
      body: () => ({ resource: 'VM_COUNT', delta: 1 }),
      state: () => get(`/quota-reservations/${reservationId}`, COMPUTE),
    },
    {
      name: 'POST /quota-reservations/{id}/grow (total)',
      method: 'post',
      path: () => `/quota-reservations/${reservationId}/grow`,
      as: COMPUTE,
      body: () => ({ resource: 'VM_COUNT', total: 3 }),
      state: () => get(`/quota-reservations/${reservationId}`, COMPUTE),
    },
    {
      name: 'POST /quota-reservations/{id}/commit',
      method: 'post',
      path: () => `/quota-reservations/${reservationId}/commit`,
      as: COMPUTE,
      body: () => ({ amounts: { VM_COUNT: 1 }, resources: ['VM_COUNT'] }),
      state: () => get(`/quota-reservations/${reservationId}`, COMPUTE),
    },
    {
      name: 'POST /images/{id}/launches',
      method: 'post',
      path: () => `/images/${image.id}/launches`,
      as: COMPUTE,
      body: () => ({
        idempotencyKey: `l-${randomUUID()}`,
        owner: { userId: ALICE.sub, departmentId: ALICE.dept, role: 'user' },
        zoneId,
        count: 1,
        dataDisks: 1,
      }),
      state: () => get(`/quotas/${ALICE.dept}`),
    },
    {
      name: 'PUT /vms/{vmId}/origin',
      method: 'put',
      path: () => '/vms/vm-null-1/origin',
      as: COMPUTE,
      body: () => ({
        imageId: image.id,
        vmName: 'web-01',
        owner: { userId: ALICE.sub, departmentId: ALICE.dept, role: 'user' },
        zoneId,
        reservationId: launchReservationId,
      }),
      state: () => get('/vms/vm-null-1/images', COMPUTE),
    },
    {
      name: 'PUT /vms/{vmId}/iso-mounts/{isoId}',
      method: 'put',
      path: () => `/vms/vm-null-2/iso-mounts/${iso.id}`,
      as: COMPUTE,
      body: () => ({ vmName: 'web-02', owner: { userId: ALICE.sub, departmentId: ALICE.dept, role: 'user' }, zoneId }),
      state: () => get('/vms/vm-null-2/images', COMPUTE),
    },
  ];

  const send = (r: ReturnType<typeof routes>[number], body: string | Json) => {
    const req = t.http()[r.method](r.path()).set('Authorization', t.auth(r.as)).set('Content-Type', 'application/json');
    return req.send(typeof body === 'string' ? body : JSON.stringify(body));
  };

  describe('JSON nested deeper than the limit', () => {
    it.each(routes().map((r) => [r.name, r] as const))('%s: 400 MALFORMED_JSON for objects and arrays 5,000 deep, and nothing changes', async (_name, r) => {
      const before = await r.state();
      for (const kind of ['object', 'array'] as const) {
        // deep inside a property the DTO knows, and as the whole body
        for (const text of [`{"name":${nested(5000, kind)}}`, nested(5000, kind)]) {
          const res = await send(r, text);
          expect({ status: res.status, code: res.body.code }).toEqual({ status: 400, code: 'MALFORMED_JSON' });
          expect(res.body.details).toEqual({ maxDepth: MAX_JSON_DEPTH });
          expect(res.body.correlationId).toEqual(expect.any(String));
        }
      }
      expect(await r.state()).toEqual(before);
    });

    it('counts only structure: brackets inside strings and escaped quotes do not add depth', async () => {
      const name = `${'['.repeat(100)}\\"{{{${'{'.repeat(100)}`;
      const res = await t
        .http()
        .post('/zones')
        .set('Authorization', t.auth(SUPER))
        .set('Content-Type', 'application/json')
        .send(`{"name":"${name.slice(0, 60)}","hypervisor":"KVM"}`);
      expect(res.status).toBe(201);
      expect(res.body.name).toBe(JSON.parse(`"${name.slice(0, 60)}"`));
    });

    it(`accepts ${MAX_JSON_DEPTH} levels (the validation answers, not the depth check) and refuses ${MAX_JSON_DEPTH + 1}`, async () => {
      const at = await t
        .http()
        .post('/zones')
        .set('Authorization', t.auth(SUPER))
        .set('Content-Type', 'application/json')
        .send(`{"name":${nested(MAX_JSON_DEPTH - 1, 'array', '"x"')}}`);
      expect(at.status).toBe(400);
      expect(at.body.code).toBe('VALIDATION_FAILED');
      const over = await t
        .http()
        .post('/zones')
        .set('Authorization', t.auth(SUPER))
        .set('Content-Type', 'application/json')
        .send(`{"name":${nested(MAX_JSON_DEPTH, 'array', '"x"')}}`);
      expect(over.status).toBe(400);
      expect(over.body.code).toBe('MALFORMED_JSON');
    });

    it('a UTF-16 body is measured too', async () => {
      const text = `{"name":${nested(5000, 'array')}}`;
      const res = await t
        .http()
        .post('/zones')
        .set('Authorization', t.auth(SUPER))
        .set('Content-Type', 'application/json; charset=utf-16le')
        .send(Buffer.from(text, 'utf16le'));
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('MALFORMED_JSON');
    });

    it('a query string nested thousands of levels deep answers 400, not 500', async () => {
      const deep = `q${'[a]'.repeat(3000)}=x`;
      for (const path of ['/images', '/zones', '/quotas', '/images/counts']) {
        const res = await t.http().get(`${path}?${deep}`).set('Authorization', t.auth(SUPER));
        expect({ path, status: res.status, code: res.body.code }).toEqual({ path, status: 400, code: 'VALIDATION_FAILED' });
      }
    });
  });

  describe('null for a field', () => {
    const cases = routes().flatMap((r) => nullVariants(r.body()).map((v) => [r.name, v.path, r] as const));

    it('covers every field of every JSON body', () => {
      // the paths above are generated from the bodies; this pins that none was left out by mistake
      expect(cases.length).toBeGreaterThan(90);
    });

    it.each(cases)('%s with %s: null answers 400 naming the field, and nothing changes', async (_name, path, r) => {
      const variant = nullVariants(r.body()).find((v) => v.path === path)!;
      const before = await r.state();
      const res = await send(r, variant.body);
      expect(res.status).toBe(400);
      expect(['VALIDATION_FAILED', 'IMMUTABLE_FIELD', 'QUOTA_LIMIT_INVALID']).toContain(res.body.code);
      if (res.body.code === 'QUOTA_LIMIT_INVALID') {
        expect(res.body.details.resource).toBe(path.split('.').pop());
      } else {
        const field = path.replace(/\[0\]$/, '');
        expect(res.body.details.fields.map((f: { field: string }) => f.field)).toContain(field);
      }
      expect(await r.state()).toEqual(before);
    });

    it('the 500s of the issue: PATCH /images/{id} {"osCategory": null} and PATCH /zones/{id} {"name": null}', async () => {
      const img = await t.http().patch(`/images/${image.id}`).set('Authorization', t.auth(ALICE)).send({ osCategory: null });
      expect(img.status).toBe(400);
      expect(img.body).toMatchObject({ code: 'VALIDATION_FAILED', details: { fields: [expect.objectContaining({ field: 'osCategory' })] } });
      const zone = await t.http().patch(`/zones/${zoneId}`).set('Authorization', t.auth(SUPER)).send({ name: null });
      expect(zone.status).toBe(400);
      expect(zone.body).toMatchObject({ code: 'VALIDATION_FAILED', details: { fields: [expect.objectContaining({ field: 'name' })] } });
    });

    it('every valid body above is accepted as it is (so each refusal is about the null alone)', async () => {
      // run last in spirit: a fresh zone and reservation so the state the other cases read stays unchanged
      for (const r of routes()) {
        if (r.name.startsWith('PATCH /images') || r.name.includes('disable') || r.name.includes('/commit') || r.name.includes('FILE')) continue;
        const res = await send(r, r.body());
        expect({ route: r.name, status: res.status < 300 }).toEqual({ route: r.name, status: true });
      }
    });
  });
});
