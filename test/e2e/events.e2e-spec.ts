import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { CatalogRepository } from '../../src/catalog/catalog.repository';
import { ImagePhase } from '../../src/catalog/image.enums';
import Ajv from 'ajv';
import { EventType } from '../../src/events/event-catalogue';
import { ENVELOPE_SCHEMA, PAYLOAD_SCHEMAS } from '../../src/events/event-schemas';
import { EventsService } from '../../src/events/events.service';
import { QuotaResource } from '../../src/quota/quota.enums';
import { QuotaRepository } from '../../src/quota/quota.repository';
import { answer, ApiClient, Schemas, typedCallers, typedImageBody } from '../support/api-client';
import type { operations } from '../../console/src/api/schema';
import { Caller, SHAPES, Shape, startApp, SUPER, TestApp } from '../support/app';
import { iso as isoImage, qcow2, rawBytes, sha256 } from '../support/disk-images';
import { createImage, createZone } from '../support/fixtures';

/**
 * Image events through the transactional outbox, read back over GET /events: every event type with its
 * envelope (id, sequence, actor, correlation id) and payload after the HTTP call that causes it, changes that
 * roll back leave no event, and a caller sees only the events of what it may see.
 */

type Event = Schemas['EventResponse'];
type EventsQuery = Omit<NonNullable<operations['listEvents']['parameters']['query']>, 'after' | 'limit'>;

