import type { Readable } from 'node:stream';

/**
 * The object-storage port. Two adapters: MinIO/S3 (`minio-storage.ts`) and the local filesystem
 * (`fs-storage.ts`, the embedded default). Nest injects it by this abstract class, no token needed.
 *
 * Key layout (one bucket, or one directory tree for fs):
 *
 *   images/<imageId>/disk      the stored file of an image or an ISO (one object per catalog record;
 *                               a retried import overwrites it atomically)
 *
 * Use `objectKeys` below rather than building keys by hand. Keys are `/`-separated segments of
 * [A-Za-z0-9._-], no segment may be empty or start with a dot (the fs adapter keeps its temp files as
 * dot-files), at most 512 characters.
 *
 * Guarantees both adapters give (the shared suite in test/integration/storage.int-spec.ts checks them):
 * - putStream streams: memory stays bounded (about two parts for S3) whatever the size;
 * - a partial object never appears under its key: an upload becomes visible only when complete, and an
 *   upload that fails or is aborted leaves nothing under the key (the previous object, if any, stays);
 * - delete is idempotent; stat/getStream of a missing key throw ObjectNotFoundError.
 */
export const objectKeys = {
  imageDisk: (imageId: string): string => `images/${imageId}/disk`,
  /** prefix of everything stored for one image (for abortIncomplete on cleanup) */
  imagePrefix: (imageId: string): string => `images/${imageId}/`,
};

export interface PutOptions {
  /** stored as Content-Type on S3 (what a presigned download answers with); ignored by fs */
  contentType?: string;
  /** expected size when known: lets the S3 adapter pick a part size that fits in 10 000 parts */
  sizeHint?: number;
  /** aborts the upload: the put rejects and nothing is left behind */
  signal?: AbortSignal;
  /**
   * The object is replaced before anything uses it (an import's source about to be converted, which a crash
   * fetches again anyway): the filesystem store skips its write-backs and fsync, so the page cache may drop the
   * bytes unwritten once the object is replaced. Ignored by S3.
   */
  transient?: boolean;
  /**
   * Makes the upload resumable after a crash of the process: kept with the incomplete upload (fs: a sidecar file
   * beside the temp file; S3: a small `<key>.resume` object), so `takeOverIncomplete` can find it and say what it
   * was (the caller's own text, e.g. the source's validator). Removed with the upload, or once it is complete.
   */
  resumeMeta?: string;
  /**
   * Continues the dead upload `takeOverIncomplete` answered: the body still carries every byte from 0, and the
   * store writes only those it lacks (fs: the first `offset` bytes are skipped and the rest appended to the same
   * temp file; S3: everything is uploaded again, the prefix read back from the store rather than the source).
   */
  resume?: ResumePoint;
}

/**
 * What a process that died (kill -9) while uploading left in the store, taken over by the next run
 * (`ObjectStorage.takeOverIncomplete`): `offset` bytes of the object, readable with `readTakenOver`.
 */
export interface ResumePoint {
  key: string;
  /** the bytes kept: the first `offset` bytes of the object */
  offset: number;
  /** the `resumeMeta` the dead upload was started with */
  meta: string;
  /** the incomplete upload kept (fs: its temp file name), for abortIncomplete's `keep`; undefined when none is kept */
  keepId?: string;
}

export interface PutResult {
  key: string;
  size: number;
}

export interface ObjectStat {
  key: string;
  size: number;
  lastModified: Date;
  /** an opaque version tag; do not compare across adapters (multipart ETags differ by server) */
  etag?: string;
}

/** A byte range, inclusive at both ends as in HTTP (`end` omitted: to the end of the object). */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface IncompleteUpload {
  key: string;
  /** the multipart upload id (S3) or the temp file name (fs) */
  id: string;
  initiated: Date;
}

export type StorageErrorCode = 'OBJECT_NOT_FOUND' | 'RANGE_NOT_SATISFIABLE' | 'INVALID_KEY' | 'UPLOAD_ABORTED';

export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StorageError';
  }
}

export class ObjectNotFoundError extends StorageError {
  constructor(readonly key: string) {
    super('OBJECT_NOT_FOUND', `Object ${key} does not exist`);
  }
}

export abstract class ObjectStorage {
  /** 'fs' or 'minio', for logs and health output */
  abstract readonly driver: string;

  /**
   * Prepares the store (creates the bucket or root directory). Idempotent; the module calls it at start,
   * and adapters call it again lazily when it failed (the store may come up after the service).
   */
  abstract init(): Promise<void>;

