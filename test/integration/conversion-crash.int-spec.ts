import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { ensureBuilt } from '../support/build';
import { realImage, sha256 } from '../support/disk-images';
import { ImageServer } from '../support/image-server';
import { until } from '../support/kit';
import { createTestDatabase, dropTestDatabase, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../support/mariadb';
import { startS3Server } from '../support/s3-server';
import { callService, ServiceProcess, serviceProcesses } from '../support/service-process';

/**
 * kill -9 of the real service process while an import is CONVERTING (issue 11): qemu-img dies with it (no orphan
 * converting for nobody), the restarted service takes the import back (the stored source is not trusted: fetched
 * again, judged, converted again), and it ends ACTIVE with both checksums right (the source's, and the stored
 * image's, checked by reading the stored bytes back), the same disk as the source, no stale temp folder, no stray
 * object or incomplete upload, and the quota holding exactly the stored size. Both runtime shapes.
 */

const MiB = 1024 * 1024;
const VIRTUAL = 32 * MiB;
// 24 MiB of data converted at 2 MiB/s (qemu-img's -r): CONVERTING lasts about 12 s, long enough to be killed in
// it, and longer than the 10 s wait for qemu-img to be gone after the kill: an orphan would still be converting
const FILE = realImage('qcow2', { dataBytes: 24 * MiB + 7, virtualBytes: VIRTUAL, seed: 77 });
const FILE_SHA = sha256(FILE);
const SECRET = 'conv-crash-secret-0123456789abcdef0123456789';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SUPER = signToken({ sub: 'conv-crash-root', dept: 'ops', role: Role.SuperAdmin, name: 'root' }, SECRET);
const DEPT = 'conv-crash-dept';
const USER = signToken({ sub: 'conv-crash-user', dept: DEPT, role: Role.User, name: 'user' }, SECRET);

type Json = Record<string, any>;

const call = callService;

async function poll(svc: ServiceProcess, id: string, cond: (i: Json) => boolean, what: string, ms = 90_000): Promise<Json> {
  let last: Json = {};
  await until(
    async () => {
      const r = await call(svc, 'GET', `/images/${id}`, SUPER).catch(() => ({ status: 0, body: {} as Json }));
      last = r.body;
      return r.status === 200 && cond(last);
    },
    `image ${id} ${what}; last ${JSON.stringify(last)}\n--- service output ---\n${svc.output().slice(-4000)}`,
    ms,
    100,
  );
  return last;
}

/** The qemu-img processes (or their limiting shell) whose command line names `dir`. */
function qemuIn(dir: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return cmd.some((a) => a.endsWith('qemu-img')) && cmd.some((a) => a.startsWith(dir));
      } catch {
        return false;
      }
    })
    .map(Number);
}

const baseEnv = (dataDir: string, convTmp: string): Record<string, string> => ({
  DATA_DIR: dataDir,
  AUTH_JWT_SECRET: SECRET,
  LOG_LEVEL: 'warn',
  URL_ALLOW_CIDRS: '127.0.0.0/8',
  SEED_DEFAULT_ZONE: 'false',
  IMPORT_CONCURRENCY: '2',
  INGEST_SWEEP_INTERVAL_SECONDS: '0',
  CONVERSION_TMP_DIR: convTmp,
  QEMU_IMG_CONVERT_RATE_BYTES: String(2 * MiB),
});

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

/** `qemu-img compare` of the stored raw bytes with the qcow2 source: the guest sees the same disk. */
function sameDisk(dir: string, stored: Buffer): boolean {
  const a = join(dir, 'cmp-stored.raw');
  const b = join(dir, 'cmp-source.qcow2');
  writeFileSync(a, stored);
  writeFileSync(b, FILE);
  try {
    execFileSync('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', a, b]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(a, { force: true });
    rmSync(b, { force: true });
  }
}

