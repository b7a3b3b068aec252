import { request as httpRequest } from 'node:http';
import { AddressInfo } from 'node:net';
import type { Response as SuperagentResponse } from 'superagent';
import { Role } from '../../src/access/principal';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { ApiClient, reply, typedCallers, type Schemas } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TestApp } from '../support/app';
import { iso, md5, qcow2, qcow2WithBacking, rawBytes, sha256 } from '../support/disk-images';
import { createZone } from '../support/fixtures';
import { ImageServer } from '../support/image-server';
import { startS3Server, S3TestServer } from '../support/s3-server';
import { readUntil, until } from '../support/kit';

/**
 * Ingestion end to end, over HTTP, with real parts only: the whole app (SQLite or MariaDB), an HTTP image server
 * of the test's own, the filesystem store (and the in-process S3 server in the MinIO variant).
 */

const MiB = 1024 * 1024;
const QCOW2 = qcow2(3 * MiB + 123);
const RAW = rawBytes(2 * MiB + 7);
const ISO = iso(MiB);
const BIG = rawBytes(12 * MiB + 5, 99); // several S3 parts at 5 MiB

type Json = Record<string, any>;

const BASE_ENV = {
  URL_ALLOW_CIDRS: '127.0.0.0/8',
  IMPORT_CONCURRENCY: '4',
  JOB_ATTEMPTS: '2',
  JOB_BACKOFF_MS: '50',
  URL_MAX_ATTEMPTS: '4',
  URL_RETRY_BASE_DELAY_MS: '20',
  URL_IDLE_TIMEOUT_MS: '3000',
  INGEST_COMPUTE_MD5: 'true',
  INGEST_MAX_SIZE_BYTES: String(64 * MiB),
};

