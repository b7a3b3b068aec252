import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ACT_ERRORS, Action } from '../access/access.policy';
import { Principal } from '../access/principal';
import { CatalogService } from '../catalog/catalog.service';
import { ImageRecord, ImageWithTags } from '../catalog/image.record';
import { ImagePhase, SourceType } from '../catalog/image.enums';
import { ImageLifecycle, ImageLifecycleListener } from '../catalog/image-lifecycle';
import { AppError, ErrorSet, errorSet, notFound } from '../common/errors';
import { currentCorrelationId } from '../common/request-context';
import { AppConfig } from '../config/app-config';
import { FileSourcesService } from '../file-sources/file-sources.service';
import { JobQueue } from '../jobs/job-queue';
import { ImportProcessor } from './import.processor';
import { IngestPipeline, UNFINISHED_PHASES } from './ingest-pipeline';
import { IngestError } from './ingestion.errors';
import { addJob } from '../job-catalogue';
import { IMPORT_JOB } from './ingestion.jobs';
import { UrlFetcher } from './sources/url-fetcher';
import { UploadService } from './upload.service';

const PAGE = 200;

/**
 * Ingestion's part in the catalog's flows, and the things that keep imports moving:
 *
 * - create: a URL is checked against the URL policy before the row is written (400 URL_NOT_ALLOWED, nothing
 *   stored); once the row is committed the 'import' job is queued (job id = image id). UPLOAD images wait
 *   for `PUT /images/{id}/file`. A FILE image's pick is checked before the quota reserves (prepareCreate: the
 *   source exists, the path is acceptable and names a file, whose size becomes bytesTotal), and it gets the
 *   same 'import' job as a URL image.
 * - delete: the job is cancelled and a running transfer here stops before the row goes (elsewhere it stops
 *   at its next progress write, which finds the row gone); afterwards the object and any incomplete upload
 *   under the image's prefix are removed.
 * - retry: FAILED -> QUEUED, and the job again for a URL image.
 * - recovery, at start-up and every INGEST_SWEEP_INTERVAL_SECONDS: URL images still QUEUED/IMPORTING/
 *   VERIFYING with no job are queued again (in-process jobs die with their process; a BullMQ job whose replica
 *   died is taken back by that replica when it restarts, BullMqQueue.takeBackOwn, or by any worker once its
 *   lock expires); uploads cut off by a dead process end FAILED with a reason.
 * - lost jobs (BullMQ): every INGEST_LOST_JOB_CHECK_MS (2 s) the unfinished URL/FILE images (an indexed
 *   lookup, usually a handful) are checked against Redis in one pipelined read, and one whose job is gone
 *   (Redis flushed or failed over without it) is queued again: seconds, not a sweep period.
 */
