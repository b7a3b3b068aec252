import * as Minio from 'minio';
import type { Readable } from 'node:stream';
import { ObjectStorage, PutResult } from '../storage/object-storage';
import { FileSourceError } from './file-source.errors';
import { DirListing, FileEntry, FileEntryType, FileSource, FileSourceKind, OpenOptions, RawRead } from './file-source';
import { baseName, isAcceptableName, joinPath } from './file-path';

export interface S3Endpoint {
  endPoint: string;
  port: number;
  useSSL: boolean;
  accessKey: string;
  secretKey: string;
  region: string;
}

export interface BucketSourceSpec {
  name: string;
  bucket: string;
  /** key prefix that is the source's root ('' = the whole bucket), normalised, without a trailing '/' */
  prefix: string;
  endpoint: S3Endpoint;
  /** the bucket lives in the store that holds the images: files are copied server-side */
  sameStore: boolean;
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchObject']);
const s3Code = (e: unknown): string | undefined => (e as { code?: string })?.code;
const PAGE = 1000;

/**
 * A bucket (and key prefix) of an S3/MinIO store: objects are files, `/` in keys makes folders.
 *
 * When the bucket is in the store that holds the images (FILE_SOURCES `s3:///bucket/prefix`, or the same
 * endpoint and access key as MINIO_*), `copyInto` copies the object server-side (S3 CopyObject; UploadPartCopy
 * beyond 5 GiB), conditional on the ETag it was listed with, and the service only reads the copy back once to
 * hash and check it. Otherwise the object is streamed like any other source.
 */
export class BucketFileSource extends FileSource {
  readonly kind = FileSourceKind.Bucket;

  override get readsFromOffset(): boolean {
    return true;
  }
  readonly name: string;
  readonly location: string;
  private readonly client: Minio.Client;

  constructor(private readonly spec: BucketSourceSpec) {
    super();
    this.name = spec.name;
    this.location = `s3://${spec.bucket}/${spec.prefix ? `${spec.prefix}/` : ''}`;
    const e = spec.endpoint;
    this.client = new Minio.Client({
      endPoint: e.endPoint,
      port: e.port,
      useSSL: e.useSSL,
      accessKey: e.accessKey,
      secretKey: e.secretKey,
      region: e.region,
      pathStyle: true,
    });
  }

  private key(path: string): string {
    return path === '' ? this.spec.prefix : joinPath(this.spec.prefix, path);
  }

  private what(path: string): string {
    return `${path === '' ? 'the root folder' : path} on file source ${this.name} (${this.location})`;
  }