let seq = 0;
/** A user of a department of its own, so each test reads quota numbers nobody else touches. */
const newUser = (): Caller => {
  seq++;
  return { sub: `ingest-user-${seq}`, dept: `ingest-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role: Role.User };
};

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller: creates, reads, retries, deletes, lists and quotas go through it */
  api: (who?: Caller) => ApiClient;
  srv: ImageServer;
  zoneId: string;
  port: number;
  storage: ObjectStorage;
}

async function boot(shape: Shape, label: string, env: Record<string, string> = {}): Promise<Ctx> {
  const srv = await new ImageServer().start();
  const t = await startApp(shape, label, { ...BASE_ENV, ...env });
  await t.listen();
  const port = (t.app.getHttpServer().address() as AddressInfo).port;
  const zoneId = await createZone(t);
  return { t, api: await typedCallers(t), srv, zoneId, port, storage: t.app.get(ObjectStorage) };
}

// ---------------------------------------------------------------- helpers over HTTP

type CreateOver = Partial<Schemas['CreateImageDto']> & Pick<Schemas['CreateImageDto'], 'source'>;
const createBody = (c: Ctx, over: CreateOver): Schemas['CreateImageDto'] => ({
  kind: 'IMAGE',
  name: `img-${Math.random().toString(36).slice(2, 8)}`,
  osCategory: 'CENTOS',
  format: 'qcow2',
  zoneId: c.zoneId,
  ...over,
});
const create = (c: Ctx, as: Caller, over: CreateOver) => reply(c.api(as).POST('/images', { body: createBody(c, over) }));
const createOk = async (c: Ctx, as: Caller, over: CreateOver): Promise<Json> => {
  const res = await create(c, as, over);
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
};
const fromUrl = (c: Ctx, as: Caller, path: string, over: Partial<Schemas['CreateImageDto']> = {}) =>
  createOk(c, as, { source: { type: 'URL', url: c.srv.url(path) }, ...over });
const get = async (c: Ctx, id: string, as: Caller = SUPER): Promise<Json> => (await reply(c.api(as).GET('/images/{id}', { params: { path: { id } } }))).body;

const waitFor = (c: Ctx, id: string, cond: (i: Json) => boolean, what: string, ms = 20_000): Promise<Json> =>
  readUntil(() => get(c, id), cond, `image ${id} ${what}`, ms);
const settled = (c: Ctx, id: string) => waitFor(c, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');

/** IMAGE_COUNT and IMAGE_BYTES of a department, read through the quota HTTP API. */
async function quotaOf(c: Ctx, dept: string): Promise<{ count: Json; bytes: Json }> {
  const res = await reply(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: dept } } }));
  expect(res.status).toBe(200);
  const by = (r: string) => res.body.resources.find((x: Json) => x.resource === r);
  return { count: by('IMAGE_COUNT'), bytes: by('IMAGE_BYTES') };
}
const setLimits = async (c: Ctx, dept: string, limits: Schemas['QuotaLimitsDto']) => {
  const res = await reply(c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: dept } }, body: { limits } }));
  expect(res.status).toBe(200);
};

/** Nothing stored or half-stored for the image. */
async function expectNoBytes(c: Ctx, id: string): Promise<void> {
  expect(await c.storage.exists(objectKeys.imageDisk(id))).toBe(false);
  expect(await c.storage.listIncomplete(objectKeys.imagePrefix(id))).toEqual([]);
}

// raw bytes in a streaming PUT: openapi-fetch sends JSON bodies, so uploads stay on supertest (and rawPut below)
const put = (c: Ctx, id: string, as: Caller, body: Buffer, type = 'application/octet-stream') =>
  c.t.http().put(`/images/${id}/file`).set('Authorization', c.t.auth(as)).set('Content-Type', type).send(body);

/** A PUT we write by hand: slowly, partly, or with a declared length we never send. */
function rawPut(c: Ctx, id: string, as: Caller, length: number) {
  let answered: (v: { status: number; body: string }) => void;
  const response = new Promise<{ status: number; body: string }>((r) => (answered = r));
  const req = httpRequest({
    host: '127.0.0.1',
    port: c.port,
    method: 'PUT',
    path: `/images/${id}/file`,
    headers: { authorization: c.t.auth(as), 'content-type': 'application/octet-stream', 'content-length': String(length) },
  });
  req.on('response', (res) => {
    let body = '';
    res.on('data', (d: Buffer) => (body += d.toString()));
    res.on('end', () => answered({ status: res.statusCode ?? 0, body }));
  });
  req.on('error', () => answered({ status: -1, body: '' }));
  req.flushHeaders();
  return { req, response };
}

// ---------------------------------------------------------------- the filesystem store, both shapes

describe.each(SHAPES)('ingestion over HTTP (%s, filesystem store)', (shape) => {
  let c: Ctx;
  beforeAll(async () => {
    c = await boot(shape, 'ingest');
    c.srv.put('centos.qcow2', QCOW2);
    c.srv.put('disk.raw', RAW);
    c.srv.put('tools.iso', ISO);
    c.srv.put('backing.qcow2', qcow2WithBacking('backing.img'));
  });
  afterAll(async () => {
    await c?.t.close();
    await c?.srv.close();
  });

  describe('from a URL', () => {
    it('imports a qcow2 (Range and Content-Length): ACTIVE with size, sha256, md5, the object stored, the quota committed', async () => {
      const u = newUser();
      const created = await fromUrl(c, u, '/f/centos.qcow2', { expectedChecksum: `sha256:${sha256(QCOW2)}` });
      expect(created).toMatchObject({ status: 'INACTIVE', phase: 'QUEUED', expectedChecksum: `sha256:${sha256(QCOW2)}` });
      const done = await settled(c, created.id);
      expect(done).toMatchObject({
        status: 'ACTIVE',
        phase: 'READY',
        statusReason: null,
        sizeBytes: QCOW2.length,
        checksum: sha256(QCOW2),
        checksumMd5: md5(QCOW2),
        progress: { bytesDone: QCOW2.length, bytesTotal: QCOW2.length, percent: 100, bytesPerSecond: null },
      });
      expect((await c.storage.stat(objectKeys.imageDisk(created.id))).size).toBe(QCOW2.length);
      expect(await c.storage.listIncomplete(objectKeys.imagePrefix(created.id))).toEqual([]);
      const q = await quotaOf(c, u.dept);
      expect(q.count).toMatchObject({ used: 1, reserved: 0 });
      expect(q.bytes).toMatchObject({ used: QCOW2.length, reserved: 0 });
    });

    it('imports an ISO, and a raw file served without Content-Length or Range (quota grown as it streams)', async () => {
      const u = newUser();
      const isoImg = await fromUrl(c, u, '/f/tools.iso', { kind: 'ISO', format: undefined, isoUsage: 'TOOL' });
      const raw = await fromUrl(c, u, '/f/disk.raw?length=0&ranges=0', { format: 'raw' });
      expect(await settled(c, isoImg.id)).toMatchObject({ phase: 'READY', format: 'iso', sizeBytes: ISO.length, checksum: sha256(ISO) });
      expect(await settled(c, raw.id)).toMatchObject({ phase: 'READY', sizeBytes: RAW.length, checksum: sha256(RAW) });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: ISO.length + RAW.length, reserved: 0 });
    });

    it('resumes a connection dropped mid-stream with Range, and restarts from byte 0 where the server has no Range', async () => {
      const u = newUser();
      const resumed = await fromUrl(c, u, '/f/centos.qcow2?id=drop-1&dropAfter=1000000&times=2');
      const restarted = await fromUrl(c, u, '/f/centos.qcow2?id=drop-2&dropAfter=1500000&ranges=0');
      expect(await settled(c, resumed.id)).toMatchObject({ phase: 'READY', checksum: sha256(QCOW2), sizeBytes: QCOW2.length });
      expect(await settled(c, restarted.id)).toMatchObject({ phase: 'READY', checksum: sha256(QCOW2) });
      // two drops, two resumes, each from where the bytes stopped (what was in flight when the socket died is lost)
      const offsets = c.srv.requests
        .filter((r) => r.path.includes('id=drop-1') && r.headers.range)
        .map((r) => Number(/^bytes=(\d+)-$/.exec(String(r.headers.range))?.[1]));
      expect(offsets).toHaveLength(2);
      expect(offsets[0]).toBeGreaterThan(500_000);
      expect(offsets[1]).toBeGreaterThan(offsets[0] + 500_000);
      expect(c.srv.requests.filter((r) => r.path.includes('id=drop-2') && r.headers.range)).toEqual([]);
      expect(c.srv.hits('/f/centos.qcow2?id=drop-2')).toBe(2);
    });

    it('follows a redirect chain, and refuses a longer one with a reason', async () => {
      const u = newUser();
      const ok = await fromUrl(c, u, `/redirect?n=3&to=${encodeURIComponent('/f/disk.raw')}`, { format: 'raw' });
      const tooLong = await fromUrl(c, u, `/redirect?n=9&to=${encodeURIComponent('/f/disk.raw')}`, { format: 'raw' });
      expect(await settled(c, ok.id)).toMatchObject({ phase: 'READY', checksum: sha256(RAW) });
      const failed = await settled(c, tooLong.id);
      expect(failed).toMatchObject({ status: 'INACTIVE', phase: 'FAILED' });
      expect(failed.statusReason).toMatch(/^The download from 127\.0\.0\.1:\d+ failed: More than 5 redirects/);
    });

    it('refuses wrong content: a format mismatch and a qcow2 with a backing file end FAILED with a reason, nothing stored, quota given back', async () => {
      const u = newUser();
      const mismatch = await fromUrl(c, u, '/f/disk.raw', { format: 'qcow2' });
      const backing = await fromUrl(c, u, '/f/backing.qcow2', { format: 'qcow2' });
      const asIso = await fromUrl(c, u, '/f/centos.qcow2', { kind: 'ISO', format: undefined, isoUsage: 'OS' });
      expect((await settled(c, mismatch.id)).statusReason).toBe('The file was declared qcow2 but its content is not a recognised image format (raw data)');
      expect((await settled(c, backing.id)).statusReason).toMatch(
        /^The qcow2 image depends on a backing file \("backing\.img"\); only standalone images are accepted/,
      );
      expect((await settled(c, asIso.id)).statusReason).toBe('The file was declared iso but its content is a qcow2 image');
      for (const i of [mismatch, backing, asIso]) {
        expect(await get(c, i.id)).toMatchObject({ phase: 'FAILED', sizeBytes: null, checksum: null });
        await expectNoBytes(c, i.id);
      }
      const q = await quotaOf(c, u.dept);
      expect(q.count).toMatchObject({ used: 3, reserved: 0 });
      expect(q.bytes).toMatchObject({ used: 0, reserved: 0 });
    });

    it('refuses a wrong expected checksum', async () => {
      const u = newUser();
      const wrong = await fromUrl(c, u, '/f/disk.raw', { format: 'raw', expectedChecksum: 'ab'.repeat(32) });
      const md5Ok = await fromUrl(c, u, '/f/disk.raw', { format: 'raw', expectedChecksum: md5(RAW).toUpperCase() });
      expect((await settled(c, wrong.id)).statusReason).toBe(`The file's sha256 is ${sha256(RAW)}, not the expected ${'ab'.repeat(32)}`);
      await expectNoBytes(c, wrong.id);
      expect(await settled(c, md5Ok.id)).toMatchObject({ phase: 'READY', expectedChecksum: `md5:${md5(RAW)}`, checksumMd5: md5(RAW) });
      // untyped on purpose: a checksum the contract forbids
      const bad = await c.t
        .http()
        .post('/images')
        .set('Authorization', c.t.auth(u))
        .send(createBody(c, { source: { type: 'URL', url: c.srv.url('/f/disk.raw') }, expectedChecksum: 'xyz' }));
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe('VALIDATION_FAILED');
    });

    it('says which server answered 404, and refuses a huge declared size before storing anything', async () => {
      const u = newUser();
      const missing = await fromUrl(c, u, '/f/nothing-here.qcow2');
      const huge = await fromUrl(c, u, '/huge', { format: 'raw' });
      expect((await settled(c, missing.id)).statusReason).toBe(`The server at ${c.srv.url('/f/nothing-here.qcow2')} answered 404 Not Found`);
      expect((await settled(c, huge.id)).statusReason).toBe(`The file is 10000000000000 bytes, more than the ${64 * MiB} allowed (INGEST_MAX_SIZE_BYTES)`);
      for (const i of [missing, huge]) await expectNoBytes(c, i.id);
    });

    it('checks a declared size against the quota before the first byte, and stops an unknown size when the quota runs out', async () => {
      const u = newUser();
      await setLimits(c, u.dept, { IMAGE_BYTES: MiB });
      const declared = await fromUrl(c, u, '/f/disk.raw?id=q-declared', { format: 'raw' });
      const failed = await settled(c, declared.id);
      expect(failed.statusReason).toMatch(
        /^The department's image storage quota has no room for this file: 2\.00 MiB more were needed, 1\.00 MiB is left of 1\.00 MiB$/,
      );
      await expectNoBytes(c, declared.id);
      const streamed = await fromUrl(c, u, '/f/disk.raw?id=q-unknown&length=0', { format: 'raw' });
      expect((await settled(c, streamed.id)).statusReason).toMatch(/^The department's image storage quota has no room for this file/);
      await expectNoBytes(c, streamed.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0, limit: MiB });
      // the limit raised, a retry goes through
      await setLimits(c, u.dept, { IMAGE_BYTES: 'unlimited' });
      expect((await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: declared.id } } }))).status).toBe(202);
      expect(await settled(c, declared.id)).toMatchObject({ phase: 'READY', sizeBytes: RAW.length });
    });

    it('shows progress (bytes, total, percent, rate) while importing from a slow server', async () => {
      const u = newUser();
      const img = await fromUrl(c, u, '/f/disk.raw?id=slow-progress&rate=700000', { format: 'raw' });
      const seen = await waitFor(c, img.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'progress');
      expect(seen).toMatchObject({ status: 'INACTIVE', progress: { bytesTotal: RAW.length } });
      expect(seen.progress.bytesDone).toBeLessThan(RAW.length);
      expect(seen.progress.percent).toBeGreaterThan(0);
      expect(seen.progress.percent).toBeLessThan(100);
      expect(seen.progress.bytesPerSecond).toBeGreaterThan(100_000);
      expect(seen.progress.bytesPerSecond).toBeLessThan(5_000_000);
      // a few updates a second, not one per chunk
      const later = await waitFor(c, img.id, (i) => i.progress.bytesDone > seen.progress.bytesDone, 'more progress');
      expect(later.progress.bytesDone).toBeGreaterThan(seen.progress.bytesDone);
      expect(await settled(c, img.id)).toMatchObject({ phase: 'READY', checksum: sha256(RAW) });
    });

    it('retries a failed import: FAILED -> QUEUED -> READY; only a FAILED image can be retried', async () => {
      const u = newUser();
      const img = await fromUrl(c, u, '/f/later.qcow2');
      expect((await settled(c, img.id)).phase).toBe('FAILED');
      c.srv.put('later.qcow2', QCOW2);
      const other = newUser();
      expect((await reply(c.api(other).POST('/images/{id}/retry', { params: { path: { id: img.id } } }))).status).toBe(404);
      const retried = await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: img.id } } }));
      expect(retried.status).toBe(202);
      expect(retried.body).toMatchObject({ status: 'INACTIVE', statusReason: null });
      expect(['QUEUED', 'IMPORTING', 'VERIFYING', 'READY']).toContain(retried.body.phase);
      expect(await settled(c, img.id)).toMatchObject({ phase: 'READY', checksum: sha256(QCOW2) });
      const again = await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: img.id } } }));
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({ code: 'INVALID_STATE', details: { phase: 'READY' } });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: QCOW2.length, reserved: 0 });
    });

    it('stops the transfer when the image is deleted while importing: no object, no partial upload, quota back to zero', async () => {
      const u = newUser();
      const img = await fromUrl(c, u, '/f/disk.raw?id=slow-delete&rate=400000', { format: 'raw' });
      await waitFor(c, img.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 100_000, 'bytes streaming');
      expect(c.srv.inFlight('/f/disk.raw')).toBeGreaterThan(0);
      expect((await reply(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id } } }))).status).toBe(204);
      await until(() => c.srv.inFlight('/f/disk.raw') === 0, 'the download connection closed', 5000);
      await new Promise((r) => setTimeout(r, 300));
      await expectNoBytes(c, img.id);
      const q = await quotaOf(c, u.dept);
      expect(q.count).toMatchObject({ used: 0, reserved: 0 });
      expect(q.bytes).toMatchObject({ used: 0, reserved: 0 });
    });

    it('deletes the stored object with the image', async () => {
      const u = newUser();
      const img = await fromUrl(c, u, '/f/disk.raw', { format: 'raw' });
      await settled(c, img.id);
      expect(await c.storage.exists(objectKeys.imageDisk(img.id))).toBe(true);
      expect((await reply(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id } } }))).status).toBe(204);
      await expectNoBytes(c, img.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
    });

    it('refuses a URL the policy denies at create (400 URL_NOT_ALLOWED), keeping nothing', async () => {
      const u = newUser();
      for (const url of ['http://169.254.169.254/latest/meta-data', 'http://0.0.0.0/a.qcow2', 'http://[::ffff:169.254.169.254]/x']) {
        const res = await create(c, u, { source: { type: 'URL', url } });
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({ code: 'URL_NOT_ALLOWED', details: { reason: 'URL_ADDRESS_DENIED' } });
        expect(res.body.message).toMatch(/refused/);
      }
      const list = await reply(c.api(u).GET('/images', { params: { query: { view: 'private' } } }));
      expect(list.body.total).toBe(0);
      expect((await quotaOf(c, u.dept)).count).toMatchObject({ used: 0, reserved: 0 });
    });
  });

  describe('direct upload and download', () => {
    const uploadImage = (u: Caller, over: Partial<Schemas['CreateImageDto']> = {}) => createOk(c, u, { format: 'raw', source: { type: 'UPLOAD' }, ...over });

    it('streams a PUT into storage (ACTIVE, checksums, quota), then serves it with Range, ETag and HEAD', async () => {
      const u = newUser();
      const img = await uploadImage(u);
      const res = await put(c, img.id, u, RAW);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: 'ACTIVE',
        phase: 'READY',
        sizeBytes: RAW.length,
        checksum: sha256(RAW),
        checksumMd5: md5(RAW),
        source: { type: 'UPLOAD' },
      });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: RAW.length, reserved: 0 });

      // the file GET and HEAD stay on supertest: binary bodies, Range and If-Range, which openapi-fetch does not read
      const url = `/images/${img.id}/file`;
      const auth = c.t.auth(u);
      const whole = await c.t.http().get(url).set('Authorization', auth).buffer(true).parse(binary);
      expect(whole.status).toBe(200);
      expect(whole.headers).toMatchObject({
        'accept-ranges': 'bytes',
        'content-length': String(RAW.length),
        etag: `"${sha256(RAW)}"`,
        'content-type': 'application/octet-stream',
      });
      expect(whole.headers['content-disposition']).toMatch(/^attachment; filename="img-[a-z0-9]+\.img"/);
      // the rest of what openapi.yaml declares on a file answer: Last-Modified, and X-Correlation-Id on every one
      expect(Number.isNaN(Date.parse(whole.headers['last-modified']))).toBe(false);
      expect(whole.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(sha256(whole.body as Buffer)).toBe(sha256(RAW));

      const part = await c.t.http().get(url).set('Authorization', auth).set('Range', 'bytes=1000-1999').buffer(true).parse(binary);
      expect(part.status).toBe(206);
      expect(part.headers).toMatchObject({
        'content-range': `bytes 1000-1999/${RAW.length}`,
        'content-length': '1000',
        'accept-ranges': 'bytes',
        etag: `"${sha256(RAW)}"`,
      });
      expect(Buffer.compare(part.body as Buffer, RAW.subarray(1000, 2000))).toBe(0);

      const tail = await c.t.http().get(url).set('Authorization', auth).set('Range', 'bytes=-10').buffer(true).parse(binary);
      expect(tail.status).toBe(206);
      expect(Buffer.compare(tail.body as Buffer, RAW.subarray(RAW.length - 10))).toBe(0);

      const outside = await c.t.http().get(url).set('Authorization', auth).set('Range', `bytes=${RAW.length}-`);
      expect(outside.status).toBe(416);
      expect(outside.headers['content-range']).toBe(`bytes */${RAW.length}`);
      expect(outside.body.code).toBe('RANGE_NOT_SATISFIABLE');

      const stale = await c.t.http().get(url).set('Authorization', auth).set('Range', 'bytes=0-9').set('If-Range', '"other"').buffer(true).parse(binary);
      expect(stale.status).toBe(200);
      const cached = await c.t
        .http()
        .get(url)
        .set('Authorization', auth)
        .set('If-None-Match', `"${sha256(RAW)}"`);
      expect(cached.status).toBe(304);
      expect(cached.headers.etag).toBe(`"${sha256(RAW)}"`);

      const head = await c.t.http().head(url).set('Authorization', auth);
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe(String(RAW.length));

      // someone else's private image stays invisible
      expect((await c.t.http().get(url).set('Authorization', c.t.auth(newUser()))).status).toBe(404);
    });

    it('refuses to download an image that is not ACTIVE (409 IMAGE_NOT_ACTIVE)', async () => {
      const u = newUser();
      const img = await uploadImage(u);
      // supertest like every file GET here (a binary download when it succeeds)
      const res = await c.t.http().get(`/images/${img.id}/file`).set('Authorization', c.t.auth(u));
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({ code: 'IMAGE_NOT_ACTIVE', details: { status: 'INACTIVE', phase: 'QUEUED' } });
    });

    it('refuses uploaded bytes that do not match the format (422, FAILED with the reason), then takes the right file', async () => {
      const u = newUser();
      const img = await uploadImage(u, { format: 'qcow2' });
      const bad = await put(c, img.id, u, RAW);
      expect(bad.status).toBe(422);
      expect(bad.body).toMatchObject({ code: 'CONTENT_REJECTED', details: { ingestCode: 'FORMAT_MISMATCH' } });
      expect(await get(c, img.id)).toMatchObject({
        phase: 'FAILED',
        statusReason: 'The file was declared qcow2 but its content is not a recognised image format (raw data)',
      });
      await expectNoBytes(c, img.id);
      const unsafe = await put(c, img.id, u, qcow2WithBacking('/etc/shadow'));
      expect(unsafe.status).toBe(422);
      expect(unsafe.body.details.ingestCode).toBe('FORMAT_UNSAFE');
      const good = await put(c, img.id, u, QCOW2);
      expect(good.status).toBe(200);
      expect(good.body).toMatchObject({ phase: 'READY', checksum: sha256(QCOW2), statusReason: null });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: QCOW2.length, reserved: 0 });
    });

    it('checks the expected checksum of an upload', async () => {
      const u = newUser();
      const img = await uploadImage(u, { expectedChecksum: sha256(QCOW2) });
      const bad = await put(c, img.id, u, RAW);
      expect(bad.status).toBe(422);
      expect(bad.body.details).toMatchObject({ ingestCode: 'CHECKSUM_MISMATCH', expected: sha256(QCOW2), actual: sha256(RAW) });
      await expectNoBytes(c, img.id);
    });

    it('refuses a PUT that does not fit: wrong source, wrong type, too large, over quota, not the owner', async () => {
      const u = newUser();
      const urlImg = await fromUrl(c, u, '/f/disk.raw', { format: 'raw' });
      await settled(c, urlImg.id);
      const wrongSource = await put(c, urlImg.id, u, RAW);
      expect(wrongSource.status).toBe(409);
      expect(wrongSource.body).toMatchObject({ code: 'SOURCE_MISMATCH', details: { sourceType: 'URL' } });

      const img = await uploadImage(u);
      // untyped on purpose: a JSON body where the contract wants bytes
      const json = await c.t.http().put(`/images/${img.id}/file`).set('Authorization', c.t.auth(u)).send({ a: 1 });
      expect(json.status).toBe(415);
      expect(json.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect((await put(c, img.id, newUser(), RAW)).status).toBe(404);

      // a declared length above INGEST_MAX_SIZE_BYTES or the quota is refused before a byte is read
      const huge = rawPut(c, img.id, u, 10 ** 12);
      const r1 = await huge.response;
      huge.req.destroy();
      expect(r1.status).toBe(413);
      expect(JSON.parse(r1.body)).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', details: { maxSize: 64 * MiB } });
      await setLimits(c, u.dept, { IMAGE_BYTES: MiB });
      const over = rawPut(c, img.id, u, 2 * MiB);
      const r2 = await over.response;
      over.req.destroy();
      expect(r2.status).toBe(409);
      expect(JSON.parse(r2.body)).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { resource: 'IMAGE_BYTES' } });
      expect(await get(c, img.id)).toMatchObject({ phase: 'QUEUED', progress: { bytesDone: 0 } });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: RAW.length, reserved: 0 });
    });

    it('lets one of two concurrent uploads win; the other gets 409 INVALID_STATE', async () => {
      const u = newUser();
      const img = await uploadImage(u);
      const first = rawPut(c, img.id, u, RAW.length);
      first.req.write(RAW.subarray(0, 256 * 1024));
      await waitFor(c, img.id, (i) => i.phase === 'IMPORTING', 'IMPORTING');
      const second = await put(c, img.id, u, RAW);
      expect(second.status).toBe(409);
      expect(second.body).toMatchObject({ code: 'INVALID_STATE', details: { phase: 'IMPORTING' } });
      first.req.end(RAW.subarray(256 * 1024));
      const r = await first.response;
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ phase: 'READY', checksum: sha256(RAW) });
    });

    it('ends FAILED with a reason when the client disconnects mid-upload, leaving no bytes and no reservation', async () => {
      const u = newUser();
      const img = await uploadImage(u);
      const up = rawPut(c, img.id, u, RAW.length);
      up.req.write(RAW.subarray(0, MiB));
      await waitFor(c, img.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      up.req.destroy();
      const failed = await waitFor(c, img.id, (i) => i.phase === 'FAILED', 'FAILED');
      expect(failed.statusReason).toBe('The upload was interrupted: the client disconnected before sending the whole file; upload the file again');
      await expectNoBytes(c, img.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
      // and the file can be uploaded again
      expect((await put(c, img.id, u, RAW)).status).toBe(200);
    });

    it('stops an upload when its image is deleted', async () => {
      const u = newUser();
      const img = await uploadImage(u);
      const up = rawPut(c, img.id, u, RAW.length);
      up.req.write(RAW.subarray(0, MiB));
      await waitFor(c, img.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      expect((await reply(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id } } }))).status).toBe(204);
      const r = await up.response;
      expect([404, -1]).toContain(r.status);
      up.req.destroy();
      await expectNoBytes(c, img.id);
      expect((await quotaOf(c, u.dept)).count).toMatchObject({ used: 0, reserved: 0 });
    });

    it('retries a failed upload by waiting for a new PUT', async () => {
      const u = newUser();
      const img = await uploadImage(u, { format: 'qcow2' });
      expect((await put(c, img.id, u, RAW)).status).toBe(422);
      const retried = await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: img.id } } }));
      expect(retried.status).toBe(202);
      await new Promise((r) => setTimeout(r, 200));
      expect(await get(c, img.id)).toMatchObject({ phase: 'QUEUED', statusReason: null });
      expect((await put(c, img.id, u, QCOW2)).status).toBe(200);
    });
  });
});