  /**
   * Streams `body` into `key`. Resolves with the bytes stored once the object is complete and visible.
   * On any error (the body's, the store's, or an abort) it rejects and removes what it had written.
   */
  abstract putStream(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;

  /** A stream of the object, or of a range of it. Throws ObjectNotFoundError, or RANGE_NOT_SATISFIABLE
   *  when `range.start` is at or past the end. */
  abstract getStream(key: string, range?: ByteRange): Promise<Readable>;

  /** Throws ObjectNotFoundError when missing. */
  abstract stat(key: string): Promise<ObjectStat>;

  async exists(key: string): Promise<boolean> {
    try {
      await this.stat(key);
      return true;
    } catch (e) {
      if (e instanceof ObjectNotFoundError) return false;
      throw e;
    }
  }

  /** Removes the object; no error when it does not exist. */
  abstract delete(key: string): Promise<void>;

  /**
   * A time-limited URL anyone holding it can GET the object with, or null when the store has none
   * (fs: the service must serve the bytes itself, e.g. through a signed service URL).
   */
  abstract presignGet(key: string, ttlSeconds: number): Promise<string | null>;

  /** Uploads started under `keyPrefix` and not completed (S3 multipart uploads, fs temp files). */
  abstract listIncomplete(keyPrefix: string): Promise<IncompleteUpload[]>;

  /**
   * Aborts incomplete uploads under `keyPrefix` (optionally only those started before `olderThan`) and
   * returns how many. An upload still running under that prefix fails with UPLOAD_ABORTED or a store error.
   */
  abstract abortIncomplete(keyPrefix: string, opts?: { olderThan?: Date; keep?: string }): Promise<number>;

  /**
   * After a crash: finds the incomplete upload of `key` a dead process started with `resumeMeta`, and keeps its
   * bytes for a resumed put (`PutOptions.resume`). Null when there is none worth resuming (no such upload, no
   * bytes, or - fs - the machine restarted since, so the page cache that held its tail may be lost). The caller
   * then aborts the rest with `abortIncomplete(prefix, { keep: point.keepId })`. The default: nothing to resume.
   */
  takeOverIncomplete(_key: string): Promise<ResumePoint | null> {
    return Promise.resolve(null);
  }

  /** The bytes `takeOverIncomplete` kept (the first `point.offset` bytes), to rebuild the hash from. */
  readTakenOver(_point: ResumePoint): Promise<Readable> {
    return Promise.reject(new StorageError('OBJECT_NOT_FOUND', 'This store keeps nothing to resume'));
  }

  /** Readiness: resolves when the store answers (bucket exists / root writable). */
  abstract ping(): Promise<void>;

  /** The object as a local file a child process can open (the filesystem store), or null. */
  localPath(_key: string): string | null {
    return null;
  }

  /**
   * Makes the local file `path` the object `key` by moving it (the filesystem store: fsync, then rename into
   * place, so a reader sees the old object or the new one), its bytes not copied. Resolves null when the store
   * cannot (S3, or `path` on another filesystem): the caller streams instead, and `path` is left as it was.
   */
  adoptFile(_key: string, _path: string): Promise<PutResult | null> {
    return Promise.resolve(null);
  }

  /**
   * Copies an object of another bucket of this same store into `key` without the bytes passing through the
   * service (S3 CopyObject, UploadPartCopy beyond 5 GiB), only while the source still has `etag` when given.
   * Resolves null when the store cannot (the filesystem store): the caller streams instead. Like putStream,
   * a failed copy leaves nothing under `key`.
   */
  copyFromBucket(_source: CopySource, _key: string, _opts: { signal?: AbortSignal } = {}): Promise<PutResult | null> {
    return Promise.resolve(null);
  }
}

/** An object of another bucket of the same store (`copyFromBucket`). */
export interface CopySource {
  bucket: string;
  key: string;
  /** copy only while the source still has this ETag (else PreconditionFailed) */
  etag?: string;
  /** its size, when known (picks CopyObject or a multipart copy) */
  size?: number;
}

const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

/** Throws INVALID_KEY unless `key` follows the key rules above. */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512 || !KEY_RE.test(key)) {
    throw new StorageError('INVALID_KEY', `Invalid object key ${JSON.stringify(key)}`);
  }
}

/** Throws INVALID_KEY unless `prefix` is a valid key prefix (a key, a key ending in '/', or empty). */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  // a partial last segment ("images/ab") is fine: it is only compared as a string prefix
  assertValidKey(p);
}

/**
 * Called synchronously at the start of putStream: the body may fail before the adapter's async setup
 * reaches the point where it consumes it. Without a listener that error would be an uncaught 'error'
 * event; with it, the error stays recorded on the stream (`errored`) and the consumer sees it later.
 */
export function adoptBody(body: Readable): void {
  body.on('error', () => undefined);
}

export function assertValidRange(range: ByteRange | undefined): void {
  if (!range) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new StorageError('RANGE_NOT_SATISFIABLE', `Invalid range ${JSON.stringify(range)}`);
  }
}