  private s3Error(e: unknown, path: string): FileSourceError {
    const code = s3Code(e);
    if (code && NOT_FOUND.has(code)) return new FileSourceError('FILE_NOT_FOUND', `${this.what(path)}: no such file or folder`);
    if (code === 'NoSuchBucket') return new FileSourceError('FILE_SOURCE_SHARE_NOT_FOUND', `${this.what(path)}: the bucket ${this.spec.bucket} does not exist`);
    if (code === 'AccessDenied') return new FileSourceError('FILE_ACCESS_DENIED', `${this.what(path)}: the configured access key may not read it`);
    if (code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch')
      return new FileSourceError('FILE_SOURCE_AUTH_FAILED', `File source ${this.name}: the store refused the configured access key`);
    if (code === 'PreconditionFailed') return new FileSourceError('FILE_CHANGED', `${this.what(path)} changed while it was being copied`);
    const errnoCode = (e as NodeJS.ErrnoException)?.code;
    if (errnoCode && ['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'].includes(errnoCode)) {
      return new FileSourceError('FILE_SOURCE_UNREACHABLE', `File source ${this.name}: the store cannot be reached (${errnoCode})`);
    }
    if (errnoCode && ['ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(errnoCode))
      return new FileSourceError('FILE_READ_INTERRUPTED', `${this.what(path)}: the connection was lost (${errnoCode})`);
    return new FileSourceError('FILE_SOURCE_FAILED', `${this.what(path)}: ${(e as Error)?.message ?? String(e)}`);
  }

  async readdir(dir: string, maxEntries: number): Promise<DirListing> {
    const prefix = this.key(dir) === '' ? '' : `${this.key(dir)}/`;
    const entries: FileEntry[] = [];
    let token = '';
    let truncated = false;
    try {
      for (;;) {
        const res = await this.client.listObjectsV2Query(this.spec.bucket, prefix, token, '/', PAGE, '');
        for (const o of res.objects) {
          const isDir = o.prefix !== undefined;
          const name = (isDir ? o.prefix : o.name).slice(prefix.length).replace(/\/$/, '');
          if (!isAcceptableName(name)) continue; // the folder marker itself, odd keys
          if (entries.length >= maxEntries) {
            truncated = true;
            break;
          }
          entries.push({
            name,
            path: joinPath(dir, name),
            type: isDir ? FileEntryType.Dir : FileEntryType.File,
            size: isDir ? 0 : o.size,
            modifiedAt: isDir ? new Date(0) : new Date(o.lastModified),
          });
        }
        if (truncated || !res.isTruncated || !res.nextContinuationToken) break;
        token = res.nextContinuationToken;
      }
    } catch (e) {
      throw this.s3Error(e, dir);
    }
    if (entries.length === 0 && dir !== '') {
      // S3 has no folders: an empty listing of a path that is an object means "a file"; of nothing, "not found"
      const st = await this.stat(dir);
      if (st.type === FileEntryType.File) throw new FileSourceError('FILE_NOT_A_DIRECTORY', `${this.what(dir)} is a file, not a folder`);
    }
    return { entries, truncated };
  }

  async stat(path: string): Promise<FileEntry & { etag?: string }> {
    if (path === '') return { name: '', path: '', type: FileEntryType.Dir, size: 0, modifiedAt: new Date(0) };
    try {
      const st = await this.client.statObject(this.spec.bucket, this.key(path));
      return { name: baseName(path), path, type: FileEntryType.File, size: st.size, modifiedAt: st.lastModified, etag: st.etag };
    } catch (e) {
      if (!NOT_FOUND.has(s3Code(e) ?? '')) throw this.s3Error(e, path);
    }
    // not an object: a folder when something lies under it
    try {
      const res = await this.client.listObjectsV2Query(this.spec.bucket, `${this.key(path)}/`, '', '/', 1, '');
      if (res.objects.length > 0) return { name: baseName(path), path, type: FileEntryType.Dir, size: 0, modifiedAt: new Date(0) };
    } catch (e) {
      throw this.s3Error(e, path);
    }
    throw new FileSourceError('FILE_NOT_FOUND', `${this.what(path)}: no such file or folder`);
  }

  protected async openRaw(path: string, opts: OpenOptions): Promise<RawRead> {
    const before = await this.stat(path);
    if (before.type !== FileEntryType.File) throw new FileSourceError('FILE_NOT_A_FILE', `${this.what(path)} is a folder, not a file`);
    opts.signal?.throwIfAborted();
    let stream: Readable;
    try {
      const offset = opts.offset ?? 0;
      stream =
        offset > 0
          ? await this.client.getPartialObject(this.spec.bucket, this.key(path), offset)
          : await this.client.getObject(this.spec.bucket, this.key(path));
    } catch (e) {
      throw this.s3Error(e, path);
    }
    const onAbort = () => stream.destroy(new FileSourceError('FILE_READ_INTERRUPTED', `${this.what(path)}: the read was cancelled`));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => opts.signal?.removeEventListener('abort', onAbort);
    return {
      stream,
      size: before.size,
      modifiedAt: before.modifiedAt,
      version: before.etag,
      cancel: () => {
        cleanup();
        stream.destroy();
      },
      finish: async (bytes) => {
        cleanup();
        if (bytes !== before.size) return;
        const after = await this.stat(path).catch((e: unknown) => {
          if (e instanceof FileSourceError && e.code === 'FILE_NOT_FOUND')
            throw new FileSourceError('FILE_NOT_FOUND', `${this.what(path)} was deleted while it was being read`, { retryable: false });
          throw e;
        });
        if (after.etag !== before.etag || after.size !== before.size)
          throw new FileSourceError('FILE_CHANGED', `${this.what(path)} changed while it was being read`);
      },
    };
  }

  override canCopyInto(storage: ObjectStorage): boolean {
    return this.spec.sameStore && storage.driver === 'minio';
  }

  override async copyInto(storage: ObjectStorage, path: string, key: string, opts: OpenOptions): Promise<(PutResult & { sourceSize: number }) | null> {
    if (!this.canCopyInto(storage)) return null;
    const st = await this.stat(path);
    if (st.type !== FileEntryType.File) throw new FileSourceError('FILE_NOT_A_FILE', `${this.what(path)} is a folder, not a file`);
    opts.signal?.throwIfAborted();
    try {
      const copied = await storage.copyFromBucket({ bucket: this.spec.bucket, key: this.key(path), etag: st.etag, size: st.size }, key, {
        signal: opts.signal,
      });
      if (!copied) return null;
      return { ...copied, sourceSize: st.size };
    } catch (e) {
      if (e instanceof FileSourceError) throw e;
      throw this.s3Error(e, path);
    }
  }
}
