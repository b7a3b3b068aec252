import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACT_ERRORS, Action } from '../access/access.policy';
import { Principal } from '../access/principal';
import { ImageWithTags } from '../catalog/image.record';
import { CatalogService } from '../catalog/catalog.service';
import { ImagePhase, SourceType } from '../catalog/image.enums';
import { AppError, ErrorSet, errorSet, notFound } from '../common/errors';
import { AppConfig } from '../config/app-config';
import { CANCELLED, SHUTDOWN } from '../jobs/job-queue';
import { QuotaService } from '../quota/quota.service';
import { objectKeys, ObjectStorage } from '../storage/object-storage';
import { ImageBytesQuota } from './image-bytes-quota';
import { describeFailure, Failure, formatBytes, ImportStopped } from './import-failure';
import { IngestPipeline } from './ingest-pipeline';
import { IngestError } from './ingestion.errors';
import { UPLOAD_CLIENT_GONE, UPLOAD_IDLE } from './ingestion.jobs';

const OCTET_STREAM = /^application\/octet-stream\s*(;.*)?$/i;

function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER;
}

/** The HTTP answer for an upload that failed: the code a client can act on. */
function httpErrorOf(f: Failure): AppError {
  switch (f.code) {
    case 'FORMAT_MISMATCH':
    case 'FORMAT_UNSAFE':
    case 'FORMAT_UNSUPPORTED':
    case 'CHECKSUM_MISMATCH':
    case 'IMAGE_CORRUPT':
    case 'INSPECTION_FAILED':
    case 'INSPECTION_LIMIT_EXCEEDED':
    case 'VIRTUAL_SIZE_TOO_LARGE':
      return new AppError('CONTENT_REJECTED', f.reason, { reason: f.reason, ingestCode: f.code, ...(f.details ?? {}) });
    case 'TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', f.reason, f.details);
    case 'QUOTA_EXCEEDED':
      return new AppError('QUOTA_EXCEEDED', f.reason, f.details);
    case 'ABORTED':
    case 'IDLE_TIMEOUT':
      return new AppError('UPLOAD_INCOMPLETE', f.reason);
    case 'STORAGE_FAILED':
      return new AppError('DEPENDENCY_UNAVAILABLE', f.reason);
    default:
      return new AppError('INTERNAL_ERROR', f.reason);
  }
}

/**
 * Direct upload (flow 3, R17): `PUT /images/{id}/file` streams the request body through the ingest pipeline
 * into storage. Nothing is buffered whole, in memory or on disk: the body flows with backpressure, the S3
 * adapter holds about two parts, the fs adapter writes a temp file it renames at the end.
 */
@Injectable()
export class UploadService implements OnModuleDestroy {
  private readonly log = new Logger('Ingestion');
  /** uploads running in this process, by image id, with their end */
  private readonly active = new Map<string, { ac: AbortController; done: Promise<unknown> }>();

  constructor(
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
    private readonly quota: QuotaService,
    private readonly pipeline: IngestPipeline,
    private readonly cfg: AppConfig,
  ) {}

  isActive(imageId: string): boolean {
    return this.active.has(imageId);
  }

  /** Stops an upload running here (the image is being deleted) and waits (at most `ms`) until it has cleaned up. */
  async abort(imageId: string, reason: string = CANCELLED, ms = 10_000): Promise<void> {
    const a = this.active.get(imageId);
    if (!a) return;
    a.ac.abort(reason);
    await Promise.race([a.done, sleep(ms, undefined, { ref: false })]);
  }

