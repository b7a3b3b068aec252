import { createHash, randomFillSync } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Role } from '../../src/access/principal';
import { JsonLogger } from '../../src/observability/json-logger';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import type { operations } from '../../console/src/api/schema';
import { ApiClient, reply, typedCallers, type Schemas } from '../support/api-client';
import { Caller, Shape, startApp, SUPER, TestApp } from '../support/app';
import { iso, qcow2Header, rawBytes, sha256 } from '../support/disk-images';
import { createZone } from '../support/fixtures';
import { startS3Server, S3TestServer } from '../support/s3-server';
import { SmbdServer, startSmbd } from '../support/smbd';
import { readUntil } from '../support/kit';

/**
 * Images and ISOs from the platform's file directory (R14), over HTTP on the whole app: a real smbd on a
 * loopback port (test/support/smbd.ts) read through smbclient, a directory source, and a bucket of the
 * in-process S3 server that is also the images store (server-side copy).
 */

const MiB = 1024 * 1024;
type Json = Record<string, any>;

const BIG = 210 * MiB + 4321;
const QCOW2_HEADER = qcow2Header();
const ISO = iso(3 * MiB);
const RAW = rawBytes(2 * MiB + 9);

/** Writes a qcow2 of `size` bytes (a valid header, then random data) and returns its sha256. */
function bigQcow2(path: string, size: number): string {
  const block = randomFillSync(Buffer.alloc(8 * MiB));
  const hash = createHash('sha256');
  const fd = openSync(path, 'w');
  let off = 0;
  for (let n = 0; off < size; n++) {
    const piece = Buffer.from(block.subarray(0, Math.min(block.length, size - off)));
    if (n === 0) QCOW2_HEADER.copy(piece, 0);
    else piece.writeUInt32LE(n, 0);
    writeSync(fd, piece);
    hash.update(piece);
    off += piece.length;
  }
  closeSync(fd);
  return hash.digest('hex');
}

