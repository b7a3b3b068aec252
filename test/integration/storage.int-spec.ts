import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { ChunkPool, ingestChunkPool } from '../../src/storage/chunk-pool';
import { DirectFileWriter, supportsDirectIo } from '../../src/storage/direct-io';
import { FsStorage } from '../../src/storage/fs-storage';
import { MinioStorage } from '../../src/storage/minio-storage';
import { ObjectNotFoundError, objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { startApp } from '../support/app';
import { S3TestServer, startS3Server } from '../support/s3-server';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

/** A stream of unknown length: `total` deterministic pseudo-random bytes in 64 KiB chunks. */
function generated(total: number, seed = 1): Readable {
  let sent = 0;
  let n = seed;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const len = Math.min(64 * 1024, total - sent);
      const buf = Buffer.allocUnsafe(len + 3);
      for (let i = 0; i < len; i += 4) {
        n = (Math.imul(n, 1664525) + 1013904223) >>> 0;
        buf.writeUInt32LE(n, i);
      }
      sent += len;
      this.push(buf.subarray(0, len));
    },
  });
}

/** Dates made by Node's fs come from another realm than Jest's `Date`. */
const isDate = (v: unknown): boolean => Object.prototype.toString.call(v) === '[object Date]';

async function sha256Of(stream: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function waitFor<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Harness {
  storage: ObjectStorage;
  /** size that guarantees the adapter has started writing/uploading (more than one part) */
  startedBytes: number;
  /** resolves once the first part of an incomplete upload has landed (S3), so an abort does not race it */
  partLanded: (key: string, id: string) => Promise<void>;
  close(): Promise<void>;
}

const adapters: [string, () => Promise<Harness>][] = [
  [
    'fs',
    async () => {
      const root = mkdtempSync(join(tmpdir(), 'hcm-fs-storage-'));
      const storage = new FsStorage(join(root, 'objects'));
      await storage.init();
      return { storage, startedBytes: 1 * MiB, partLanded: async () => undefined, close: async () => rmSync(root, { recursive: true, force: true }) };
    },
  ],
  [
    'minio',
    async () => {
      const s3 = await startS3Server();
      const storage = new MinioStorage({
        endPoint: '127.0.0.1',
        port: s3.port,
        useSSL: false,
        accessKey: s3.accessKey,
        secretKey: s3.secretKey,
        bucket: 'hcm-test',
        region: 'us-east-1',
        partSizeBytes: PART,
      });
      await storage.init();
      // listParts is minio's own (protected) ListParts call
      const listParts = (storage.client as unknown as { listParts(b: string, k: string, id: string): Promise<unknown[]> }).listParts.bind(storage.client);
      const partLanded = (key: string, id: string) => waitFor(async () => (await listParts('hcm-test', key, id)).length > 0).then(() => undefined);
      return { storage, startedBytes: PART + MiB, partLanded, close: () => s3.close() };
    },
  ],
];

describe.each(adapters)('ObjectStorage behaviour (%s adapter)', (_name, make) => {
  let h: Harness;
  let s: ObjectStorage;
  beforeAll(async () => {
    h = await make();
    s = h.storage;
  });
  afterAll(() => h?.close());

  it('answers ping', async () => {
    await expect(s.ping()).resolves.toBeUndefined();
  });

  it('stores a small object and reads it back; stat and exists agree', async () => {
    const key = objectKeys.imageDisk('small-1');
    const body = Buffer.from('hello object storage');
    const put = await s.putStream(key, Readable.from([body]), { contentType: 'text/plain' });
    expect(put).toEqual({ key, size: body.length });
    expect((await readAll(await s.getStream(key))).toString()).toBe('hello object storage');
    const st = await s.stat(key);
    expect(st.size).toBe(body.length);
    expect(isDate(st.lastModified)).toBe(true);
    expect(await s.exists(key)).toBe(true);
  });

  it('streams a 12+ MiB body of unknown length (several parts) intact', async () => {
    const key = objectKeys.imageDisk('big-1');
    const size = 12 * MiB + 12345;
    const expected = await sha256Of(generated(size, 7));
    const put = await s.putStream(key, generated(size, 7));
    expect(put.size).toBe(size);
    expect((await s.stat(key)).size).toBe(size);
    expect(await sha256Of(await s.getStream(key))).toEqual(expected);
    expect(await s.listIncomplete('images/')).toEqual([]);
  });

  it('reads ranges (inclusive ends, open end, clipped end) and refuses a start past the end', async () => {
    const key = objectKeys.imageDisk('range-1');
    const data = randomBytes(200_000);
    await s.putStream(key, Readable.from([data]));
    expect((await readAll(await s.getStream(key, { start: 100, end: 199 }))).equals(data.subarray(100, 200))).toBe(true);
    expect((await readAll(await s.getStream(key, { start: 0, end: 0 }))).equals(data.subarray(0, 1))).toBe(true);
    expect((await readAll(await s.getStream(key, { start: 199_990 }))).equals(data.subarray(199_990))).toBe(true);
    expect((await readAll(await s.getStream(key, { start: 150_000, end: 10_000_000 }))).equals(data.subarray(150_000))).toBe(true);
    await expect(s.getStream(key, { start: 200_000 })).rejects.toMatchObject({ code: 'RANGE_NOT_SATISFIABLE' });
    await expect(s.getStream(key, { start: 10, end: 5 })).rejects.toMatchObject({ code: 'RANGE_NOT_SATISFIABLE' });
  });

  it('reads a range spanning a part boundary of a multipart object', async () => {
    const key = objectKeys.imageDisk('range-2');
    const size = 11 * MiB;
    await s.putStream(key, generated(size, 3));
    const whole = await readAll(await s.getStream(key));
    const got = await readAll(await s.getStream(key, { start: PART - 10, end: PART + 9 }));
    expect(got.equals(whole.subarray(PART - 10, PART + 10))).toBe(true);
  });

  it('treats a missing key as not found and deletes idempotently', async () => {
    const key = objectKeys.imageDisk('missing');
    await expect(s.stat(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(s.getStream(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
    expect(await s.exists(key)).toBe(false);
    await expect(s.delete(key)).resolves.toBeUndefined();

    const k2 = objectKeys.imageDisk('del-1');
    await s.putStream(k2, Readable.from([Buffer.from('x')]));
    await s.delete(k2);
    expect(await s.exists(k2)).toBe(false);
    await expect(s.delete(k2)).resolves.toBeUndefined();
  });

  it('refuses keys outside the key rules', async () => {
    for (const bad of ['', '/abs', 'a//b', '../etc/passwd', 'images/../x', 'images/.hidden', 'a\\b', 'sp ace', 'x'.repeat(513)]) {
      await expect(s.stat(bad)).rejects.toMatchObject({ code: 'INVALID_KEY' });
      await expect(s.putStream(bad, Readable.from([Buffer.from('x')]))).rejects.toMatchObject({ code: 'INVALID_KEY' });
    }
  });

  it('replaces an object atomically; a failed upload leaves the previous object and nothing incomplete', async () => {
    const key = objectKeys.imageDisk('atomic-1');
    await s.putStream(key, Readable.from([Buffer.from('version one')]));
    await s.putStream(key, Readable.from([Buffer.from('version two')]));
    expect((await readAll(await s.getStream(key))).toString()).toBe('version two');

    // a source that fails after more than one part
    const failing = new PassThrough();
    const put = s.putStream(key, failing);
    const src = generated(h.startedBytes + MiB, 9);
    src.on('data', (c: Buffer) => failing.write(c));
    src.on('end', () => failing.destroy(new Error('source connection lost')));
    await expect(put).rejects.toThrow('source connection lost');
    expect((await readAll(await s.getStream(key))).toString()).toBe('version two');
    expect(await s.listIncomplete(objectKeys.imagePrefix('atomic-1'))).toEqual([]);
  });

  it('aborts incomplete uploads under a prefix: the running upload fails and leaves nothing', async () => {
    const key = objectKeys.imageDisk('stalled-1');
    const other = objectKeys.imageDisk('stalled-2');
    const source = new PassThrough();
    const put = s.putStream(key, source);
    put.catch(() => undefined);
    source.write(await readAll(generated(h.startedBytes, 5)));
    const listed = await waitFor(async () => {
      const l = await s.listIncomplete('images/stalled-1/');
      return l.length > 0 && l;
    });
    expect(listed).toEqual([expect.objectContaining({ key, id: expect.any(String) })]);
    expect(isDate(listed[0].initiated)).toBe(true);
    await h.partLanded(key, listed[0].id);
    // a prefix that does not cover it leaves it alone
    expect(await s.abortIncomplete(objectKeys.imagePrefix('stalled-2'))).toBe(0);
    expect(await s.abortIncomplete('images/stalled-1/', { olderThan: new Date(Date.now() - 3_600_000) })).toBe(0);
    expect(await s.abortIncomplete('images/stalled-1/')).toBe(1);
    expect(await s.listIncomplete('images/stalled-1/')).toEqual([]);
    // the upload notices when it writes or completes
    source.end(await readAll(generated(h.startedBytes, 6)));
    await expect(put).rejects.toMatchObject({ code: 'UPLOAD_ABORTED' });
    expect(await s.exists(key)).toBe(false);
    expect(await s.exists(other)).toBe(false);
  });

  it('stops an upload on an AbortSignal and cleans up', async () => {
    const key = objectKeys.imageDisk('signal-1');
    const ac = new AbortController();
    const source = new PassThrough();
    const put = s.putStream(key, source, { signal: ac.signal });
    put.catch(() => undefined);
    source.write(await readAll(generated(h.startedBytes, 4)));
    await waitFor(async () => (await s.listIncomplete('images/signal-1/')).length > 0);
    ac.abort();
    await expect(put).rejects.toMatchObject({ code: 'UPLOAD_ABORTED' });
    expect(source.destroyed).toBe(true);
    expect(await s.exists(key)).toBe(false);
    await waitFor(async () => (await s.listIncomplete('images/signal-1/')).length === 0);
  });

  it('adopts a local file as an object by moving it (fs: over the previous object, nothing incomplete), or answers null and leaves it (minio)', async () => {
    const key = objectKeys.imageDisk('adopt-1');
    await s.putStream(key, Readable.from([Buffer.from('the source, about to be replaced')]), { transient: true });
    const dir = mkdtempSync(join(tmpdir(), 'hcm-adopt-'));
    const file = join(dir, 'converted.raw');
    const data = randomBytes(3 * MiB + 5);
    writeFileSync(file, data);
    try {
      const adopted = await s.adoptFile(key, file);
      if (s.driver !== 'fs') {
        expect(adopted).toBeNull();
        expect(existsSync(file)).toBe(true);
        expect((await readAll(await s.getStream(key))).toString()).toBe('the source, about to be replaced');
        return;
      }
      expect(adopted).toEqual({ key, size: data.length });
      expect(existsSync(file)).toBe(false);
      expect((await readAll(await s.getStream(key))).equals(data)).toBe(true);
      expect(await s.listIncomplete(objectKeys.imagePrefix('adopt-1'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('presigns a GET where the store can (minio), or answers null (fs)', async () => {
    const key = objectKeys.imageDisk('presign-1');
    const data = randomBytes(1000);
    await s.putStream(key, Readable.from([data]));
    const url = await s.presignGet(key, 60);
    if (s.driver === 'fs') {
      expect(url).toBeNull();
      return;
    }
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/hcm-test\/images\/presign-1\/disk\?.*X-Amz-Signature=/);
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  });
});

describe('MinioStorage specifics (in-process S3 server)', () => {
  let s3: S3TestServer;
  const make = (bucket: string, port = s3.port) =>
    new MinioStorage({
      endPoint: '127.0.0.1',
      port,
      useSSL: false,
      accessKey: 'S3RVER',
      secretKey: 'S3RVER',
      bucket,
      region: 'us-east-1',
      partSizeBytes: PART,
    });
  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(() => s3?.close());

  it('creates its bucket at start, idempotently', async () => {
    const a = make('auto-created');
    expect(await a.client.bucketExists('auto-created')).toBe(false);
    await a.init();
    expect(await a.client.bucketExists('auto-created')).toBe(true);
    await make('auto-created').init();
    await expect(a.ping()).resolves.toBeUndefined();
  });

  it('aborts a multipart upload another client left incomplete', async () => {
    const st = make('abort-test');
    await st.init();
    const id = await st.client.initiateNewMultipartUpload('abort-test', 'images/left/disk', {});
    await st.client.uploadPart({ bucketName: 'abort-test', objectName: 'images/left/disk', uploadID: id, partNumber: 1, headers: {} }, randomBytes(PART));
    expect(await st.listIncomplete('images/')).toEqual([expect.objectContaining({ key: 'images/left/disk', id })]);
    expect(await st.abortIncomplete('images/')).toBe(1);
    expect(await st.listIncomplete('images/')).toEqual([]);
  });

  it('reports not ready when the server is unreachable', async () => {
    const dead = make('nowhere', 1);
    await expect(dead.ping()).rejects.toThrow();
  });
});

describe('StorageModule wiring', () => {
  it('provides the minio adapter from config and registers a storage readiness check', async () => {
    const s3 = await startS3Server();
    const t = await startApp('sqlite', 'storage', {
      STORAGE_DRIVER: 'minio',
      MINIO_ENDPOINT: '127.0.0.1',
      MINIO_PORT: String(s3.port),
      MINIO_ACCESS_KEY: 'S3RVER',
      MINIO_SECRET_KEY: 'S3RVER',
      MINIO_BUCKET: 'wired',
      STORAGE_PART_SIZE_MB: '5',
    });
    try {
      const storage = t.app.get(ObjectStorage);
      expect(storage).toBeInstanceOf(MinioStorage);
      const ready = await t.http().get('/health/ready');
      expect(ready.body.checks.storage).toEqual({ status: 'up' });
      await s3.close();
      const down = await t.http().get('/health/ready');
      expect(down.status).toBe(503);
      expect(down.body.checks.storage.status).toBe('down');
    } finally {
      await t.close();
      await s3.close().catch(() => undefined);
    }
  });

  it('uses the filesystem under DATA_DIR/objects by default', async () => {
    const t = await startApp('sqlite', 'storage-fs');
    try {
      const storage = t.app.get(ObjectStorage);
      expect(storage).toBeInstanceOf(FsStorage);
      expect((storage as FsStorage).root).toBe(join(t.dataDir, 'objects'));
      const ready = await t.http().get('/health/ready');
      expect(ready.body.checks.storage).toEqual({ status: 'up' });
    } finally {
      await t.close();
    }
  });
});

describe('FsStorage writes whole pooled MiBs with O_DIRECT, the rest through the page cache (src/storage/direct-io.ts)', () => {
  const roots: string[] = [];
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
  const rootIn = (parent: string) => {
    const r = mkdtempSync(join(parent, 'hcm-direct-'));
    roots.push(r);
    return r;
  };

  /** Pooled slots (as the ingest pipeline's coalescer gives them): full, full, a partial one of 100,000 bytes, full, a half. */
  function pooledBody(pool: ChunkPool = ingestChunkPool): { body: Readable; sha256: string; size: number } {
    const sizes = [MiB, MiB, 100_000, MiB, MiB / 2];
    const chunks = sizes.map((n) => {
      const slot = pool.take();
      slot.set(randomBytes(n));
      return n === slot.length ? slot : slot.subarray(0, n);
    });
    const hash = createHash('sha256');
    chunks.forEach((c) => hash.update(c));
    return { body: Readable.from(chunks), sha256: hash.digest('hex'), size: sizes.reduce((a, b) => a + b, 0) };
  }
  const sha256Of = async (s: ObjectStorage, key: string) => {
    const h = createHash('sha256');
    for await (const c of await s.getStream(key)) h.update(c as Buffer);
    return h.digest('hex');
  };

  it('on a disk filesystem: the two aligned MiBs before the unaligned piece go direct, every byte lands, the slots go back to the pool', async () => {
    const root = rootIn(tmpdir());
    expect(await supportsDirectIo(root)).toBe(true);
    const s = new FsStorage(root);
    // a pool of its own: the app other tests of this file start warms the shared one in the background
    const pool = new ChunkPool(MiB, 32);
    const { body, sha256, size } = pooledBody(pool);
    const freeBefore = pool.freeSlots;
    await expect(s.putStream('images/a/disk', body)).resolves.toEqual({ key: 'images/a/disk', size });
    // after the 100,000-byte piece the file offset is no longer page-aligned: the rest goes through the page cache
    expect(s.directBytes).toBe(2 * MiB);
    expect(await sha256Of(s, 'images/a/disk')).toBe(sha256);
    expect(pool.freeSlots).toBe(Math.min(32, freeBefore + 5));
  });

  it('whole MiBs that waited while a write ran go to the disk together, in one writev each time, every byte in place', async () => {
    const root = rootIn(tmpdir());
    const s = new FsStorage(root);
    // a pool of its own: the app other tests of this file start warms the shared one in the background
    const pool = new ChunkPool(MiB, 32);
    const chunks = Array.from({ length: 16 }, () => {
      const slot = pool.take();
      slot.set(randomBytes(MiB));
      return slot;
    });
    const hash = createHash('sha256');
    chunks.forEach((c) => hash.update(c));
    const sha256 = hash.digest('hex');
    const spy = jest.spyOn(require('node:fs') as typeof import('node:fs'), 'writev');
    try {
      await expect(s.putStream('images/v/disk', Readable.from(chunks))).resolves.toEqual({ key: 'images/v/disk', size: 16 * MiB });
      const batches = spy.mock.calls.map((c) => (c[1] as Buffer[]).length);
      expect(batches.length).toBeGreaterThan(0);
      expect(Math.max(...batches)).toBeGreaterThan(1);
      // the first MiB goes alone (nothing waited yet); the rest in batches, each MiB once
      expect(batches.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(15);
    } finally {
      spy.mockRestore();
    }
    expect(s.directBytes).toBe(16 * MiB);
    expect(await sha256Of(s, 'images/v/disk')).toBe(sha256);
    expect(pool.freeSlots).toBe(16);
  });

  it('destroyed while MiBs wait for the disk (an abort): no write after the close, no slot given back twice', async () => {
    const root = rootIn(tmpdir());
    let n = 0;
    // all whole MiBs (a batch goes out in one writev) or with an odd piece (a batch falls back to one by one);
    // destroyed at once, once the first MiB is on the disk (the batch after it under way), and after two
    for (const odd of [false, true]) {
      for (const written of [-1, MiB, 2 * MiB]) {
        const pool = new ChunkPool(MiB, 32);
        const given: ArrayBufferLike[] = [];
        const giveBack = pool.giveBack.bind(pool);
        pool.giveBack = (sab) => (given.push(sab), giveBack(sab));
        const w = new DirectFileWriter(join(root, `abort-${n++}`), { flags: 'wx', direct: true });
        const errors: unknown[] = [];
        w.on('error', (e) => errors.push(e));
        for (let i = 0; i < 12; i++) {
          const slot = pool.take();
          w.write(odd && i === 3 ? slot.subarray(0, 1000) : slot);
        }
        if (written >= 0) while (w.bytesWritten < written) await new Promise((r) => setImmediate(r));
        w.destroy(new Error('aborted'));
        await new Promise((r) => w.once('close', r));
        // the writes still in the thread pool return, and nothing else runs on the closed descriptors
        await new Promise((r) => setTimeout(r, 50));
        expect(errors.map((e) => (e as Error).message)).toEqual(['aborted']);
        // each slot the writer took went back once (what still waited in the stream's buffer is dropped with it
        // and collected: ChunkPool); once a MiB was written, its slot is among them
        expect(new Set(given).size).toBe(given.length);
        if (written >= 0) expect(given.length).toBeGreaterThanOrEqual(1);
        expect(pool.allocated).toBe(12);
      }
    }
  });

  it('a chunk that is not a pooled slot (fresh memory, not page-aligned) goes through the page cache', async () => {
    const s = new FsStorage(rootIn(tmpdir()));
    const data = randomBytes(2 * MiB);
    await s.putStream('images/b/disk', Readable.from([data.subarray(0, MiB), data.subarray(MiB)]));
    expect(s.directBytes).toBe(0);
    expect(await sha256Of(s, 'images/b/disk')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('on tmpfs (no O_DIRECT) and with directIo off: everything through the page cache, the same bytes', async () => {
    const onShm = existsSync('/dev/shm') && !(await supportsDirectIo('/dev/shm'));
    for (const s of [...(onShm ? [new FsStorage(rootIn('/dev/shm'))] : []), new FsStorage(rootIn(tmpdir()), { directIo: false })]) {
      const { body, sha256, size } = pooledBody();
      await expect(s.putStream('images/c/disk', body)).resolves.toEqual({ key: 'images/c/disk', size });
      expect(s.directBytes).toBe(0);
      expect(await sha256Of(s, 'images/c/disk')).toBe(sha256);
    }
  });

  it('a transient object (a conversion source, read again at once) keeps the page cache', async () => {
    const s = new FsStorage(rootIn(tmpdir()));
    const { body, sha256 } = pooledBody();
    await s.putStream('images/d/disk', body, { transient: true });
    expect(s.directBytes).toBe(0);
    expect(await sha256Of(s, 'images/d/disk')).toBe(sha256);
  });
});
