import { pipeline, Readable, Transform, TransformCallback } from 'node:stream';
import type { ObjectStorage, PutResult } from '../storage/object-storage';
import { FileSourceError } from './file-source.errors';

/** What kind of store a file source reads. */
export enum FileSourceKind {
  Smb = 'SMB',
  Dir = 'DIR',
  Bucket = 'BUCKET',
}

export enum FileEntryType {
  File = 'FILE',
  Dir = 'DIR',
}

export interface FileEntry {
  /** the last segment of `path` */
  name: string;
  /** relative to the source's root, `/`-separated; what a create names as `source.path` */
  path: string;
  type: FileEntryType;
  /** bytes (0 for directories) */
  size: number;
  modifiedAt: Date;
}

export type FileSort = 'name' | 'size' | 'modifiedAt';

export interface ListQuery {
  page: number;
  pageSize: number;
  sort: FileSort;
  order: 'asc' | 'desc';
  /** case-insensitive substring of the name */
  name?: string;
}

export interface DirListing {
  entries: FileEntry[];
  /** the directory holds more entries than a listing reads (FILE_SOURCE_MAX_ENTRIES); `entries` are the first ones */
  truncated: boolean;
}

export interface FilePage {
  items: FileEntry[];
  total: number;
  page: number;
  pageSize: number;
  truncated: boolean;
}

/** A file being read: the bytes, and the size they must add up to. */
export interface OpenedFile {
  /** the bytes from `OpenOptions.offset` (0 by default) to the end */
  stream: Readable;
  size: number;
  modifiedAt: Date;
  /** what changes when the file does (a bucket's ETag; a directory's size and mtime), when the source can tell */
  version?: string;
}

/** What an adapter hands `open`: its raw stream and how to tell, at the end, whether the read was whole. */
export interface RawRead {
  /** from `OpenOptions.offset` on */
  stream: Readable;
  size: number;
  modifiedAt: Date;
  version?: string;
  /**
   * Called once the raw stream has ended, with the bytes it delivered: rejects with the reader's own failure
   * (an smbclient error, a dropped connection) or when the file changed or went away while it was read.
   */
  finish(bytes: number): Promise<void>;
  /** Called when the read stops early (consumer gone, error, abort): release what the read holds. */
  cancel(): void;
}

export interface OpenOptions {
  signal?: AbortSignal;
  /** read from this byte on (only where `readsFromOffset`): an import resumed after a crash */
  offset?: number;
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/**
 * The file-source port: the platform's file directory (R14) as an SMB share, a directory mounted on the host,
 * or a bucket/prefix of an S3 store. Adapters: SmbFileSource, LocalDirFileSource, BucketFileSource.
 *
 * Every path an adapter receives went through `normalisePath` (FileSourcesService does that), so adapters
 * only add what their store needs (symlink confinement for a directory). Reads are streams whose length is
 * verified here, whatever the adapter: fewer bytes than the size the file had when opened fail with
 * FILE_SHORT_READ, more with FILE_CHANGED, and the adapter's `finish` checks that the file is still the one
 * that was opened (FILE_CHANGED, FILE_NOT_FOUND). A consumer therefore never sees a clean end of a partial file.
 */
export abstract class FileSource {
  abstract readonly name: string;
  abstract readonly kind: FileSourceKind;

  /** Where users put files, for people (the UNC path of a share, `s3://bucket/prefix`); null when not shown. */
  abstract readonly location: string | null;

  /** Every entry of a directory (`''` is the root), up to `maxEntries`. */
  abstract readdir(dir: string, maxEntries: number): Promise<DirListing>;

  /** @throws FileSourceError FILE_NOT_FOUND, ... */
  abstract stat(path: string): Promise<FileEntry>;

  protected abstract openRaw(path: string, opts: OpenOptions): Promise<RawRead>;

  /**
   * A server-side copy of `path` into the object store at `key`, when this source lives in the same store
   * (no byte passes through the service); null when it cannot (the caller then streams `open`).
   */
  copyInto(_storage: ObjectStorage, _path: string, _key: string, _opts: OpenOptions): Promise<(PutResult & { sourceSize: number }) | null> {
    return Promise.resolve(null);
  }

  /** Whether `open` can start at `OpenOptions.offset` (a mounted directory, a bucket; not smbclient's stdout). */
  get readsFromOffset(): boolean {
    return false;
  }

  /** Whether `copyInto` can work for this source and store, without trying. */
  canCopyInto(_storage: ObjectStorage): boolean {
    return false;
  }

  /** Releases what the adapter holds (child processes, clients). */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The file at `path` as a stream whose length is verified (see the class comment). */
  async open(path: string, opts: OpenOptions = {}): Promise<OpenedFile> {
    const offset = opts.offset ?? 0;
    if (offset > 0 && !this.readsFromOffset) throw new Error(`File source ${this.name} cannot read from an offset`);
    const raw = await this.openRaw(path, opts);
    const what = `${path} on file source ${this.name}`;
    const check = new VerifiedLength(raw, what, offset);
    pipeline(raw.stream, check, (e) => {
      if (e) raw.cancel();
    });
    return { stream: check, size: raw.size, modifiedAt: raw.modifiedAt, version: raw.version };
  }

  /** One page of a directory: filtered by name, sorted (directories first), paged. */
  async list(dir: string, q: ListQuery, maxEntries: number): Promise<FilePage> {
    return pageEntries(await this.readdir(dir, maxEntries), q);
  }
}

/** Filters, sorts (directories first, then the sort key, then the name) and pages a directory's entries. */
export function pageEntries(listing: DirListing, q: ListQuery): FilePage {
  const needle = q.name?.toLowerCase();
  const matching = needle ? listing.entries.filter((e) => e.name.toLowerCase().includes(needle)) : [...listing.entries];
  const dir = q.order === 'desc' ? -1 : 1;
  const key = (e: FileEntry): number => (q.sort === 'size' ? e.size : e.modifiedAt.getTime());
  matching.sort((a, b) => {
    if (a.type !== b.type) return a.type === FileEntryType.Dir ? -1 : 1;
    const byKey = q.sort === 'name' ? collator.compare(a.name, b.name) : key(a) - key(b);
    if (byKey !== 0) return dir * byKey;
    return collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  });
  const start = (q.page - 1) * q.pageSize;
  return { items: matching.slice(start, start + q.pageSize), total: matching.length, page: q.page, pageSize: q.pageSize, truncated: listing.truncated };
}

/**
 * Passes the bytes on and counts them: more than `size` fail at once (FILE_CHANGED), and at the end the
 * adapter's `finish` runs first (its own failure is the real cause of a short stream), then fewer than `size`
 * fail with FILE_SHORT_READ. The stream ends only when all of that passed.
 */
class VerifiedLength extends Transform {
  private bytes: number;

  constructor(
    private readonly raw: RawRead,
    private readonly what: string,
    /** where the raw stream starts: its bytes count from there */
    offset = 0,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.bytes = offset;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.raw.size) {
      cb(new FileSourceError('FILE_CHANGED', `${this.what} grew while it was read (more than the ${this.raw.size} bytes it had when opened)`));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.raw.finish(this.bytes).then(
      () => {
        if (this.bytes < this.raw.size) {
          cb(
            new FileSourceError('FILE_SHORT_READ', `Reading ${this.what} stopped after ${this.bytes} of ${this.raw.size} bytes`, {
              details: { bytesRead: this.bytes, size: this.raw.size },
            }),
          );
          return;
        }
        cb();
      },
      (e: unknown) => cb(e as Error),
    );
  }
}
