import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { AppError, ErrorCode, ErrorSet } from '../common/errors';
import { AppConfig, StorageConfig } from '../config/app-config';
import { BucketFileSource, S3Endpoint } from './bucket-file-source';
import { normalisePath } from './file-path';
import { DirListing, FileEntry, FileEntryType, FilePage, FileSource, ListQuery, pageEntries } from './file-source';
import { FileSourceError, FileSourceErrorCode } from './file-source.errors';
import { FileSourcesConfig, FileSourceSpec, loadFileSourcesConfig } from './file-sources.config';
import { LocalDirFileSource } from './local-dir-file-source';
import { SmbFileSource } from './smb-file-source';

/** How long a directory listing is reused (paging through one folder runs one listing, not one per page). */
const LISTING_TTL_MS = 3000;
const LISTING_CACHE_SIZE = 200;

/** What a create names: the source, the normalised path, and the file's size. */
export interface PickedFile {
  source: string;
  path: string;
  size: number;
}

/** The file-source code an HTTP answer carries, and its HTTP code. */
const HTTP_CODE: Record<FileSourceErrorCode, ErrorCode> = {
  FILE_PATH_INVALID: 'FILE_PATH_INVALID',
  FILE_NOT_A_FILE: 'FILE_PATH_INVALID',
  FILE_NOT_A_DIRECTORY: 'FILE_PATH_INVALID',
  FILE_SOURCE_NOT_CONFIGURED: 'FILE_SOURCE_NOT_FOUND',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
  FILE_ACCESS_DENIED: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SOURCE_AUTH_FAILED: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SOURCE_SHARE_NOT_FOUND: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SOURCE_UNREACHABLE: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SOURCE_TIMEOUT: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SOURCE_FAILED: 'FILE_SOURCE_UNAVAILABLE',
  FILE_BUSY: 'FILE_SOURCE_UNAVAILABLE',
  FILE_READ_INTERRUPTED: 'FILE_SOURCE_UNAVAILABLE',
  FILE_SHORT_READ: 'FILE_SOURCE_UNAVAILABLE',
  FILE_CHANGED: 'FILE_SOURCE_UNAVAILABLE',
};

/** Builds the adapter of one configured source. */
export function createFileSource(spec: FileSourceSpec, cfg: { timeoutMs: number; smbclient: string }, storage: StorageConfig): FileSource {
  switch (spec.kind) {
    case 'smb':
      return new SmbFileSource(spec, { smbclient: cfg.smbclient, timeoutMs: cfg.timeoutMs });
    case 'dir':
      return new LocalDirFileSource(spec);
    case 'bucket': {
      const own: S3Endpoint = { ...storage.minio };
      const endpoint = spec.store === 'service' ? own : spec.store;
      const sameStore =
        storage.driver === 'minio' &&
        (spec.store === 'service' || (endpoint.endPoint === own.endPoint && endpoint.port === own.port && endpoint.accessKey === own.accessKey));
      return new BucketFileSource({ name: spec.name, bucket: spec.bucket, prefix: spec.prefix, endpoint, sameStore });
    }
  }
}

/**
 * The configured file sources (FILE_SOURCES), by name, and what the API and the catalog's create ask of them:
 * a directory page (paths normalised, listings reused for a few seconds while a user pages), a picked file
 * checked for a create. Errors leave here as AppErrors with a stable code (see HTTP_CODE); imports use the
 * adapters directly (`get`) and see FileSourceErrors.
 */
@Injectable()
export class FileSourcesService implements OnModuleDestroy {
  private readonly log = new Logger('FileSources');
  private readonly sources = new Map<string, FileSource>();
  private readonly listings = new Map<string, { at: number; listing: Promise<DirListing> }>();

  /** FILE_SOURCE*: this module's own settings (checked at boot with the rest: src/feature-configs.ts) */
  private readonly settings: FileSourcesConfig;

