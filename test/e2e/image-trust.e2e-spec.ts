import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Role } from '../../src/access/principal';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config/app-config';
import type { operations } from '../../console/src/api/schema';
import { ApiClient, reply, typedCallers, type Schemas } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TEST_SECRET, TestApp } from '../support/app';
import {
  iso,
  qcow2CutShort,
  qcow2Virtual,
  rawBytes,
  realImage,
  RealFormat,
  sha256,
  vmdkDeltaHiddenDescriptor,
  vmdkFlatDescriptorLongComments,
} from '../support/disk-images';
import { createZone } from '../support/fixtures';
import { ImageServer } from '../support/image-server';
import { startS3Server, S3TestServer } from '../support/s3-server';

/**
 * Images a hypervisor can trust (issue 11): the unsafe images found from outside, made with qemu-img and edited by
 * hand, refused by every source path (URL, upload, a picked file) on both stores, and qemu-img's verdict on the
 * stored object before READY; every format the service accepts ends READY.
 */

const MiB = 1024 * 1024;
type Json = Record<string, any>;
type Path = 'URL' | 'UPLOAD' | 'FILE';
const PATHS: Path[] = ['URL', 'UPLOAD', 'FILE'];

let seq = 0;
const newUser = (): Caller => {
  seq++;
  return { sub: `trust-user-${seq}`, dept: `trust-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role: Role.User };
};

/** Every unsafe case: the file, the format it is declared as, the code, and what the reason must say. */
const UNSAFE: { name: string; file: () => Buffer; format: Schemas['ImageFormat']; code: string; reason: RegExp }[] = [
  {
    name: 'vmdk-delta-offset0',
    file: () => vmdkDeltaHiddenDescriptor(0n),
    format: 'vmdk',
    code: 'FORMAT_UNSAFE',
    reason: /delta disk depending on a parent \("\/etc\/passwd"\)/,
  },
  {
    name: 'vmdk-delta-offset129',
    file: () => vmdkDeltaHiddenDescriptor(129n),
    format: 'vmdk',
    code: 'FORMAT_UNSAFE',
    reason: /delta disk depending on a parent \("\/etc\/passwd"\)/,
  },
  {
    name: 'vmdk-flat-as-raw',
    file: () => vmdkFlatDescriptorLongComments('/etc/passwd'),
    format: 'raw',
    code: 'FORMAT_UNSAFE',
    reason: /VMDK descriptor that points to other files/,
  },
  { name: 'qcow2-cut-short', file: () => qcow2CutShort(), format: 'qcow2', code: 'IMAGE_CORRUPT', reason: /qemu-img check found \d+ corruption\(s\)/ },
  {
    name: 'qcow2-1PiB',
    file: () => qcow2Virtual('1P'),
    format: 'qcow2',
    code: 'VIRTUAL_SIZE_TOO_LARGE',
    reason: /virtual size is 1\.00 PiB, above the largest accepted, 16\.0 TiB \(INGEST_MAX_VIRTUAL_SIZE_BYTES\)/,
  },
];

/** Every format the service accepts, as real images. */
const ACCEPTED: { name: string; made: RealFormat | 'iso'; format: Schemas['ImageFormat']; kind?: string }[] = [
  { name: 'ok.qcow2', made: 'qcow2', format: 'qcow2' },
  { name: 'ok.raw', made: 'raw', format: 'raw' },
  { name: 'ok-sparse.vmdk', made: 'vmdk', format: 'vmdk' },
  { name: 'ok-stream.vmdk', made: 'vmdk-stream', format: 'vmdk' },
  { name: 'ok-dynamic.vhd', made: 'vhd', format: 'vhd' },
  { name: 'ok-fixed.vhd', made: 'vhd-fixed', format: 'vhd' },
  { name: 'ok.vhdx', made: 'vhdx', format: 'vhdx' },
  { name: 'ok.iso', made: 'iso', format: 'iso', kind: 'ISO' },
];

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller */
  api: (who?: Caller) => ApiClient;
  srv: ImageServer;
  zoneId: string;
  storage: ObjectStorage;
  dir: string;
}

async function boot(shape: Shape, store: 'fs' | 'minio', s3: S3TestServer | undefined, env: Record<string, string> = {}): Promise<Ctx> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-trust-src-'));
  const srv = await new ImageServer().start();
  const t = await startApp(shape, `trust-${store}`, {
    URL_ALLOW_CIDRS: '127.0.0.0/8',
    IMPORT_CONCURRENCY: '4',
    JOB_ATTEMPTS: '2',
    JOB_BACKOFF_MS: '50',
    INGEST_MAX_SIZE_BYTES: String(64 * MiB),
    INGEST_SWEEP_INTERVAL_SECONDS: '0',
    FILE_SOURCES: `mnt=file://${dir}`,
    ...(store === 'minio' && s3
      ? {
          STORAGE_DRIVER: 'minio',
          MINIO_ENDPOINT: '127.0.0.1',
          MINIO_PORT: String(s3.port),
          MINIO_ACCESS_KEY: s3.accessKey,
          MINIO_SECRET_KEY: s3.secretKey,
          MINIO_BUCKET: `trust-${shape}`,
          STORAGE_PART_SIZE_MB: '5',
        }
      : {}),
    ...env,
  });
  // one listening server for all requests (supertest would otherwise open one per request)
  await t.listen();
  const zoneId = await createZone(t);
  return { t, api: await typedCallers(t), srv, zoneId, storage: t.app.get(ObjectStorage), dir };
}