let seq = 0;
const newUser = (): Caller => {
  seq++;
  return { sub: `files-user-${seq}`, dept: `files-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role: Role.User };
};

/** smbclient processes talking to `port`, with their command lines and environments. */
function smbclients(port: number): { pid: number; cmdline: string; environ: string }[] {
  const out: { pid: number; cmdline: string; environ: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (!cmdline.split('\0')[0].endsWith('smbclient') || !cmdline.split('\0').includes(String(port))) continue;
      out.push({ pid: Number(d), cmdline, environ: readFileSync(`/proc/${d}/environ`, 'utf8') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

interface Ctx {
  t: TestApp;
  /** the client typed by openapi.yaml, per caller */
  api: (who?: Caller) => ApiClient;
  zoneId: string;
  storage: ObjectStorage;
  logs: string[];
}

async function boot(shape: Shape, label: string, env: Record<string, string>): Promise<Ctx> {
  const t = await startApp(shape, label, {
    IMPORT_CONCURRENCY: '2',
    JOB_ATTEMPTS: '4',
    JOB_BACKOFF_MS: '300',
    FILE_SOURCE_TIMEOUT_MS: '5000',
    INGEST_SWEEP_INTERVAL_SECONDS: '0',
    ...env,
  });
  const logs: string[] = [];
  // every log line of the app, at every level, for the secrets check
  t.app.useLogger(new JsonLogger('verbose', (line) => logs.push(line)));
  const zoneId = await createZone(t);
  return { t, api: await typedCallers(t), zoneId, storage: t.app.get(ObjectStorage), logs };
}

type EntriesQuery = NonNullable<operations['listFileEntries']['parameters']['query']>;
type CreateOver = Partial<Schemas['CreateImageDto']> & Pick<Schemas['CreateImageDto'], 'source'>;
const imageBody = (c: Ctx, over: CreateOver): Schemas['CreateImageDto'] => ({
  kind: 'IMAGE',
  name: `img-${Math.random().toString(36).slice(2, 8)}`,
  osCategory: 'CENTOS',
  format: 'qcow2',
  zoneId: c.zoneId,
  ...over,
});
/** The calls of this suite through the typed client, read in supertest's shape (reply). */
const api = (c: Ctx) => ({
  image: (id: string, as: Caller = SUPER) => reply(c.api(as).GET('/images/{id}', { params: { path: { id } } })),
  quota: (dept: string) => reply(c.api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: dept } } })),
  sources: (as: Caller) => reply(c.api(as).GET('/file-sources')),
  entries: (source: string, as: Caller = SUPER, query: EntriesQuery = {}) =>
    reply(c.api(as).GET('/file-sources/{source}/entries', { params: { path: { source }, query } })),
  // untyped on purpose: a query the contract forbids (the validation cases)
  rawEntries: (source: string, as: Caller, query: Record<string, unknown>) =>
    c.t.http().get(`/file-sources/${source}/entries`).query(query).set('Authorization', c.t.auth(as)),
  create: (as: Caller, over: CreateOver) => reply(c.api(as).POST('/images', { body: imageBody(c, over) })),
  // untyped on purpose: sources the contract forbids (no path, a bad source name)
  rawCreate: (as: Caller, over: Json) =>
    c.t
      .http()
      .post('/images')
      .set('Authorization', c.t.auth(as))
      .send({ ...imageBody(c, { source: { type: 'UPLOAD' } }), ...over }),
});

const waitFor = (c: Ctx, id: string, cond: (i: Json) => boolean, what: string, ms = 60_000): Promise<Json> =>
  readUntil(async (): Promise<Json> => (await api(c).image(id)).body, cond, `image ${id} ${what}`, ms, 30);
const settled = (c: Ctx, id: string, ms?: number) => waitFor(c, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED', ms);

async function quotaOf(c: Ctx, dept: string): Promise<{ count: Json; bytes: Json }> {
  const res = await api(c).quota(dept);
  expect(res.status).toBe(200);
  const by = (r: string) => res.body.resources.find((x: Json) => x.resource === r);
  return { count: by('IMAGE_COUNT'), bytes: by('IMAGE_BYTES') };
}

async function expectNoBytes(c: Ctx, id: string): Promise<void> {
  expect(await c.storage.exists(objectKeys.imageDisk(id))).toBe(false);
  expect(await c.storage.listIncomplete(objectKeys.imagePrefix(id))).toEqual([]);
}

// ---------------------------------------------------------------- SMB and directory sources, SQLite

describe('file sources over HTTP (sqlite, filesystem store): an SMB share through smbclient, a mounted directory', () => {
  let smbd: SmbdServer;
  let c: Ctx;
  let mnt: string;
  let bigSha: string;
  const share = (p: string) => join(smbd.shareDir, p);

  beforeAll(async () => {
    smbd = await startSmbd();
    mkdirSync(share('isos/sub dir/深层'), { recursive: true });
    for (let i = 0; i < 12; i++) {
      const f = share(`isos/disk-${String(i).padStart(2, '0')}.raw`);
      writeFileSync(f, Buffer.alloc(100 * (1 + ((i * 5) % 12)), i));
      const t = new Date(Date.UTC(2026, 5, 1) + ((i * 7) % 12) * 86_400_000);
      utimesSync(f, t, t);
    }
    writeFileSync(share('isos/sub dir/深层/tool kit.iso'), ISO);
    writeFileSync(share('中文 镜像.iso'), ISO);
    writeFileSync(share('plain.raw'), RAW);
    mkdirSync(share('images'));
    bigSha = bigQcow2(share('images/centos 7 big.qcow2'), BIG);

    mnt = mkdtempSync(join(tmpdir(), 'hcm-files-mnt-'));
    mkdirSync(join(mnt, 'isos'));
    writeFileSync(join(mnt, 'isos', 'local.iso'), ISO);
    writeFileSync(join(tmpdir(), 'hcm-files-outside.iso'), ISO);
    symlinkSync(join(tmpdir(), 'hcm-files-outside.iso'), join(mnt, 'escape.iso'));
    symlinkSync(tmpdir(), join(mnt, 'tmp-dir'));

    c = await boot('sqlite', 'files', {
      FILE_SOURCES: `share=${smbd.url()},mnt=file://${mnt}`,
      FILE_SOURCE_PASSWORDS: `share=${encodeURIComponent(smbd.password)}`,
    });
  }, 120_000);
  afterAll(async () => {
    await c?.t.close();
    await smbd?.close();
    rmSync(mnt, { recursive: true, force: true });
    rmSync(join(tmpdir(), 'hcm-files-outside.iso'), { force: true });
  });

  describe('listing', () => {
    it('lists the configured sources for every role that may create images, not for services', async () => {
      const res = await api(c).sources(newUser());
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        items: [
          { name: 'share', kind: 'SMB', location: `smb://127.0.0.1:${smbd.port}/files`, default: true },
          { name: 'mnt', kind: 'DIR', location: null, default: false },
        ],
      });
      const service = await api(c).sources({ sub: 'compute', dept: 'platform', role: Role.Service });
      expect(service.status).toBe(403);
      expect(service.body.code).toBe('FORBIDDEN');
      expect((await api(c).entries('share', { sub: 'compute', dept: 'platform', role: Role.Service })).status).toBe(403);
      expect((await reply(c.api().GET('/file-sources'))).status).toBe(401);
      expect((await api(c).entries('share', { sub: 'a', dept: 'd', role: Role.Admin })).status).toBe(200);
    });

    it('lists a folder: folders first, then files with size and modified time; pages, sorts and filters; opens subfolders', async () => {
      const u = newUser();
      const root = await api(c).entries('share', u);
      expect(root.status).toBe(200);
      expect(root.body).toMatchObject({ source: 'share', path: '', total: 4, page: 1, pageSize: 20, truncated: false });
      expect(root.body.items.map((e: Json) => `${e.type}:${e.path}`)).toEqual(['DIR:images', 'DIR:isos', 'FILE:plain.raw', 'FILE:中文 镜像.iso']);
      expect(root.body.items[3]).toEqual({
        name: '中文 镜像.iso',
        path: '中文 镜像.iso',
        type: 'FILE',
        size: ISO.length,
        modifiedAt: expect.stringMatching(/Z$/),
      });

      const page = await api(c).entries('share', u, { path: 'isos', page: 2, pageSize: 4, sort: 'size', order: 'desc' });
      expect(page.status).toBe(200);
      expect(page.body).toMatchObject({ path: 'isos', total: 13, page: 2, pageSize: 4 });
      const all = await api(c).entries('share', u, { path: 'isos/', pageSize: 50, sort: 'size', order: 'desc' });
      expect(all.body.items[0]).toMatchObject({ type: 'DIR', name: 'sub dir', size: 0 });
      const sizes = all.body.items.slice(1).map((e: Json) => e.size);
      expect(sizes).toEqual([...sizes].sort((a: number, b: number) => b - a));
      expect(page.body.items).toEqual(all.body.items.slice(4, 8));

      const byTime = await api(c).entries('share', u, { path: 'isos', pageSize: 50, sort: 'modifiedAt' });
      const times = byTime.body.items.filter((e: Json) => e.type === 'FILE').map((e: Json) => e.modifiedAt);
      expect(times).toEqual([...times].sort());
      expect(times[0]).toBe('2026-06-01T00:00:00.000Z');

      const filtered = await api(c).entries('share', u, { path: 'isos', name: 'DISK-1', order: 'desc' });
      expect(filtered.body.items.map((e: Json) => e.name)).toEqual(['disk-11.raw', 'disk-10.raw']);

      const deep = await api(c).entries('share', u, { path: 'isos/sub dir/深层' });
      expect(deep.body.items).toEqual([
        { name: 'tool kit.iso', path: 'isos/sub dir/深层/tool kit.iso', type: 'FILE', size: ISO.length, modifiedAt: expect.any(String) },
      ]);
    });

    it('refuses paths that leave the source or are odd, with FILE_PATH_INVALID and the reason', async () => {
      const u = newUser();
      for (const [path, reason] of [
        ['..', 'DOT_SEGMENT'],
        ['isos/../..', 'DOT_SEGMENT'],
        ['/etc', 'ABSOLUTE'],
        ['isos\\sub dir', 'BACKSLASH'],
        ['isos/a\u0000b', 'CONTROL_CHARACTER'],
        ['isos/*', 'RESERVED_CHARACTER'],
        ['isos//x', 'EMPTY_SEGMENT'],
        ['x'.repeat(256), 'NAME_TOO_LONG'],
        ['plain.raw', 'NOT_A_DIRECTORY'],
      ]) {
        const res = await api(c).entries('share', u, { path });
        expect([res.status, res.body.code, res.body.details?.reason, path]).toEqual([400, 'FILE_PATH_INVALID', reason, path]);
      }
      const missing = await api(c).entries('share', u, { path: 'nope' });
      expect(missing.status).toBe(404);
      expect(missing.body).toMatchObject({ code: 'FILE_NOT_FOUND', details: { source: 'share', path: 'nope' } });
      expect((await api(c).entries('nope', u)).body).toMatchObject({ code: 'FILE_SOURCE_NOT_FOUND' });
      // untyped on purpose: queries the contract forbids
      expect((await api(c).rawEntries('share', u, { sort: 'bogus' })).body.code).toBe('VALIDATION_FAILED');
      expect((await api(c).rawEntries('share', u, { extra: 1 })).body.code).toBe('VALIDATION_FAILED');
      expect((await api(c).rawEntries('share', u, { pageSize: 201 })).body.code).toBe('VALIDATION_FAILED');
    });

    it('a directory source lists what stays inside its root and refuses symlinks that leave it', async () => {
      const u = newUser();
      const root = await api(c).entries('mnt', u);
      expect(root.body.items.map((e: Json) => e.path)).toEqual(['isos']);
      for (const path of ['escape.iso', 'tmp-dir', 'tmp-dir/hcm-files-outside.iso']) {
        const res = await api(c).entries('mnt', u, { path });
        expect([res.status, res.body.code, res.body.details?.reason]).toEqual([400, 'FILE_PATH_INVALID', 'SYMLINK_ESCAPE']);
      }
      const created = await api(c).create(u, { kind: 'ISO', format: 'iso', isoUsage: 'OS', source: { type: 'FILE', fileSource: 'mnt', path: 'escape.iso' } });
      expect([created.status, created.body.code, created.body.details?.reason]).toEqual([400, 'FILE_PATH_INVALID', 'SYMLINK_ESCAPE']);
      const ok = await api(c).create(u, { kind: 'ISO', format: 'iso', isoUsage: 'OS', source: { type: 'FILE', fileSource: 'mnt', path: 'isos/local.iso' } });
      expect(ok.status).toBe(201);
      expect(await settled(c, ok.body.id)).toMatchObject({
        phase: 'READY',
        checksum: sha256(ISO),
        source: { type: 'FILE', fileSource: 'mnt', path: 'isos/local.iso' },
      });
    });

    it('answers 503 FILE_SOURCE_UNAVAILABLE naming FILE_SOURCE_AUTH_FAILED when the share refuses the password, never showing it', async () => {
      const right = smbd.password;
      smbd.setPassword('Changed-On-The-Server-1');
      try {
        const res = await api(c).entries('share', newUser(), { path: 'isos/auth-check' });
        expect(res.status).toBe(503);
        expect(res.body).toMatchObject({
          code: 'FILE_SOURCE_UNAVAILABLE',
          details: { source: 'share', reason: 'FILE_SOURCE_AUTH_FAILED', status: 'NT_STATUS_LOGON_FAILURE' },
        });
        expect(JSON.stringify(res.body)).not.toContain(right);
        // a 503 says when to try again, as DEPENDENCY_UNAVAILABLE does
        expect(res.headers['retry-after']).toBe('5');
        const created = await api(c).create(newUser(), { source: { type: 'FILE', path: 'plain.raw' } });
        expect(created.status).toBe(503);
        expect(created.body.details.reason).toBe('FILE_SOURCE_AUTH_FAILED');
        expect(created.headers['retry-after']).toBe('5');
      } finally {
        smbd.setPassword(right);
      }
    });
  });

  describe('creating from a picked file', () => {
    it('imports an ISO with spaces and Chinese characters in its name from the default source: READY, checksum, quota reserved at create', async () => {
      const u = newUser();
      const res = await api(c).create(u, { kind: 'ISO', format: 'iso', isoUsage: 'OS', source: { type: 'FILE', path: '中文 镜像.iso' } });
      expect(res.status).toBe(201);
      // the size was known at create: the quota holds it from the start
      expect(res.body).toMatchObject({
        phase: 'QUEUED',
        source: { type: 'FILE', path: '中文 镜像.iso', fileSource: 'share', url: null },
        progress: { bytesTotal: ISO.length },
      });
      const done = await settled(c, res.body.id);
      expect(done).toMatchObject({ phase: 'READY', status: 'ACTIVE', sizeBytes: ISO.length, checksum: sha256(ISO), format: 'iso' });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: ISO.length, reserved: 0 });
      // the file GET stays on supertest: a binary body openapi-fetch does not read
      const file = await c.t
        .http()
        .get(`/images/${res.body.id}/file`)
        .set('Authorization', c.t.auth(u))
        .buffer(true)
        .parse((r, cb) => {
          const chunks: Buffer[] = [];
          r.on('data', (d: Buffer) => chunks.push(d));
          r.on('end', () => cb(null, Buffer.concat(chunks)));
        });
      expect(sha256(file.body as Buffer)).toBe(sha256(ISO));
    });

    it(`imports a ${Math.round(BIG / MiB)} MiB qcow2 through smbclient with the right sha256; no smbclient shows the password`, async () => {
      const u = newUser();
      const res = await api(c).create(u, { name: 'CentOS 7 big', source: { type: 'FILE', fileSource: 'share', path: 'images/centos 7 big.qcow2' } });
      expect(res.status).toBe(201);
      expect(res.body.progress.bytesTotal).toBe(BIG);
      await waitFor(c, res.body.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      const seen = smbclients(smbd.port);
      for (const p of seen) {
        expect(p.cmdline).not.toContain(smbd.password);
        expect(p.environ).not.toContain(smbd.password);
      }
      const done = await settled(c, res.body.id, 120_000);
      expect(done).toMatchObject({ phase: 'READY', sizeBytes: BIG, checksum: bigSha, statusReason: null });
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: BIG, reserved: 0 });
      expect(c.logs.join('\n')).not.toContain(smbd.password);
    }, 180_000);

    it('refuses at create what cannot be imported, keeping nothing: bad path, missing file, a folder, unknown source, too big for the quota', async () => {
      const u = newUser();
      const cases: [Json, number, string, string?][] = [
        [{ type: 'FILE', path: '../etc/passwd' }, 400, 'FILE_PATH_INVALID', 'DOT_SEGMENT'],
        [{ type: 'FILE', path: '/etc/passwd' }, 400, 'FILE_PATH_INVALID', 'ABSOLUTE'],
        [{ type: 'FILE', path: 'isos' }, 400, 'FILE_PATH_INVALID', 'NOT_A_FILE'],
        [{ type: 'FILE', path: 'isos/nope.iso' }, 404, 'FILE_NOT_FOUND'],
        [{ type: 'FILE', fileSource: 'elsewhere', path: 'x.iso' }, 404, 'FILE_SOURCE_NOT_FOUND'],
        [{ type: 'FILE' }, 400, 'VALIDATION_FAILED'],
        [{ type: 'FILE', fileSource: 'BAD NAME', path: 'x' }, 400, 'VALIDATION_FAILED'],
      ];
      for (const [source, status, code, reason] of cases) {
        // untyped: the table mixes paths the service refuses with sources the contract forbids
        const res = await api(c).rawCreate(u, { format: 'raw', source });
        expect([res.status, res.body.code, res.body.details?.reason, source]).toEqual([status, code, reason, source]);
      }
      expect((await quotaOf(c, u.dept)).count).toMatchObject({ used: 0, reserved: 0 });
      expect(
        (await reply(c.api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: u.dept } }, body: { limits: { IMAGE_BYTES: MiB } } })))
          .status,
      ).toBe(200);
      const over = await api(c).create(u, { format: 'raw', source: { type: 'FILE', path: 'plain.raw' } });
      expect(over.status).toBe(409);
      expect(over.body).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { resource: 'IMAGE_BYTES', requested: RAW.length } });
      expect((await quotaOf(c, u.dept)).count).toMatchObject({ used: 0, reserved: 0 });
    });

    it('checks the format like any import: raw bytes declared qcow2 end FAILED with a reason, nothing stored, quota given back', async () => {
      const u = newUser();
      const res = await api(c).create(u, { format: 'qcow2', source: { type: 'FILE', path: 'plain.raw' } });
      expect(res.status).toBe(201);
      const failed = await settled(c, res.body.id);
      expect(failed.phase).toBe('FAILED');
      expect(failed.statusReason).toMatch(/qcow2/i);
      await expectNoBytes(c, res.body.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
    });

    it('a password the share refuses ends the import FAILED with FILE_SOURCE_AUTH_FAILED, the password nowhere in the reason or the logs', async () => {
      const u = newUser();
      const res = await api(c).create(u, { format: 'raw', source: { type: 'FILE', path: 'plain.raw' } });
      expect(await settled(c, res.body.id)).toMatchObject({ phase: 'READY' });
      // a second image, failed for its content, is retried after the share's password changed
      const img = await api(c).create(u, { format: 'qcow2', source: { type: 'FILE', path: 'plain.raw' } });
      expect((await settled(c, img.body.id)).phase).toBe('FAILED');
      const right = smbd.password;
      smbd.setPassword('Rotated-Elsewhere-2');
      try {
        expect((await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: img.body.id } } }))).status).toBe(202);
        const failed = await waitFor(c, img.body.id, (i) => i.phase === 'FAILED' && /AUTH/.test(i.statusReason ?? ''), 'FAILED for the password');
        expect(failed.statusReason).toMatch(/refused the configured user and password \(NT_STATUS_LOGON_FAILURE\) \[FILE_SOURCE_AUTH_FAILED\]$/);
        expect(failed.statusReason).not.toContain(right);
        expect(failed.statusReason).not.toContain('Rotated-Elsewhere-2');
        await expectNoBytes(c, img.body.id);
      } finally {
        smbd.setPassword(right);
      }
      const logs = c.logs.join('\n');
      expect(logs).toMatch(/FILE_SOURCE_AUTH_FAILED/);
      expect(logs).not.toContain(right);
    });

    it('a file deleted while it is read ends FAILED with a reason and leaves nothing behind', async () => {
      const u = newUser();
      copyFileSync(share('images/centos 7 big.qcow2'), share('images/doomed.qcow2'));
      const res = await api(c).create(u, { source: { type: 'FILE', path: 'images/doomed.qcow2' } });
      expect(res.status).toBe(201);
      await waitFor(c, res.body.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      unlinkSync(share('images/doomed.qcow2'));
      const failed = await settled(c, res.body.id, 120_000);
      expect(failed.phase).toBe('FAILED');
      expect(failed.statusReason).toMatch(/images\/doomed\.qcow2 on file source share .* was deleted while it was being read \[FILE_NOT_FOUND\]/);
      await expectNoBytes(c, res.body.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
    }, 180_000);

    it('the share going away mid-transfer: the import is retried and finishes once the share is back', async () => {
      const u = newUser();
      const res = await api(c).create(u, { source: { type: 'FILE', path: 'images/centos 7 big.qcow2' } });
      await waitFor(c, res.body.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      await smbd.stop();
      const waiting = await waitFor(
        c,
        res.body.id,
        (i) => i.phase === 'QUEUED' && /^Attempt 1 of 4 failed/.test(i.statusReason ?? ''),
        'the first attempt failed',
      );
      expect(waiting.statusReason).toMatch(/FILE_READ_INTERRUPTED|FILE_SHORT_READ|FILE_SOURCE_UNREACHABLE/);
      await new Promise((r) => setTimeout(r, 400));
      await smbd.start();
      const done = await settled(c, res.body.id, 120_000);
      expect(done).toMatchObject({ phase: 'READY', checksum: bigSha, sizeBytes: BIG, statusReason: null });
      await expect(c.storage.listIncomplete('images/')).resolves.toEqual([]);
    }, 180_000);

    it('a share that stays away: FAILED after the last attempt, saying it cannot be reached', async () => {
      const u = newUser();
      const img = await api(c).create(u, { format: 'qcow2', source: { type: 'FILE', path: 'plain.raw' } });
      expect((await settled(c, img.body.id)).phase).toBe('FAILED');
      await smbd.stop();
      try {
        expect((await reply(c.api(u).POST('/images/{id}/retry', { params: { path: { id: img.body.id } } }))).status).toBe(202);
        const failed = await waitFor(c, img.body.id, (i) => i.phase === 'FAILED' && /UNREACHABLE/.test(i.statusReason ?? ''), 'FAILED as unreachable', 30_000);
        expect(failed.statusReason).toMatch(/the server cannot be reached .*\[FILE_SOURCE_UNREACHABLE\]$/);
      } finally {
        await smbd.start();
      }
    }, 60_000);

    it('deleting the image mid-import stops smbclient and keeps no bytes', async () => {
      const u = newUser();
      const res = await api(c).create(u, { source: { type: 'FILE', path: 'images/centos 7 big.qcow2' } });
      await waitFor(c, res.body.id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'bytes arriving');
      expect((await reply(c.api(u).DELETE('/images/{id}', { params: { path: { id: res.body.id } } }))).status).toBe(204);
      const end = Date.now() + 10_000;
      while (smbclients(smbd.port).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(smbclients(smbd.port)).toEqual([]);
      await expectNoBytes(c, res.body.id);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: 0, reserved: 0 });
    }, 60_000);
  });
});

