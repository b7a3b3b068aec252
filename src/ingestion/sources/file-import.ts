import { Injectable, Logger } from '@nestjs/common';
import { CatalogService } from '../../catalog/catalog.service';
import { ImageRecord } from '../../catalog/image.record';
import { ImagePhase } from '../../catalog/image.enums';
import { FileSourcesService } from '../../file-sources/file-sources.service';
import { AppConfig } from '../../config/app-config';
import { objectKeys, ObjectStorage, ResumePoint } from '../../storage/object-storage';
import { ImageBytesQuota } from '../image-bytes-quota';
import { IngestPipeline, StoredFile } from '../ingest-pipeline';

/**
 * The bytes of a FILE image (R14): the file picked from a file source, through the same pipeline as a URL
 * download (hash, format check, progress, quota, crash safety; the job's retries and failure handling are
 * ImportProcessor's).
 *
 * - streamed: the source's verified stream (SMB through smbclient, a mounted directory, a bucket of another
 *   store) goes into `IngestPipeline.store`; a short read fails loudly (FILE_SHORT_READ), never as a clean end.
 * - copied: a bucket of the store that holds the images is copied server-side into the image's object (no
 *   byte passes through the service on the way in); the copy is then read back once through the same checks
 *   (`alreadyStored`), so the checksum and the format check are of exactly what is stored.
 *
 * After a crash (kill -9) a streamed import of a source that reads from an offset (a mounted directory, a bucket)
 * resumes from the bytes the store kept (`point`, ObjectStorage.takeOverIncomplete) while the file is still the
 * same version (size and mtime; ETag); otherwise, and from SMB (smbclient cannot read from an offset to stdout),
 * a new attempt starts from byte 0.
 */

/** What a streamed file import records with its incomplete upload, to be resumed after a crash. */
interface FileResumeMeta {
  source: string;
  path: string;
  version: string;
  size: number;
}
@Injectable()
export class FileImporter {
  private readonly log = new Logger('Ingestion');

  constructor(
    private readonly sources: FileSourcesService,
    private readonly storage: ObjectStorage,
    private readonly catalog: CatalogService,
    private readonly pipeline: IngestPipeline,
    private readonly cfg: AppConfig,
  ) {}

  async import(image: ImageRecord, signal: AbortSignal, quota: ImageBytesQuota, point: ResumePoint | null = null): Promise<StoredFile> {
    const id = image.id;
    const source = this.sources.get(image.sourceName);
    const path = image.sourcePath ?? '';
    const importing = async (size: number, reason: string | null = null) => {
      // the size is checked against the quota before the first byte is stored
      await quota.ensure(size);
      await this.catalog.transition(id, ImagePhase.Importing, { bytesDone: 0, bytesTotal: size, bytesPerSecond: 0, statusReason: reason }, [
        ImagePhase.Queued,
        ImagePhase.Importing,
      ]);
    };

    // what a dead run kept and this one does not continue goes before anything new is stored
    const drop = async () => {
      if (point) await this.storage.abortIncomplete(objectKeys.imagePrefix(id));
      point = null;
    };

    if (source.canCopyInto(this.storage)) {
      await drop();
      const st = await source.stat(path);
      await importing(st.size);
      const started = Date.now();
      const copied = await source.copyInto(this.storage, path, objectKeys.imageDisk(id), { signal });
      if (copied) {
        this.log.log(`Copied ${path} of file source ${source.name} into ${id} server-side (${copied.size} bytes, ${Date.now() - started} ms); verifying`);
        const body = await this.storage.getStream(objectKeys.imageDisk(id));
        return this.pipeline.store(image, body, { quota, signal, sizeHint: copied.size, alreadyStored: true });
      }
    }

    const kept = this.resumable(image, source.name, source.readsFromOffset, point);
    if (point && !kept)
      this.log.warn(
        `Import of ${id} restarts from byte 0 instead of ${point.offset}: what was stored cannot be continued from ${path} on file source ${source.name}`,
      );
    let resume: ResumePoint | undefined;
    let file = kept ? await source.open(path, { signal, offset: kept.offset }).catch(() => undefined) : undefined;
    if (kept && file && file.version === kept.meta.version && file.size === kept.meta.size) resume = point!;
    else if (kept) {
      file?.stream.destroy();
      file = undefined;
      this.log.warn(`Import of ${id} restarts from byte 0 instead of ${kept.offset}: ${path} on file source ${source.name} changed since the previous run`);
    }
    file ??= await source.open(path, { signal });
    if (!resume) await drop();
    try {
      await importing(
        file.size,
        resume ? `Resumed at ${resume.offset} bytes of ${file.size} after the service stopped; the stored bytes are read back to rebuild the checksum` : null,
      );
    } catch (e) {
      file.stream.destroy();
      throw e;
    }
    if (resume) this.log.log(`Import of ${id} resumes at byte ${resume.offset} of ${path} (kept from the previous run)`);
    const meta: FileResumeMeta | undefined =
      source.readsFromOffset && file.version !== undefined && this.cfg.ingestion.resumeAfterCrash
        ? { source: source.name, path, version: file.version, size: file.size }
        : undefined;
    return this.pipeline.store(image, file.stream, { quota, signal, sizeHint: file.size, resume, resumeMeta: meta && JSON.stringify(meta) });
  }

  /** The kept bytes of a dead run, when they are of this very file and this source can read on from them. */
  private resumable(
    image: ImageRecord,
    sourceName: string,
    readsFromOffset: boolean,
    point: ResumePoint | null,
  ): { offset: number; meta: FileResumeMeta } | undefined {
    if (!point || !readsFromOffset) return undefined;
    try {
      const meta = JSON.parse(point.meta) as FileResumeMeta;
      if (meta.source !== sourceName || meta.path !== (image.sourcePath ?? '') || typeof meta.version !== 'string') return undefined;
      if (point.offset >= meta.size) return undefined; // all stored, not yet complete: nothing to read on from
      return { offset: point.offset, meta };
    } catch {
      return undefined;
    }
  }
}
