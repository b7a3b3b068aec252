import { Injectable, Logger } from '@nestjs/common';
import { CatalogService } from '../../catalog/catalog.service';
import { ImageRecord } from '../../catalog/image.record';
import { ImagePhase } from '../../catalog/image.enums';
import { FileSourcesService } from '../../file-sources/file-sources.service';
import { objectKeys, ObjectStorage } from '../../storage/object-storage';
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
 * A new attempt starts from byte 0 (smbclient cannot read from an offset to stdout, and the hash is per run).
 */
@Injectable()
export class FileImporter {
  private readonly log = new Logger('Ingestion');

  constructor(
    private readonly sources: FileSourcesService,
    private readonly storage: ObjectStorage,
    private readonly catalog: CatalogService,
    private readonly pipeline: IngestPipeline,
  ) {}

  async import(image: ImageRecord, signal: AbortSignal, quota: ImageBytesQuota): Promise<StoredFile> {
    const id = image.id;
    const source = this.sources.get(image.sourceName);
    const path = image.sourcePath ?? '';
    const importing = async (size: number) => {
      // the size is checked against the quota before the first byte is stored
      await quota.ensure(size);
      await this.catalog.transition(id, ImagePhase.Importing, { bytesDone: 0, bytesTotal: size, bytesPerSecond: 0, statusReason: null }, [
        ImagePhase.Queued,
        ImagePhase.Importing,
      ]);
    };

    if (source.canCopyInto(this.storage)) {
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

    const file = await source.open(path, { signal });
    try {
      await importing(file.size);
    } catch (e) {
      file.stream.destroy();
      throw e;
    }
    return this.pipeline.store(image, file.stream, { quota, signal, sizeHint: file.size });
  }
}
