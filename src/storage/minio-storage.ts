import { Logger } from '@nestjs/common';
import * as Minio from 'minio';
import { PassThrough, Readable } from 'node:stream';
import {
  adoptBody,
  assertValidKey,
  assertValidPrefix,
  assertValidRange,
  ByteRange,
  CopySource,
  IncompleteUpload,
  ObjectNotFoundError,
  ObjectStat,
  ObjectStorage,
  PutOptions,
  PutResult,
  ResumePoint,
  StorageError,
} from './object-storage';

/** The object beside a resumable multipart upload of `key` that says what it is (PutOptions.resumeMeta). */
const resumeKeyOf = (key: string): string => `${key}.resume`;

export interface MinioStorageOptions {
  endPoint: string;
  port: number;
  useSSL: boolean;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  /** base multipart part size in bytes (>= 5 MiB; S3's minimum for every part but the last) */
  partSizeBytes: number;
}

const MIN_PART = 5 * 1024 * 1024;
const MAX_PART = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** with an unknown length the part size doubles every this many parts, so 10 000 parts reach ~39x the base */
const PARTS_PER_STEP = 2_500;

const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound', 'NoSuchObject']);
const s3Code = (e: unknown): string | undefined => (e as { code?: string })?.code;

/**
 * Passes at most `length` bytes of `src` on, then ends (and closes the source). Guards against servers
 * that answer a range with more than asked (s3rver reads `bytes=0-0` as the whole object).
 */
function truncate(src: Readable, length: number): Readable {
  let left = length;
  const out = new PassThrough();
  src.on('error', (e) => out.destroy(e));
  out.on('close', () => src.destroy());
  src.on('data', (chunk: Buffer) => {
    if (left <= 0) return;
    const piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= piece.length;
    if (!out.write(piece)) src.pause();
    if (left <= 0) {
      out.end();
      src.destroy();
    }
  });
  out.on('drain', () => src.resume());
  src.on('end', () => out.end());
  src.on('close', () => {
    if (!out.writableEnded) out.destroy(new Error('object stream closed early'));
  });
  return out;
}

/**
 * MinIO/S3 adapter on the `minio` client (path-style addressing, one bucket created at start).
 *
 * Uploads are multipart, driven here rather than by `client.putObject(stream)`: minio's own stream
 * upload buffers one 560 MiB part when the length is unknown, resumes stale uploads of the same key,
 * ignores errors of the source stream (it hangs), and never aborts what it started. Here one part is
 * being filled while at most one is in flight (memory ~ 2 x part size), parts are numbered from 1, and
 * any failure aborts the multipart upload so nothing is left behind. An object smaller than one part
 * is sent with a single PUT.
 */
export class MinioStorage extends ObjectStorage {
  readonly driver = 'minio';
  readonly client: Minio.Client;
  private readonly log = new Logger('MinioStorage');
  private initialised?: Promise<void>;

  constructor(readonly opts: MinioStorageOptions) {
    super();
    if (opts.partSizeBytes < MIN_PART || opts.partSizeBytes > MAX_PART) {
      throw new Error(`partSizeBytes must be between 5 MiB and 5 GiB, got ${opts.partSizeBytes}`);
    }
    this.client = new Minio.Client({
      endPoint: opts.endPoint,
      port: opts.port,
      useSSL: opts.useSSL,
      accessKey: opts.accessKey,
      secretKey: opts.secretKey,
      region: opts.region,
      pathStyle: true,
      partSize: opts.partSizeBytes,
    });
  }

  get bucket(): string {
    return this.opts.bucket;
  }

  init(): Promise<void> {
    this.initialised ??= this.ensureBucket().catch((e: unknown) => {
      this.initialised = undefined;
      throw e;
    });
    return this.initialised;
  }

