import { createHash, randomUUID } from 'node:crypto';
import { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { DownloadUrlSigner } from '../../src/image-bytes/download-url';
import type { operations } from '../../console/src/api/schema';
import { ApiClient, answer, reply, typedCallers, type Schemas } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TEST_SECRET, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';
import { S3TestServer, startS3Server } from '../support/s3-server';

/**
 * VM linkage end to end over HTTP (R3, R6, R19, R20): the launch check and its refusals, the VM quota it
 * reserves and the links commit, ISO mounts, the signed download URL, and a delete that shows the VMs first.
 */

type Json = Record<string, any>;

const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const BYTES = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7 + 3) % 251));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let seq = 0;
/** A user of a department of its own, so each test reads quota numbers nobody else touches. */
const newUser = (role: Role = Role.User): Caller => {
  seq++;
  return { sub: `vm-user-${seq}`, dept: `vm-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role };
};
const ownerOf = (c: Caller) => ({ userId: c.sub, departmentId: c.dept });

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller: image reads, VM images, quota reads, limits and reconcile go through it */
  api: (who?: Caller) => ApiClient;
  zoneId: string;
  otherZoneId: string;
  storage: ObjectStorage;
  catalog: CatalogService;
}

async function boot(shape: Shape, label: string, env: Record<string, string> = {}): Promise<Ctx> {
  const t = await startApp(shape, label, { QUOTA_SWEEP_INTERVAL_SECONDS: '0', INGEST_SWEEP_INTERVAL_SECONDS: '0', ...env });
  // listening for real: the signed URLs carry this server's address (PUBLIC_BASE_URL in the platform shape), and a plain fetch reads them
  await t.listen();
  const api = await typedCallers(t);
  return {
    t,
    api,
    zoneId: await createZone(t),
    otherZoneId: await createZone(t),
    storage: t.app.get(ObjectStorage),
    catalog: t.app.get(CatalogService),
  };
}

/** An image (or ISO) of `owner`, made ACTIVE with BYTES stored as an import would leave them. */
async function activeImage(c: Ctx, owner: Caller, over: Record<string, unknown> = {}, bytes = BYTES, virtualSizeBytes?: number): Promise<Json> {
  const img = await createImage(c.t, owner, c.zoneId, { source: { type: 'UPLOAD' }, ...over });
  await c.storage.putStream(objectKeys.imageDisk(img.id), Readable.from(bytes));
  await c.catalog.transition(img.id, ImagePhase.Importing);
  await c.catalog.transition(img.id, ImagePhase.Verifying, { sizeBytes: bytes.length });
  await c.catalog.transition(img.id, ImagePhase.Ready, {
    sizeBytes: bytes.length,
    checksum: sha256(bytes),
    ...(virtualSizeBytes === undefined ? {} : { virtualSizeBytes }),
  });
  return (await c.api(SUPER).GET('/images/{id}', { params: { path: { id: img.id as string } } })).data!;
}
const activeIso = (c: Ctx, owner: Caller, usage: 'OS' | 'TOOL', over: Record<string, unknown> = {}, bytes = BYTES, virtualSizeBytes?: number) =>
  activeImage(c, owner, { kind: 'ISO', format: undefined, isoUsage: usage, ...over }, bytes, virtualSizeBytes);

type LaunchBody = Schemas['LaunchRequestDto'];
type OriginBody = Omit<Schemas['RegisterOriginDto'], 'zoneId'> & { zoneId?: string };
type MountBody = Schemas['RegisterMountDto'];
// launch, origin, mount and the image's VM list go through the typed client, read in supertest's shape (reply)
const launch = (c: Ctx, imageId: string, body: LaunchBody, as: Caller = COMPUTE) =>
  reply(c.api(as).POST('/images/{id}/launches', { params: { path: { id: imageId } }, body }));
// untyped on purpose: a launch body or image id the contract forbids (the validation cases)
const rawLaunch = (c: Ctx, imageId: string, body: Json, as: Caller = COMPUTE) =>
  c.t.http().post(`/images/${imageId}/launches`).set('Authorization', c.t.auth(as)).send(body);
const launchBody = (c: Ctx, owner: Caller, over: Partial<LaunchBody> = {}): LaunchBody => ({
  idempotencyKey: `k-${randomUUID()}`,
  owner: ownerOf(owner),
  zoneId: c.zoneId,
  count: 1,
  ...over,
});
/** Registers a VM's origin; `zoneId` is the test zone unless the body says otherwise. */
const origin = (c: Ctx, vmId: string, body: OriginBody, as: Caller = COMPUTE) =>
  reply(c.api(as).PUT('/vms/{vmId}/origin', { params: { path: { vmId } }, body: { zoneId: c.zoneId, ...body } }));
// untyped on purpose: an origin body or VM id the contract forbids (the validation cases)
const rawOrigin = (c: Ctx, vmId: string, body: Json, as: Caller = COMPUTE) =>
  c.t
    .http()
    .put(`/vms/${vmId}/origin`)
    .set('Authorization', c.t.auth(as))
    .send({ zoneId: c.zoneId, ...body });
const mount = (c: Ctx, vmId: string, isoId: string, body: MountBody, as: Caller = COMPUTE) =>
  reply(c.api(as).PUT('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId, isoId } }, body }));
const vmImages = async (c: Ctx, vmId: string, as: Caller = COMPUTE): Promise<Json> => {
  const res = await answer(c.api(as).GET('/vms/{vmId}/images', { params: { path: { vmId } } }));
  expect(res.status).toBe(200);
  return res.data!;
};
type ImageVmsQuery = NonNullable<operations['listImageVms']['parameters']['query']>;
const imageVms = (c: Ctx, imageId: string, as: Caller = COMPUTE, query: ImageVmsQuery = {}) =>
  reply(c.api(as).GET('/images/{id}/vms', { params: { path: { id: imageId }, query } }));
// untyped on purpose: a query the contract forbids (the validation cases)
const rawImageVms = (c: Ctx, imageId: string, as: Caller = COMPUTE, query: Json = {}) =>
  c.t.http().get(`/images/${imageId}/vms`).query(query).set('Authorization', c.t.auth(as));
/** VM_COUNT (and IMAGE_COUNT) of a department, read through the quota API. */
const quotaOf = async (c: Ctx, dept: string): Promise<{ vms: { used: number; reserved: number }; images: { used: number; reserved: number } }> => {
  const res = await answer(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: dept } } }));
  expect(res.status).toBe(200);
  const by = Object.fromEntries(res.data!.resources.map((r) => [r.resource, { used: r.used, reserved: r.reserved }]));
  return { vms: by.VM_COUNT, images: by.IMAGE_COUNT };
};
/** DISK_BYTES of a department, read through the quota API. */
const diskOf = async (c: Ctx, dept: string): Promise<{ used: number; reserved: number }> => {
  const res = await answer(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: dept } } }));
  expect(res.status).toBe(200);
  const r = res.data!.resources.find((x) => x.resource === 'DISK_BYTES')!;
  return { used: r.used, reserved: r.reserved };
};
const setVmLimit = async (c: Ctx, dept: string, limit: number) => {
  expect(
    (await c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: dept } }, body: { limits: { VM_COUNT: limit } } })).response.status,
  ).toBe(200);
};
const noDrift = async (c: Ctx, dept: string) => {
  const res = await answer(c.api(SUPER).POST('/quotas/reconcile', { body: { departmentId: dept, dryRun: true } }));
  expect(res.status).toBe(200);
  expect(res.data!.drift).toEqual([]);
};
/** The path and query of an absolute URL (to send it through supertest with a header of our own). */
const pathOf = (url: string) => {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
};

describe.each(SHAPES)('VM links over HTTP (%s)', (shape) => {
  let c: Ctx;
  beforeAll(async () => {
    c = await boot(shape, 'vmlinks');
  });
  afterAll(() => c?.t.close());

  describe('launch check (R19)', () => {
    it('reserves the VMs and answers the image facts and a signed URL that reads the bytes without a token; the key makes it idempotent', async () => {
      const u = newUser();
      const img = await activeImage(c, u, { name: 'CentOS 7.9 base', osCategory: 'CENTOS', osBits: 64, format: 'qcow2' });
      const body = launchBody(c, u, { count: 2, dataDisks: 3 });
      const res = await launch(c, img.id, body);
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        reservationStatus: 'PENDING',
        count: 2,
        pendingVms: 2,
        image: {
          id: img.id,
          kind: 'IMAGE',
          name: 'CentOS 7.9 base',
          format: 'qcow2',
          hypervisor: 'KVM',
          osCategory: 'CENTOS',
          osBits: 64,
          isoUsage: null,
          zoneId: c.zoneId,
          sizeBytes: BYTES.length,
          checksum: sha256(BYTES),
        },
        download: { method: 'SERVICE' },
      });
      const port = (c.t.app.getHttpServer().address() as AddressInfo).port;
      expect(res.body.download.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/downloads/${img.id}\\?expires=\\d+&signature=[0-9a-f]{64}$`));
      const expiresAt = new Date(res.body.download.expiresAt).getTime();
      expect(expiresAt).toBeGreaterThan(Date.now() + 3500_000);
      expect(new Date(res.body.expiresAt).getTime()).toBeGreaterThan(Date.now() + 3500_000);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 2 } });

      // a plain fetch, no token
      const got = await fetch(res.body.download.url);
      expect(got.status).toBe(200);
      expect(got.headers.get('etag')).toBe(`"${sha256(BYTES)}"`);
      expect(Buffer.compare(Buffer.from(await got.arrayBuffer()), BYTES)).toBe(0);
      const part = await fetch(res.body.download.url, { headers: { Range: 'bytes=1000-1999' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${BYTES.length}`);
      expect(Buffer.compare(Buffer.from(await part.arrayBuffer()), BYTES.subarray(1000, 2000))).toBe(0);
      const head = await fetch(res.body.download.url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(BYTES.length));

      // the same key and request: the same reservation, nothing more reserved
      const again = await launch(c, img.id, body);
      expect(again.status).toBe(200);
      expect(again.body.reservationId).toBe(res.body.reservationId);
      expect(again.body.download.url).toMatch(/signature=[0-9a-f]{64}$/);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 2 } });
      // the same key with another count
      const reused = await launch(c, img.id, { ...body, count: 3 });
      expect(reused.status).toBe(422);
      expect(reused.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 2 } });
    });

    it('refuses a tampered, foreign or expired signed URL, and one without its signature', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      const other = await activeImage(c, u);
      const url: string = (await launch(c, img.id, launchBody(c, u))).body.download.url;
      // untyped on purpose: the signed URLs are read as they are handed out, tampered with, and without a token
      const get = (path: string) => c.t.http().get(path);
      const sig = new URL(url).searchParams.get('signature')!;
      const expires = Number(new URL(url).searchParams.get('expires'));
      const flipped = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
      for (const [path, code] of [
        [`/downloads/${img.id}?expires=${expires}&signature=${flipped}`, 'DOWNLOAD_URL_INVALID'],
        [`/downloads/${img.id}?expires=${expires + 3600}&signature=${sig}`, 'DOWNLOAD_URL_INVALID'],
        [`/downloads/${other.id}?expires=${expires}&signature=${sig}`, 'DOWNLOAD_URL_INVALID'],
        [`/downloads/${img.id}?expires=${expires}&signature=xyz`, 'DOWNLOAD_URL_INVALID'],
      ]) {
        const res = await get(path);
        expect([path, res.status, res.body.code]).toEqual([path, 403, code]);
      }
      // correctly signed but past its expiry
      const past = Math.floor(Date.now() / 1000) - 5;
      const expired = await get(pathOf(new DownloadUrlSigner(TEST_SECRET).url('http://x', { imageId: img.id, expires: past })));
      expect(expired.status).toBe(403);
      expect(expired.body).toMatchObject({ code: 'DOWNLOAD_URL_EXPIRED', details: { expiredAt: new Date(past * 1000).toISOString() } });
      // signed with another secret
      const foreign = await get(
        pathOf(new DownloadUrlSigner('another-secret-0123456789abcdef0123456789').url('http://x', { imageId: img.id, expires: expires })),
      );
      expect(foreign.body.code).toBe('DOWNLOAD_URL_INVALID');
      expect((await get(`/downloads/${img.id}?expires=${expires}`)).body.code).toBe('VALIDATION_FAILED');
      expect((await get(`/downloads/${img.id}`)).status).toBe(400);
      // the untampered URL still works; the token route still wants a token
      expect((await get(pathOf(url))).status).toBe(200);
      expect((await get(`/images/${img.id}/file`)).status).toBe(401);
    });

    it('refuses, each with its own code, and reserves nothing', async () => {
      const u = newUser();
      const bob = newUser();
      const img = await activeImage(c, u);
      const queued = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' } });
      const disabled = await activeImage(c, u);
      expect((await answer(c.api(SUPER).POST('/images/{id}/disable', { params: { path: { id: disabled.id } }, body: {} }))).status).toBe(200);
      const toolIso = await activeIso(c, u, 'TOOL');
      const bobsPrivate = await activeImage(c, bob);
      const ide = await activeImage(c, u, { osCategory: 'WINDOWS_IDE', format: 'vmdk' });
      const ideIso = await activeIso(c, u, 'OS', { osCategory: 'WINDOWS_IDE' });
      await setVmLimit(c, u.dept, 3);
      const cases: Array<[string, string, Json, number, string, Json?]> = [
        ['an unknown image', randomUUID(), {}, 404, 'IMAGE_NOT_FOUND'],
        [
          "another user's private image",
          bobsPrivate.id,
          {},
          403,
          'IMAGE_NOT_USABLE',
          { scope: 'PRIVATE', owner: { userId: u.sub, departmentId: u.dept, role: 'user' } },
        ],
        ['an image still waiting for its bytes', queued.id, {}, 409, 'IMAGE_NOT_ACTIVE', { status: 'INACTIVE', phase: 'QUEUED' }],
        ['a disabled image', disabled.id, {}, 409, 'IMAGE_NOT_ACTIVE', { phase: 'DISABLED' }],
        ['a tool ISO (R6)', toolIso.id, {}, 409, 'ISO_NOT_BOOTABLE', { isoUsage: 'TOOL' }],
        ['another zone', img.id, { zoneId: c.otherZoneId }, 422, 'ZONE_MISMATCH', { imageZoneId: c.zoneId, zoneId: c.otherZoneId }],
        ['a Windows-IDE image with 2 data disks (R3)', ide.id, { dataDisks: 2 }, 422, 'TOO_MANY_DATA_DISKS', { maxDataDisks: 1, dataDisks: 2 }],
        ['a Windows-IDE ISO with 2 data disks (R3)', ideIso.id, { dataDisks: 2 }, 422, 'TOO_MANY_DATA_DISKS', { osCategory: 'WINDOWS_IDE' }],
        ['more VMs than the quota has room for', img.id, { count: 4 }, 409, 'QUOTA_EXCEEDED', { resource: 'VM_COUNT', requested: 4, remaining: 3, limit: 3 }],
      ];
      for (const [what, id, over, status, code, details] of cases) {
        const res = await launch(c, id, launchBody(c, u, over));
        expect([what, res.status, res.body.code]).toEqual([what, status, code]);
        if (details) expect(res.body.details).toMatchObject(details);
      }
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 0 } });
      // the checks run in order: a refused owner hears nothing about the state of the image
      expect((await launch(c, bobsPrivate.id, launchBody(c, u, { zoneId: c.otherZoneId }))).body.code).toBe('IMAGE_NOT_USABLE');
      // what fits is allowed: one data disk on IDE, an OS ISO, the whole quota, bob's image for bob
      expect((await launch(c, ide.id, launchBody(c, u, { dataDisks: 1 }))).status).toBe(201);
      const osIso = await launch(c, (await activeIso(c, u, 'OS')).id, launchBody(c, u));
      expect(osIso.status).toBe(201);
      expect(osIso.body.image).toMatchObject({ kind: 'ISO', format: 'iso', isoUsage: 'OS' });
      expect((await launch(c, img.id, launchBody(c, u))).status).toBe(201);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 3 } });
      expect((await launch(c, img.id, launchBody(c, u))).body.code).toBe('QUOTA_EXCEEDED');
      expect((await launch(c, bobsPrivate.id, launchBody(c, bob))).status).toBe(201);
    });

    it('asks the one policy whether the owner may use it: featured and public for all, private for its owner and super admins', async () => {
      const u = newUser();
      const other = newUser();
      const featured = await activeImage(c, SUPER, { scope: 'FEATURED' });
      const mine = await activeImage(c, u);
      const pub = await activeImage(c, u);
      expect((await answer(c.api(u).PATCH('/images/{id}', { params: { path: { id: pub.id } }, body: { scope: 'PUBLIC' } }))).status).toBe(200);
      const admin: Caller = { sub: 'vm-admin', dept: u.dept, role: Role.Admin };
      for (const [img, owner, role, ok] of [
        [featured, other, undefined, true],
        [pub, other, undefined, true],
        [mine, u, undefined, true],
        [mine, other, undefined, false],
        [mine, admin, 'admin', false], // an admin sees its department's private images but uses only its own
        [mine, other, 'super_admin', true],
      ] as Array<[Json, Caller, 'admin' | 'super_admin' | undefined, boolean]>) {
        const res = await launch(c, img.id, launchBody(c, owner, { owner: { ...ownerOf(owner), ...(role ? { role } : {}) } }));
        expect([img.name, owner.sub, role, res.status]).toEqual([img.name, owner.sub, role, ok ? 201 : 403]);
      }
    });

    it('is for services only, and validates its input', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      for (const who of [SUPER, u]) {
        const res = await launch(c, img.id, launchBody(c, u), who);
        expect([who.role, res.status, res.body.code]).toEqual([who.role, 403, 'FORBIDDEN']);
      }
      expect((await reply(c.api().POST('/images/{id}/launches', { params: { path: { id: img.id } }, body: launchBody(c, u) }))).status).toBe(401);
      for (const [over, field] of [
        [{ count: 0 }, 'count'],
        [{ count: 101 }, 'count'],
        [{ count: '2' }, 'count'],
        [{ dataDisks: -1 }, 'dataDisks'],
        [{ dataDisks: 65 }, 'dataDisks'],
        [{ idempotencyKey: undefined }, 'idempotencyKey'],
        [{ idempotencyKey: 'has space' }, 'idempotencyKey'],
        [{ owner: undefined }, 'owner'],
        [{ owner: { userId: 'u' } }, 'owner.departmentId'],
        [{ owner: { userId: 'u', departmentId: 'd', role: 'service' } }, 'owner.role'],
        [{ zoneId: 'zone-1' }, 'zoneId'],
        [{ extra: 1 }, 'extra'],
      ] as Array<[Json, string]>) {
        const res = await rawLaunch(c, img.id, { ...launchBody(c, u), ...over });
        expect([field, res.status, res.body.code]).toEqual([field, 400, 'VALIDATION_FAILED']);
        expect(res.body.details.fields.map((f: Json) => f.field)).toContain(field);
      }
      expect((await rawLaunch(c, 'not-a-uuid', launchBody(c, u))).status).toBe(400);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 0 } });
    });
  });

  describe('links', () => {
    it('registering VMs commits the launch reservation one VM at a time; again is a no-op; past it the VM is counted directly', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      const idem = `k-${randomUUID()}`;
      const l = { ...(await launch(c, img.id, launchBody(c, u, { count: 2, idempotencyKey: idem }))).body, idem };
      const vm = (n: number) => `vm-${u.sub}-${n}`;
      const reg = (n: number, over: Partial<OriginBody> = {}) =>
        origin(c, vm(n), { imageId: img.id, vmName: `web-${n}`, owner: ownerOf(u), reservationId: l.reservationId, ...over });

      const first = await reg(1);
      expect(first.status).toBe(201);
      expect(first.body).toMatchObject({
        vmId: vm(1),
        vmName: 'web-1',
        imageId: img.id,
        relation: 'CREATED_FROM',
        ownerId: u.sub,
        departmentId: u.dept,
        reservationId: l.reservationId,
        quota: 'LAUNCH_RESERVATION',
      });
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 1 } });
      // idempotent by VM: nothing more is charged
      const replay = await reg(1);
      expect(replay.status).toBe(200);
      expect(replay.body).toMatchObject({ vmId: vm(1), since: first.body.since, quota: 'LAUNCH_RESERVATION' });
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 1 } });

      expect((await reg(2)).body.quota).toBe('LAUNCH_RESERVATION');
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 2, reserved: 0 } });
      const r = await answer(c.api(COMPUTE).GET('/quota-reservations/{id}', { params: { path: { id: l.reservationId } } }));
      expect(r.data).toMatchObject({ status: 'COMMITTED', items: [{ resource: 'VM_COUNT', reserved: 0, pending: false }] });
      // a replay of the launch tells the compute side nothing is left to register
      const replayed = await launch(c, img.id, { ...launchBody(c, u, { count: 2 }), idempotencyKey: l.idem });
      expect(replayed.body).toMatchObject({ reservationId: l.reservationId, reservationStatus: 'COMMITTED', count: 2, pendingVms: 0 });
      // the reservation is used up: a third VM is counted directly (it exists)
      const third = await reg(3);
      expect(third.status).toBe(201);
      expect(third.body.quota).toBe('DIRECT');
      // and so is a VM registered without a reservation
      expect((await origin(c, vm(4), { imageId: img.id, vmName: 'web-4', owner: ownerOf(u) })).body.quota).toBe('DIRECT');
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 4, reserved: 0 } });
      await noDrift(c, u.dept);

      // a new name renames the VM
      expect((await reg(1, { vmName: 'web-1-renamed' })).body.vmName).toBe('web-1-renamed');
      expect((await vmImages(c, vm(1))).vmName).toBe('web-1-renamed');
    });

    it('charges each VM exactly once when registrations race: replays of one VM, and more VMs than the launch reserved', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      const l = (await launch(c, img.id, launchBody(c, u, { count: 4 }))).body;
      const reg = (vmId: string) => origin(c, vmId, { imageId: img.id, vmName: vmId, owner: ownerOf(u), reservationId: l.reservationId });
      const same = await Promise.all(Array.from({ length: 6 }, () => reg(`vm-${u.sub}-same`)));
      expect(same.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
      expect(new Set(same.map((r) => r.body.since)).size).toBe(1);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 3 } });
      const many = await Promise.all(Array.from({ length: 8 }, (_, i) => reg(`vm-${u.sub}-r${i}`)));
      expect(many.map((r) => r.status)).toEqual(Array(8).fill(201));
      const sources = many.map((r) => r.body.quota as string);
      expect(sources.filter((q) => q === 'LAUNCH_RESERVATION')).toHaveLength(3);
      expect(sources.filter((q) => q === 'DIRECT')).toHaveLength(5);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 9, reserved: 0 } });
      await Promise.all(many.map((r) => answer(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: r.body.vmId } } }))));
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 0 } });
      await noDrift(c, u.dept);
    });

    it('refuses a second origin, a foreign or unknown reservation and an unknown image, and charges nothing for them', async () => {
      const u = newUser();
      const other = newUser();
      const img = await activeImage(c, u);
      const img2 = await activeImage(c, u);
      const l = (await launch(c, img.id, launchBody(c, u, { count: 2 }))).body;
      const l2 = (await launch(c, img2.id, launchBody(c, u))).body;
      const vmId = `vm-${u.sub}-a`;
      expect((await origin(c, vmId, { imageId: img.id, vmName: 'a', owner: ownerOf(u), reservationId: l.reservationId })).status).toBe(201);
      const conflict = await origin(c, vmId, { imageId: img2.id, vmName: 'a', owner: ownerOf(u), reservationId: l2.reservationId });
      expect(conflict.status).toBe(409);
      expect(conflict.body).toMatchObject({ code: 'VM_LINK_CONFLICT', details: { vmId, imageId: img2.id, createdFrom: img.id } });
      const cases: Array<[string, Partial<OriginBody>, number, string, Json?]> = [
        ["another image's launch", { imageId: img.id, reservationId: l2.reservationId }, 422, 'RESERVATION_MISMATCH', { reason: 'image' }],
        // (an owner who may use the image, so the launch rule lets it through to the reservation check)
        [
          "another department's VM",
          { imageId: img.id, reservationId: l.reservationId, owner: { ...ownerOf(other), role: 'super_admin' } },
          422,
          'RESERVATION_MISMATCH',
          { reason: 'department' },
        ],
        ['an unknown reservation', { imageId: img.id, reservationId: randomUUID() }, 404, 'RESERVATION_NOT_FOUND'],
        ['an unknown image', { imageId: randomUUID() }, 404, 'IMAGE_NOT_FOUND'],
      ];
      for (const [what, over, status, code, details] of cases) {
        const res = await origin(c, `vm-${u.sub}-b`, { imageId: img.id, vmName: 'b', owner: ownerOf(u), ...over });
        expect([what, res.status, res.body.code]).toEqual([what, status, code]);
        if (details) expect(res.body.details).toMatchObject(details);
      }
      expect((await vmImages(c, `vm-${u.sub}-b`)).createdFrom).toBeNull();
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 2 } });
      expect(await quotaOf(c, other.dept)).toMatchObject({ vms: { used: 0, reserved: 0 } });
      // only services register; ids are checked
      expect((await origin(c, 'vm-x', { imageId: img.id, vmName: 'x', owner: ownerOf(u) }, SUPER)).status).toBe(403);
      // untyped on purpose: a VM id, a name and zones the contract forbids
      expect((await rawOrigin(c, 'bad vm id!', { imageId: img.id, vmName: 'x', owner: ownerOf(u) })).body.code).toBe('VALIDATION_FAILED');
      expect((await rawOrigin(c, 'vm-x', { imageId: img.id, vmName: '', owner: ownerOf(u) })).body.details.fields.map((f: Json) => f.field)).toEqual([
        'vmName',
      ]);
      for (const zoneId of [undefined, 'zone-1']) {
        const res = await rawOrigin(c, 'vm-x', { imageId: img.id, vmName: 'x', owner: ownerOf(u), zoneId });
        expect([zoneId, res.status, res.body.details?.fields?.map((f: Json) => f.field)]).toEqual([zoneId, 400, ['zoneId']]);
      }
    });

    it('registering an origin is checked by the launch rule, without a reservation and with one (the image may have changed since)', async () => {
      const u = newUser();
      const bob = newUser();
      const toolIso = await activeIso(c, u, 'TOOL');
      const queued = await createImage(c.t, u, c.zoneId, { source: { type: 'UPLOAD' } });
      const disabled = await activeImage(c, u);
      expect((await answer(c.api(SUPER).POST('/images/{id}/disable', { params: { path: { id: disabled.id } }, body: {} }))).status).toBe(200);
      const bobsPrivate = await activeImage(c, bob);
      const img = await activeImage(c, u);
      const vm = (what: string) => `vm-${u.sub}-${what.replace(/[^a-z0-9]+/gi, '-')}`;
      const without: Array<[string, string, Json, number, string, Json?]> = [
        ['a tool ISO (R6)', toolIso.id, {}, 409, 'ISO_NOT_BOOTABLE', { isoUsage: 'TOOL' }],
        ['an image still waiting for its bytes', queued.id, {}, 409, 'IMAGE_NOT_ACTIVE', { phase: 'QUEUED' }],
        ['a disabled image', disabled.id, {}, 409, 'IMAGE_NOT_ACTIVE', { phase: 'DISABLED' }],
        ["another user's private image", bobsPrivate.id, {}, 403, 'IMAGE_NOT_USABLE', { scope: 'PRIVATE' }],
        ['another zone', img.id, { zoneId: c.otherZoneId }, 422, 'ZONE_MISMATCH', { imageZoneId: c.zoneId, zoneId: c.otherZoneId }],
      ];
      for (const [what, imageId, over, status, code, details] of without) {
        const res = await origin(c, vm(what), { imageId, vmName: 'x', owner: ownerOf(u), ...over });
        expect([what, res.status, res.body.code]).toEqual([what, status, code]);
        if (details) expect(res.body.details).toMatchObject(details);
        expect((await vmImages(c, vm(what))).createdFrom).toBeNull();
      }

      // launched while usable, changed before the VM was registered: the registration is checked again
      const osIso = await activeIso(c, u, 'OS');
      const pub = await activeImage(c, bob);
      expect((await answer(c.api(bob).PATCH('/images/{id}', { params: { path: { id: pub.id } }, body: { scope: 'PUBLIC' } }))).status).toBe(200);
      const later = await activeImage(c, u);
      const launched = async (id: string) => (await launch(c, id, launchBody(c, u))).body.reservationId as string;
      const isoRes = await launched(osIso.id);
      const pubRes = await launched(pub.id);
      const laterRes = await launched(later.id);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 3 } });
      expect((await answer(c.api(u).PATCH('/images/{id}', { params: { path: { id: osIso.id } }, body: { isoUsage: 'TOOL' } }))).status).toBe(200);
      expect((await answer(c.api(bob).PATCH('/images/{id}', { params: { path: { id: pub.id } }, body: { scope: 'PRIVATE' } }))).status).toBe(200);
      expect((await answer(c.api(SUPER).POST('/images/{id}/disable', { params: { path: { id: later.id } }, body: {} }))).status).toBe(200);
      const withRes: Array<[string, string, string, Json, number, string]> = [
        ['an OS ISO that became a tool ISO', osIso.id, isoRes, {}, 409, 'ISO_NOT_BOOTABLE'],
        ['a public image made private by its owner', pub.id, pubRes, {}, 403, 'IMAGE_NOT_USABLE'],
        ['an image disabled since', later.id, laterRes, {}, 409, 'IMAGE_NOT_ACTIVE'],
        ['another zone than the launch', img.id, await launched(img.id), { zoneId: c.otherZoneId }, 422, 'ZONE_MISMATCH'],
      ];
      for (const [what, imageId, reservationId, over, status, code] of withRes) {
        const res = await origin(c, vm(what), { imageId, vmName: 'x', owner: ownerOf(u), reservationId, ...over });
        expect([what, res.status, res.body.code]).toEqual([what, status, code]);
        expect((await vmImages(c, vm(what))).createdFrom).toBeNull();
      }
      // nothing was charged; the launches still hold their VMs
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 4 } });
      // what the rule allows registers, and the same VM id can be used after a refusal
      expect((await origin(c, vm('another zone'), { imageId: img.id, vmName: 'x', owner: ownerOf(u) })).status).toBe(201);
      const fine = await origin(c, vm('another zone than the launch'), { imageId: img.id, vmName: 'x', owner: ownerOf(u), reservationId: withRes[3][2] });
      expect([fine.status, fine.body.quota]).toEqual([201, 'LAUNCH_RESERVATION']);
      expect((await origin(c, vm('bob'), { imageId: bobsPrivate.id, vmName: 'x', owner: ownerOf(bob) })).status).toBe(201);
      // a zone id is a UUID in any case
      expect((await origin(c, vm('upper'), { imageId: img.id, vmName: 'x', owner: ownerOf(u), zoneId: c.zoneId.toUpperCase() })).status).toBe(201);
    });

    it('VMs registered past the launch reservation go through the limit: 20 VMs on a 5-VM launch at VM_COUNT 5 leave usage at 5', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      await setVmLimit(c, u.dept, 5);
      const l = (await launch(c, img.id, launchBody(c, u, { count: 5 }))).body;
      const vm = (n: number) => `vm-${u.sub}-q${n}`;
      const regs = await Promise.all(
        Array.from({ length: 20 }, (_, i) => origin(c, vm(i), { imageId: img.id, vmName: `q${i}`, owner: ownerOf(u), reservationId: l.reservationId })),
      );
      const ok = regs.filter((r) => r.status === 201);
      expect(ok.map((r) => r.body.quota)).toEqual(Array(5).fill('LAUNCH_RESERVATION'));
      const refused = regs.filter((r) => r.status !== 201);
      expect(refused.map((r) => [r.status, r.body.code])).toEqual(Array(15).fill([409, 'QUOTA_EXCEEDED']));
      expect(refused[0].body.details).toMatchObject({ resource: 'VM_COUNT', limit: 5, remaining: 0 });
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 5, reserved: 0 } });
      // a refused VM is not recorded
      expect((await imageVms(c, img.id)).body.total).toBe(5);
      const refusedIds = regs.map((r, i) => (r.status === 201 ? null : vm(i))).filter((x): x is string => x !== null);
      expect((await vmImages(c, refusedIds[0])).createdFrom).toBeNull();
      // without any reservation: refused at the limit too
      const direct = await origin(c, `vm-${u.sub}-direct`, { imageId: img.id, vmName: 'direct', owner: ownerOf(u) });
      expect([direct.status, direct.body.code]).toEqual([409, 'QUOTA_EXCEEDED']);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 5, reserved: 0 } });
      // a deleted VM makes room for one more, counted directly
      expect((await answer(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: ok[0].body.vmId } } }))).status).toBe(204);
      const again = await origin(c, refusedIds[0], { imageId: img.id, vmName: 'again', owner: ownerOf(u) });
      expect([again.status, again.body.quota]).toEqual([201, 'DIRECT']);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 5, reserved: 0 } });
      expect((await origin(c, `vm-${u.sub}-direct`, { imageId: img.id, vmName: 'direct', owner: ownerOf(u) })).body.code).toBe('QUOTA_EXCEEDED');
      await noDrift(c, u.dept);
    });

    it('DISK_BYTES: a launch reserves what the VMs will use (root disk or virtual size, plus data disks); each VM charges and refunds its share', async () => {
      const GiB = 1024 ** 3;
      const u = newUser();
      const img = await activeImage(c, u, { format: 'qcow2' }, BYTES, 8 * GiB);
      const vm = (n: string) => `vm-${u.sub}-d${n}`;
      const reg = (n: string, reservationId?: string, over: Partial<OriginBody> = {}) =>
        origin(c, vm(n), { imageId: img.id, vmName: n, owner: ownerOf(u), ...(reservationId ? { reservationId } : {}), ...over });
      const del = (n: string) => reply(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: vm(n) } } }));

      // no root disk given: each VM needs the image's virtual size; data disk sizes add up
      const b1 = launchBody(c, u, { count: 2, dataDiskBytes: [GiB, 2 * GiB] });
      const l1 = await launch(c, img.id, b1);
      expect([l1.status, l1.body.diskBytesPerVm]).toEqual([201, 11 * GiB]);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 22 * GiB });
      // the same key and request again: the same reservation, nothing more reserved
      expect((await launch(c, img.id, b1)).status).toBe(200);
      // the same key with other disk sizes is another request
      const reused = await launch(c, img.id, { ...b1, dataDiskBytes: [GiB] });
      expect([reused.status, reused.body.code]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 22 * GiB });
      const a = await reg('a', l1.body.reservationId);
      expect([a.status, a.body.quota]).toEqual([201, 'LAUNCH_RESERVATION']);
      expect(await diskOf(c, u.dept)).toEqual({ used: 11 * GiB, reserved: 11 * GiB });
      // registering again charges nothing more
      expect((await reg('a', l1.body.reservationId)).status).toBe(200);
      expect((await reg('b', l1.body.reservationId)).status).toBe(201);
      expect(await diskOf(c, u.dept)).toEqual({ used: 22 * GiB, reserved: 0 });
      expect((await del('a')).status).toBe(204);
      expect(await diskOf(c, u.dept)).toEqual({ used: 11 * GiB, reserved: 0 });
      expect((await del('a')).status).toBe(204);
      expect(await diskOf(c, u.dept)).toEqual({ used: 11 * GiB, reserved: 0 });

      // a root disk given is what is reserved; dataDisks and dataDiskBytes must agree
      const l2 = await launch(c, img.id, launchBody(c, u, { count: 3, rootDiskBytes: 10 * GiB }));
      expect([l2.status, l2.body.diskBytesPerVm]).toEqual([201, 10 * GiB]);
      expect(await diskOf(c, u.dept)).toEqual({ used: 11 * GiB, reserved: 30 * GiB });
      const bad = await launch(c, img.id, launchBody(c, u, { dataDisks: 2, dataDiskBytes: [GiB] }));
      expect([bad.status, bad.body.code]).toEqual([400, 'VALIDATION_FAILED']);

      // a limit below what a launch needs: refused on DISK_BYTES, nothing reserved
      expect(
        (await reply(c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: u.dept } }, body: { limits: { DISK_BYTES: 60 * GiB } } })))
          .status,
      ).toBe(200);
      const over = await launch(c, img.id, launchBody(c, u, { count: 3 }));
      expect([over.status, over.body.code, over.body.details?.resource]).toEqual([409, 'QUOTA_EXCEEDED', 'DISK_BYTES']);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 3 } });
      expect(await diskOf(c, u.dept)).toEqual({ used: 11 * GiB, reserved: 30 * GiB });

      // the three VMs of l2 take their 10 GiB each from the reservation; a fourth goes beyond it and needs room
      for (const n of ['c', 'd', 'e']) expect((await reg(n, l2.body.reservationId)).body.quota).toBe('LAUNCH_RESERVATION');
      expect(await diskOf(c, u.dept)).toEqual({ used: 41 * GiB, reserved: 0 });
      const beyond = await reg('f', l2.body.reservationId, { diskBytes: 20 * GiB });
      expect([beyond.status, beyond.body.code, beyond.body.details?.resource]).toEqual([409, 'QUOTA_EXCEEDED', 'DISK_BYTES']);
      // refused: not recorded, no VM counted
      expect((await vmImages(c, vm('f'))).createdFrom).toBeNull();
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 4, reserved: 0 } });
      expect(await diskOf(c, u.dept)).toEqual({ used: 41 * GiB, reserved: 0 });
      // without a size, a VM beyond the reservation is charged the image's virtual size, directly
      const direct = await reg('g', l2.body.reservationId);
      expect([direct.status, direct.body.quota]).toEqual([201, 'DIRECT']);
      expect(await diskOf(c, u.dept)).toEqual({ used: 49 * GiB, reserved: 0 });
      // without any reservation: the virtual size, directly, while it fits (57 GiB of 60), then refused
      expect((await reg('h')).body.quota).toBe('DIRECT');
      expect((await reg('i')).body).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { resource: 'DISK_BYTES', requested: 8 * GiB, remaining: 3 * GiB } });
      expect(await diskOf(c, u.dept)).toEqual({ used: 57 * GiB, reserved: 0 });
      for (const n of ['b', 'c', 'd', 'e', 'g', 'h']) expect((await del(n)).status).toBe(204);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 0 });
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 0, reserved: 0 } });
      await noDrift(c, u.dept);
    });

    it('DISK_BYTES of an ISO launch: only a root disk given counts (no virtual-size rule), plus data disks', async () => {
      const GiB = 1024 ** 3;
      const u = newUser();
      const osIso = await activeIso(c, u, 'OS', {}, BYTES, 4 * GiB);
      const bare = await launch(c, osIso.id, launchBody(c, u, { count: 2 }));
      expect([bare.status, bare.body.diskBytesPerVm]).toEqual([201, 0]);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 0 });
      const sized = await launch(c, osIso.id, launchBody(c, u, { count: 2, rootDiskBytes: GiB, dataDiskBytes: [GiB] }));
      expect([sized.status, sized.body.diskBytesPerVm]).toEqual([201, 2 * GiB]);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 4 * GiB });
      expect(
        (await origin(c, `vm-${u.sub}-iso1`, { imageId: osIso.id, vmName: 'i1', owner: ownerOf(u), reservationId: sized.body.reservationId })).status,
      ).toBe(201);
      expect(await diskOf(c, u.dept)).toEqual({ used: 2 * GiB, reserved: 2 * GiB });
      // an ISO VM without a reservation and without a size charges no disk bytes
      expect((await origin(c, `vm-${u.sub}-iso2`, { imageId: osIso.id, vmName: 'i2', owner: ownerOf(u) })).status).toBe(201);
      expect(await diskOf(c, u.dept)).toEqual({ used: 2 * GiB, reserved: 2 * GiB });
      expect((await answer(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: `vm-${u.sub}-iso1` } } }))).status).toBe(204);
      expect(await diskOf(c, u.dept)).toEqual({ used: 0, reserved: 2 * GiB });
    });

    it('registers ISO mounts and unmounts, idempotently, checked like a use of the ISO', async () => {
      const u = newUser();
      const bob = newUser();
      const img = await activeImage(c, u);
      const osIso = await activeIso(c, u, 'OS', { name: 'CentOS 7 DVD' });
      const toolIso = await activeIso(c, u, 'TOOL', { name: 'virtio-win' });
      const vmId = `vm-${u.sub}-iso`;
      const body = { vmName: 'iso-vm', owner: ownerOf(u), zoneId: c.zoneId };
      expect((await origin(c, vmId, { imageId: img.id, vmName: 'iso-vm', owner: ownerOf(u) })).status).toBe(201);
      const m1 = await mount(c, vmId, toolIso.id, body);
      expect(m1.status).toBe(201);
      expect(m1.body).toMatchObject({ vmId, imageId: toolIso.id, relation: 'ISO_MOUNTED', quota: 'NONE', reservationId: null });
      expect((await mount(c, vmId, osIso.id, body)).status).toBe(201);
      expect((await mount(c, vmId, toolIso.id, body)).status).toBe(200);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 0 } });

      const seen = await vmImages(c, vmId);
      expect(seen).toMatchObject({
        vmId,
        vmName: 'iso-vm',
        ownerId: u.sub,
        departmentId: u.dept,
        createdFrom: { imageId: img.id, name: img.name, kind: 'IMAGE', relation: 'CREATED_FROM', imageDeleted: false, imageDeletedAt: null },
      });
      expect(seen.isoMounts.map((m: Json) => [m.imageId, m.name, m.kind, m.relation])).toEqual([
        [toolIso.id, 'virtio-win', 'ISO', 'ISO_MOUNTED'],
        [osIso.id, 'CentOS 7 DVD', 'ISO', 'ISO_MOUNTED'],
      ]);

      const unmount = () => answer(c.api(COMPUTE).DELETE('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId: vmId, isoId: toolIso.id } } }));
      expect((await unmount()).status).toBe(204);
      expect((await unmount()).status).toBe(204);
      expect((await vmImages(c, vmId)).isoMounts.map((m: Json) => m.imageId)).toEqual([osIso.id]);

      const queuedIso = await createImage(c.t, u, c.zoneId, { kind: 'ISO', format: undefined, isoUsage: 'OS', source: { type: 'UPLOAD' } });
      const bobsIso = await activeIso(c, bob, 'TOOL');
      const cases: Array<[string, string, Partial<MountBody>, number, string]> = [
        ['a disk image', img.id, {}, 422, 'NOT_AN_ISO'],
        ["another user's private ISO", bobsIso.id, {}, 403, 'IMAGE_NOT_USABLE'],
        ['an ISO still waiting for its bytes', queuedIso.id, {}, 409, 'IMAGE_NOT_ACTIVE'],
        ['another zone', toolIso.id, { zoneId: c.otherZoneId }, 422, 'ZONE_MISMATCH'],
        ['an unknown ISO', randomUUID(), {}, 404, 'IMAGE_NOT_FOUND'],
      ];
      for (const [what, isoId, over, status, code] of cases) {
        const res = await mount(c, vmId, isoId, { ...body, ...over });
        expect([what, res.status, res.body.code]).toEqual([what, status, code]);
      }
      expect((await vmImages(c, vmId)).isoMounts).toHaveLength(1);
      expect((await mount(c, vmId, toolIso.id, body, u)).status).toBe(403);
      expect((await answer(c.api(u).DELETE('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId: vmId, isoId: osIso.id } } }))).status).toBe(403);
    });

    it('deleting a VM removes its links and gives its VM back; again is a no-op; the id can be registered anew', async () => {
      const u = newUser();
      const img = await activeImage(c, u);
      const iso = await activeIso(c, u, 'TOOL');
      const l = (await launch(c, img.id, launchBody(c, u, { count: 2 }))).body;
      const vmId = `vm-${u.sub}-del`;
      expect((await origin(c, vmId, { imageId: img.id, vmName: 'del', owner: ownerOf(u), reservationId: l.reservationId })).status).toBe(201);
      expect((await origin(c, `${vmId}-2`, { imageId: img.id, vmName: 'keep', owner: ownerOf(u), reservationId: l.reservationId })).status).toBe(201);
      expect((await mount(c, vmId, iso.id, { vmName: 'del', owner: ownerOf(u), zoneId: c.zoneId })).status).toBe(201);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 2, reserved: 0 } });

      const del = () => answer(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: vmId } } }));
      expect((await del()).status).toBe(204);
      expect(await vmImages(c, vmId)).toEqual({ vmId, vmName: null, ownerId: null, departmentId: null, createdFrom: null, isoMounts: [] });
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 0 } });
      expect((await del()).status).toBe(204);
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 1, reserved: 0 } });
      expect((await imageVms(c, img.id)).body.items.map((v: Json) => v.vmId)).toEqual([`${vmId}-2`]);
      // an id the compute side reuses is a new VM
      expect((await origin(c, vmId, { imageId: img.id, vmName: 'del', owner: ownerOf(u) })).body.quota).toBe('DIRECT');
      expect(await quotaOf(c, u.dept)).toMatchObject({ vms: { used: 2, reserved: 0 } });
      await noDrift(c, u.dept);
      expect((await answer(c.api(SUPER).DELETE('/vms/{vmId}', { params: { path: { vmId: vmId } } }))).status).toBe(403);
      // untyped on purpose: a VM id the contract forbids
      expect((await c.t.http().delete('/vms/bad%20id').set('Authorization', c.t.auth(COMPUTE))).status).toBe(400);
    });

    it('GET /images/{id}/vms pages the linked VMs for whoever may delete the image; GET /vms/{vmId}/images answers the VM owner', async () => {
      const u = newUser();
      const bob = newUser();
      const admin: Caller = { sub: 'vm-admin-2', dept: u.dept, role: Role.Admin };
      const img = await activeImage(c, u);
      const iso = await activeIso(c, u, 'TOOL');
      for (let i = 1; i <= 5; i++) {
        expect((await origin(c, `vm-${u.sub}-p${i}`, { imageId: img.id, vmName: `p${i}`, owner: ownerOf(u) })).status).toBe(201);
        await new Promise((r) => setTimeout(r, 5));
      }
      expect((await mount(c, `vm-${u.sub}-p1`, iso.id, { vmName: 'p1', owner: ownerOf(u), zoneId: c.zoneId })).status).toBe(201);

      const p1 = await imageVms(c, img.id, u, { page: 1, pageSize: 2 });
      expect(p1.status).toBe(200);
      expect(p1.body).toMatchObject({ imageId: img.id, imageDeleted: false, total: 5, page: 1, pageSize: 2 });
      expect(p1.body.items).toEqual([
        { vmId: `vm-${u.sub}-p1`, vmName: 'p1', relation: 'CREATED_FROM', ownerId: u.sub, departmentId: u.dept, since: expect.any(String) },
        expect.objectContaining({ vmId: `vm-${u.sub}-p2` }),
      ]);
      expect((await imageVms(c, img.id, u, { page: 3, pageSize: 2 })).body.items.map((v: Json) => v.vmId)).toEqual([`vm-${u.sub}-p5`]);
      expect((await imageVms(c, img.id, u, { relation: 'ISO_MOUNTED' })).body.total).toBe(0);
      expect((await imageVms(c, iso.id, u, { relation: 'ISO_MOUNTED' })).body.items.map((v: Json) => v.vmId)).toEqual([`vm-${u.sub}-p1`]);
      // untyped on purpose: a relation and a page size the contract forbids
      expect((await rawImageVms(c, img.id, u, { relation: 'MOUNTED' })).status).toBe(400);
      expect((await rawImageVms(c, img.id, u, { pageSize: 201 })).status).toBe(400);
      // who may read: who may delete it (owner, admins, super admins) and services; others do not see it
      for (const [who, status] of [
        [u, 200],
        [admin, 200],
        [SUPER, 200],
        [COMPUTE, 200],
        [bob, 404],
      ] as Array<[Caller, number]>) {
        expect([who.sub, (await imageVms(c, img.id, who)).status]).toEqual([who.sub, status]);
      }
      expect((await answer(c.api(u).PATCH('/images/{id}', { params: { path: { id: img.id } }, body: { scope: 'PUBLIC' } }))).status).toBe(200);
      const forbidden = await imageVms(c, img.id, bob);
      expect([forbidden.status, forbidden.body.code]).toEqual([403, 'FORBIDDEN']);
      expect((await imageVms(c, randomUUID(), SUPER)).status).toBe(404);

      // a VM's images: its owner, its department's admin, super admins and services; others hear nothing
      const vm = `vm-${u.sub}-p1`;
      for (const who of [u, admin, SUPER, COMPUTE]) expect((await vmImages(c, vm, who)).createdFrom?.imageId).toBe(img.id);
      expect(await vmImages(c, vm, bob)).toEqual({ vmId: vm, vmName: null, ownerId: null, departmentId: null, createdFrom: null, isoMounts: [] });
      expect((await vmImages(c, 'vm-never-seen')).createdFrom).toBeNull();
    });
  });

  describe('delete (R20)', () => {
    it('a plain delete of an image VMs use answers 409 IMAGE_IN_USE listing them and changes nothing; confirmed, it goes and the links stay marked "image deleted"', async () => {
      const u = newUser();
      const img = await activeImage(c, u, { name: 'golden-image' });
      const l = (await launch(c, img.id, launchBody(c, u, { count: 2 }))).body;
      const vms = [`vm-${u.sub}-d1`, `vm-${u.sub}-d2`];
      for (const [i, vmId] of vms.entries()) {
        expect((await origin(c, vmId, { imageId: img.id, vmName: `d${i + 1}`, owner: ownerOf(u), reservationId: l.reservationId })).status).toBe(201);
      }
      const before = await quotaOf(c, u.dept);
      expect(before.vms).toEqual({ used: 2, reserved: 0 });

      const plain = await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id } } }));
      expect(plain.status).toBe(409);
      expect(plain.error).toMatchObject({ code: 'IMAGE_IN_USE', details: { imageId: img.id, total: 2 } });
      expect(plain.error?.details?.vms).toEqual([
        { vmId: vms[0], vmName: 'd1', relation: 'CREATED_FROM', ownerId: u.sub, departmentId: u.dept, since: expect.any(String) },
        { vmId: vms[1], vmName: 'd2', relation: 'CREATED_FROM', ownerId: u.sub, departmentId: u.dept, since: expect.any(String) },
      ]);
      expect((await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id }, query: { confirm: false } } }))).status).toBe(409);
      // untyped on purpose: a confirm that is not a boolean, and a VM id the path cannot hold
      expect((await c.t.http().delete(`/images/${img.id}?confirm=yes`).set('Authorization', c.t.auth(u))).body.code).toBe('VALIDATION_FAILED');
      // nothing changed: the image, its bytes, its quota, its links
      expect((await answer(c.api(u).GET('/images/{id}', { params: { path: { id: img.id } } }))).data).toMatchObject({ status: 'ACTIVE' });
      expect(await c.storage.exists(objectKeys.imageDisk(img.id))).toBe(true);
      expect(await quotaOf(c, u.dept)).toEqual(before);
      expect((await imageVms(c, img.id, u)).body.total).toBe(2);
      // a delete refused for another reason does not even get there
      expect((await answer(c.api(newUser()).DELETE('/images/{id}', { params: { path: { id: img.id }, query: { confirm: true } } }))).status).toBe(404);

      const confirmed = await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id }, query: { confirm: true } } }));
      expect(confirmed.status).toBe(204);
      expect((await answer(c.api(u).GET('/images/{id}', { params: { path: { id: img.id } } }))).status).toBe(404);
      expect(await c.storage.exists(objectKeys.imageDisk(img.id))).toBe(false);
      // the image's quota went back; the VMs are untouched and still count
      expect(await quotaOf(c, u.dept)).toEqual({ vms: { used: 2, reserved: 0 }, images: { used: before.images.used - 1, reserved: before.images.reserved } });
      await noDrift(c, u.dept);
      // their links still answer, marked "image deleted", with the image's last name
      const seen = await vmImages(c, vms[0]);
      expect(seen.createdFrom).toMatchObject({ imageId: img.id, name: 'golden-image', kind: 'IMAGE', relation: 'CREATED_FROM', imageDeleted: true });
      expect(new Date(seen.createdFrom.imageDeletedAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect((await vmImages(c, vms[1], u)).createdFrom.imageDeleted).toBe(true);
      const history = await imageVms(c, img.id, COMPUTE);
      expect(history.status).toBe(200);
      expect(history.body).toMatchObject({ imageDeleted: true, total: 2 });
      expect((await imageVms(c, img.id, SUPER)).status).toBe(200);
      expect((await imageVms(c, img.id, u)).status).toBe(404);
      // registering a VM from the gone image is refused; deleting its VMs still gives their quota back
      expect((await origin(c, `vm-${u.sub}-d3`, { imageId: img.id, vmName: 'd3', owner: ownerOf(u) })).body.code).toBe('IMAGE_NOT_FOUND');
      expect((await answer(c.api(COMPUTE).DELETE('/vms/{vmId}', { params: { path: { vmId: vms[0] } } }))).status).toBe(204);
      expect((await quotaOf(c, u.dept)).vms).toEqual({ used: 1, reserved: 0 });
    });

    it('does the same for an ISO VMs mount, and deletes an image without links at once', async () => {
      const u = newUser();
      const iso = await activeIso(c, u, 'TOOL', { name: 'tools-iso' });
      const vmId = `vm-${u.sub}-m`;
      expect((await mount(c, vmId, iso.id, { vmName: 'm', owner: ownerOf(u), zoneId: c.zoneId })).status).toBe(201);
      const plain = await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: iso.id } } }));
      expect(plain.status).toBe(409);
      expect(plain.error?.details?.vms).toEqual([expect.objectContaining({ vmId, relation: 'ISO_MOUNTED' })]);
      expect((await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: iso.id }, query: { confirm: true } } }))).status).toBe(204);
      expect((await vmImages(c, vmId)).isoMounts).toEqual([expect.objectContaining({ imageId: iso.id, name: 'tools-iso', imageDeleted: true })]);
      // unmounting an ISO that is gone still works
      expect((await answer(c.api(COMPUTE).DELETE('/vms/{vmId}/iso-mounts/{isoId}', { params: { path: { vmId: vmId, isoId: iso.id } } }))).status).toBe(204);
      expect((await vmImages(c, vmId)).isoMounts).toEqual([]);

      const lonely = await activeImage(c, u);
      expect((await answer(c.api(u).DELETE('/images/{id}', { params: { path: { id: lonely.id } } }))).status).toBe(204);
    });
  });
});

describe('VM links with the MinIO store (sqlite, in-process S3 server)', () => {
  let c: Ctx;
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server();
    c = await boot('sqlite', 'vmlinks-s3', {
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'vm-links-e2e',
      DOWNLOAD_URL_TTL_SECONDS: '600',
    });
  });
  afterAll(async () => {
    await c?.t.close();
    await s3?.close();
  });

  it('answers a presigned S3 URL that a plain fetch reads', async () => {
    const u = newUser();
    const img = await activeImage(c, u);
    const res = await launch(c, img.id, launchBody(c, u));
    expect(res.status).toBe(201);
    expect(res.body.download.method).toBe('PRESIGNED');
    expect(res.body.download.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${s3.port}/vm-links-e2e/images/${img.id}/disk\\?`));
    expect(new URL(res.body.download.url).searchParams.get('X-Amz-Expires')).toBe('600');
    const got = await fetch(res.body.download.url);
    expect(got.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await got.arrayBuffer()), BYTES)).toBe(0);
    expect(Math.abs(new Date(res.body.download.expiresAt).getTime() - (Date.now() + 600_000))).toBeLessThan(10_000);
  });
});