const get = async (c: Ctx, id: string): Promise<Json> => (await reply(c.api(SUPER).GET('/images/{id}', { params: { path: { id } } }))).body;

async function settled(c: Ctx, id: string): Promise<Json> {
  const end = Date.now() + 60_000;
  for (;;) {
    const i = await get(c, id);
    if (i.phase === 'READY' || i.phase === 'FAILED') return i;
    if (Date.now() > end) throw new Error(`image ${id} never settled: ${JSON.stringify(i)}`);
    await new Promise((r) => setTimeout(r, 40));
  }
}

/** Imports `file` as `name` by `path`; answers the settled record (and the upload's answer). */
async function importBy(
  c: Ctx,
  as: Caller,
  path: Path,
  name: string,
  file: Buffer,
  over: Partial<Schemas['CreateImageDto']>,
): Promise<{ image: Json; upload?: { status: number; body: Json } }> {
  const source: Schemas['CreateImageDto']['source'] =
    path === 'URL' ? { type: 'URL', url: c.srv.url(`/f/${name}`) } : path === 'FILE' ? { type: 'FILE', path: name } : { type: 'UPLOAD' };
  if (path === 'URL') c.srv.put(name, file);
  if (path === 'FILE') writeFileSync(join(c.dir, name), file);
  const res = await reply(
    c.api(as).POST('/images', {
      body: { kind: 'IMAGE', name: `trust-${Math.random().toString(36).slice(2, 8)}`, osCategory: 'CENTOS', zoneId: c.zoneId, source, ...over },
    }),
  );
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  if (path !== 'UPLOAD') return { image: await settled(c, res.body.id) };
  // raw bytes in a streaming PUT: openapi-fetch sends JSON bodies, so uploads stay on supertest
  const up = await c.t
    .http()
    .put(`/images/${res.body.id}/file`)
    .set('Authorization', c.t.auth(as))
    .set('Content-Type', 'application/octet-stream')
    // a refused upload is answered before its body is read; its connection must not carry the next request
    .set('Connection', 'close')
    .send(file);
  return { image: await get(c, res.body.id), upload: { status: up.status, body: up.body } };
}