const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const QCOW2 = qcow2(256 * 1024 + 17);
let seq = 0;
const newUser = (role: Role = Role.User, dept?: string): Caller => {
  seq++;
  return { sub: `ev-user-${seq}`, dept: dept ?? `ev-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role };
};

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller */
  api: (who?: Caller) => ApiClient;
  zoneId: string;
}

const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
/** Every event the suite reads must match the schemas asyncapi.yaml publishes. */
function expectSchemaValid(e: Event): void {
  const envelope = ajv.validate(ENVELOPE_SCHEMA, e);
  expect([e.type, envelope ? null : ajv.errorsText()]).toEqual([e.type, null]);
  const payload = ajv.validate(PAYLOAD_SCHEMAS[e.type as EventType], e.payload);
  expect([e.type, payload ? null : ajv.errorsText()]).toEqual([e.type, null]);
}

/** Every event of an image (or all events) a caller sees, paging through GET /events with a small page. */
async function eventsOf(c: Ctx, as: Caller, query: EventsQuery = {}): Promise<Event[]> {
  const all: Event[] = [];
  let after = 0;
  for (;;) {
    const res = await answer(c.api(as).GET('/events', { params: { query: { ...query, after, limit: 3 } } }));
    expect(res.status).toBe(200);
    const page = res.data!;
    for (const e of page.items) expectSchemaValid(e);
    all.push(...page.items);
    if (!page.items.length) {
      expect(page.next).toBe(after);
      return all;
    }
    expect(page.next).toBe(page.items[page.items.length - 1].position);
    after = page.next;
  }
}
const typesOf = (evs: Event[]) => evs.map((e) => e.type);
const callerActor = (u: Caller) => ({ type: 'caller', user: u.sub, department: u.dept, role: u.role });

/** untyped on purpose: the bytes go as a Buffer, which the contract's octet-stream body (typed `string`) cannot take */
async function upload(c: Ctx, u: Caller, id: string, body: Buffer) {
  return c.t.http().put(`/images/${id}/file`).set('Authorization', c.t.auth(u)).set('Content-Type', 'application/octet-stream').send(body);
}

describe.each(SHAPES)('events (%s)', (shape: Shape) => {
  let c: Ctx;

  beforeAll(async () => {
    const t = await startApp(shape, `events-${shape}`, {
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
      INGEST_SWEEP_INTERVAL_SECONDS: '0',
      EVENTS_PROGRESS_INTERVAL_SECONDS: '3600',
    });
    c = { t, api: await typedCallers(t), zoneId: await createZone(t) };
  });
  afterAll(async () => {
    await c?.t.close();
  });
  const path = (id: string) => ({ params: { path: { id } } });
  const setLimits = (departmentId: string, limits: Schemas['QuotaLimitsDto']) =>
    c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId } }, body: { limits } });

  it('image.created: the envelope (id, sequence 1, actor, correlation id) and the payload, in the same call', async () => {
    const u = newUser();
    const res = await answer(
      c.api(u).POST('/images', {
        body: { kind: 'IMAGE', name: 'ev-img', osCategory: 'CENTOS', format: 'qcow2', zoneId: c.zoneId, source: { type: 'UPLOAD' } },
        headers: { 'X-Correlation-Id': 'corr-create-1' },
      }),
    );
    expect(res.status).toBe(201);
    const evs = await eventsOf(c, u, { imageId: res.data!.id });
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({
      type: 'image.created',
      version: 1,
      imageId: res.data!.id,
      sequence: 1,
      actor: callerActor(u),
      correlationId: 'corr-create-1',
      payload: {
        name: 'ev-img',
        kind: 'IMAGE',
        format: 'qcow2',
        scope: 'PRIVATE',
        zoneId: c.zoneId,
        sourceType: 'UPLOAD',
        ownerId: u.sub,
        departmentId: u.dept,
      },
    });
    expect(evs[0].id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.abs(evs[0].time - Date.now())).toBeLessThan(60_000);
  });

  it('image.updated names the fields that changed; image.scope_changed reports from and to; an edit that changes nothing reports nothing', async () => {
    const u = newUser();
    const img = await createImage(c.t, u, c.zoneId, { tags: ['a'] });
    const patch = async (body: Schemas['UpdateImageDto']) => answer(c.api(u).PATCH('/images/{id}', { ...path(img.id), body }));
    expect((await patch({ name: 'renamed', description: img.description, tags: ['b', 'a'] })).status).toBe(200);
    expect((await patch({ scope: 'PUBLIC' })).status).toBe(200);
    expect((await patch({ name: 'renamed', tags: ['a', 'b'] })).status).toBe(200);
    const evs = await eventsOf(c, u, { imageId: img.id });
    expect(typesOf(evs)).toEqual(['image.created', 'image.updated', 'image.scope_changed']);
    expect(evs.map((e) => e.sequence)).toEqual([1, 2, 3]);
    expect(evs[1].payload).toEqual({ fields: ['name', 'tags'], values: { name: 'renamed', tags: ['b', 'a'] } });
    expect(evs[2].payload).toEqual({ from: 'PRIVATE', to: 'PUBLIC' });
  });

  it('an upload: image.import.started then image.activated with size and checksum; disable and enable', async () => {
    const u = newUser();
    const admin = newUser(Role.Admin, u.dept);
    const img = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' } });
    expect((await upload(c, u, img.id, QCOW2)).status).toBe(200);
    // the virtual size is qemu-img's reading of the stored image, as the record shows it
    const virtualSizeBytes = (await c.api(u).GET('/images/{id}', path(img.id))).data!.virtualSizeBytes as number;
    expect(virtualSizeBytes).toBeGreaterThan(QCOW2.length);
    expect((await c.api(admin).POST('/images/{id}/disable', { ...path(img.id), body: { reason: 'broken driver' } })).response.status).toBe(200);
    expect((await c.api(admin).POST('/images/{id}/enable', path(img.id))).response.status).toBe(200);
    const evs = await eventsOf(c, u, { imageId: img.id });
    expect(typesOf(evs)).toEqual(['image.created', 'image.import.started', 'image.activated', 'image.disabled', 'image.enabled']);
    expect(evs[1]).toMatchObject({ actor: callerActor(u), payload: { sourceType: 'UPLOAD' } });
    expect(evs[2].payload).toEqual({ sizeBytes: QCOW2.length, checksum: sha256(QCOW2), virtualSizeBytes });
    expect(evs[3]).toMatchObject({ actor: callerActor(admin), payload: { reason: 'broken driver' } });
    expect(evs[4].payload).toEqual({});
  });

  it('a refused upload: image.import.failed with the reason the image shows', async () => {
    const u = newUser();
    const img = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' } });
    expect((await upload(c, u, img.id, rawBytes(64 * 1024))).status).toBe(422);
    const shown = (await c.api(u).GET('/images/{id}', path(img.id))).data!;
    const evs = await eventsOf(c, u, { imageId: img.id });
    expect(typesOf(evs)).toEqual(['image.created', 'image.import.started', 'image.import.failed']);
    expect(evs[2].payload).toEqual({ reason: shown.statusReason });
    expect(shown.statusReason).toMatch(/declared qcow2/);
  });

  it('image.import.progressed is throttled per image (EVENTS_PROGRESS_INTERVAL_SECONDS)', async () => {
    const u = newUser();
    const img = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' }, expectedSizeBytes: 1000 });
    const catalog = c.t.app.get(CatalogService);
    await catalog.transition(img.id, ImagePhase.Importing, { bytesDone: 0, bytesTotal: 1000, bytesPerSecond: 0 });
    for (const done of [100, 250, 400]) expect(await catalog.recordProgress(img.id, { bytesDone: done, bytesPerSecond: 50 })).toBe(true);
    const evs = await eventsOf(c, SUPER, { imageId: img.id, type: ['image.import.progressed'] });
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ actor: { type: 'system' }, payload: { bytesDone: 100, bytesTotal: 1000, percent: 10, bytesPerSecond: 50 } });
    // the recorded progress went on without events
    expect((await c.api(u).GET('/images/{id}', path(img.id))).data!.progress).toMatchObject({ bytesDone: 400 });
  });

  it('VM links: vm.linked, iso.mounted, iso.unmounted, vm.unlinked; image.deleted lists the VMs that were linked', async () => {
    const u = newUser();
    const owner = { userId: u.sub, departmentId: u.dept };
    const img = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' } });
    expect((await upload(c, u, img.id, QCOW2)).status).toBe(200);
    const iso = await createImage(c.t, u, c.zoneId, { kind: 'ISO', format: undefined, isoUsage: 'TOOL', source: { type: 'UPLOAD' } });
    expect((await upload(c, u, iso.id, isoImage())).status).toBe(200);
    const compute = c.api(COMPUTE);
    const origin = (vmId: string, vmName: string) =>
      compute.PUT('/vms/{vmId}/origin', { params: { path: { vmId } }, body: { imageId: img.id, vmName, owner, zoneId: c.zoneId } });
    const mount = (vmId: string, vmName: string) =>
      compute.PUT('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId, isoId: iso.id } }, body: { vmName, owner, zoneId: c.zoneId } });
    expect((await origin('vm-ev-1', 'web-1')).response.status).toBe(201);
    expect((await origin('vm-ev-2', 'web-2')).response.status).toBe(201);
    expect((await mount('vm-ev-1', 'web-1')).response.status).toBe(201);
    expect((await mount('vm-ev-2', 'web-2')).response.status).toBe(201);
    expect((await compute.DELETE('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId: 'vm-ev-1', isoId: iso.id } } })).response.status).toBe(204);
    expect((await compute.DELETE('/vms/{vmId}', { params: { path: { vmId: 'vm-ev-2' } } })).response.status).toBe(204);
    expect((await c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id }, query: { confirm: true } } })).response.status).toBe(204);

    const imgEvents = await eventsOf(c, SUPER, { imageId: img.id });
    expect(typesOf(imgEvents)).toEqual(['image.created', 'image.import.started', 'image.activated', 'vm.linked', 'vm.linked', 'vm.unlinked', 'image.deleted']);
    expect(imgEvents[3]).toMatchObject({
      actor: { type: 'caller', user: 'compute', role: 'service' },
      payload: { vmId: 'vm-ev-1', vmName: 'web-1', ownerId: u.sub, departmentId: u.dept },
    });
    expect(imgEvents[5].payload).toEqual({ vmId: 'vm-ev-2', reason: 'VM_DELETED' });
    expect(imgEvents[6]).toMatchObject({
      actor: callerActor(u),
      payload: { name: img.name, kind: 'IMAGE', linkedVms: [{ vmId: 'vm-ev-1', relation: 'CREATED_FROM' }] },
    });
    expect(imgEvents.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5, 6, 7]);

    const isoEvents = await eventsOf(c, SUPER, { imageId: iso.id, type: ['iso.mounted', 'iso.unmounted'] });
    expect(isoEvents.map((e) => [e.type, e.payload.vmId, e.payload.reason])).toEqual([
      ['iso.mounted', 'vm-ev-1', undefined],
      ['iso.mounted', 'vm-ev-2', undefined],
      ['iso.unmounted', 'vm-ev-1', 'UNMOUNTED'],
      ['iso.unmounted', 'vm-ev-2', 'VM_DELETED'],
    ]);
  });

  it('quota: quota.limit_changed, and quota.refused for a create the quota refuses (which creates no image and no image.created)', async () => {
    const u = newUser();
    const limits = await answer(setLimits(u.dept, { IMAGE_COUNT: 1, VCPU: 'unlimited' }));
    expect(limits.status).toBe(200);
    await createImage(c.t, u, c.zoneId);
    const refused = await answer(
      c.api(u).POST('/images', {
        body: typedImageBody(c.zoneId, { name: 'too-many', source: { type: 'UPLOAD' } }),
        headers: { 'X-Correlation-Id': 'corr-refused' },
      }),
    );
    expect(refused.status).toBe(409);
    const evs = (await eventsOf(c, u)).filter((e) => e.type.startsWith('quota.') || e.payload?.departmentId === u.dept || e.payload?.name === 'too-many');
    expect(typesOf(evs)).toEqual(['quota.limit_changed', 'image.created', 'quota.refused']);
    expect(evs[0]).toMatchObject({
      imageId: null,
      sequence: 1,
      actor: callerActor(SUPER),
      payload: { departmentId: u.dept, limits: { IMAGE_COUNT: 1, VCPU: null } },
    });
    expect(evs[2]).toMatchObject({
      imageId: null,
      sequence: 2,
      actor: callerActor(u),
      correlationId: 'corr-refused',
      payload: { departmentId: u.dept, resource: 'IMAGE_COUNT', requested: 1, limit: 1, used: 1, reserved: 0 },
    });
  });

  it('a change that fails after its event was written rolls back both (catalog and quota transactions): no event, no change, no gap in the sequence', async () => {
    const u = newUser();
    const img = await createImage(c.t, u, c.zoneId);
    const events = c.t.app.get(EventsService);
    const repo = c.t.app.get(CatalogRepository);
    const draft = {
      type: 'image.updated' as const,
      imageId: img.id,
      visibility: { scope: img.scope, ownerId: u.sub, departmentId: u.dept },
      payload: { fields: ['name'], values: { name: 'never' } },
    };
    await expect(
      repo.update(img.id, { name: 'never' }, undefined, async (m) => {
        await events.record(m, draft);
        throw new Error('a later step of the change failed');
      }),
    ).rejects.toThrow('a later step');
    const quota = c.t.app.get(QuotaRepository);
    await c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: u.dept } } });
    await expect(
      quota.setLimits(u.dept, [[QuotaResource.VmCount, 7]], new Date(), function* () {
        yield* events.program({
          type: 'quota.limit_changed',
          departmentId: u.dept,
          visibility: { scope: null, ownerId: null, departmentId: u.dept },
          payload: { departmentId: u.dept, limits: { VM_COUNT: 7 } },
        });
        yield { sql: 'SELECT nope FROM no_such_table', params: [] };
        return undefined;
      }),
      // not toThrow(): better-sqlite3's SqliteError comes from the realm of the test file that loaded the addon first
    ).rejects.toMatchObject({ message: expect.stringMatching(/no such table|doesn't exist/) });
    expect((await c.api(u).GET('/images/{id}', path(img.id))).data!.name).toBe(img.name);
    const vm = (await c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: u.dept } } })).data!.resources.find(
      (r) => r.resource === 'VM_COUNT',
    );
    expect(vm?.limit ?? null).not.toBe(7);
    const evs = await eventsOf(c, SUPER);
    expect(evs.filter((e) => e.imageId === img.id).map((e) => e.type)).toEqual(['image.created']);
    expect(evs.filter((e) => e.type === 'quota.limit_changed' && e.payload.departmentId === u.dept)).toEqual([]);
    // the sequence continues without a gap after the rolled-back writes
    expect((await c.api(u).PATCH('/images/{id}', { ...path(img.id), body: { name: 'kept' } })).response.status).toBe(200);
    expect((await eventsOf(c, u, { imageId: img.id })).map((e) => e.sequence)).toEqual([1, 2]);
  });

  it('an edit of an image deleted since it was read writes nothing: no row, no event (issue 14: the edit is not read back)', async () => {
    const u = newUser();
    const img = await createImage(c.t, u, c.zoneId);
    const repo = c.t.app.get(CatalogRepository);
    const read = (await repo.findById(img.id))!;
    expect(await repo.delete(img.id)).toBe(true);
    const events = c.t.app.get(EventsService);
    const answer = await repo.update(read, { name: 'ghost' }, ['t'], (m) =>
      events.record(m, {
        type: 'image.updated',
        imageId: img.id,
        visibility: { scope: img.scope, ownerId: u.sub, departmentId: u.dept },
        payload: { fields: ['name'], values: { name: 'ghost' } },
      }),
    );
    expect(answer).toBeNull();
    expect(await repo.findById(img.id)).toBeNull();
    expect((await eventsOf(c, SUPER)).filter((e) => e.imageId === img.id).map((e) => e.type)).toEqual(['image.created']);
  });

  it("scope filtering: another user's private image never appears; its department's admin sees it; public events are for everyone", async () => {
    const a = newUser();
    const b = newUser(Role.User, a.dept);
    const admin = newUser(Role.Admin, a.dept);
    const otherAdmin = newUser(Role.Admin);
    const img = await createImage(c.t, a, c.zoneId);
    expect((await c.api(a).PATCH('/images/{id}', { ...path(img.id), body: { name: 'still private' } })).response.status).toBe(200);
    const idsFor = async (who: Caller) => typesOf(await eventsOf(c, who, { imageId: img.id }));
    expect(await idsFor(a)).toEqual(['image.created', 'image.updated']);
    expect(await idsFor(admin)).toEqual(['image.created', 'image.updated']);
    expect(await idsFor(SUPER)).toEqual(['image.created', 'image.updated']);
    expect(await idsFor(COMPUTE)).toEqual(['image.created', 'image.updated']);
    expect(await idsFor(b)).toEqual([]);
    expect(await idsFor(otherAdmin)).toEqual([]);
    // not in the unfiltered feed either
    expect((await eventsOf(c, b)).filter((e) => e.imageId === img.id)).toEqual([]);
    // made public: the scope change and what follows are for everyone, what happened while private stays hidden
    expect((await c.api(a).PATCH('/images/{id}', { ...path(img.id), body: { scope: 'PUBLIC' } })).response.status).toBe(200);
    expect(await idsFor(b)).toEqual(['image.scope_changed']);
    // quota events are for the department's own callers
    expect((await setLimits(a.dept, { VCPU: 64 })).response.status).toBe(200);
    const quotaFor = async (who: Caller) => (await eventsOf(c, who, { type: ['quota.limit_changed'] })).filter((e) => e.payload.departmentId === a.dept).length;
    expect(await quotaFor(b)).toBe(1);
    expect(await quotaFor(otherAdmin)).toBe(0);
  });

  it('refuses bad cursors and filters with 400 VALIDATION_FAILED', async () => {
    // untyped on purpose: cursors and filters the contract forbids
    for (const query of [{ after: -1 }, { after: 'x' }, { type: 'image.nope' }, { imageId: 'not-a-uuid' }, { limit: 0 }, { limit: 501 }, { other: 1 }]) {
      const res = await c.t.http().get('/events').query(query).set('Authorization', c.t.auth(SUPER));
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
    }
    expect((await answer(c.api().GET('/events'))).status).toBe(401);
  });
});
