import { Injectable, Logger } from '@nestjs/common';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CatalogService } from '../catalog/catalog.service';
import { ImageRecord } from '../catalog/image.record';
import { ImagePhase } from '../catalog/image.enums';
import { AppError } from '../common/errors';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { QuotaService } from '../quota/quota.service';
import { ingestChunkPool, releaseChunk } from '../storage/chunk-pool';
import { objectKeys, ObjectStorage, ResumePoint } from '../storage/object-storage';
import { ChunkCoalescer } from './chunk-coalescer';
import { ConversionService } from './conversion';
import type { ConvertFormat } from './qemu-img';
import { assertFormat, DiskFormat, FormatCheckStream, storageRangeReader, verifyStored } from './format-sniffer';
import { HashingStream } from './hashing';
import { ImageInspector } from './image-inspector';
import { ImageBytesQuota, QUOTA_STEP_BYTES } from './image-bytes-quota';
import { ImportStopped } from './import-failure';
import { IngestError } from './ingestion.errors';
import { ProgressMeter } from './progress-meter';

/** Progress reaches the image record at most this often (a few times a second). */
export const PROGRESS_INTERVAL_MS = 300;

/** The phases in which bytes may still be on their way (an import can run, resume or be failed). */
export const UNFINISHED_PHASES: readonly ImagePhase[] = [ImagePhase.Queued, ImagePhase.Importing, ImagePhase.Verifying, ImagePhase.Converting];

export interface StoredFile {
  size: number;
  sha256: string;
  md5?: string;
  /** the format the zone wanted when the bytes were stored (null: none); `finish` converts to it */
  convertTo?: ConvertFormat | null;
  /** the import resumed a crashed one: the bytes before this offset were read back from the store, not the source */
  resumedFrom?: number;
}

/** What the metrics say about an import that ended FAILED. */
export interface FailureMeta {
  source: string;
  code: string;
  /** when the transfer started (Date.now()), for the duration histogram */
  startedAt?: number;
}

export interface StoreOptions {
  quota: ImageBytesQuota;
  /** stops the transfer: the put aborts and leaves nothing behind */
  signal?: AbortSignal;
  /** the size when known (Content-Length): the S3 adapter picks its part size from it */
  sizeHint?: number;
  /**
   * The bytes are already in the image's object (a server-side copy from a bucket of the same store): they only
   * pass the checks (hash, format, progress, quota) and are not written again. On failure `fail` removes them.
   */
  alreadyStored?: boolean;
  /** recorded with the incomplete upload so that a run after a crash can resume it (PutOptions.resumeMeta) */
  resumeMeta?: string;
  /**
   * Continues what a crashed run stored (ObjectStorage.takeOverIncomplete): `body` carries the bytes from
   * `resume.offset` on; the kept first bytes are read back from the store and pass every check in front of them
   * (hash, format, size, progress), so the result is the same as an uninterrupted import's.
   */
  resume?: ResumePoint;
}

/** `first`, then `rest`, as one stream; destroying it destroys both. */
function concatStreams(first: Readable, rest: Readable): Readable {
  async function* both(): AsyncGenerator<Buffer> {
    try {
      for await (const c of first as AsyncIterable<Buffer>) yield c;
      for await (const c of rest as AsyncIterable<Buffer>) yield c;
    } finally {
      first.destroy();
      rest.destroy();
    }
  }
  return Readable.from(both(), { objectMode: false });
}

/** Consumes `meter` (the last check) without storing: for bytes that are already in place. */
function discard(meter: Readable, key: string): Promise<{ key: string; size: number }> {
  let size = 0;
  return new Promise((resolve, reject) => {
    const sink = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        releaseChunk(chunk);
        cb();
      },
    });
    meter.on('error', reject);
    sink.on('finish', () => resolve({ key, size }));
    meter.pipe(sink);
  });
}

const isPrematureClose = (e: unknown) => (e as NodeJS.ErrnoException)?.code === 'ERR_STREAM_PREMATURE_CLOSE';
const isGone = (e: unknown) => e instanceof AppError && e.code === 'IMAGE_NOT_FOUND';

/**
 * The one path bytes take into storage, whatever their source (URL download, direct upload, a picked file):
 *
 *   source -> ChunkCoalescer (filesystem store: socket-sized chunks gathered into pooled 1 MiB slots)
 *          -> HashingStream (sha256, md5 when configured, expected checksum, max size; on the filesystem store
 *             in the hashing thread, overlapping the writes)
 *          -> FormatCheckStream (first bytes against the declared format; unsafe qcow2/vmdk/vhd refused
 *             before anything is stored)
 *          -> ProgressMeter (progress and rate on the record, quota grown in steps for an unknown size)
 *          -> ObjectStorage.putStream (multipart on S3, temp file + rename on fs: never a partial object)
 *
 * then `finish`: VERIFYING with the size, the checks that need the stored object (VHD footer, VHDX parent, then
 * qemu-img info/check under limits: ImageInspector),
 * the quota committed with the real size, READY with the checksums. `fail` is the one way an import ends
 * FAILED: the reason recorded, stored or partial bytes removed, the pending quota given back.
 */
