import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Role } from '../../src/access/principal';
import { conversionDir } from '../../src/ingestion/conversion';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { ApiClient, apiClient, reply, typedCallers, type Schemas } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TestApp } from '../support/app';
import { iso, realImage, RealFormat, sha256 } from '../support/disk-images';
import { ImageServer } from '../support/image-server';
import { until } from '../support/kit';
import { startS3Server, S3TestServer } from '../support/s3-server';

/**
 * Conversion on import (issue 11): a zone that requires a storage format gets every disk image brought in another
 * format converted with qemu-img after the source is judged; the stored bytes are read back and compared with the
 * source by `qemu-img compare`; both checksums are recorded; ISOs stay as they are.
 */

const MiB = 1024 * 1024;
/** QEMU_IMG_CONVERT_RATE_BYTES of the apps here */
const RATE = 4 * MiB;
type Json = Record<string, any>;
type Path = 'URL' | 'UPLOAD' | 'FILE';
const PATHS: Path[] = ['URL', 'UPLOAD', 'FILE'];

let seq = 0;
const newUser = (): Caller => {
  seq++;
  return { sub: `conv-user-${seq}`, dept: `conv-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role: Role.User };
};

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller: zones, creates, reads, conversions, deletes and quotas go through it */
  api: (who?: Caller) => ApiClient;
  srv: ImageServer;
  storage: ObjectStorage;
  dir: string;
  rawZone: string;
  qcow2Zone: string;
}

async function zone(t: TestApp, requiredFormat: Schemas['RequiredFormat'] | null): Promise<Json> {
  const res = await reply(
    (await apiClient(t, SUPER)).POST('/zones', { body: { name: `conv-${Math.random().toString(36).slice(2, 8)}`, hypervisor: 'KVM', requiredFormat } }),
  );
  if (res.status !== 201) throw new Error(`zone create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as Json;
}

async function boot(shape: Shape, store: 'fs' | 'minio', s3: S3TestServer | undefined): Promise<Ctx> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-conv-src-'));
  const srv = await new ImageServer().start();
  const t = await startApp(shape, `conv-${store}`, {
    URL_ALLOW_CIDRS: '127.0.0.0/8',
    IMPORT_CONCURRENCY: '4',
    JOB_ATTEMPTS: '2',
    JOB_BACKOFF_MS: '50',
    INGEST_MAX_SIZE_BYTES: String(64 * MiB),
    INGEST_SWEEP_INTERVAL_SECONDS: '0',
    // qemu-img's own throttle (-r): the small images here convert in a moment, the larger ones of the delete
    // tests stay CONVERTING for seconds, long enough to be deleted in the middle
    QEMU_IMG_CONVERT_RATE_BYTES: String(RATE),
    FILE_SOURCES: `mnt=file://${dir}`,
    ...(store === 'minio' && s3
      ? {
          STORAGE_DRIVER: 'minio',
          MINIO_ENDPOINT: '127.0.0.1',
          MINIO_PORT: String(s3.port),
          MINIO_ACCESS_KEY: s3.accessKey,
          MINIO_SECRET_KEY: s3.secretKey,
          MINIO_BUCKET: `conv-${shape}`,
          STORAGE_PART_SIZE_MB: '5',
        }
      : {}),
  });
  await t.listen();
  return {
    t,
    api: await typedCallers(t),
    srv,
    storage: t.app.get(ObjectStorage),
    dir,
    rawZone: (await zone(t, 'raw')).id,
    qcow2Zone: (await zone(t, 'qcow2')).id,
  };
}

const get = async (c: Ctx, id: string): Promise<Json> => (await reply(c.api(SUPER).GET('/images/{id}', { params: { path: { id } } }))).body;

/** Waits until the image is in a phase `cond` accepts (the record's state, read until it holds). */
async function phase(c: Ctx, id: string, cond: (i: Json) => boolean, what: string, ms = 60_000): Promise<Json> {
  let last: Json = {};
  await until(async () => cond((last = await get(c, id))), `image ${id} ${what} (last ${JSON.stringify(last)})`, ms);
  return last;
}