@Injectable()
export class IngestionService implements ImageLifecycleListener, OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger('Ingestion');
  private sweeper?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;
  private watchdog?: NodeJS.Timeout;
  private watching?: Promise<unknown>;
  /** the start-up recovery, for whoever wants to wait for it (tests) */
  recovery: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly lifecycle: ImageLifecycle,
    private readonly catalog: CatalogService,
    private readonly queue: JobQueue,
    private readonly processor: ImportProcessor,
    private readonly uploads: UploadService,
    private readonly pipeline: IngestPipeline,
    private readonly fetcher: UrlFetcher,
    private readonly cfg: AppConfig,
    private readonly fileSources: FileSourcesService,
  ) {}

  onModuleInit(): void {
    this.lifecycle.register('ingestion', this);
    // the import job's handler (ImportProcessor) is registered by the jobs module from src/job-catalogue.ts
  }

  onApplicationBootstrap(): void {
    this.recovery = this.recover(true).catch((e: unknown) => this.log.error(`Start-up recovery of imports failed: ${(e as Error)?.stack ?? String(e)}`));
    const every = this.cfg.ingestion.sweepIntervalSeconds;
    if (every > 0) {
      this.sweeper = setInterval(() => {
        this.sweeping ??= this.recover(false)
          .catch((e: unknown) => this.log.error(`Import sweep failed: ${(e as Error)?.message ?? String(e)}`))
          .finally(() => (this.sweeping = undefined));
      }, every * 1000);
      this.sweeper.unref();
    }
    const lostEvery = this.cfg.ingestion.lostJobCheckMs;
    if (this.cfg.queue.driver === 'redis' && lostEvery > 0) {
      this.watchdog = setInterval(() => {
        this.watching ??= this.requeueLostJobs()
          .catch((e: unknown) => this.log.warn(`Lost-job check failed: ${(e as Error)?.message ?? String(e)}`))
          .finally(() => (this.watching = undefined));
      }, lostEvery);
      this.watchdog.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweeper);
    clearInterval(this.watchdog);
    await Promise.allSettled([this.recovery, this.sweeping, this.watching]);
  }

  // ------------------------------------------------------------------ the catalog's hooks

  /**
   * A picked file (R14): the source must be configured, the path acceptable (FILE_PATH_INVALID), the file there
   * and a file (FILE_NOT_FOUND), and its size becomes the expected size, so the quota reserves it before the
   * row is written. The path is recorded normalised, the source by name (the default one when none was named).
   */
  async prepareCreate(image: ImageRecord): Promise<void> {
    this.checkSourceUrl(image);
    if (image.sourceType !== SourceType.File || image.sourcePath === null) return;
    const picked = await this.fileSources.pick(image.sourceName, image.sourcePath);
    const max = this.cfg.ingestion.maxSizeBytes;
    if (picked.size > max) {
      const message = `The file has ${picked.size} bytes, more than the ${max} an import accepts (INGEST_MAX_SIZE_BYTES)`;
      throw new AppError('VALIDATION_FAILED', message, { fields: [{ field: 'source.path', messages: [message] }] });
    }
    image.sourceName = picked.source;
    image.sourcePath = picked.path;
    image.bytesTotal = picked.size;
  }

  /** The check step too: a URL the policy refuses is refused before the quota step reserves anything. */
  private checkSourceUrl(image: ImageRecord): void {
    if (image.sourceType !== SourceType.Url || image.sourceUrl === null) return;
    try {
      this.fetcher.policy.checkUrl(image.sourceUrl);
    } catch (e) {
      if (!(e instanceof IngestError)) throw e;
      throw new AppError('URL_NOT_ALLOWED', e.message, { reason: e.code, ...(e.details ?? {}), fields: [{ field: 'source.url', messages: [e.message] }] });
    }
  }

  async afterCreate(image: ImageRecord): Promise<void> {
    await this.enqueue(image);
  }

  async beforeDelete(image: ImageRecord): Promise<void> {
    await this.queue.cancel(image.id).catch((e: unknown) => this.log.warn(`Cancelling the import of ${image.id} failed: ${(e as Error).message}`));
    await Promise.all([this.uploads.abort(image.id), this.processor.settled(image.id)]);
  }

  async afterDelete(image: ImageRecord): Promise<void> {
    await this.pipeline.removeBytes(image.id);
  }

  // ------------------------------------------------------------------ retry

  /** FAILED -> QUEUED; a URL or FILE image's import is queued again, an UPLOAD image waits for its file. */
  async retry(p: Principal, id: string): Promise<ImageWithTags> {
    const image = await this.catalog.getFor(p, id, Action.Edit);
    if (image.phase !== ImagePhase.Failed) {
      throw new AppError('INVALID_STATE', `Image ${id} is ${image.phase}: only a FAILED import can be retried`, { status: image.status, phase: image.phase });
    }
    await this.catalog.transition(id, ImagePhase.Queued, { statusReason: null, bytesDone: 0, bytesPerSecond: null }, [ImagePhase.Failed]);
    const queued = await this.catalog.findInternal(id);
    if (!queued) throw notFound('IMAGE', id);
    await this.enqueue(queued);
    return queued;
  }

  /** Queues the import of a URL or FILE image. A failure is logged: the sweep queues it later. */
  private async enqueue(image: ImageRecord): Promise<void> {
    if (image.sourceType !== SourceType.Url && image.sourceType !== SourceType.File && image.sourceType !== SourceType.Conversion) return;
    try {
      await addJob(this.queue, IMPORT_JOB, image.id, { imageId: image.id, correlationId: currentCorrelationId() });
    } catch (e) {
      this.log.error(`Queueing the import of ${image.id} failed (the sweep queues it again): ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ recovery

  /**
   * Queues again the unfinished URL/FILE imports that have no job waiting, delayed or running in the queue.
   * Racing a create (row committed, job about to be added) or a finishing job is harmless: the job id is the
   * image id, so a second add is the same job, and a job for a finished image does nothing.
   */
  async requeueLostJobs(): Promise<string[]> {
    const queued: string[] = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.catalog.findInPhases([...UNFINISHED_PHASES], PAGE, offset);
      const imports = page.filter((i) => i.sourceType === SourceType.Url || i.sourceType === SourceType.File || i.sourceType === SourceType.Conversion);
      const lost = new Set(await this.queue.notPending(imports.map((i) => i.id)));
      for (const image of imports) {
        if (!lost.has(image.id)) continue;
        await this.enqueue(image);
        queued.push(image.id);
      }
      if (page.length < PAGE) break;
    }
    if (queued.length) this.log.warn(`${queued.length} unfinished import(s) had no job in the queue (lost from Redis): queued again: ${queued.join(', ')}`);
    return queued;
  }

  /**
   * Finds unfinished imports nobody works on. `atStart` with the in-process queue (one process owns every job):
   * everything unfinished is orphaned. Otherwise (a sweep, or BullMQ shared by replicas) a URL or FILE image is
   * queued when no job for it is pending anywhere, and an upload is failed only once it made no progress for a while
   * (another replica may be receiving it; a live upload records progress several times a second, and one idle
   * for URL_IDLE_TIMEOUT_MS is cut).
   */
  async recover(atStart: boolean): Promise<{ queued: number; failed: number }> {
    const ownsAll = atStart && this.cfg.queue.driver === 'memory';
    const staleBefore = Date.now() - Math.max(120_000, 2 * this.cfg.ingestion.url.idleTimeoutMs);
    let queued = 0;
    let failed = 0;
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.catalog.findInPhases([...UNFINISHED_PHASES], PAGE, offset);
      for (const image of page) {
        const stale = new Date(image.updatedAt).getTime() < staleBefore;
        switch (image.sourceType) {
          case SourceType.Url:
          case SourceType.File:
          case SourceType.Conversion:
            // in-process: a sweep leaves fresh images alone (a job may be between its end and its failure record)
            if ((ownsAll || stale || this.cfg.queue.driver === 'redis') && !(await this.queue.isPending(image.id))) {
              await this.enqueue(image);
              queued++;
            }
            break;
          case SourceType.Upload:
            if (image.phase !== ImagePhase.Queued && (ownsAll || stale) && !this.uploads.isActive(image.id)) {
              await this.pipeline.fail(image.id, 'The upload was interrupted (the service stopped while receiving it); upload the file again', {
                source: SourceType.Upload,
                code: 'ABORTED',
              });
              failed++;
            }
            break;
        }
      }
      if (page.length < PAGE) break;
    }
    if (queued || failed) this.log.log(`Recovery${atStart ? ' at start-up' : ''}: ${queued} import(s) queued again, ${failed} interrupted upload(s) failed`);
    return { queued, failed };
  }
}

/** What `retry` raises (the create hooks' codes are in catalog/image-lifecycle.steps.ts, LIFECYCLE_CONTRIBUTIONS). */
export const INGESTION_ERRORS = {
  retry: errorSet(ACT_ERRORS, 'INVALID_STATE'),
} as const satisfies Record<string, ErrorSet>;