// ---------------------------------------------------------------- one MariaDB case

describe('file sources over HTTP (mariadb)', () => {
  let smbd: SmbdServer;
  let c: Ctx;
  beforeAll(async () => {
    smbd = await startSmbd();
    writeFileSync(join(smbd.shareDir, '中文 镜像.iso'), ISO);
    c = await boot('mariadb', 'files-maria', { FILE_SOURCES: `share=${smbd.url()}`, FILE_SOURCE_PASSWORDS: `share=${encodeURIComponent(smbd.password)}` });
  }, 60_000);
  afterAll(async () => {
    await c?.t.close();
    await smbd?.close();
  });

  it('imports a picked ISO to READY and lists the share', async () => {
    const u = newUser();
    expect((await api(c).entries('share', u)).body.items.map((e: Json) => e.path)).toEqual(['中文 镜像.iso']);
    const res = await api(c).create(u, { kind: 'ISO', format: 'iso', isoUsage: 'OS', source: { type: 'FILE', path: '中文 镜像.iso' } });
    expect(res.status).toBe(201);
    expect(await settled(c, res.body.id)).toMatchObject({ phase: 'READY', checksum: sha256(ISO), source: { fileSource: 'share', path: '中文 镜像.iso' } });
    expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: ISO.length, reserved: 0 });
  });
});

