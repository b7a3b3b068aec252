import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Role } from '../../src/access/principal';
import { Caller, startApp, SUPER, TestApp } from '../support/app';
import { rawBytes } from '../support/disk-images';
import { createZone, imageBody } from '../support/fixtures';
import { ImageServer } from '../support/image-server';
import { PrivateMariaDb, PrivateRedis, startPrivateMariaDb, startPrivateRedis } from '../support/private-servers';
import { S3TestServer, startS3Server } from '../support/s3-server';
import { readUntil } from '../support/kit';

/**
 * Each dependency really stopped (a private MariaDB over its unix socket and over TCP, a private Redis, the
 * in-process S3 server closed): a request that needs it answers 503 DEPENDENCY_UNAVAILABLE with Retry-After,
 * never 500 and never a hang, and the service recovers by itself when the dependency is back.
 */

const USER: Caller = { sub: 'outage-user', dept: 'outage-dept', role: Role.User };
const SERVICE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const FILE = rawBytes(300_000);
type Json = Record<string, any>;

/** Waits (polling the record over HTTP) until `pred` holds; fails with the last record after `ms`. */
const waitForImage = (t: TestApp, id: string, pred: (i: Json) => boolean, ms = 30_000): Promise<Json> =>
  readUntil(async (): Promise<Json> => (await t.http().get(`/images/${id}`).set('Authorization', t.auth(SUPER))).body, pred, `image ${id} got there`, ms, 50);
const expect503 = (name: string, res: { status: number; body: Json; headers: Record<string, string> }) =>
  expect({ name, status: res.status, code: res.body?.code, retryAfter: res.headers['retry-after'] }).toEqual({
    name,
    status: 503,
    code: 'DEPENDENCY_UNAVAILABLE',
    retryAfter: expect.stringMatching(/^\d+$/),
  });

describe.each(['socket', 'tcp'] as const)('MariaDB really stopped (%s)', (mode) => {
  let db: PrivateMariaDb;
  let t: TestApp;
  let zoneId: string;
  let imageId: string;

  beforeAll(async () => {
    db = await startPrivateMariaDb(`outage_${mode}`);
    const where: Record<string, string> = mode === 'socket' ? { DB_SOCKET: db.socket } : { DB_HOST: '127.0.0.1', DB_PORT: String(db.port) };
    t = await startApp('mariadb', `outage${mode}`, {
      ...where,
      DB_USER: db.user,
      DB_PASSWORD: '',
      DB_NAME: db.database,
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
      INGEST_SWEEP_INTERVAL_SECONDS: '0',
    });
    zoneId = await createZone(t);
    const img = await t.http().post('/images').set('Authorization', t.auth(USER)).send(imageBody(zoneId));
    expect(img.status).toBe(201);
    imageId = img.body.id;
  }, 180_000);
  afterAll(async () => {
    await t?.close().catch(() => undefined);
    await db?.destroy();
  });

  const calls = (): Array<[string, () => any]> => [
    ['GET /images', () => t.http().get('/images').set('Authorization', t.auth(USER))],
    ['GET /images/{id}', () => t.http().get(`/images/${imageId}`).set('Authorization', t.auth(USER))],
    ['GET /images/counts', () => t.http().get('/images/counts').set('Authorization', t.auth(USER))],
    ['POST /images', () => t.http().post('/images').set('Authorization', t.auth(USER)).send(imageBody(zoneId))],
    ['PATCH /images/{id}', () => t.http().patch(`/images/${imageId}`).set('Authorization', t.auth(USER)).send({ description: 'x' })],
    ['GET /zones', () => t.http().get('/zones').set('Authorization', t.auth(USER))],
    ['GET /quotas/{dept}', () => t.http().get(`/quotas/${USER.dept}`).set('Authorization', t.auth(SUPER))],
    [
      'POST /quota-reservations',
      () =>
        t
          .http()
          .post('/quota-reservations')
          .set('Authorization', t.auth(SERVICE))
          .send({ key: `k-${Math.random()}`, departmentId: USER.dept, amounts: { VM_COUNT: 1 } }),
    ],
    ['GET /vms/{vmId}/images', () => t.http().get('/vms/vm-1/images').set('Authorization', t.auth(SERVICE))],
  ];

  it('answers 503 DEPENDENCY_UNAVAILABLE with Retry-After on every route while it is down, and recovers', async () => {
    for (const [name, call] of calls()) expect([name, (await call()).status < 500]).toEqual([name, true]);
    await db.stop(mode === 'socket' ? 'SIGTERM' : 'SIGKILL');
    for (let round = 0; round < 2; round++) {
      for (const [name, call] of calls()) {
        expect503(name, await call());
      }
    }
    const ready = await t.http().get('/health/ready');
    expect(ready.status).toBe(503);
    await db.start();
    for (const [name, call] of calls()) expect([name, (await call()).status < 500]).toEqual([name, true]);
  });
});