/** Retries `check` (an expectation) until it passes, for up to 10 s. */
async function eventually(check: () => Promise<void>): Promise<void> {
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function expectNoBytes(c: Ctx, id: string): Promise<void> {
  expect(await c.storage.exists(objectKeys.imageDisk(id))).toBe(false);
  expect(await c.storage.listIncomplete(objectKeys.imagePrefix(id))).toEqual([]);
}

const madeFile = (made: RealFormat | 'iso'): Buffer => (made === 'iso' ? iso(2 * MiB) : realImage(made, { dataBytes: 2 * MiB + 17, virtualBytes: 4 * MiB }));

const CONTEXTS: [Shape, 'fs' | 'minio'][] = SHAPES.flatMap((s) => [
  [s, 'fs'],
  [s, 'minio'],
]) as [Shape, 'fs' | 'minio'][];

describe.each(CONTEXTS)('images a hypervisor can trust (%s, %s store)', (shape, store) => {
  let c: Ctx;
  let s3: S3TestServer | undefined;
  beforeAll(async () => {
    if (store === 'minio') s3 = await startS3Server();
    c = await boot(shape, store, s3);
  });
  afterAll(async () => {
    await c?.t.close();
    await c?.srv.close();
    await s3?.close();
    if (c) rmSync(c.dir, { recursive: true, force: true });
  });

  it.each(UNSAFE.flatMap((u) => PATHS.map((p) => [u.name, p] as const)))(
    'refuses %s by %s: FAILED with the reason, nothing stored, no quota used',
    async (name, path) => {
      const u = UNSAFE.find((x) => x.name === name)!;
      const as = newUser();
      const { image, upload } = await importBy(c, as, path, `${name}-${path}`, u.file(), { format: u.format });
      expect(image).toMatchObject({ phase: 'FAILED', status: 'INACTIVE', statusReason: expect.stringMatching(u.reason) });
      if (upload)
        expect(upload).toEqual({
          status: 422,
          body: expect.objectContaining({ code: 'CONTENT_REJECTED', details: expect.objectContaining({ ingestCode: u.code }) }),
        });
      // FAILED is recorded first; the clean-up (bytes removed, reservation given back) follows it
      await eventually(async () => {
        await expectNoBytes(c, image.id);
        const q = await reply(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: as.dept } } }));
        expect(q.body.resources.find((r: Json) => r.resource === 'IMAGE_BYTES')).toMatchObject({ used: 0, reserved: 0 });
      });
    },
  );

  it.each(ACCEPTED.map((a, i) => [a.name, PATHS[i % PATHS.length]] as const))('accepts a real %s by %s and stores its bytes unchanged', async (name, path) => {
    const a = ACCEPTED.find((x) => x.name === name)!;
    const file = madeFile(a.made);
    const { image } = await importBy(c, newUser(), path, `${name}-${path}`, file, { format: a.format, ...(a.kind ? { kind: 'ISO', isoUsage: 'OS' } : {}) });
    expect(image).toMatchObject({ phase: 'READY', status: 'ACTIVE', sizeBytes: file.length, checksum: sha256(file) });
    // the virtual size is qemu-img's: the 4 MiB disk (VHD rounds it to its CHS geometry), an ISO's own size
    if (a.made === 'iso') expect(image.virtualSizeBytes).toBe(file.length);
    else if (a.format === 'vhd') expect(Math.abs(image.virtualSizeBytes - 4 * MiB)).toBeLessThan(64 * 1024);
    else expect(image.virtualSizeBytes).toBe(4 * MiB);
    // allocated blocks as qemu counts them on a local file; over the S3 relay qemu cannot tell
    if (store === 'fs') expect(image.actualSizeBytes).toBeGreaterThan(0);
    else expect(image.actualSizeBytes).toBeNull();
    const back = await c.storage.getStream(objectKeys.imageDisk(image.id));
    const parts: Buffer[] = [];
    for await (const p of back) parts.push(p as Buffer);
    expect(sha256(Buffer.concat(parts))).toBe(sha256(file));
  });

  it('records the virtual size of a small qcow2 claiming a large disk, and lists, filters and sorts by it', async () => {
    const as = newUser();
    const sizes = ['64G', '1G', '8G', '1G'];
    const ids: string[] = [];
    for (const [n, v] of sizes.entries()) {
      const { image } = await importBy(c, as, PATHS[n % PATHS.length], `virtual-${n}.qcow2`, qcow2Virtual(v), { format: 'qcow2' });
      expect(image).toMatchObject({ phase: 'READY', virtualSizeBytes: Number(v.slice(0, -1)) * 1024 ** 3 });
      expect(image.sizeBytes).toBeLessThan(MiB);
      ids.push(image.id);
    }
    type ListQuery = NonNullable<operations['listImages']['parameters']['query']>;
    const list = (query: ListQuery) => reply(c.api(SUPER).GET('/images', { params: { query: { view: 'all', departmentId: as.dept, ...query } } }));
    // untyped on purpose: queries the contract forbids (the validation cases)
    const rawList = (query: Json) =>
      c.t
        .http()
        .get('/images')
        .set('Authorization', c.t.auth(SUPER))
        .query({ view: 'all', departmentId: as.dept, ...query });
    const asc = await list({ sort: 'virtualSizeBytes', order: 'asc' });
    expect(asc.status).toBe(200);
    const oneG = [ids[1], ids[3]].sort();
    expect(asc.body.items.map((i: Json) => i.id)).toEqual([...oneG, ids[2], ids[0]]);
    const desc = await list({ sort: 'virtualSizeBytes', order: 'desc' });
    expect(desc.body.items.map((i: Json) => i.id)).toEqual([ids[0], ids[2], ...[...oneG].reverse()]);
    const between = await list({ minVirtualSize: 2 * 1024 ** 3, maxVirtualSize: 8 * 1024 ** 3 });
    expect({ total: between.body.total, ids: between.body.items.map((i: Json) => i.id) }).toEqual({ total: 1, ids: [ids[2]] });
    expect((await list({ minVirtualSize: 64 * 1024 ** 3 + 1 })).body.total).toBe(0);
    for (const bad of [{ minVirtualSize: -1 }, { maxVirtualSize: 'big' }, { sort: 'virtualSize' }]) {
      const res = await rawList(bad);
      expect({ bad, status: res.status, code: res.body.code }).toEqual({ bad, status: 400, code: 'VALIDATION_FAILED' });
    }
  });

  it('launch check: refuses a root disk smaller than the virtual size (ROOT_DISK_TOO_SMALL); an ISO has no such rule', async () => {
    const u = newUser();
    const compute: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
    const { image: disk } = await importBy(c, u, 'UPLOAD', 'launch-8g.qcow2', qcow2Virtual('8G'), { format: 'qcow2' });
    const { image: ide } = await importBy(c, u, 'UPLOAD', 'launch-ide.qcow2', qcow2Virtual('2G'), { format: 'qcow2', osCategory: 'WINDOWS_IDE' });
    const { image: isoImg } = await importBy(c, u, 'UPLOAD', 'launch.iso', iso(2 * MiB), { kind: 'ISO', isoUsage: 'OS', format: 'iso' });
    const launchBody = (over: Json): Schemas['LaunchRequestDto'] => ({
      idempotencyKey: `k-${Math.random().toString(36).slice(2)}`,
      owner: { userId: u.sub, departmentId: u.dept },
      zoneId: c.zoneId,
      count: 2,
      ...over,
    });
    const launch = (id: string, over: Partial<Schemas['LaunchRequestDto']>) =>
      reply(c.api(compute).POST('/images/{id}/launches', { params: { path: { id } }, body: launchBody(over) }));
    // untyped on purpose: a root disk size the contract forbids
    const rawLaunch = (id: string, over: Json) => c.t.http().post(`/images/${id}/launches`).set('Authorization', c.t.auth(compute)).send(launchBody(over));
    const small = await launch(disk.id, { rootDiskBytes: 8 * 1024 ** 3 - 1 });
    expect({ status: small.status, body: small.body }).toEqual({
      status: 422,
      body: expect.objectContaining({ code: 'ROOT_DISK_TOO_SMALL', details: { rootDiskBytes: 8 * 1024 ** 3 - 1, virtualSizeBytes: 8 * 1024 ** 3 } }),
    });
    const fits = await launch(disk.id, { rootDiskBytes: 8 * 1024 ** 3 });
    expect(fits.status).toBe(201);
    expect(fits.body.image).toMatchObject({ virtualSizeBytes: 8 * 1024 ** 3, sizeBytes: disk.sizeBytes });
    // an ISO is mounted, not copied onto the root disk
    expect((await launch(isoImg.id, { rootDiskBytes: 1 })).status).toBe(201);
    // a Windows-IDE image keeps its one-data-disk rule, whatever the root disk
    expect((await launch(ide.id, { rootDiskBytes: 4 * 1024 ** 3, dataDisks: 2 })).body).toMatchObject({ code: 'TOO_MANY_DATA_DISKS' });
    expect((await launch(ide.id, { rootDiskBytes: 1024 ** 3, dataDisks: 1 })).body).toMatchObject({ code: 'ROOT_DISK_TOO_SMALL' });
    expect((await rawLaunch(ide.id, { rootDiskBytes: 0 })).body).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('accepts a raw disk that merely contains text (not a descriptor qemu would probe)', async () => {
    const file = Buffer.concat([Buffer.from('# notes\nthis disk holds notes, not a descriptor\n'), rawBytes(MiB)]);
    const { image } = await importBy(c, newUser(), 'UPLOAD', 'notes.raw', file, { format: 'raw' });
    expect(image).toMatchObject({ phase: 'READY' });
  });
});

