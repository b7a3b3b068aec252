import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Queue } from 'bullmq';
import { signToken } from '../../src/access/jwt';
import { Role } from '../../src/access/principal';
import { connectionOf } from '../../src/jobs/bullmq-queue';
import { JOBS_QUEUE } from '../../src/jobs/jobs.module';
import { FsStorage } from '../../src/storage/fs-storage';
import { MinioStorage } from '../../src/storage/minio-storage';
import { rawBytes, sha256 } from '../support/disk-images';
import { ImageServer } from '../support/image-server';
import { createTestDatabase, dropTestDatabase, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../support/mariadb';
import { startS3Server } from '../support/s3-server';
import { callService, ServiceProcess, serviceProcesses } from '../support/service-process';
import { ensureBuilt } from '../support/build';
import { ThrottleProxy } from '../support/throttle-proxy';

/**
 * kill -9 of the service at 90% of a URL import, start again: the import resumes from the byte the store holds
 * (fs: the temp file; S3: the multipart upload's parts), asking the source for the rest with Range and If-Range,
 * and ends READY/ACTIVE with the sha256 of the file; the bytes the source serves after the restart are under 10%
 * of the file (the figures are printed: README, "Resume after a crash"). When the file changed on the server
 * between the crash and the restart, the import starts again from byte 0 and still ends right.
 */

const MiB = 1024 * 1024;
const SECRET = 'resume-test-secret-0123456789abcdef0123456789';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUPER = signToken({ sub: 'resume-root', dept: 'ops', role: Role.SuperAdmin, name: 'root' }, SECRET);
const USER = signToken({ sub: 'resume-user', dept: 'resume-dept', role: Role.User, name: 'user' }, SECRET);

type Json = Record<string, any>;

async function poll(svc: ServiceProcess, id: string, cond: (i: Json) => boolean, what: string, ms = 90_000): Promise<Json> {
  const end = Date.now() + ms;
  let last: Json = {};
  for (;;) {
    const r = await callService(svc, 'GET', `/images/${id}`, SUPER).catch(() => ({ status: 0, body: {} as Json }));
    last = r.body;
    if (r.status === 200 && cond(last)) return last;
    if (Date.now() > end) throw new Error(`image ${id} never got ${what}; last ${JSON.stringify(last)}\n--- service output ---\n${svc.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function createZone(svc: ServiceProcess): Promise<string> {
  const z = await callService(svc, 'POST', '/zones', SUPER, { name: `zone-${randomUUID().slice(0, 6)}`, hypervisor: 'KVM' });
  expect(z.status).toBe(201);
  return z.body.id as string;
}

/** Starts an import of `path` from the file source (the first one), and waits until 90% is imported. */
async function fileImportTo90(svc: ServiceProcess, path: string, size: number): Promise<{ id: string; done: number }> {
  const zoneId = await createZone(svc);
  const created = await callService(svc, 'POST', '/images', USER, {
    kind: 'IMAGE',
    name: `resume-${path}`,
    osCategory: 'CENTOS',
    format: 'raw',
    zoneId,
    source: { type: 'FILE', path },
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const at = await poll(svc, id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone >= 0.9 * size, '90% imported', 120_000);
  return { id, done: at.progress.bytesDone as number };
}

/** The offset the restarted run said it resumed at ("... resumes at byte N"), or undefined. */
function resumedAtByte(svc: ServiceProcess, id: string): number {
  const m = new RegExp(`(?:Download|Import) of ${id} resumes at byte (\\d+)`).exec(svc.output());
  if (!m) {
    const lines = svc
      .output()
      .split('\n')
      .filter((l) => /"(Ingestion|BullMqQueue)"|"level":"(warn|error)"/.test(l));
    throw new Error(`the restarted service did not resume ${id}:\n${lines.join('\n').slice(-4000)}`);
  }
  return Number(m[1]);
}

const s3Of = (port: number, bucket: string) =>
  new MinioStorage({
    endPoint: '127.0.0.1',
    port,
    useSSL: false,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    bucket,
    region: 'us-east-1',
    partSizeBytes: 5 * MiB,
  });

/**
 * Starts a URL import of /f/<name>, served at `rate` bytes/s the first time, and waits until 90% is imported;
 * answers the image and the bytes its progress said were done (what the kill that follows interrupts).
 */
async function importTo90(svc: ServiceProcess, srv: ImageServer, name: string, size: number, rate: number): Promise<{ id: string; done: number }> {
  const zoneId = await createZone(svc);
  const created = await callService(svc, 'POST', '/images', USER, {
    kind: 'IMAGE',
    name: `resume-${name}`,
    osCategory: 'CENTOS',
    format: 'raw',
    zoneId,
    source: { type: 'URL', url: srv.url(`/f/${name}?id=${name}&rate=${rate}&slowTimes=1`) },
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const at = await poll(svc, id, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone >= 0.9 * size, '90% imported', 120_000);
  return { id, done: at.progress.bytesDone as number };
}

const baseEnv = (dataDir: string): Record<string, string> => ({
  DATA_DIR: dataDir,
  AUTH_JWT_SECRET: SECRET,
  LOG_LEVEL: 'log',
  URL_ALLOW_CIDRS: '127.0.0.0/8',
  SEED_DEFAULT_ZONE: 'false',
  IMPORT_CONCURRENCY: '2',
  URL_IDLE_TIMEOUT_MS: '20000',
});

const embeddedEnv = (dataDir: string): Record<string, string> => ({
  ...baseEnv(dataDir),
  DB_TYPE: 'sqlite',
  DB_PATH: join(dataDir, 'db.sqlite'),
  QUEUE_DRIVER: 'memory',
  STORAGE_DRIVER: 'fs',
  STORAGE_FS_ROOT: join(dataDir, 'objects'),
});

/**
 * What the source served after the restart, and what it served twice (issue 16's measure: "bytes re-downloaded
 * after a kill at 90%", goal under 10% of the file): everything the source sent in both runs, less the file.
 * Printed for the README; `reDownloaded` is undefined where the source's first run cannot be counted.
 */
function report(what: string, served: number, size: number, doneAtKill: number, reDownloaded?: number): void {
  const pct = (n: number) => `${((100 * n) / size).toFixed(1)}%`;
  const twice = reDownloaded === undefined ? '' : `; re-downloaded ${reDownloaded} bytes (${pct(reDownloaded)} of the file, goal < 10%)`;
  process.stdout.write(
    `\nresume after kill -9 at ${pct(doneAtKill)} (${what}): ${served} of ${size} bytes served after the restart (${pct(served)}; ${size - doneAtKill} were left at the kill)${twice}\n`,
  );
}

/**
 * The bytes served after the restart are the rest of the file from the byte the store kept: what was left at the
 * kill (under 10% of the file), plus at most what the store had not yet made its own - `grain`: the fs store's
 * buffers (the 1 MiB coalescer), the S3 store's parts not yet stored (a part is stored whole or not at all).
 */
function expectResumedFromTheByteReached(served: number, size: number, doneAtKill: number, grain: number): void {
  expect(size - doneAtKill).toBeLessThanOrEqual(0.1 * size);
  expect(served).toBeGreaterThan(0);
  expect(served).toBeLessThanOrEqual(size - doneAtKill + grain);
  expect(served).toBeLessThan(0.1 * size + grain);
}

/** The goal itself: the source served less than a tenth of the file twice. */
function expectReDownloadedUnderATenth(reDownloaded: number, size: number): void {
  expect(reDownloaded).toBeLessThan(0.1 * size);
}

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name), base) : [relative(base, join(dir, e.name))]));
}

function listS3(storage: MinioStorage): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const keys: string[] = [];
    const s = storage.client.listObjectsV2(storage.bucket, 'images/', true);
    s.on('data', (o: { name?: string }) => o.name && keys.push(o.name));
    s.on('end', () => resolve(keys));
    s.on('error', reject);
  });
}

/** The range request the restarted run made for the rest of the file (the first request after `since`). */
function rangeAfter(srv: ImageServer, name: string, since: number): { range?: string; ifRange?: string } {
  const r = srv.requests.find((q) => q.at >= since && q.path.includes(`id=${name}&`));
  return { range: r?.headers.range, ifRange: r?.headers['if-range'] as string | undefined };
}

describe('an import killed at 90% resumes from the byte it reached', () => {
  let srv: ImageServer;
  const { start } = serviceProcesses();

  beforeAll(() => {
    ensureBuilt();
  }, 200_000);
  beforeAll(async () => {
    srv = await new ImageServer().start();
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('filesystem store (embedded shape): the temp file is appended to, the source read from the byte it holds', async () => {
    const file = rawBytes(24 * MiB + 11, 4321);
    srv.put('fs.raw', file);
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-resume-fs-'));
    const env = embeddedEnv(dataDir);
    const storage = new FsStorage(join(dataDir, 'objects'));
    try {
      const first = await start(env, 'service #1');
      const { id, done: doneAtKill } = await importTo90(first, srv, 'fs.raw', file.length, 3 * MiB);
      await first.kill9();
      const kept = await storage.listIncomplete(`images/${id}/`);
      expect(kept.map((u) => u.key)).toEqual([`images/${id}/disk`]);

      const restartAt = Date.now();
      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: file.length, checksum: sha256(file), statusReason: null });
      const served = srv.bytesServed('id=fs.raw&', restartAt);
      const reDownloaded = srv.bytesServed('id=fs.raw&') - file.length;
      report('filesystem store', served, file.length, doneAtKill, reDownloaded);
      expectResumedFromTheByteReached(served, file.length, doneAtKill, MiB);
      expectReDownloadedUnderATenth(reDownloaded, file.length);
      const asked = rangeAfter(srv, 'fs.raw', restartAt);
      expect(asked.range).toBe(`bytes=${file.length - served}-`);
      expect(asked.ifRange).toBe('"/f/fs.raw-v1"');
      expect(second.output()).toContain(`Download of ${id} resumes at byte ${file.length - served}`);
      // nothing left beside the object: no temp file, no sidecar
      expect(await storage.listIncomplete('images/')).toEqual([]);
      expect(listFiles(join(dataDir, 'objects'))).toEqual([`images/${id}/disk`]);
      const back = await fetch(second.url(`/images/${id}/file`), { headers: { authorization: `Bearer ${USER}` } });
      expect(sha256(Buffer.from(await back.arrayBuffer()))).toBe(sha256(file));
      await second.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);

  it('S3 store (platform shape): the multipart upload parts are kept, the source read from the bytes they hold', async () => {
    // parts of 5 MiB: what a kill loses (the part being filled, at worst two more, and what was on its way past
    // the progress meter) is under 10% of this file
    const file = rawBytes(200 * MiB + 7, 8765);
    srv.put('s3.raw', file);
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-resume-s3-'));
    const s3 = await startS3Server();
    const db = await createTestDatabase('resume');
    const prefix = `hcm_test_resume_${randomUUID().slice(0, 8)}`;
    const env = {
      ...baseEnv(dataDir),
      DB_TYPE: 'mariadb',
      DB_HOST: TEST_DB_HOST,
      DB_PORT: String(TEST_DB_PORT),
      DB_USER: TEST_DB_USER,
      DB_PASSWORD: TEST_DB_PASSWORD,
      DB_NAME: db,
      QUEUE_DRIVER: 'redis',
      REDIS_URL: REDIS,
      QUEUE_PREFIX: prefix,
      QUEUE_LOCK_MS: '120000',
      JOB_BACKOFF_MS: '100',
      WORKER_ID: 'resume-replica',
      INGEST_SWEEP_INTERVAL_SECONDS: '0',
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'resume-test',
      STORAGE_PART_SIZE_MB: '5',
    };
    const storage = new MinioStorage({
      endPoint: '127.0.0.1',
      port: s3.port,
      useSSL: false,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket: 'resume-test',
      region: 'us-east-1',
      partSizeBytes: 5 * MiB,
    });
    const queue = new Queue(JOBS_QUEUE, { connection: connectionOf(REDIS), prefix });
    try {
      const first = await start(env, 'service #1');
      const { id, done: doneAtKill } = await importTo90(first, srv, 's3.raw', file.length, 8 * MiB);
      await first.kill9();
      expect((await storage.listIncomplete(`images/${id}/`)).length).toBe(1);
      expect(await storage.exists(`images/${id}/disk.resume`)).toBe(true);

      const restartAt = Date.now();
      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: file.length, checksum: sha256(file), statusReason: null });
      const served = srv.bytesServed('id=s3.raw&', restartAt);
      const reDownloaded = srv.bytesServed('id=s3.raw&') - file.length;
      report('S3 store', served, file.length, doneAtKill, reDownloaded);
      process.stdout.write(
        `${second
          .output()
          .split('\n')
          .filter((l) => /resum|restart|take over/i.test(l))
          .join('\n')}\n`,
      );
      // the grain: the part being filled, the one on its way to the store when the kill came, and up to a part's
      // worth still in the buffers between the progress meter and the store (streams, the sockets of the link)
      expectResumedFromTheByteReached(served, file.length, doneAtKill, 3 * 5 * MiB);
      // what a kill can lose on S3 (up to three parts of 5 MiB, above) is under a tenth of this file
      expectReDownloadedUnderATenth(reDownloaded, file.length);
      // the kept bytes are whole parts
      expect((file.length - served) % (5 * MiB)).toBe(0);
      expect(rangeAfter(srv, 's3.raw', restartAt).range).toBe(`bytes=${file.length - served}-`);
      expect(await storage.listIncomplete('images/')).toEqual([]);
      expect(await listS3(storage)).toEqual([`images/${id}/disk`]);
      const back = await storage.getStream(`images/${id}/disk`);
      const chunks: Buffer[] = [];
      for await (const c of back as AsyncIterable<Buffer>) chunks.push(c);
      expect(sha256(Buffer.concat(chunks))).toBe(sha256(file));
      await second.stop();
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await dropTestDatabase(db);
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 300_000);

  it('the file changed on the server between the crash and the restart: it starts again from byte 0 and ends with the new file', async () => {
    const before = rawBytes(16 * MiB + 3, 111);
    const after = rawBytes(16 * MiB + 3, 222);
    srv.put('changed.raw', before);
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-resume-changed-'));
    const env = embeddedEnv(dataDir);
    const storage = new FsStorage(join(dataDir, 'objects'));
    try {
      const first = await start(env, 'service #1');
      const { id } = await importTo90(first, srv, 'changed.raw', before.length, 3 * MiB);
      await first.kill9();
      srv.put('changed.raw', after); // a new version: another ETag and Last-Modified

      const restartAt = Date.now();
      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: after.length, checksum: sha256(after), statusReason: null });
      // If-Range with the old ETag: the server sent the whole new file, once
      expect(rangeAfter(srv, 'changed.raw', restartAt).ifRange).toBe('"/f/changed.raw-v1"');
      expect(srv.bytesServed('id=changed.raw&', restartAt)).toBe(after.length);
      expect(second.output()).toContain(`Download of ${id} restarts from byte 0`);
      expect(await storage.listIncomplete('images/')).toEqual([]);
      expect(listFiles(join(dataDir, 'objects'))).toEqual([`images/${id}/disk`]);
      await second.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);

  it('a mounted directory into the S3 store over a slow link: resumed from the parts stored, the file read from that byte', async () => {
    // what a kill loses on S3 (up to three parts of 5 MiB, below) is under a tenth of this file
    const file = rawBytes(256 * MiB + 5, 2468);
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-resume-dir-'));
    const mnt = join(dataDir, 'mnt');
    mkdirSync(mnt);
    writeFileSync(join(mnt, 'dir.raw'), file);
    const s3 = await startS3Server();
    // the link to the store is slow: the import advances as its parts reach the store
    const link = await new ThrottleProxy(s3.port, 16 * MiB).start();
    const env = {
      ...embeddedEnv(dataDir),
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(link.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'resume-dir',
      STORAGE_PART_SIZE_MB: '5',
      FILE_SOURCES: `mnt=file://${mnt}`,
    };
    const storage = s3Of(s3.port, 'resume-dir');
    try {
      const first = await start(env, 'service #1');
      const { id, done: doneAtKill } = await fileImportTo90(first, 'dir.raw', file.length);
      await first.kill9();
      expect((await storage.listIncomplete(`images/${id}/`)).length).toBe(1);
      link.rate = Infinity;

      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: file.length, checksum: sha256(file), statusReason: null });
      const offset = resumedAtByte(second, id);
      // printed: the bytes the first run had counted done that the second read again, a lower bound of what was
      // read twice (the directory's reads are not counted); the bound asserted is the parts' grain below
      report('mounted directory -> S3 store', file.length - offset, file.length, doneAtKill, doneAtKill - offset);
      expect(offset % (5 * MiB)).toBe(0);
      // the parts the store held when the kill came: all but the one filling, the one on the wire and up to a
      // part's worth in the buffers between the progress meter and the store (CI once saw 10-11 MiB in all)
      expect(offset).toBeGreaterThanOrEqual(doneAtKill - 3 * 5 * MiB);
      expect(await storage.listIncomplete('images/')).toEqual([]);
      expect(await listS3(storage)).toEqual([`images/${id}/disk`]);
      await second.stop();
    } finally {
      await link.close();
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);

  it('a bucket of another S3 store over a slow link, into the filesystem store: the bucket is read with a range from the byte stored', async () => {
    const file = rawBytes(24 * MiB + 9, 1357);
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-resume-bucket-'));
    const src = await startS3Server();
    await s3Of(src.port, 'src').putStream('images/bucket.raw', Readable.from([file]));
    const link = await new ThrottleProxy(src.port, 3 * MiB).start();
    const env = {
      ...embeddedEnv(dataDir),
      FILE_SOURCES: `bkt=s3://${src.accessKey}@127.0.0.1:${link.port}/src/images`,
      FILE_SOURCE_PASSWORDS: `bkt=${src.secretKey}`,
    };
    const storage = new FsStorage(join(dataDir, 'objects'));
    try {
      const first = await start(env, 'service #1');
      const { id, done: doneAtKill } = await fileImportTo90(first, 'bucket.raw', file.length);
      await first.kill9();
      const servedBefore = link.served;
      link.rate = Infinity;
      link.mark();

      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: file.length, checksum: sha256(file), statusReason: null });
      // everything the source store sent after the restart (the file's rest, and the answers to stat calls)
      const served = link.served;
      // both runs' traffic holds the stat calls' answers too, so this errs high
      const reDownloaded = servedBefore + served - file.length;
      report('bucket source -> filesystem store', served, file.length, doneAtKill, reDownloaded);
      expect(resumedAtByte(second, id)).toBeGreaterThan(0);
      expectResumedFromTheByteReached(served, file.length, doneAtKill, MiB);
      expectReDownloadedUnderATenth(reDownloaded, file.length);
      expect(await storage.listIncomplete('images/')).toEqual([]);
      expect(listFiles(join(dataDir, 'objects'))).toEqual([`images/${id}/disk`]);
      await second.stop();
    } finally {
      await link.close();
      await src.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});