describe('Redis really stopped (BullMQ)', () => {
  let redis: PrivateRedis;
  let srv: ImageServer;
  let t: TestApp;
  let zoneId: string;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    srv = await new ImageServer().start();
    srv.put('disk.raw', FILE);
    t = await startApp('sqlite', 'outageredis', {
      QUEUE_DRIVER: 'redis',
      REDIS_URL: redis.url,
      QUEUE_PREFIX: 'hcm-outage',
      IMPORT_CONCURRENCY: '1',
      INGEST_SWEEP_INTERVAL_SECONDS: '1',
      URL_ALLOW_CIDRS: '127.0.0.0/8',
    });
    zoneId = await createZone(t);
  }, 120_000);
  afterAll(async () => {
    await t?.close().catch(() => undefined);
    await srv?.close();
    await redis?.destroy();
  });

  const createUrlImage = () =>
    t
      .http()
      .post('/images')
      .set('Authorization', t.auth(USER))
      .send(imageBody(zoneId, { format: 'raw', source: { type: 'URL', url: srv.url('/f/disk.raw') } }));

  it('the API keeps answering without hanging: readiness 503, a created import waits and runs once Redis is back', async () => {
    const first = await createUrlImage();
    expect(first.status).toBe(201);
    await waitForImage(t, first.body.id, (i) => i.status === 'ACTIVE');

    await redis.stop('SIGKILL');
    const ready = await t.http().get('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.queue.status).toBe('down');
    expect(ready.headers['retry-after']).toMatch(/^\d+$/);
    // the record is the truth: creating answers 201 at once (the sweep queues the import once Redis is back)
    const during = await createUrlImage();
    expect(during.status).toBe(201);
    expect(during.body.phase).toBe('QUEUED');
    // metrics still answer (without the queue depth they cannot read)
    expect((await t.http().get('/metrics')).status).toBe(200);
    // deleting does not wait on the queue either
    const gone = await createUrlImage();
    expect((await t.http().delete(`/images/${gone.body.id}`).set('Authorization', t.auth(USER))).status).toBe(204);

    await redis.start();
    await waitForImage(t, during.body.id, (i) => i.status === 'ACTIVE');
    expect((await t.http().get('/health/ready')).status).toBe(200);
  });
});

describe('the object store (S3) really stopped', () => {
  let s3: S3TestServer;
  let dir: string;
  let t: TestApp;
  let zoneId: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-outage-s3-'));
    s3 = await startS3Server({ directory: dir });
    t = await startApp('sqlite', 'outages3', {
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: s3.accessKey,
      MINIO_SECRET_KEY: s3.secretKey,
      MINIO_BUCKET: 'outage',
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
      INGEST_SWEEP_INTERVAL_SECONDS: '0',
    });
    zoneId = await createZone(t);
  }, 60_000);
  afterAll(async () => {
    await t?.close().catch(() => undefined);
    await s3?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  const upload = (id: string) =>
    t.http().put(`/images/${id}/file`).set('Authorization', t.auth(USER)).set('Content-Type', 'application/octet-stream').send(FILE);
  const newUploadImage = async () => {
    const res = await t
      .http()
      .post('/images')
      .set('Authorization', t.auth(USER))
      .send(imageBody(zoneId, { format: 'raw', source: { type: 'UPLOAD' } }));
    expect(res.status).toBe(201);
    return res.body.id as string;
  };

  it('reads, uploads and readiness answer 503 with Retry-After while it is closed, and work again once it is back', async () => {
    const active = await newUploadImage();
    expect((await upload(active)).status).toBe(200);
    const waiting = await newUploadImage();
    const port = s3.port;

    await s3.close();
    const read = (id: string) => t.http().get(`/images/${id}/file`).set('Authorization', t.auth(USER));
    expect503('GET /images/{id}/file', await read(active));
    const head = await t.http().head(`/images/${active}/file`).set('Authorization', t.auth(USER));
    expect({ status: head.status, retryAfter: head.headers['retry-after'] }).toEqual({ status: 503, retryAfter: expect.stringMatching(/^\d+$/) });
    expect503('PUT /images/{id}/file', await upload(waiting));
    const ready = await t.http().get('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.storage.status).toBe('down');

    s3 = await startS3Server({ directory: dir, port });
    const again = await read(active);
    expect(again.status).toBe(200);
    expect(Buffer.compare(again.body as Buffer, FILE)).toBe(0);
    // the refused upload left the image FAILED ("upload again"): retrying it works now
    expect((await t.http().post(`/images/${waiting}/retry`).set('Authorization', t.auth(USER))).status).toBe(202);
    expect((await upload(waiting)).status).toBe(200);
  });
});