// ---------------------------------------------------------------- the S3 store (in-process S3 server)

describe('ingestion over HTTP (sqlite, MinIO store on the in-process S3 server)', () => {
  let c: Ctx;
  let s3: S3TestServer;
  beforeAll(async () => {
    s3 = await startS3Server();
    c = await boot('sqlite', 'ingest-s3', {
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'ingest-e2e',
      STORAGE_PART_SIZE_MB: '5',
    });
    c.srv.put('big.raw', BIG);
    c.srv.put('backing.qcow2', qcow2WithBacking());
  });
  afterAll(async () => {
    await c?.t.close();
    await c?.srv.close();
    await s3?.close();
  });

  it('imports a multipart-sized file from a URL with a dropped connection resumed', async () => {
    const u = newUser();
    const img = await fromUrl(c, u, '/f/big.raw?id=s3-drop&dropAfter=7000000', { format: 'raw' });
    expect(await settled(c, img.id)).toMatchObject({ phase: 'READY', sizeBytes: BIG.length, checksum: sha256(BIG) });
    expect((await c.storage.stat(objectKeys.imageDisk(img.id))).size).toBe(BIG.length);
    expect(await c.storage.listIncomplete('images/')).toEqual([]);
    const part = await c.t
      .http()
      .get(`/images/${img.id}/file`)
      .set('Authorization', c.t.auth(u))
      .set('Range', `bytes=${6 * MiB}-${6 * MiB + 99}`)
      .buffer(true)
      .parse(binary);
    expect(part.status).toBe(206);
    expect(Buffer.compare(part.body as Buffer, BIG.subarray(6 * MiB, 6 * MiB + 100))).toBe(0);
  });

  it('aborts the multipart upload when the image is deleted mid-import', async () => {
    const u = newUser();
    const img = await fromUrl(c, u, '/f/big.raw?id=s3-slow&rate=3000000', { format: 'raw' });
    await waitFor(c, img.id, (i) => i.progress.bytesDone > 6 * MiB, 'a part uploaded');
    await until(async () => (await c.storage.listIncomplete(objectKeys.imagePrefix(img.id))).length > 0, 'a multipart upload in progress');
    expect((await reply(c.api(u).DELETE('/images/{id}', { params: { path: { id: img.id } } }))).status).toBe(204);
    await until(() => c.srv.inFlight('/f/big.raw') === 0, 'the download stopped', 5000);
    await new Promise((r) => setTimeout(r, 300));
    await expectNoBytes(c, img.id);
    expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
  });

  it('refuses wrong content without storing an object', async () => {
    const u = newUser();
    const img = await fromUrl(c, u, '/f/backing.qcow2', { format: 'qcow2' });
    expect((await settled(c, img.id)).statusReason).toMatch(/backing file/);
    await expectNoBytes(c, img.id);
  });

  it('streams a direct upload into S3 and serves it back', async () => {
    const u = newUser();
    const img = await createOk(c, u, { format: 'raw', source: { type: 'UPLOAD' } });
    const res = await put(c, img.id, u, BIG);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ phase: 'READY', checksum: sha256(BIG) });
    const whole = await c.t.http().get(`/images/${img.id}/file`).set('Authorization', c.t.auth(u)).buffer(true).parse(binary);
    expect(sha256(whole.body as Buffer)).toBe(sha256(BIG));
    expect(await c.storage.listIncomplete('images/')).toEqual([]);
  });
});

/** supertest parser that keeps the body as a Buffer */
function binary(res: SuperagentResponse, cb: (err: Error | null, body: Buffer) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => cb(null, Buffer.concat(chunks)));
  stream.on('error', (e: Error) => cb(e, Buffer.alloc(0)));
}