@Injectable()
export class IngestPipeline {
  private readonly log = new Logger('Ingestion');

  constructor(
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
    private readonly quota: QuotaService,
    private readonly cfg: AppConfig,
    private readonly metrics: MetricsService,
    private readonly inspector: ImageInspector,
    private readonly conversion: ConversionService,
  ) {}

  /** Streams `body` into the image's object. Rejects with the first real cause (IngestError, QUOTA_EXCEEDED, ImportStopped, a store error). */
  async store(image: ImageRecord, body: Readable, opts: StoreOptions): Promise<StoredFile> {
    const id = image.id;
    // a source the zone wants in another format is replaced by its conversion: stored without an fsync
    const convertTo = await this.conversion.targetFor(image);
    // filesystem store: 1 MiB pooled chunks, hashed in the hashing thread while they are written (hash-worker.ts)
    const fsStore = this.storage.driver === 'fs';
    const offload = fsStore && this.cfg.ingestion.hashWorker;
    const hash = new HashingStream({
      worker: offload,
      md5: this.cfg.ingestion.computeMd5,
      expected: image.expectedChecksum ?? undefined,
      maxBytes: this.cfg.ingestion.maxSizeBytes,
    });
    const check = new FormatCheckStream(image.format as DiskFormat);
    const meter = new ProgressMeter({
      intervalMs: PROGRESS_INTERVAL_MS,
      report: (bytesDone, bytesPerSecond) => {
        opts.quota.keepAlive().catch((e: unknown) => this.log.warn(`Renewing the quota reservation of ${id} failed: ${(e as Error).message}`));
        return this.catalog.recordProgress(id, { bytesDone, bytesPerSecond });
      },
      stopped: () => new ImportStopped(id),
      onReportError: (e) => this.log.warn(`Recording the progress of ${id} failed: ${(e as Error)?.message ?? String(e)}`),
      room: opts.quota.allowance,
      makeRoom: (needed) => opts.quota.ensure(needed, QUOTA_STEP_BYTES),
      youngGc: this.cfg.ingestion.youngGc,
    });
    let source = body;
    if (opts.resume) {
      try {
        source = concatStreams(await this.storage.readTakenOver(opts.resume), body);
      } catch (e) {
        body.destroy();
        throw e;
      }
    }
    const [put, flow] = await Promise.allSettled([
      opts.alreadyStored
        ? discard(meter, objectKeys.imageDisk(id))
        : this.storage.putStream(objectKeys.imageDisk(id), meter, {
            signal: opts.signal,
            sizeHint: opts.sizeHint,
            contentType: 'application/octet-stream',
            transient: convertTo !== null,
            resumeMeta: opts.resumeMeta,
            resume: opts.resume,
          }),
      // the S3 adapter gathers its parts itself: a coalescing copy in front of it only costs CPU and GC
      fsStore
        ? pipeline(source, new ChunkCoalescer(undefined, undefined, offload ? ingestChunkPool : undefined), hash, check, meter)
        : pipeline(source, hash, check, meter),
    ]);
    // the cause is the stage that failed first: a source, hash, format, meter error shows in the pipeline; a
    // store error shows in the put, and the pipeline then only saw its output closed early
    if (flow.status === 'rejected' && !isPrematureClose(flow.reason)) throw flow.reason;
    if (put.status === 'rejected') throw put.reason;
    if (flow.status === 'rejected') throw flow.reason;
    const digests = hash.digests!;
    if (put.value.size !== digests.size) throw new Error(`stored ${put.value.size} bytes but read ${digests.size}`);
    return { size: digests.size, sha256: digests.sha256, md5: digests.md5, convertTo, ...(opts.resume ? { resumedFrom: opts.resume.offset } : {}) };
  }