const settled = (c: Ctx, id: string): Promise<Json> => phase(c, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');

/** The qemu-img processes working for `id` (their command line names its conversion folder). */
function qemuFor(id: string): number[] {
  const dir = conversionDir(id);
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return cmd.some((a) => a.endsWith('qemu-img')) && cmd.some((a) => a.startsWith(dir));
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

async function importBy(c: Ctx, as: Caller, path: Path, zoneId: string, name: string, file: Buffer, over: Partial<Schemas['CreateImageDto']>): Promise<Json> {
  const source: Schemas['CreateImageDto']['source'] =
    path === 'URL' ? { type: 'URL', url: c.srv.url(`/f/${name}`) } : path === 'FILE' ? { type: 'FILE', path: name } : { type: 'UPLOAD' };
  if (path === 'URL') c.srv.put(name, file);
  if (path === 'FILE') writeFileSync(join(c.dir, name), file);
  const res = await reply(
    c
      .api(as)
      .POST('/images', { body: { kind: 'IMAGE', name: `conv-${Math.random().toString(36).slice(2, 8)}`, osCategory: 'CENTOS', zoneId, source, ...over } }),
  );
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  if (path === 'UPLOAD') {
    // raw bytes in a streaming PUT: openapi-fetch sends JSON bodies, so uploads stay on supertest
    const up = await c.t
      .http()
      .put(`/images/${res.body.id}/file`)
      .set('Authorization', c.t.auth(as))
      .set('Content-Type', 'application/octet-stream')
      .send(file);
    if (up.status >= 300) throw new Error(`upload: ${up.status} ${JSON.stringify(up.body)}`);
  }
  return settled(c, res.body.id);
}

/** The stored bytes, read back through GET /images/{id}/file (supertest: a binary body openapi-fetch does not read). */
async function readBack(c: Ctx, id: string): Promise<Buffer> {
  const res = await c.t
    .http()
    .get(`/images/${id}/file`)
    .set('Authorization', c.t.auth(SUPER))
    .buffer(true)
    .parse((r, cb) => {
      const parts: Buffer[] = [];
      r.on('data', (p: Buffer) => parts.push(p));
      r.on('end', () => cb(null, Buffer.concat(parts)));
    });
  if (res.status !== 200) throw new Error(`GET file: ${res.status}`);
  return res.body as Buffer;
}

/** `qemu-img compare` of two local files (formats forced): true when the guest sees the same disk. */
function sameDisk(dir: string, a: Buffer, aFmt: string, b: Buffer, bFmt: string): boolean {
  const fa = join(dir, `cmp-a-${seq}`);
  const fb = join(dir, `cmp-b-${seq}`);
  writeFileSync(fa, a);
  writeFileSync(fb, b);
  try {
    execFileSync('qemu-img', ['compare', '-q', '-f', aFmt, '-F', bFmt, fa, fb]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(fa, { force: true });
    rmSync(fb, { force: true });
  }
}

const CONTEXTS: [Shape, 'fs' | 'minio'][] = SHAPES.flatMap((s) => [
  [s, 'fs'],
  [s, 'minio'],
]) as [Shape, 'fs' | 'minio'][];

const CASES: { name: string; made: RealFormat; format: Schemas['ImageFormat']; zone: 'rawZone' | 'qcow2Zone'; to: string }[] = [
  { name: 'qcow2-to-raw', made: 'qcow2', format: 'qcow2', zone: 'rawZone', to: 'raw' },
  { name: 'stream-vmdk-to-qcow2', made: 'vmdk-stream', format: 'vmdk', zone: 'qcow2Zone', to: 'qcow2' },
];

describe.each(CONTEXTS)('conversion on import (%s, %s store)', (shape, store) => {
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

  it('shows the required format in the zone record, changes and clears it, and refuses a format it cannot write', async () => {
    const z = await zone(c.t, 'raw');
    expect(z.requiredFormat).toBe('raw');
    const upd = await reply(c.api(SUPER).PATCH('/zones/{id}', { params: { path: { id: z.id } }, body: { requiredFormat: 'qcow2' } }));
    expect(upd.status).toBe(200);
    expect(upd.body.requiredFormat).toBe('qcow2');
    const cleared = await reply(c.api(SUPER).PATCH('/zones/{id}', { params: { path: { id: z.id } }, body: { requiredFormat: null } }));
    expect(cleared.body.requiredFormat).toBeNull();
    // untyped on purpose: a format the contract forbids
    const bad = await c.t.http().patch(`/zones/${z.id}`).set('Authorization', c.t.auth(SUPER)).send({ requiredFormat: 'vhd' });
    expect(bad.status).toBe(400);
    expect((await reply(c.api(SUPER).GET('/zones/{id}', { params: { path: { id: z.id } } }))).body.requiredFormat).toBeNull();
  });

  it.each(CASES.flatMap((k) => PATHS.map((p) => [k.name, p] as const)))(
    'converts %s by %s: both checksums, the stored bytes are the same disk',
    async (name, path) => {
      const k = CASES.find((x) => x.name === name)!;
      const file = realImage(k.made, { dataBytes: 2 * MiB + 17, virtualBytes: 4 * MiB });
      const image = await importBy(c, newUser(), path, c[k.zone], `${name}-${path}`, file, { format: k.format });
      expect(image).toMatchObject({ phase: 'READY', status: 'ACTIVE', format: k.to, sourceSha256: sha256(file), virtualSizeBytes: 4 * MiB });
      const back = await readBack(c, image.id);
      expect(image.checksum).toBe(sha256(back));
      expect(image.sizeBytes).toBe(back.length);
      expect(image.checksum).not.toBe(sha256(file));
      if (k.to === 'raw') expect(back.length).toBe(4 * MiB);
      expect(sameDisk(c.dir, back, k.to, file, k.format)).toBe(true);
      // nothing left in the conversion's temp folder
      expect(await c.storage.listIncomplete(objectKeys.imagePrefix(image.id))).toEqual([]);
    },
  );

  it('makes a converted copy on request: a new image in the same zone, linked to its source, the same disk', async () => {
    const as = newUser();
    const file = realImage('qcow2', { dataBytes: 2 * MiB + 5, virtualBytes: 8 * MiB });
    const plainZone = (await zone(c.t, null)).id;
    const src = await importBy(c, as, 'URL', plainZone, 'copy-src.qcow2', file, { format: 'qcow2' });
    expect(src).toMatchObject({ phase: 'READY', format: 'qcow2', checksum: sha256(file), sourceSha256: null, convertedFrom: null });
    const res = await reply(c.api(as).POST('/images/{id}/conversions', { params: { path: { id: src.id } }, body: { format: 'raw' } }));
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      zoneId: plainZone,
      format: 'raw',
      convertedFrom: src.id,
      sourceSha256: sha256(file),
      source: expect.objectContaining({ type: 'CONVERSION' }),
    });
    expect(res.body.id).not.toBe(src.id);
    expect(res.headers.location).toBe(`/images/${res.body.id}`);
    const copy = await settled(c, res.body.id);
    expect(copy).toMatchObject({ phase: 'READY', status: 'ACTIVE', format: 'raw', virtualSizeBytes: 8 * MiB, sizeBytes: 8 * MiB });
    const back = await readBack(c, copy.id);
    expect(copy.checksum).toBe(sha256(back));
    expect(sameDisk(c.dir, back, 'raw', file, 'qcow2')).toBe(true);
    // the source is untouched, and the copy is charged to the caller's department
    expect(sha256(await readBack(c, src.id))).toBe(sha256(file));
    const q = await reply(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: as.dept } } }));
    expect(q.body.resources.find((r: Json) => r.resource === 'IMAGE_BYTES')).toMatchObject({ used: file.length + 8 * MiB, reserved: 0 });
  });

  it.each(['URL', 'UPLOAD', 'COPY'] as const)(
    'a delete while CONVERTING (%s) stops qemu-img and leaves nothing behind: no process, temp file, object or quota',
    async (how) => {
      const as = newUser();
      // 24 MiB of data at RATE bytes/s: qemu-img works for seconds
      const file = realImage('qcow2', { dataBytes: 24 * MiB + 3, virtualBytes: 32 * MiB, seed: 5 });
      const plainZone = (await zone(c.t, null)).id;
      let id: string;
      let upload: Promise<{ status: number }> | undefined;
      let srcBytes = 0;
      if (how === 'COPY') {
        const src = await importBy(c, as, 'URL', plainZone, `del-src-${how}.qcow2`, file, { format: 'qcow2' });
        expect(src.phase).toBe('READY');
        srcBytes = file.length;
        const res = await reply(c.api(as).POST('/images/{id}/conversions', { params: { path: { id: src.id } }, body: { format: 'raw' } }));
        expect(res.status).toBe(202);
        id = res.body.id as string;
      } else {
        const source: Schemas['CreateImageDto']['source'] = how === 'URL' ? { type: 'URL', url: c.srv.url(`/f/del-${how}.qcow2`) } : { type: 'UPLOAD' };
        if (how === 'URL') c.srv.put(`del-${how}.qcow2`, file);
        const res = await reply(
          c.api(as).POST('/images', { body: { kind: 'IMAGE', name: `del-${how}`, osCategory: 'CENTOS', zoneId: c.rawZone, format: 'qcow2', source } }),
        );
        expect(res.status).toBe(201);
        id = res.body.id as string;
        if (how === 'UPLOAD') {
          // raw bytes in a streaming PUT stay on supertest
          upload = c.t
            .http()
            .put(`/images/${id}/file`)
            .set('Authorization', c.t.auth(as))
            .set('Content-Type', 'application/octet-stream')
            .send(file)
            .then((r) => r);
        }
      }
      await phase(c, id, (i) => i.phase === 'CONVERTING', 'CONVERTING');
      await until(() => qemuFor(id).length > 0, `a qemu-img process converting ${id}`);
      expect(existsSync(conversionDir(id))).toBe(true);

      const del = await reply(c.api(as).DELETE('/images/{id}', { params: { path: { id: id } } }));
      expect(del.status).toBe(204);
      if (upload) expect((await upload).status).toBe(404);

      // the delete returned after the conversion stopped: nothing of it is left
      expect(qemuFor(id)).toEqual([]);
      expect(existsSync(conversionDir(id))).toBe(false);
      expect(await c.storage.exists(objectKeys.imageDisk(id))).toBe(false);
      expect(await c.storage.listIncomplete(objectKeys.imagePrefix(id))).toEqual([]);
      expect((await reply(c.api(as).GET('/images/{id}', { params: { path: { id: id } } }))).status).toBe(404);
      const q = await reply(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: as.dept } } }));
      expect(q.body.resources.find((r: Json) => r.resource === 'IMAGE_BYTES')).toMatchObject({ used: srcBytes, reserved: 0 });
      expect(q.body.resources.find((r: Json) => r.resource === 'IMAGE_COUNT')).toMatchObject({ used: how === 'COPY' ? 1 : 0, reserved: 0 });
    },
  );

  it('refuses a conversion of an ISO, to the same format, of an image not ACTIVE, and above the quota, changing nothing', async () => {
    const as = newUser();
    const plainZone = (await zone(c.t, null)).id;
    const post = (id: string, format: Schemas['CreateConversionDto']['format']) =>
      reply(c.api(as).POST('/images/{id}/conversions', { params: { path: { id } }, body: { format } }));
    // untyped on purpose: a format the contract forbids
    const rawPost = (id: string, format: string) => c.t.http().post(`/images/${id}/conversions`).set('Authorization', c.t.auth(as)).send({ format });
    const count = async () => (await reply(c.api(SUPER).GET('/images', { params: { query: { view: 'all', departmentId: as.dept } } }))).body.total as number;
    const disc = await importBy(c, as, 'FILE', plainZone, 'copy.iso', iso(MiB), { kind: 'ISO', isoUsage: 'OS', format: 'iso' });
    const file = realImage('qcow2', { dataBytes: MiB, virtualBytes: 64 * MiB });
    const img = await importBy(c, as, 'URL', plainZone, 'copy-q.qcow2', file, { format: 'qcow2' });
    const before = await count();
    const isoRes = await post(disc.id, 'raw');
    expect(isoRes.status).toBe(422);
    expect(isoRes.body).toMatchObject({ code: 'CONVERSION_NOT_APPLICABLE', details: expect.objectContaining({ reason: 'ISO' }) });
    const same = await post(img.id, 'qcow2');
    expect(same.status).toBe(422);
    expect(same.body).toMatchObject({ code: 'CONVERSION_NOT_APPLICABLE', details: expect.objectContaining({ reason: 'SAME_FORMAT' }) });
    expect((await rawPost(img.id, 'vhd')).status).toBe(400);
    const queued = await reply(
      c
        .api(as)
        .POST('/images', { body: { kind: 'IMAGE', name: 'waiting', osCategory: 'CENTOS', zoneId: plainZone, format: 'qcow2', source: { type: 'UPLOAD' } } }),
    );
    const notActive = await post(queued.body.id, 'raw');
    expect(notActive.status).toBe(409);
    expect(notActive.body).toMatchObject({ code: 'IMAGE_NOT_ACTIVE', details: { status: 'INACTIVE', phase: 'QUEUED' } });
    // the raw copy would take its 64 MiB virtual size: refused before anything starts
    expect(
      (await reply(c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: as.dept } }, body: { limits: { IMAGE_BYTES: 32 * MiB } } })))
        .status,
    ).toBe(200);
    const over = await post(img.id, 'raw');
    expect(over.status).toBe(409);
    expect(over.body).toMatchObject({ code: 'QUOTA_EXCEEDED', details: expect.objectContaining({ resource: 'IMAGE_BYTES' }) });
    expect(await count()).toBe(before + 1);
    // a POST /images cannot name the conversion source itself (untyped on purpose: the contract forbids it)
    const direct = await c.t
      .http()
      .post('/images')
      .set('Authorization', c.t.auth(as))
      .send({ kind: 'IMAGE', name: 'x', osCategory: 'CENTOS', zoneId: plainZone, format: 'raw', source: { type: 'CONVERSION' } });
    expect(direct.status).toBe(400);
  });

  it('keeps an image already in the zone format, and never converts an ISO', async () => {
    const raw = realImage('raw', { dataBytes: MiB });
    const same = await importBy(c, newUser(), 'URL', c.rawZone, 'already-raw', raw, { format: 'raw' });
    expect(same).toMatchObject({ phase: 'READY', format: 'raw', checksum: sha256(raw), sourceSha256: null });
    const disc = iso(2 * MiB);
    const i = await importBy(c, newUser(), 'FILE', c.rawZone, 'disc.iso', disc, { kind: 'ISO', isoUsage: 'OS', format: 'iso' });
    expect(i).toMatchObject({ phase: 'READY', format: 'iso', checksum: sha256(disc), sourceSha256: null });
  });
});