// ---------------------------------------------------------------- a bucket of the images store

describe('file sources over HTTP (sqlite, MinIO store): a bucket of the images store, copied server-side', () => {
  let s3: S3TestServer;
  let c: Ctx;
  beforeAll(async () => {
    s3 = await startS3Server();
    c = await boot('sqlite', 'files-s3', {
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'images-e2e',
      STORAGE_PART_SIZE_MB: '5',
      FILE_SOURCES: 'drop=s3:///drop-e2e/incoming',
    });
    const client = (c.storage as unknown as { client: import('minio').Client }).client;
    await client.makeBucket('drop-e2e', 'us-east-1');
    await client.putObject('drop-e2e', 'incoming/isos/中文 镜像.iso', ISO);
    await client.putObject('drop-e2e', 'incoming/plain.raw', RAW);
  });
  afterAll(async () => {
    await c?.t.close();
    await s3?.close();
  });

  it('lists the bucket prefix as folders and files', async () => {
    const u = newUser();
    const root = await api(c).entries('drop', u);
    expect(root.body.items.map((e: Json) => `${e.type}:${e.path}`)).toEqual(['DIR:isos', 'FILE:plain.raw']);
    expect((await api(c).sources(u)).body.items).toEqual([{ name: 'drop', kind: 'BUCKET', location: 's3://drop-e2e/incoming/', default: true }]);
  });

  it('copies the object server-side (the service writes no byte of it), then verifies the copy: READY with the sha256', async () => {
    const u = newUser();
    const put = jest.spyOn(c.storage, 'putStream');
    const copy = jest.spyOn(c.storage, 'copyFromBucket');
    try {
      const res = await api(c).create(u, { kind: 'ISO', format: 'iso', isoUsage: 'OS', source: { type: 'FILE', path: 'isos/中文 镜像.iso' } });
      expect(res.status).toBe(201);
      expect(await settled(c, res.body.id)).toMatchObject({ phase: 'READY', checksum: sha256(ISO), sizeBytes: ISO.length });
      expect(copy).toHaveBeenCalledTimes(1);
      expect(put).not.toHaveBeenCalled();
      expect((await c.storage.stat(objectKeys.imageDisk(res.body.id))).size).toBe(ISO.length);
      expect((await quotaOf(c, u.dept)).bytes).toMatchObject({ used: ISO.length, reserved: 0 });

      // refused content: the copy is removed again
      const bad = await api(c).create(u, { format: 'qcow2', source: { type: 'FILE', path: 'plain.raw' } });
      const failed = await settled(c, bad.body.id);
      expect(failed.phase).toBe('FAILED');
      await expectNoBytes(c, bad.body.id);
    } finally {
      put.mockRestore();
      copy.mockRestore();
    }
  });
});