  /** Shutdown: running uploads end FAILED ("upload again") while the database is still there. */
  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.abort(id, SHUTDOWN, 5_000)));
  }

  /** `allowBody` is called once every check passed, right before the body is read (it answers "100 Continue"). */
  async upload(p: Principal, id: string, req: IncomingMessage, allowBody: () => void = () => undefined): Promise<ImageWithTags> {
    const image = await this.catalog.getFor(p, id, Action.Edit);
    if (image.sourceType !== SourceType.Upload) {
      throw new AppError(
        'SOURCE_MISMATCH',
        `Image ${id} gets its bytes from its ${image.sourceType} source; only an image created with source type UPLOAD takes a PUT of its file`,
        {
          sourceType: image.sourceType,
        },
      );
    }
    if (image.phase !== ImagePhase.Queued && image.phase !== ImagePhase.Failed) {
      throw new AppError('INVALID_STATE', `Image ${id} is ${image.phase}: its file can be uploaded while it is QUEUED or FAILED`, {
        status: image.status,
        phase: image.phase,
      });
    }
    const type = req.headers['content-type'];
    if (type !== undefined && !OCTET_STREAM.test(type)) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', `Send the file's bytes as application/octet-stream, not ${type.slice(0, 100)}`);
    }
    const length = contentLength(req);
    const max = this.cfg.ingestion.maxSizeBytes;
    if (length !== undefined && length > max) {
      throw new AppError('PAYLOAD_TOO_LARGE', `The file is ${formatBytes(length)}, more than the ${formatBytes(max)} allowed (INGEST_MAX_SIZE_BYTES)`, {
        size: length,
        maxSize: max,
      });
    }
    // the declared size is checked against the quota before a byte is read (QUOTA_EXCEEDED leaves the image as it was)
    const quota = await ImageBytesQuota.open(this.quota, id, length ?? 0);
    // conditional transitions: of two concurrent uploads exactly one gets the image IMPORTING, the other 409
    if (image.phase === ImagePhase.Failed) await this.catalog.transition(id, ImagePhase.Queued, { statusReason: null }, [ImagePhase.Failed]);
    await this.catalog.transition(id, ImagePhase.Importing, { bytesDone: 0, bytesTotal: length ?? null, bytesPerSecond: 0, statusReason: null }, [
      ImagePhase.Queued,
    ]);

    const startedAt = Date.now();
    const ac = new AbortController();
    let ended!: () => void;
    this.active.set(id, { ac, done: new Promise<void>((r) => (ended = r)) });
    // the pipeline destroys its source on error; a pass-through keeps `req` (and its socket) alive so the
    // client still gets an answer
    const body = new PassThrough();
    const onClose = () => {
      if (!req.complete) ac.abort(UPLOAD_CLIENT_GONE);
    };
    req.on('close', onClose);
    req.setTimeout(this.cfg.ingestion.url.idleTimeoutMs, () => ac.abort(UPLOAD_IDLE));
    ac.signal.addEventListener('abort', () => body.destroy(new IngestError('ABORTED', 'The upload stopped')), { once: true });
    allowBody();
    req.pipe(body);
    try {
      await this.storage.abortIncomplete(objectKeys.imagePrefix(id));
      const stored = await this.pipeline.store(image, body, { quota, signal: ac.signal, sizeHint: length });
      // the signal reaches a conversion too: a delete while CONVERTING kills qemu-img
      if ((await this.pipeline.finish(image, stored, quota, startedAt, ac.signal)) === 'gone') throw notFound('IMAGE', id);
      this.log.log(`Uploaded ${id}: ${stored.size} bytes, sha256 ${stored.sha256}`);
      return (await this.catalog.findInternal(id)) ?? Promise.reject(notFound('IMAGE', id));
    } catch (e) {
      req.unpipe(body);
      throw await this.failed(id, e, ac.signal, startedAt);
    } finally {
      this.active.delete(id);
      ended();
      req.off('close', onClose);
      req.setTimeout(0);
    }
  }

  /** Records the failure on the image and answers the error the client gets. */
  private async failed(id: string, e: unknown, signal: AbortSignal, startedAt: number): Promise<AppError> {
    const why: unknown = signal.reason;
    if ((signal.aborted && why === CANCELLED) || e instanceof ImportStopped || (e instanceof AppError && e.code === 'IMAGE_NOT_FOUND')) {
      await this.pipeline.discardIfGone(id);
      return notFound('IMAGE', id); // deleted while uploading: the delete removes the bytes
    }
    let failure: Failure;
    if (signal.aborted && why === UPLOAD_CLIENT_GONE) {
      failure = {
        code: 'ABORTED',
        reason: 'The upload was interrupted: the client disconnected before sending the whole file; upload the file again',
        permanent: true,
      };
    } else if (signal.aborted && why === UPLOAD_IDLE) {
      failure = {
        code: 'IDLE_TIMEOUT',
        reason: `The upload stalled: no data for ${this.cfg.ingestion.url.idleTimeoutMs} ms; upload the file again`,
        permanent: true,
      };
    } else if (signal.aborted && why === SHUTDOWN) {
      failure = { code: 'ABORTED', reason: 'The upload was interrupted: the service is shutting down; upload the file again', permanent: true };
    } else {
      failure = describeFailure(e);
    }
    await this.pipeline
      .fail(id, failure.reason, { source: SourceType.Upload, code: failure.code, startedAt })
      .catch((x: unknown) => this.log.error(`Failing upload ${id} failed: ${String(x)}`));
    return why === SHUTDOWN ? new AppError('DEPENDENCY_UNAVAILABLE', failure.reason) : httpErrorOf(failure);
  }
}

/** What `UploadService.upload` raises (httpErrorOf and the checks before a byte is read). */
export const UPLOAD_ERRORS: ErrorSet = errorSet(
  ACT_ERRORS,
  'SOURCE_MISMATCH',
  'INVALID_STATE',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'QUOTA_EXCEEDED',
  'CONTENT_REJECTED',
  'UPLOAD_INCOMPLETE',
  'DEPENDENCY_UNAVAILABLE',
);
