import { Injectable, Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { CatalogService } from '../catalog/catalog.service';
import { ImageRecord } from '../catalog/image.record';
import { ImagePhase, SourceType } from '../catalog/image.enums';
import { AppError } from '../common/errors';
import { requestContext } from '../common/request-context';
import { AppConfig } from '../config/app-config';
import { CANCELLED, JobContext, JobInterrupted, LOCK_LOST, SHUTDOWN } from '../jobs/job-queue';
import { QuotaService } from '../quota/quota.service';
import { objectKeys, ObjectStorage, ResumePoint } from '../storage/object-storage';
import { ConversionService } from './conversion';
import { ImageBytesQuota } from './image-bytes-quota';
import { describeFailure, ImportStopped, PermanentImportFailure, RetryableImportFailure } from './import-failure';
import { IngestPipeline, StoredFile, UNFINISHED_PHASES } from './ingest-pipeline';
import { ImportJobData } from './ingestion.jobs';
import { FileImporter } from './sources/file-import';
import { downloadOptionsFrom, resumableDownload, ResumeFrom } from './sources/resumable-download';
import { UrlFetcher } from './sources/url-fetcher';

/** 4000 -> "4 s", 500 -> "0.5 s", 90000 -> "90 s" */
export const formatDelay = (ms: number): string => `${ms >= 10_000 ? Math.round(ms / 1000) : Math.round(ms / 100) / 10} s`;

const isAppError = (e: unknown, code: string) => e instanceof AppError && e.code === code;

/**
 * The 'import' job: gets the bytes of a URL image, or of a file picked from a file source (FileImporter), into
 * storage. Idempotent: an image that is gone, finished
 * or failed is left alone, so a duplicate or late job is harmless.
 *
 * A job that dies with its process (kill -9) is found again: the restarted replica takes it back at once
 * (BullMqQueue.takeBackOwn), or another worker gets it once its lock expires; in-process jobs are queued again
 * at start-up (IngestionService.recover). Either way the next run takes over what the dead one stored of a URL
 * download (ObjectStorage.takeOverIncomplete: the fs temp file, the S3 multipart upload's parts) and resumes it:
 * the source is asked for the rest with Range and If-Range on the validator recorded with the upload, and the
 * stored first bytes are read back from the store through the hash and the checks (IngestPipeline.store's
 * `resume`), so the sha256 is the one of an uninterrupted import. When the file changed (another validator or
 * size) or the server cannot range, it starts again from byte 0 and the log says why. Anything else left
 * incomplete under the image's prefix is aborted. Within one run, dropped connections resume with Range too.
 */

/** What a URL download records with its incomplete upload, to be resumed after a crash (PutOptions.resumeMeta). */
interface UrlResumeMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  size?: number;
}
@Injectable()
export class ImportProcessor {
  private readonly log = new Logger('Ingestion');
  /** runs in this process, by image id, so a delete can wait until the transfer has stopped */
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
    private readonly quota: QuotaService,
    private readonly pipeline: IngestPipeline,
    private readonly fetcher: UrlFetcher,
    private readonly cfg: AppConfig,
    private readonly files: FileImporter,
    private readonly conversion: ConversionService,
  ) {}

  handle(ctx: JobContext<ImportJobData>): Promise<void> {
    const id = ctx.data.imageId;
    const run = requestContext.run({ correlationId: ctx.data.correlationId ?? `import-${id}` }, () => this.run(ctx));
    this.running.set(id, run);
    return run.finally(() => {
      if (this.running.get(id) === run) this.running.delete(id);
    });
  }

  /** Waits (at most `ms`) for this process's run of the image's import to stop. */
  async settled(imageId: string, ms = 10_000): Promise<void> {
    const run = this.running.get(imageId);
    if (run) await Promise.race([run.catch(() => undefined), sleep(ms, undefined, { ref: false })]);
  }

  private async run(ctx: JobContext<ImportJobData>): Promise<void> {
    const id = ctx.data.imageId;
    const image = await this.catalog.findInternal(id);
    if (!image || !UNFINISHED_PHASES.includes(image.phase)) return;
    const fromFile = image.sourceType === SourceType.File;
    const copy = image.sourceType === SourceType.Conversion;
    if (!fromFile && !copy && (image.sourceType !== SourceType.Url || !image.sourceUrl)) {
      this.log.warn(`Image ${id} has source ${image.sourceType}; it is not imported by a job`);
      return;
    }
    try {
      // one job per image: anything incomplete under its prefix is from a dead attempt; what a dead URL download or
      // streamed file import stored is kept to resume from
      const point =
        this.cfg.ingestion.resumeAfterCrash && !copy && (image.phase === ImagePhase.Queued || image.phase === ImagePhase.Importing)
          ? await this.takeOver(id)
          : null;
      await this.storage.abortIncomplete(objectKeys.imagePrefix(id), point?.keepId ? { keep: point.keepId } : undefined);
      if (image.phase === ImagePhase.Verifying || image.phase === ImagePhase.Converting) {
        // the process died while verifying or converting: the stored object is not trusted, the file is fetched again
        await this.conversion.cleanUp(id);
        await this.catalog.transition(id, ImagePhase.Queued, { bytesPerSecond: null }, [ImagePhase.Verifying, ImagePhase.Converting]);
      }
      const quota = await ImageBytesQuota.open(this.quota, id, image.bytesTotal ?? 0);
      if (copy) {
        // a converted copy of an ACTIVE image (conversion.ts): no download, the source object is read in place
        await this.conversion.convertCopy(image, quota, ctx.signal);
        this.log.log(`Converted copy ${id} of ${image.convertedFrom} is ready`);
        return;
      }
      const startedAt = Date.now();
      const stored = fromFile ? await this.files.import(image, ctx.signal, quota, point) : await this.download(image, ctx, quota, point);
      const storedAt = Date.now();
      const outcome = await this.pipeline.finish(image, stored, quota, startedAt, ctx.signal);
      this.log.log(
        outcome === 'ready'
          ? `Imported ${id}: ${stored.size} bytes, sha256 ${stored.sha256}, in ${Date.now() - startedAt} ms (fetched, hashed, sniffed and stored in ${storedAt - startedAt} ms)`
          : `Import of ${id} finished after the image was deleted`,
      );
    } catch (e) {
      await this.onError(ctx, image, e);
    }
  }

  /** What a dead run of this image's import stored, kept for this run (null: nothing, or the store cannot). */
  private async takeOver(id: string): Promise<ResumePoint | null> {
    try {
      return await this.storage.takeOverIncomplete(objectKeys.imageDisk(id));
    } catch (e) {
      this.log.warn(`Could not take over what the previous run of ${id} stored (starting from byte 0): ${(e as Error)?.message ?? String(e)}`);
      return null;
    }
  }

  /** Where a crashed download of `url` stopped, from what its upload recorded (undefined: start from 0). */
  private resumeFrom(id: string, url: string, point: ResumePoint | null): ResumeFrom | undefined {
    if (!point) return undefined;
    let meta: UrlResumeMeta;
    try {
      meta = JSON.parse(point.meta) as UrlResumeMeta;
    } catch {
      return undefined;
    }
    if (meta.url !== url) {
      this.log.warn(`Download of ${id} restarts from byte 0: the stored bytes are of another URL`);
      return undefined;
    }
    // every byte stored but the upload not complete: nothing left to ask the server for, start again
    if (meta.size !== undefined && point.offset >= meta.size) return undefined;
    return { offset: point.offset, etag: meta.etag, lastModified: meta.lastModified, totalSize: meta.size };
  }

  private download(image: ImageRecord, ctx: JobContext<ImportJobData>, quota: ImageBytesQuota, point: ResumePoint | null): Promise<StoredFile> {
    const id = image.id;
    const url = image.sourceUrl!;
    const from = this.resumeFrom(id, url, point);
    // reason writes in event order (an event cannot wait): a retry's reason never lands after the resume that clears it
    let reasons = Promise.resolve();
    const explain = (reason: string | null) => {
      reasons = reasons
        .then(() => this.catalog.explainPending(id, reason, [ImagePhase.Queued, ImagePhase.Importing]))
        .then(
          () => undefined,
          (e: unknown) => this.log.warn(`Could not record the reason of ${id}: ${String(e)}`),
        );
    };
    return resumableDownload(
      this.fetcher,
      url,
      {
        ...downloadOptionsFrom(this.cfg),
        signal: ctx.signal,
        from,
        onEvent: (ev) => {
          if (ev.type === 'retry') {
            this.log.warn(
              `Download of ${id}: attempt ${ev.attempt} failed (${ev.error.message}); ${ev.willResume ? 'resuming' : 'retrying'} in ${ev.delayMs} ms`,
            );
            // the record says why nothing moves until the next connection (QUEUED before the first byte, IMPORTING when resuming)
            const failure = describeFailure(ev.error, url);
            const job = ctx.maxAttempts > 1 ? ` (import attempt ${ctx.attempt} of ${ctx.maxAttempts})` : '';
            explain(
              `Download attempt ${ev.attempt} of ${this.cfg.ingestion.url.maxAttempts} failed: ${failure.reason}; ${ev.willResume ? 'resuming' : 'retrying'} in ${formatDelay(ev.delayMs)}${job}`,
            );
          }
          if (ev.type === 'resumed') explain(null);
          if (ev.type === 'restart') this.log.warn(`Download of ${id} restarts from byte 0: ${ev.reason}`);
        },
      },
      async (body, start) => {
        const resume = start.offset > 0 && point ? point : undefined;
        if (start.resumeRefused) this.log.warn(`Download of ${id} restarts from byte 0 instead of ${point?.offset ?? 0}: ${start.resumeRefused}`);
        // what a dead run kept and this one does not continue (a restart) goes before anything new is stored
        if (point && !resume) await this.storage.abortIncomplete(objectKeys.imagePrefix(id));
        // the declared size is checked against the quota before the first byte is stored
        if (start.totalSize !== undefined) await quota.ensure(start.totalSize);
        const reason = resume
          ? `Resumed at ${resume.offset} bytes${start.totalSize !== undefined ? ` of ${start.totalSize}` : ''} after the service stopped; the stored bytes are read back to rebuild the checksum`
          : null;
        await this.catalog.transition(
          id,
          ImagePhase.Importing,
          { bytesDone: 0, bytesTotal: start.totalSize ?? null, bytesPerSecond: 0, statusReason: reason },
          [ImagePhase.Queued, ImagePhase.Importing],
        );
        if (resume) this.log.log(`Download of ${id} resumes at byte ${resume.offset} (kept from the previous run)`);
        // a server that can range and names its file's version: a crash can resume this download from the byte stored
        const meta: UrlResumeMeta | undefined =
          start.resumable && this.cfg.ingestion.resumeAfterCrash
            ? { url, etag: start.etag, lastModified: start.lastModified, size: start.totalSize }
            : undefined;
        return this.pipeline.store(image, body, {
          quota,
          signal: ctx.signal,
          sizeHint: start.totalSize,
          resume,
          resumeMeta: meta && JSON.stringify(meta),
        });
      },
    );
  }

  /** Maps what stopped a run to what the queue should do; see ProcessOptions. */
  private async onError(ctx: JobContext<ImportJobData>, image: ImageRecord, e: unknown): Promise<void> {
    const id = image.id;
    const reason: unknown = ctx.signal.reason;
    if (ctx.signal.aborted && reason === SHUTDOWN) throw new JobInterrupted(); // handed back; the put aborted
    if (ctx.signal.aborted && reason === LOCK_LOST) throw new JobInterrupted(); // another worker runs it now: write nothing
    if (ctx.signal.aborted && reason === CANCELLED) throw new PermanentImportFailure({ code: 'ABORTED', reason: 'The import was cancelled', permanent: true });
    if (e instanceof ImportStopped || isAppError(e, 'IMAGE_NOT_FOUND') || isAppError(e, 'INVALID_STATE')) {
      // deleted (or moved on) meanwhile: the delete removes the bytes; nothing else to do
      await this.pipeline.discardIfGone(id);
      return;
    }
    const failure = describeFailure(e, image.sourceUrl ?? undefined);
    if (failure.permanent) throw new PermanentImportFailure(failure);
    if (ctx.attempt < ctx.maxAttempts) {
      // the record must say why it waits: back to QUEUED from IMPORTING/VERIFYING, or (failed before the first
      // byte) still QUEUED, with the reason and when the next attempt starts
      const why = `Attempt ${ctx.attempt} of ${ctx.maxAttempts} failed: ${failure.reason}; retrying in ${formatDelay(ctx.retryDelayMs)}`.slice(0, 1000);
      const explained = await this.catalog.explainPending(id, why, [ImagePhase.Queued]).catch(() => false);
      if (!explained) {
        await this.catalog
          .transition(id, ImagePhase.Queued, { statusReason: why, bytesPerSecond: null }, [ImagePhase.Importing, ImagePhase.Verifying, ImagePhase.Converting])
          .catch(() => undefined);
      }
    }
    throw new RetryableImportFailure(failure);
  }

  /** Called by the queue once the job failed for good (last attempt, permanent failure or cancel). */
  async onFailed(ctx: JobContext<ImportJobData>, error: Error): Promise<void> {
    const id = ctx.data.imageId;
    const image = await this.catalog.findInternal(id);
    if (!image) return this.pipeline.removeBytes(id);
    if (!UNFINISHED_PHASES.includes(image.phase)) return;
    const f = describeFailure(error, image.sourceUrl ?? undefined);
    await this.pipeline.fail(id, f.reason, { source: image.sourceType, code: f.code });
  }
}