describe.each(SHAPES)('a qemu-img that hangs or exceeds its limits (%s)', (shape) => {
  let c: Ctx;
  let bin: string;
  beforeAll(async () => {
    bin = mkdtempSync(join(tmpdir(), 'hcm-qemu-bin-'));
    // a qemu-img that answers its start-up probe and then hangs on every image (as on a FIFO or a pathological file)
    writeFileSync(join(bin, 'qemu-img'), `#!/bin/sh\nif [ "$1" = "--help" ]; then exec qemu-img "$@"; fi\nexec sleep 600 # hcm-hang-marker\n`);
    chmodSync(join(bin, 'qemu-img'), 0o755);
  });
  afterAll(() => rmSync(bin, { recursive: true, force: true }));
  afterEach(async () => {
    await c?.t.close();
    await c?.srv.close();
    if (c) rmSync(c.dir, { recursive: true, force: true });
  });

  it('ends FAILED with the reason when qemu-img outlives QEMU_IMG_TIMEOUT_MS, and leaves no process behind', async () => {
    c = await boot(shape, 'fs', undefined, { QEMU_IMG: join(bin, 'qemu-img'), QEMU_IMG_TIMEOUT_MS: '1500' });
    for (const path of PATHS) {
      const { image, upload } = await importBy(c, newUser(), path, `hang-${path}.qcow2`, realImage('qcow2'), { format: 'qcow2' });
      expect({ path, image }).toMatchObject({
        path,
        image: {
          phase: 'FAILED',
          statusReason: expect.stringMatching(/qemu-img info did not finish within 1500 ms and was stopped \(QEMU_IMG_TIMEOUT_MS\); the image is refused/),
        },
      });
      if (upload) expect(upload.body).toMatchObject({ code: 'CONTENT_REJECTED', details: { ingestCode: 'INSPECTION_LIMIT_EXCEEDED' } });
      await eventually(() => expectNoBytes(c, image.id));
    }
    expect(
      execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l.includes(bin)),
    ).toEqual([]);
  });

  it('ends FAILED when qemu-img cannot live within QEMU_IMG_MAX_MEMORY_MB', async () => {
    c = await boot(shape, 'fs', undefined, { QEMU_IMG_MAX_MEMORY_MB: '16' });
    const { image } = await importBy(c, newUser(), 'URL', 'tight.qcow2', realImage('qcow2'), { format: 'qcow2' });
    expect(image).toMatchObject({ phase: 'FAILED', statusReason: expect.stringMatching(/^qemu-img info (ended with SIGABRT|ran out of memory)/) });
  });
});

describe('the service without qemu-img', () => {
  it('refuses to start, saying what to install', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-trust-noqemu-'));
    const config = loadConfig({
      DATA_DIR: dataDir,
      DB_TYPE: 'sqlite',
      AUTH_JWT_SECRET: TEST_SECRET,
      SEED_DEFAULT_ZONE: 'false',
      QEMU_IMG: '/nonexistent/qemu-img',
    });
    const app = await createApp(config, { logger: false });
    try {
      await expect(app.init()).rejects.toThrow(
        /qemu-img is required to judge stored images but "\/nonexistent\/qemu-img" cannot run .*Install the Debian package qemu-utils/,
      );
    } finally {
      await app.close().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
