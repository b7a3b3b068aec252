import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Queue } from 'bullmq';
import { signToken } from '../../src/access/jwt';
import { Role } from '../../src/access/principal';
import { connectionOf } from '../../src/jobs/bullmq-queue';
import { JOBS_QUEUE } from '../../src/jobs/jobs.module';
import { FsStorage } from '../../src/storage/fs-storage';
import { MinioStorage } from '../../src/storage/minio-storage';
import { ObjectStorage } from '../../src/storage/object-storage';
import { rawBytes, sha256 } from '../support/disk-images';
import { ImageServer } from '../support/image-server';
import { createTestDatabase, dropTestDatabase, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../support/mariadb';
import { startS3Server } from '../support/s3-server';
import { callService, ServiceProcess, serviceProcesses } from '../support/service-process';
import { ensureBuilt } from '../support/build';

/**
 * kill -9 in the middle of an import, start again: the import finishes (resumed from the bytes the dead attempt
 * stored, see ingest-resume.int-spec.ts for how far), with the right checksum, and nothing is left behind: no stray
 * object, no incomplete multipart upload or temp file, no pending quota reservation. The service runs as a
 * real child process (`node dist/src/main.js`), in both runtime shapes. The restarted replica takes its import
 * back at once (the platform test's queue lock lasts two minutes, longer than the test waits), and the time
 * from the restart to the import's source being read again is printed (README, "Operations").
 */

const MiB = 1024 * 1024;
const FILE = rawBytes(24 * MiB + 11, 1234);
const FILE_SHA = sha256(FILE);
const SECRET = 'crash-test-secret-0123456789abcdef0123456789';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUPER = signToken({ sub: 'crash-root', dept: 'ops', role: Role.SuperAdmin, name: 'root' }, SECRET);
const DEPT = 'crash-dept';
const USER = signToken({ sub: 'crash-user', dept: DEPT, role: Role.User, name: 'user' }, SECRET);

type Json = Record<string, any>;

const call = callService;

async function poll(svc: ServiceProcess, id: string, cond: (i: Json) => boolean, what: string, ms = 60_000): Promise<Json> {
  const end = Date.now() + ms;
  let last: Json = {};
  for (;;) {
    const r = await call(svc, 'GET', `/images/${id}`, SUPER).catch(() => ({ status: 0, body: {} as Json }));
    last = r.body;
    if (r.status === 200 && cond(last)) return last;
    if (Date.now() > end) throw new Error(`image ${id} never got ${what}; last ${JSON.stringify(last)}\n--- service output ---\n${svc.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function quotaBytes(svc: ServiceProcess): Promise<{ count: Json; bytes: Json }> {
  const r = await call(svc, 'GET', `/quotas/${DEPT}`, SUPER);
  expect(r.status).toBe(200);
  const by = (x: string) => (r.body.resources as Json[]).find((i) => i.resource === x)!;
  return { count: by('IMAGE_COUNT'), bytes: by('IMAGE_BYTES') };
}

/** Starts a URL import served slowly (the first request only) and waits until a good part of it is stored. */
async function startSlowImport(svc: ServiceProcess, srv: ImageServer, zoneId: string, id: string): Promise<string> {
  const created = await call(svc, 'POST', '/images', USER, {
    kind: 'IMAGE',
    name: `crash-${id}`,
    osCategory: 'CENTOS',
    format: 'raw',
    zoneId,
    source: { type: 'URL', url: srv.url(`/f/file.raw?id=${id}&rate=${3 * MiB}&slowTimes=1`) },
  });
  expect(created.status).toBe(201);
  await poll(svc, created.body.id as string, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone >= 11 * MiB, '11 MiB imported', 30_000);
  return created.body.id as string;
}

/** When the import of `id` read its source again after `since` (the restarted run's first request). */
function resumedAt(srv: ImageServer, id: string, since: number): number | undefined {
  return srv.requests.find((r) => r.at >= since && r.path.includes(`id=${id}&`))?.at;
}

function report(shape: string, restartAt: number, readyAt: number, resumed: number | undefined): void {
  const line = `recovery after kill -9 (${shape}): service ready ${readyAt - restartAt} ms after the restart, import running again after ${resumed === undefined ? '?' : resumed - restartAt} ms`;
  process.stdout.write(`\n${line}\n`);
}

async function createZone(svc: ServiceProcess): Promise<string> {
  const z = await call(svc, 'POST', '/zones', SUPER, { name: `zone-${randomUUID().slice(0, 6)}`, hypervisor: 'KVM' });
  expect(z.status).toBe(201);
  return z.body.id as string;
}

const baseEnv = (dataDir: string): Record<string, string> => ({
  DATA_DIR: dataDir,
  AUTH_JWT_SECRET: SECRET,
  LOG_LEVEL: 'warn',
  URL_ALLOW_CIDRS: '127.0.0.0/8',
  SEED_DEFAULT_ZONE: 'false',
  IMPORT_CONCURRENCY: '2',
  URL_IDLE_TIMEOUT_MS: '20000',
});

/** The platform shape's settings: MariaDB, BullMQ on Redis under its own prefix, the S3 store. */
function platformEnv(
  dataDir: string,
  db: string,
  prefix: string,
  s3: { port: number; accessKey: string; secretKey: string },
  bucket: string,
  lockMs: number,
): Record<string, string> {
  return {
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
    QUEUE_LOCK_MS: String(lockMs),
    JOB_BACKOFF_MS: '100',
    STORAGE_DRIVER: 'minio',
    MINIO_ENDPOINT: '127.0.0.1',
    MINIO_PORT: String(s3.port),
    MINIO_ACCESS_KEY: s3.accessKey,
    MINIO_SECRET_KEY: s3.secretKey,
    MINIO_BUCKET: bucket,
    STORAGE_PART_SIZE_MB: '5',
  };
}

const s3Storage = (s3: { port: number; accessKey: string; secretKey: string }, bucket: string) =>
  new MinioStorage({
    endPoint: '127.0.0.1',
    port: s3.port,
    useSSL: false,
    accessKey: s3.accessKey,
    secretKey: s3.secretKey,
    bucket,
    region: 'us-east-1',
    partSizeBytes: 5 * MiB,
  });

describe('an import survives kill -9 of the service', () => {
  let srv: ImageServer;
  const { start } = serviceProcesses();

  beforeAll(() => {
    ensureBuilt();
  }, 200_000);
  beforeAll(async () => {
    srv = await new ImageServer().start();
    srv.put('file.raw', FILE);
  });
  afterAll(async () => {
    await srv?.close();
  });

  it('platform shape: MariaDB, BullMQ on Redis, the S3 store', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-crash-platform-'));
    const s3 = await startS3Server();
    const db = await createTestDatabase('crash');
    const prefix = `hcm_test_crash_${randomUUID().slice(0, 8)}`;
    // a lock of two minutes: the import finishing within the poll's minute is the restarted replica's take-back
    // (BullMQ's stalled check would only see the job after the lock expired); no sweep either
    const env = { ...platformEnv(dataDir, db, prefix, s3, 'crash-test', 120_000), WORKER_ID: 'crash-replica', INGEST_SWEEP_INTERVAL_SECONDS: '0' };
    const storage = s3Storage(s3, 'crash-test');
    const queue = new Queue(JOBS_QUEUE, { connection: connectionOf(REDIS), prefix });
    try {
      const first = await start(env, 'service #1');
      const zoneId = await createZone(first);
      const id = await startSlowImport(first, srv, zoneId, 'platform');
      await first.kill9();

      // what the dead process left: a multipart upload with parts, a pending reservation, the image IMPORTING,
      // and the job active under the dead worker's lock
      expect((await storage.listIncomplete(`images/${id}/`)).length).toBeGreaterThan(0);
      expect(await storage.exists(`images/${id}/disk`)).toBe(false);
      const dead = (await queue.getJob(id))!;
      expect(await dead.getState()).toBe('active');
      expect(dead.processedBy).toMatch(/^crash-replica@/);

      const restartAt = Date.now();
      const second = await start(env, 'service #2');
      const readyAt = Date.now();
      expect((await quotaBytes(second)).bytes.reserved).toBeGreaterThan(0);
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      report('platform: MariaDB, BullMQ, S3', restartAt, readyAt, resumedAt(srv, 'platform', restartAt));
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: FILE.length, checksum: FILE_SHA, statusReason: null });
      // run by the restarted replica's worker, taken back rather than found stalled after its lock expired
      const finished = (await queue.getJob(id))!;
      expect(finished.processedBy).toMatch(/^crash-replica@/);
      expect(finished.processedBy).not.toBe(dead.processedBy);
      expect(finished.stalledCounter).toBe(0);
      expect(resumedAt(srv, 'platform', restartAt)).toBeDefined();
      await expectClean(storage, [`images/${id}/disk`], () => listS3(storage));
      const q = await quotaBytes(second);
      expect(q.count).toMatchObject({ used: 1, reserved: 0 });
      expect(q.bytes).toMatchObject({ used: FILE.length, reserved: 0 });
      // the file served back is the file
      const back = await fetch(second.url(`/images/${id}/file`), { headers: { authorization: `Bearer ${USER}` } });
      expect(sha256(Buffer.from(await back.arrayBuffer()))).toBe(FILE_SHA);
      await second.stop();
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await dropTestDatabase(db);
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('a job lost from Redis is noticed within seconds and queued again (no sweep): the import still finishes', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-lost-'));
    const s3 = await startS3Server();
    const db = await createTestDatabase('lostjob');
    const prefix = `hcm_test_lost_${randomUUID().slice(0, 8)}`;
    const env = { ...platformEnv(dataDir, db, prefix, s3, 'lost-test', 30000), INGEST_SWEEP_INTERVAL_SECONDS: '0' };
    const queue = new Queue(JOBS_QUEUE, { connection: connectionOf(REDIS), prefix });
    try {
      // an API-only replica: it queues the import but runs none, so the job waits in Redis
      const api = await start({ ...env, IMPORT_CONCURRENCY: '0' }, 'API replica');
      const zoneId = await createZone(api);
      const created = await call(api, 'POST', '/images', USER, {
        kind: 'IMAGE',
        name: 'lost-job',
        osCategory: 'CENTOS',
        format: 'raw',
        zoneId,
        source: { type: 'URL', url: srv.url('/f/file.raw?id=lost') },
      });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const job = await queue.getJob(id);
      expect(await job!.getState()).toBe('waiting');
      // Redis loses it (a flush, a failover without the key): the record still says QUEUED
      await job!.remove();
      const lostAt = Date.now();
      expect(await queue.getJob(id)).toBeUndefined();
      let back: Awaited<ReturnType<typeof queue.getJob>>;
      for (const end = Date.now() + 30_000; !(back = await queue.getJob(id));) {
        if (Date.now() > end) throw new Error(`the lost job was never queued again\n${api.output().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      process.stdout.write(`\nlost job queued again ${Date.now() - lostAt} ms after it vanished from Redis (INGEST_LOST_JOB_CHECK_MS=2000)\n`);
      expect(await back!.getState()).toBe('waiting');
      expect((await call(api, 'GET', `/images/${id}`, SUPER)).body.phase).toBe('QUEUED');
      // a replica that runs imports finishes it
      const worker = await start(env, 'worker replica');
      const done = await poll(worker, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: FILE.length, checksum: FILE_SHA, statusReason: null });
      await worker.stop();
      await api.stop();
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await dropTestDatabase(db);
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('SIGTERM during an import loses nothing: the job is handed back at a resumable point and finishes on the next start', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-sigterm-'));
    const s3 = await startS3Server();
    const db = await createTestDatabase('sigterm');
    const prefix = `hcm_test_sigterm_${randomUUID().slice(0, 8)}`;
    const env = platformEnv(dataDir, db, prefix, s3, 'sigterm-test', 30000);
    const storage = s3Storage(s3, 'sigterm-test');
    const queue = new Queue(JOBS_QUEUE, { connection: connectionOf(REDIS), prefix });
    try {
      const first = await start(env, 'service #1');
      const zoneId = await createZone(first);
      const id = await startSlowImport(first, srv, zoneId, 'sigterm');
      const t0 = Date.now();
      await first.stop(); // SIGTERM (SIGKILL only after 15 s)
      // it shut down by itself, well before the lock (30 s) would have let another replica take the job
      expect(first.proc.signalCode === 'SIGTERM' || first.proc.exitCode === 0).toBe(true);
      expect(Date.now() - t0).toBeLessThan(15_000);
      // the job went back to waiting without using an attempt, and the import did not fail
      const job = await queue.getJob(id);
      expect(await job!.getState()).toBe('waiting');
      expect(job!.attemptsMade).toBe(0);
      expect(await storage.listIncomplete(`images/${id}/`)).toEqual([]);

      const second = await start(env, 'service #2');
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: FILE.length, checksum: FILE_SHA, statusReason: null });
      await expectClean(storage, [`images/${id}/disk`], () => listS3(storage));
      const q = await quotaBytes(second);
      expect(q.bytes).toMatchObject({ used: FILE.length, reserved: 0 });
      await second.stop();
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await dropTestDatabase(db);
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);

  it('embedded shape: SQLite, in-process jobs, the filesystem store (and an upload cut off by the kill)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-crash-embedded-'));
    const root = join(dataDir, 'objects');
    const env = {
      ...baseEnv(dataDir),
      DB_TYPE: 'sqlite',
      DB_PATH: join(dataDir, 'db.sqlite'),
      QUEUE_DRIVER: 'memory',
      STORAGE_DRIVER: 'fs',
      STORAGE_FS_ROOT: root,
    };
    const storage = new FsStorage(root);
    try {
      const first = await start(env, 'service #1');
      const zoneId = await createZone(first);
      const id = await startSlowImport(first, srv, zoneId, 'embedded');
      // an upload in flight too: a dead process cannot finish it, so it must end FAILED with a reason
      const up = await call(first, 'POST', '/images', USER, {
        kind: 'IMAGE',
        name: 'crash-upload',
        osCategory: 'CENTOS',
        format: 'raw',
        zoneId,
        source: { type: 'UPLOAD' },
      });
      const uploadId = up.body.id as string;
      const req = httpRequest(first.url(`/images/${uploadId}/file`), {
        method: 'PUT',
        headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/octet-stream', 'content-length': String(FILE.length) },
      });
      req.on('error', () => undefined);
      req.write(FILE.subarray(0, 2 * MiB));
      await poll(first, uploadId, (i) => i.phase === 'IMPORTING' && i.progress.bytesDone > 0, 'upload bytes arriving');
      await first.kill9();
      req.destroy();

      // the dead process's temp files are still there
      expect((await storage.listIncomplete('images/')).map((u) => u.key).sort()).toEqual([`images/${id}/disk`, `images/${uploadId}/disk`].sort());

      const restartAt = Date.now();
      const second = await start(env, 'service #2');
      const readyAt = Date.now();
      const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
      report('embedded: SQLite, in-process jobs, fs', restartAt, readyAt, resumedAt(srv, 'embedded', restartAt));
      expect(done).toMatchObject({ status: 'ACTIVE', phase: 'READY', sizeBytes: FILE.length, checksum: FILE_SHA });
      const cut = await poll(second, uploadId, (i) => i.phase === 'FAILED', 'FAILED');
      expect(cut.statusReason).toBe('The upload was interrupted (the service stopped while receiving it); upload the file again');
      await expectClean(storage, [`images/${id}/disk`], () => Promise.resolve(listFiles(root)));
      const q = await quotaBytes(second);
      expect(q.count).toMatchObject({ used: 2, reserved: 0 });
      expect(q.bytes).toMatchObject({ used: FILE.length, reserved: 0 });
      await second.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});

/** No incomplete upload anywhere, and exactly these objects. */
async function expectClean(storage: ObjectStorage, objects: string[], list: () => Promise<string[]>): Promise<void> {
  expect(await storage.listIncomplete('images/')).toEqual([]);
  expect((await list()).sort()).toEqual(objects.sort());
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

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name), base) : [relative(base, join(dir, e.name))]));
}