  private async ensureBucket(): Promise<void> {
    if (await this.client.bucketExists(this.bucket)) return;
    try {
      await this.client.makeBucket(this.bucket, this.opts.region);
      this.log.log(`Created bucket ${this.bucket}`);
    } catch (e) {
      // another replica created it between our check and our create
      if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(s3Code(e) ?? '')) throw e;
    }
  }

  /** Part size for part `n` (1-based). */
  private partSizeFor(n: number, sizeHint?: number): number {
    const base = this.opts.partSizeBytes;
    if (sizeHint !== undefined && sizeHint > 0) {
      const needed = Math.ceil(sizeHint / (MAX_PARTS - 100)); // leave headroom if the hint is a bit low
      const size = Math.max(base, Math.ceil(needed / (1024 * 1024)) * 1024 * 1024);
      if (n <= MAX_PARTS - 100) return Math.min(size, MAX_PART);
    }
    return Math.min(base * 2 ** Math.floor((n - 1) / PARTS_PER_STEP), MAX_PART);
  }

  async putStream(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    adoptBody(body);
    assertValidKey(key);
    const onAbort = () => body.destroy(new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`));
    try {
      await this.init();
      if (opts.signal?.aborted) throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
    } catch (e) {
      body.destroy();
      throw e;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const headers: Record<string, string> = { 'Content-Type': opts.contentType ?? 'application/octet-stream' };
    let uploadId: string | undefined;
    const etags: { part: number; etag: string }[] = [];
    let inFlight: Promise<void> | undefined;
    let inFlightError: unknown;
    let partNumber = 0;
    let total = 0;
    let chunks: Buffer[] = [];
    let buffered = 0;
    // after the first part: parts are filled in place, in buffers reused once their upload is done, so a long
    // upload allocates two part buffers in all (no garbage per part: steady memory, no GC churn)
    const pool: Buffer[] = [];
    let current: Buffer | undefined;
    let filled = 0;

    const startPart = async (data: Buffer, recycle = false): Promise<void> => {
      if (inFlight) await inFlight; // at most one part on the wire while the next one fills
      if (inFlightError) throw inFlightError;
      if (opts.signal?.aborted) throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      if (!uploadId) {
        uploadId = await this.client.initiateNewMultipartUpload(this.bucket, key, headers);
        // after the upload exists: a crash between the two leaves an upload without meta (aborted, never resumed)
        if (opts.resumeMeta !== undefined) {
          // the size hint too: a take-over checks each part's size against the one it must have
          const meta = Buffer.from(JSON.stringify({ meta: opts.resumeMeta, uploadId, sizeHint: opts.sizeHint ?? null }));
          await this.client.putObject(this.bucket, resumeKeyOf(key), meta, meta.length, { 'Content-Type': 'application/json' });
        }
      }
      const id = uploadId;
      const n = ++partNumber;
      inFlight = this.client.uploadPart({ bucketName: this.bucket, objectName: key, uploadID: id, partNumber: n, headers: {} }, data).then(
        (r) => {
          etags.push({ part: n, etag: r.etag });
          if (recycle) pool.push(data);
        },
        (e: unknown) => {
          inFlightError = e;
        },
      );
    };

    try {
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        total += buf.length;
        if (inFlightError) throw inFlightError;
        if (partNumber === 0) {
          // until the first part is full the chunks are kept: an object smaller than a part is one PUT of its size
          chunks.push(buf);
          buffered += buf.length;
          const partSize = this.partSizeFor(1, opts.sizeHint);
          if (buffered < partSize) continue;
          const all = Buffer.concat(chunks, buffered);
          chunks = [];
          buffered = 0;
          await startPart(all.subarray(0, partSize));
          buf = all.subarray(partSize);
        }
        for (let off = 0; off < buf.length;) {
          if (!current) {
            const partSize = this.partSizeFor(partNumber + 1, opts.sizeHint);
            const spare = pool.pop();
            current = spare && spare.length === partSize ? spare : Buffer.allocUnsafeSlow(partSize);
            filled = 0;
          }
          const n = buf.copy(current, filled, off);
          filled += n;
          off += n;
          if (filled === current.length) {
            const part = current;
            current = undefined;
            await startPart(part, true);
          }
        }
      }
      if (opts.signal?.aborted) throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      if (partNumber === 0) {
        // smaller than one part: a single PUT
        const whole = Buffer.concat(chunks, buffered);
        chunks = [];
        await this.client.putObject(this.bucket, key, whole, whole.length, headers);
        return { key, size: total };
      }
      if (current && filled > 0) await startPart(current.subarray(0, filled));
      current = undefined;
      await inFlight;
      if (inFlightError) throw inFlightError;
      if (opts.signal?.aborted) throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      etags.sort((a, b) => a.part - b.part);
      await this.client.completeMultipartUpload(this.bucket, key, uploadId!, etags);
      if (opts.resumeMeta !== undefined) await this.removeQuietly(resumeKeyOf(key));
      return { key, size: total };
    } catch (e) {
      body.destroy();
      if (inFlight) await inFlight;
      if (opts.resumeMeta !== undefined) await this.removeQuietly(resumeKeyOf(key));
      if (uploadId) {
        await this.client.abortMultipartUpload(this.bucket, key, uploadId).catch((err: unknown) => {
          if (s3Code(err) !== 'NoSuchUpload') this.log.warn(`Could not abort upload ${uploadId} of ${key}: ${(err as Error).message}`);
        });
      }
      if (s3Code(e) === 'NoSuchUpload') throw new StorageError('UPLOAD_ABORTED', `Upload of ${key} aborted`);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    assertValidRange(range);
    await this.init();
    try {
      if (!range) return await this.client.getObject(this.bucket, key);
      const length = range.end === undefined ? 0 : range.end - range.start + 1;
      if (range.start === 0 && length === 0) return await this.client.getObject(this.bucket, key);
      const res = await this.client.getPartialObject(this.bucket, key, range.start, length);
      return length ? truncate(res, length) : res;
    } catch (e) {
      if (NOT_FOUND_CODES.has(s3Code(e) ?? '')) throw new ObjectNotFoundError(key);
      if (s3Code(e) === 'InvalidRange') {
        throw new StorageError('RANGE_NOT_SATISFIABLE', `Range start ${range?.start} is past the end of ${key}`);
      }
      throw e;
    }
  }

  async stat(key: string): Promise<ObjectStat> {
    assertValidKey(key);
    await this.init();
    try {
      const st = await this.client.statObject(this.bucket, key);
      return { key, size: st.size, lastModified: st.lastModified, etag: st.etag };
    } catch (e) {
      if (NOT_FOUND_CODES.has(s3Code(e) ?? '')) throw new ObjectNotFoundError(key);
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    await this.init();
    try {
      await this.client.removeObject(this.bucket, key);
    } catch (e) {
      if (!NOT_FOUND_CODES.has(s3Code(e) ?? '')) throw e;
    }
  }

  async presignGet(key: string, ttlSeconds: number): Promise<string> {
    assertValidKey(key);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 24 * 3600) {
      throw new RangeError('ttlSeconds must be an integer between 1 and 604800');
    }
    await this.init();
    return this.client.presignedGetObject(this.bucket, key, ttlSeconds);
  }

  async listIncomplete(keyPrefix: string): Promise<IncompleteUpload[]> {
    assertValidPrefix(keyPrefix);
    await this.init();
    const out: IncompleteUpload[] = [];
    let keyMarker = '';
    let uploadIdMarker = '';
    for (;;) {
      const res = await this.client.listIncompleteUploadsQuery(this.bucket, keyPrefix, keyMarker, uploadIdMarker, '');
      for (const u of res.uploads) {
        if (u.key.startsWith(keyPrefix)) out.push({ key: u.key, id: u.uploadId, initiated: new Date(u.initiated) });
      }
      if (!res.isTruncated || !res.nextKeyMarker) break;
      keyMarker = res.nextKeyMarker;
      uploadIdMarker = res.nextUploadIdMarker ?? '';
    }
    return out;
  }

  async abortIncomplete(keyPrefix: string, opts: { olderThan?: Date; keep?: string } = {}): Promise<number> {
    let n = 0;
    for (const u of await this.listIncomplete(keyPrefix)) {
      if (opts.olderThan && u.initiated >= opts.olderThan) continue;
      if (opts.keep !== undefined && u.id === opts.keep) continue;
      try {
        await this.client.abortMultipartUpload(this.bucket, u.key, u.id);
        n++;
      } catch (e) {
        if (s3Code(e) !== 'NoSuchUpload') throw e;
      }
      await this.removeQuietly(resumeKeyOf(u.key));
    }
    return n;
  }

  private async removeQuietly(key: string): Promise<void> {
    await this.client.removeObject(this.bucket, key).catch((e: unknown) => {
      if (!NOT_FOUND_CODES.has(s3Code(e) ?? '')) this.log.warn(`Could not remove ${key}: ${(e as Error).message}`);
    });
  }

  /**
   * The parts of an incomplete upload cannot be read back, so the dead upload (the one its `<key>.resume` names)
   * is completed with the parts it has, in order from part 1: `key` then holds those first bytes - a partial
   * object under the key, which the caller (an import, its image not READY) reads back once to rebuild its hash
   * and replaces with the resumed put (a new multipart upload of every byte; the source is only read from
   * `offset` on).
   */
  override async takeOverIncomplete(key: string): Promise<ResumePoint | null> {
    assertValidKey(key);
    await this.init();
    let side: { meta?: unknown; uploadId?: unknown; sizeHint?: unknown };
    try {
      const body = await this.client.getObject(this.bucket, resumeKeyOf(key));
      const chunks: Buffer[] = [];
      for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
      side = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof side;
    } catch (e) {
      if (NOT_FOUND_CODES.has(s3Code(e) ?? '') || e instanceof SyntaxError) return null;
      throw e;
    }
    if (typeof side.meta !== 'string' || typeof side.uploadId !== 'string') return null;
    const uploadId = side.uploadId;
    if (!(await this.listIncomplete(key)).some((u) => u.key === key && u.id === uploadId)) return null;
    const listParts = (this.client as unknown as { listParts: (b: string, k: string, u: string) => Promise<{ part: number; etag: string; size: number }[]> })
      .listParts;
    const parts = (await listParts.call(this.client, this.bucket, key, uploadId)).sort((a, b) => a.part - b.part);
    const kept: { part: number; etag: string }[] = [];
    let offset = 0;
    const sizeHint = typeof side.sizeHint === 'number' ? side.sizeHint : undefined;
    for (const p of parts) {
      if (p.part !== kept.length + 1) break; // a gap: only the parts before it are the object's first bytes
      // a part of another size than this upload gives that part (a store listing a part cut by the crash): not kept
      if (p.size !== this.partSizeFor(p.part, sizeHint)) break;
      kept.push({ part: p.part, etag: p.etag.replace(/^"|"$/g, '') });
      offset += p.size;
    }
    if (kept.length === 0) return null;
    await this.client.completeMultipartUpload(this.bucket, key, uploadId, kept);
    const st = await this.client.statObject(this.bucket, key);
    if (st.size !== offset) return null;
    return { key, offset, meta: side.meta };
  }

  override readTakenOver(point: ResumePoint): Promise<Readable> {
    return this.getStream(point.key, { start: 0, end: point.offset - 1 });
  }

  override async copyFromBucket(source: CopySource, key: string, opts: { signal?: AbortSignal } = {}): Promise<PutResult> {
    assertValidKey(key);
    await this.init();
    opts.signal?.throwIfAborted();
    const src = new Minio.CopySourceOptions({ Bucket: source.bucket, Object: source.key, ...(source.etag ? { MatchETag: source.etag } : {}) });
    const dest = new Minio.CopyDestinationOptions({ Bucket: this.bucket, Object: key });
    try {
      // one CopyObject up to 5 GiB, a multipart UploadPartCopy beyond (which minio-js does not abort on failure)
      await this.client.composeObject(dest, [src]);
    } catch (e) {
      await this.abortIncomplete(key).catch(() => undefined);
      throw e;
    }
    const st = await this.client.statObject(this.bucket, key);
    if (source.size !== undefined && st.size !== source.size) {
      await this.delete(key);
      throw new StorageError('UPLOAD_ABORTED', `Copy of ${source.bucket}/${source.key} stored ${st.size} bytes, not ${source.size}`);
    }
    return { key, size: st.size };
  }

  async ping(): Promise<void> {
    await this.init();
    if (!(await this.client.bucketExists(this.bucket))) throw new Error(`bucket ${this.bucket} does not exist`);
  }
}