describe('an import killed (kill -9) while CONVERTING is taken back and ends ACTIVE', () => {
  let srv: ImageServer;
  const { start } = serviceProcesses();

  beforeAll(() => {
    ensureBuilt();
  }, 200_000);
  beforeAll(async () => {
    srv = await new ImageServer().start();
    srv.put('disk.qcow2', FILE);
  });
  afterAll(async () => {
    await srv?.close();
  });

  /** The crash and the restart; `list` answers every object key under images/. */
  async function crashWhileConverting(
    env: Record<string, string>,
    convTmp: string,
    storage: ObjectStorage,
    list: () => Promise<string[]>,
    dataDir: string,
  ): Promise<void> {
    const first = await start(env, 'service #1');
    const z = await call(first, 'POST', '/zones', SUPER, { name: `zone-${randomUUID().slice(0, 6)}`, hypervisor: 'KVM', requiredFormat: 'raw' });
    expect(z.status).toBe(201);
    const created = await call(first, 'POST', '/images', USER, {
      kind: 'IMAGE',
      name: 'conv-crash',
      osCategory: 'CENTOS',
      format: 'qcow2',
      zoneId: z.body.id,
      source: { type: 'URL', url: srv.url(`/f/disk.qcow2?id=${randomUUID()}`) },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const dir = join(convTmp, `hcm-convert-${id}`);
    await poll(first, id, (i) => i.phase === 'CONVERTING', 'CONVERTING');
    await until(() => qemuIn(dir).length > 0, `qemu-img converting ${id}`);
    await first.kill9();

    // qemu-img died with the service (no orphan); its half-written output is still in the temp folder
    await until(() => qemuIn(dir).length === 0, `qemu-img of ${id} gone after the kill`);
    expect(existsSync(dir)).toBe(true);

    const second = await start(env, 'service #2');
    const done = await poll(second, id, (i) => i.phase === 'READY' || i.phase === 'FAILED', 'READY or FAILED');
    expect(done).toMatchObject({
      status: 'ACTIVE',
      phase: 'READY',
      format: 'raw',
      sourceSha256: FILE_SHA,
      sizeBytes: VIRTUAL,
      virtualSizeBytes: VIRTUAL,
      statusReason: null,
    });
    // the stored image's checksum is the stored bytes' own, and they are the source's disk
    const back = Buffer.from(await (await fetch(second.url(`/images/${id}/file`), { headers: { authorization: `Bearer ${USER}` } })).arrayBuffer());
    expect(back.length).toBe(VIRTUAL);
    expect(done.checksum).toBe(sha256(back));
    expect(sameDisk(dataDir, back)).toBe(true);
    // nothing left behind: no temp folder, no process, one object, no incomplete upload, the quota exact
    expect(readdirSync(convTmp)).toEqual([]);
    expect(qemuIn(dir)).toEqual([]);
    expect(await storage.listIncomplete('images/')).toEqual([]);
    expect((await list()).sort()).toEqual([`images/${id}/disk`]);
    const q = await call(second, 'GET', `/quotas/${DEPT}`, SUPER);
    expect((q.body.resources as Json[]).find((r) => r.resource === 'IMAGE_BYTES')).toMatchObject({ used: VIRTUAL, reserved: 0 });
    await second.stop();
  }

  it('embedded shape: SQLite, in-process jobs, the filesystem store', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-conv-crash-embedded-'));
    const convTmp = join(dataDir, 'convert');
    mkdirSync(convTmp);
    const root = join(dataDir, 'objects');
    const env = {
      ...baseEnv(dataDir, convTmp),
      DB_TYPE: 'sqlite',
      DB_PATH: join(dataDir, 'db.sqlite'),
      QUEUE_DRIVER: 'memory',
      STORAGE_DRIVER: 'fs',
      STORAGE_FS_ROOT: root,
    };
    try {
      await crashWhileConverting(env, convTmp, new FsStorage(root), () => Promise.resolve(listFiles(root)), dataDir);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);

  it('platform shape: MariaDB, BullMQ on Redis, the S3 store', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hcm-conv-crash-platform-'));
    const convTmp = join(dataDir, 'convert');
    mkdirSync(convTmp);
    const s3 = await startS3Server();
    const db = await createTestDatabase('convcrash');
    const prefix = `hcm_test_convcrash_${randomUUID().slice(0, 8)}`;
    const bucket = 'conv-crash';
    // a stable WORKER_ID and a long lock: the restarted replica takes its job back at once
    const env = {
      ...baseEnv(dataDir, convTmp),
      WORKER_ID: 'conv-crash-replica',
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
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: bucket,
      STORAGE_PART_SIZE_MB: '5',
    };
    const storage = new MinioStorage({
      endPoint: '127.0.0.1',
      port: s3.port,
      useSSL: false,
      accessKey: s3.accessKey,
      secretKey: s3.secretKey,
      bucket,
      region: 'us-east-1',
      partSizeBytes: 5 * MiB,
    });
    try {
      await crashWhileConverting(env, convTmp, storage, () => listS3(storage), dataDir);
    } finally {
      const queue = new Queue(JOBS_QUEUE, { connection: connectionOf(REDIS), prefix });
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await dropTestDatabase(db);
      await s3.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 240_000);
});