  /**
   * After `store`: VERIFYING (size recorded), the checks on the stored object, the quota committed, READY.
   * Answers 'gone' (and removes the object) when the image was deleted meanwhile.
   * @throws IngestError for refused content (the caller fails the import), QUOTA_EXCEEDED
   */
  async finish(image: ImageRecord, stored: StoredFile, quota: ImageBytesQuota, startedAt: number, signal?: AbortSignal): Promise<'ready' | 'gone'> {
    const id = image.id;
    if (stored.size === 0) throw new IngestError('FORMAT_MISMATCH', 'The file is empty');
    try {
      await this.catalog.transition(
        id,
        ImagePhase.Verifying,
        // a resumed import said so while it ran ("Resumed at N bytes ..."): done now
        {
          sizeBytes: stored.size,
          bytesDone: stored.size,
          bytesTotal: stored.size,
          bytesPerSecond: null,
          ...(stored.resumedFrom !== undefined ? { statusReason: null } : {}),
        },
        [ImagePhase.Importing],
      );
      const t0 = Date.now();
      assertFormat(await verifyStored(image.format as DiskFormat, stored.size, storageRangeReader(this.storage, objectKeys.imageDisk(id))));
      const t1 = Date.now();
      // the referee: qemu-img on the stored object, before anything can use it
      let judged = await this.inspector.inspect(id, image.format as DiskFormat, stored.size);
      const t2 = Date.now();
      // the zone keeps another storage format: the judged source is converted in place (conversion.ts)
      // (the format decided when the bytes were stored: a source stored transient is always converted)
      const target = stored.convertTo !== undefined ? stored.convertTo : await this.conversion.targetFor(image);
      let converted: Partial<Pick<ImageRecord, 'format' | 'sourceSha256'>> = {};
      if (target) {
        const c = await this.conversion.convertStored(image, image.format as DiskFormat, stored.size, judged.virtualSizeBytes, target, quota, signal);
        converted = { format: c.format as ImageRecord['format'], sourceSha256: stored.sha256 };
        stored = { size: c.size, sha256: c.sha256, md5: c.md5 };
        judged = c.judged;
      }
      const t3 = Date.now();
      // QuotaService's contract: the catalog holds the size (set at VERIFYING) before the bytes are committed
      await quota.commit(stored.size);
      await this.catalog.transition(
        id,
        ImagePhase.Ready,
        {
          ...converted,
          sizeBytes: stored.size,
          virtualSizeBytes: judged.virtualSizeBytes,
          actualSizeBytes: judged.actualSizeBytes ?? null,
          checksum: stored.sha256,
          checksumMd5: stored.md5 ?? null,
        },
        [ImagePhase.Verifying],
      );
      // where the time went (bench:convert reads this line)
      this.log.log(
        `Timings of ${id}: sniffer on the stored object ${t1 - t0} ms, qemu-img info/check ${t2 - t1} ms${target ? `, conversion ${t3 - t2} ms` : ''}, READY ${Date.now() - t3} ms`,
      );
      this.metrics.importBytes.inc({ source: image.sourceType }, stored.size);
      this.metrics.importDuration.observe({ source: image.sourceType, outcome: 'ready' }, (Date.now() - startedAt) / 1000);
      return 'ready';
    } catch (e) {
      if (isGone(e)) {
        await this.discardIfGone(id);
        return 'gone';
      }
      throw e;
    }
  }

  /**
   * Ends an import FAILED with `reason`: removes what was stored (or half-stored) and gives the pending quota
   * back. Does nothing when the image already moved on (READY, DISABLED); cleans up when it is gone.
   */
  async fail(imageId: string, reason: string, meta: FailureMeta): Promise<void> {
    // Before FAILED is visible: the attempt's pending bytes go back and its incomplete upload is aborted, so a
    // caller who sees FAILED and uploads again at once never has the new attempt's reservation released (or its
    // parts aborted) by this one's clean-up. Both are no-ops for an image that finished meanwhile (a committed
    // reservation is not released; a finished object is not an incomplete upload).
    await ImageBytesQuota.releaseFor(this.quota, imageId);
    await this.abortIncomplete(imageId);
    try {
      await this.catalog.transition(imageId, ImagePhase.Failed, { statusReason: reason, sizeBytes: null, bytesPerSecond: null }, [...UNFINISHED_PHASES]);
    } catch (e) {
      if (isGone(e)) return this.removeBytes(imageId);
      if (e instanceof AppError && e.code === 'INVALID_STATE') return; // finished meanwhile: nothing to undo
      throw e;
    }
    this.log.warn(`Import of ${imageId} failed (${meta.code}): ${reason}`);
    this.metrics.importFailures.inc({ source: meta.source, code: meta.code });
    if (meta.startedAt !== undefined) this.metrics.importDuration.observe({ source: meta.source, outcome: 'failed' }, (Date.now() - meta.startedAt) / 1000);
    await this.removeBytes(imageId);
  }

  private async abortIncomplete(imageId: string): Promise<void> {
    try {
      await this.storage.abortIncomplete(objectKeys.imagePrefix(imageId));
    } catch (e) {
      this.log.error(`Aborting the incomplete upload of ${imageId} failed: ${(e as Error).message}`);
    }
  }

  /** Removes the image's object and any incomplete upload under its prefix. Never throws. */
  async removeBytes(imageId: string): Promise<void> {
    try {
      await this.storage.abortIncomplete(objectKeys.imagePrefix(imageId));
      await this.storage.delete(objectKeys.imageDisk(imageId));
    } catch (e) {
      this.log.error(`Removing the stored bytes of ${imageId} failed: ${(e as Error).message}`);
    }
  }

  /** A put finished for an image deleted meanwhile: its object must not stay. */
  async discardIfGone(imageId: string): Promise<void> {
    if (!(await this.catalog.findInternal(imageId))) await this.removeBytes(imageId);
  }
}