  constructor(cfg: AppConfig) {
    this.settings = loadFileSourcesConfig(cfg.env);
    for (const spec of this.settings.sources) this.sources.set(spec.name, createFileSource(spec, this.settings, cfg.storage));
    if (this.sources.size)
      this.log.log(`File sources: ${[...this.sources.values()].map((s) => `${s.name} (${s.kind}${s.location ? ` ${s.location}` : ''})`).join(', ')}`);
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.sources.values()].map((s) => s.close()));
  }

  all(): FileSource[] {
    return [...this.sources.values()];
  }

  /**
   * The source named `name`, or the first configured one when `name` is null/undefined.
   * @throws FileSourceError FILE_SOURCE_NOT_CONFIGURED
   */
  get(name?: string | null): FileSource {
    const source = name == null ? this.sources.values().next().value : this.sources.get(name);
    if (!source) {
      throw new FileSourceError(
        'FILE_SOURCE_NOT_CONFIGURED',
        name == null ? 'No file source is configured (FILE_SOURCES)' : `No file source named ${name} is configured on this service`,
        { retryable: false, details: { source: name ?? null } },
      );
    }
    return source;
  }

  /** One page of a folder of a source, for the API. @throws AppError */
  async list(name: string, dir: string | undefined, q: ListQuery): Promise<FilePage & { source: string; path: string }> {
    return this.http(name, dir ?? '', async (source, path) => {
      const key = `${source.name}\u0000${path}`;
      let cached = this.listings.get(key);
      if (!cached || Date.now() - cached.at > LISTING_TTL_MS) {
        cached = { at: Date.now(), listing: source.readdir(path, this.settings.maxEntries) };
        this.listings.set(key, cached);
        cached.listing.catch(() => this.listings.delete(key));
        if (this.listings.size > LISTING_CACHE_SIZE) this.listings.delete(this.listings.keys().next().value!);
      }
      return { ...pageEntries(await cached.listing, q), source: source.name, path };
    });
  }

  /** One entry (file or folder), for the API. @throws AppError */
  stat(name: string, path: string): Promise<FileEntry> {
    return this.http(name, path, (source, p) => source.stat(p));
  }

  /**
   * What a create from a picked file records: the source (the default when `name` is null), the normalised
   * path, and the size of the file, which must exist and be a file.
   * @throws AppError FILE_SOURCE_NOT_FOUND, FILE_PATH_INVALID, FILE_NOT_FOUND, FILE_SOURCE_UNAVAILABLE
   */
  async pick(name: string | null, path: string): Promise<PickedFile> {
    return this.http(name, path, async (source, p) => {
      if (p === '') throw new FileSourceError('FILE_NOT_A_FILE', 'Pick a file, not the root folder', { details: { reason: 'NOT_A_FILE' } });
      const st = await source.stat(p);
      if (st.type !== FileEntryType.File) throw new FileSourceError('FILE_NOT_A_FILE', `${p} on file source ${source.name} is a folder, not a file`);
      return { source: source.name, path: p, size: st.size };
    });
  }

  private async http<T>(name: string | null, rawPath: string, fn: (source: FileSource, path: string) => Promise<T>): Promise<T> {
    let sourceName = name;
    try {
      const source = this.get(name);
      sourceName = source.name;
      return await fn(source, normalisePath(rawPath));
    } catch (e) {
      if (!(e instanceof FileSourceError)) throw e;
      throw toAppError(e, sourceName, rawPath);
    }
  }
}

/** A FileSourceError as the API answers it. */
export function toAppError(e: FileSourceError, source: string | null, path: string): AppError {
  const code = HTTP_CODE[e.code];
  const reason =
    code === 'FILE_PATH_INVALID'
      ? ((e.details?.reason as string | undefined) ??
        (e.code === 'FILE_NOT_A_FILE' ? 'NOT_A_FILE' : e.code === 'FILE_NOT_A_DIRECTORY' ? 'NOT_A_DIRECTORY' : e.code))
      : code === 'FILE_SOURCE_UNAVAILABLE'
        ? e.code
        : undefined;
  const status = e.details?.status as string | undefined;
  return new AppError(code, e.message, {
    source,
    ...(code === 'FILE_SOURCE_NOT_FOUND' ? {} : { path: path.slice(0, 1024) }),
    ...(reason ? { reason } : {}),
    ...(status ? { status } : {}),
  });
}

/** What `list`, `stat` and `pick` can raise: every code a FileSourceError becomes (HTTP_CODE). */
export const FILE_SOURCE_ERRORS: ErrorSet = [...new Set(Object.values(HTTP_CODE))];
