import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { FileHandle, mkdir, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CatalogService } from '../catalog/catalog.service';
import { ImageRecord } from '../catalog/image.record';
import { ImageKind, ImagePhase } from '../catalog/image.enums';
import { AppConfig } from '../config/app-config';
import { objectKeys, ObjectStorage } from '../storage/object-storage';
import { ZonesService } from '../zones/zones.service';
import { DiskFormat } from './format-sniffer';
import { Digests, HashingStream } from './hashing';
import { ImageBytesQuota } from './image-bytes-quota';
import { ImageInspector } from './image-inspector';
import { IngestError } from './ingestion.errors';
import { ConvertFormat, QemuImageInfo, supportsDirectIo, withRangeRelay } from './qemu-img';

export interface Converted {
  size: number;
  sha256: string;
  md5?: string;
  format: ConvertFormat;
  judged: QemuImageInfo;
}

const HASH_READ_BYTES = 4 * 1024 * 1024;

/**
 * sha256 (and md5) of an open local file, read through two reused 4 MiB buffers: the next read is under way while
 * the current piece is hashed (a result written with O_DIRECT comes from the disk, not the page cache), and there
 * is no garbage however large the disk.
 */
async function hashHandle(fh: FileHandle, md5: boolean, signal?: AbortSignal): Promise<Digests> {
  const sha = createHash('sha256');
  const m5 = md5 ? createHash('md5') : undefined;
  const bufs = [Buffer.allocUnsafe(HASH_READ_BYTES), Buffer.allocUnsafe(HASH_READ_BYTES)];
  let size = 0;
  let i = 0;
  let pending = fh.read(bufs[0], 0, HASH_READ_BYTES, 0);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const piece = bufs[i].subarray(0, bytesRead);
      size += bytesRead;
      i ^= 1;
      pending = fh.read(bufs[i], 0, HASH_READ_BYTES, size);
      sha.update(piece);
      m5?.update(piece);
    }
  } finally {
    // no read may still use a buffer (or the handle) once this returns
    await pending.catch(() => undefined);
  }
  return { size, sha256: sha.digest('hex'), ...(m5 ? { md5: m5.digest('hex') } : {}) };
}

/** Where a conversion's output is written before it is streamed into the store: one folder per image. */
export const conversionDir = (imageId: string): string => join(process.env.CONVERSION_TMP_DIR || tmpdir(), `hcm-convert-${imageId}`);

/**
 * Conversion on import (issue 11): a zone may require a storage format (`requiredFormat`). A disk image brought in
 * another format is judged as brought (qemu-img info/check on the stored source, ImageInspector), then, in
 * CONVERTING, `qemu-img convert` reads the stored source (the file on the filesystem store, the loopback Range
 * relay on S3) into a local temp file (raw and qcow2 are written with seeks, so the output cannot be a pipe or an
 * S3 stream), the result is judged again with the same rules under the target format, and streamed into the
 * store over the source (hashed on the way): `checksum` is the stored image's, `sourceSha256` the file's as it
 * came. The quota is reserved by the virtual size before qemu-img starts. A cancel (delete) aborts the signal:
 * qemu-img's process group is killed and the temp folder removed. A crash leaves the image CONVERTING: the job is
 * taken back like any import (back to QUEUED, fetched again) and the stale temp folder removed first. ISOs are
 * never converted.
 */
@Injectable()
export class ConversionService {
  private readonly log = new Logger('Conversion');

  constructor(
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
    private readonly zones: ZonesService,
    private readonly inspector: ImageInspector,
    private readonly cfg: AppConfig,
  ) {}

  /** The format `image` must be stored in when it differs from the one brought; null when it stays as is. */
  async targetFor(image: ImageRecord): Promise<ConvertFormat | null> {
    if (image.kind === ImageKind.Iso || image.format === 'iso') return null;
    const zone = await this.zones.get(image.zoneId).catch(() => null);
    const wanted = zone?.requiredFormat ?? null;
    return wanted && wanted !== (image.format as string) ? wanted : null;
  }

  /** Removes what a dead run left in the temp folder. Never throws. */
  async cleanUp(imageId: string): Promise<void> {
    await rm(conversionDir(imageId), { recursive: true, force: true }).catch((e: unknown) =>
      this.log.warn(`Removing ${conversionDir(imageId)} failed: ${(e as Error).message}`),
    );
  }

  /**
   * Converts the judged object of `image` (declared `from`, `virtualSize` bytes once expanded) to `to` and stores
   * the result in its place. The image must be VERIFYING; it ends VERIFYING again with the new size.
   * @throws IngestError (CONVERSION_FAILED, a refusal of the result, a limit), QUOTA_EXCEEDED, ABORTED
   */
  async convertStored(
    image: ImageRecord,
    from: DiskFormat,
    size: number,
    virtualSize: number,
    to: ConvertFormat,
    quota: ImageBytesQuota,
    signal?: AbortSignal,
  ): Promise<Converted> {
    // a raw copy of a qcow2 can be many times its size: the quota is reserved by the virtual size first
    await quota.ensure(Math.max(size, virtualSize));
    await this.catalog.transition(image.id, ImagePhase.Converting, { bytesDone: 0, bytesTotal: virtualSize, bytesPerSecond: 0, statusReason: null }, [
      ImagePhase.Verifying,
    ]);
    return this.convertInto(image.id, objectKeys.imageDisk(image.id), from, size, virtualSize, to, quota, signal);
  }

  /**
   * The job of a converted copy (POST /images/{id}/conversions): QUEUED -> CONVERTING from the source image's
   * stored object, the result judged and stored, then VERIFYING -> READY like any import.
   * @throws IngestError SOURCE_GONE when the source image was deleted or is no longer ACTIVE (permanent)
   */
  async convertCopy(image: ImageRecord, quota: ImageBytesQuota, signal?: AbortSignal): Promise<void> {
    const src = image.convertedFrom ? await this.catalog.findInternal(image.convertedFrom) : null;
    if (!src || src.phase !== ImagePhase.Ready || src.sizeBytes === null) {
      throw new IngestError('SOURCE_GONE', `The image ${image.convertedFrom ?? '?'} to convert is gone or no longer ACTIVE`);
    }
    const virtualSize = src.virtualSizeBytes ?? src.sizeBytes;
    await quota.ensure(Math.max(src.sizeBytes, virtualSize));
    await this.catalog.transition(image.id, ImagePhase.Converting, { bytesDone: 0, bytesTotal: virtualSize, bytesPerSecond: 0, statusReason: null }, [
      ImagePhase.Queued,
    ]);
    const c = await this.convertInto(
      image.id,
      objectKeys.imageDisk(src.id),
      src.format as DiskFormat,
      src.sizeBytes,
      virtualSize,
      image.format as ConvertFormat,
      quota,
      signal,
    );
    await quota.commit(c.size);
    await this.catalog.transition(
      image.id,
      ImagePhase.Ready,
      {
        sizeBytes: c.size,
        virtualSizeBytes: c.judged.virtualSizeBytes,
        actualSizeBytes: c.judged.actualSizeBytes ?? null,
        checksum: c.sha256,
        checksumMd5: c.md5 ?? null,
      },
      [ImagePhase.Verifying],
    );
  }

  /**
   * Stores qemu-img's output `out` as `key`, hashed on the way. The filesystem store takes the file itself (hashed
   * by one read, mostly from the page cache, then fsync and rename: no second write of the disk); otherwise (S3, or
   * CONVERSION_TMP_DIR on another filesystem) it is streamed into the store.
   */
  private async store(key: string, out: string, outSize: number, signal?: AbortSignal, adopt = true): Promise<Digests> {
    if (adopt && this.storage.localPath(key)) {
      // the hash (a read) and the fsync (the disk) at once; the handle is open before the file can be renamed
      const fh = await open(out, 'r');
      let hashed: PromiseSettledResult<Digests>;
      let moved: PromiseSettledResult<{ size: number } | null>;
      try {
        [hashed, moved] = await Promise.allSettled([hashHandle(fh, this.cfg.ingestion.computeMd5, signal), this.storage.adoptFile(key, out)]);
      } finally {
        await fh.close();
      }
      if (moved.status === 'rejected') throw moved.reason;
      if (hashed.status === 'rejected') throw hashed.reason;
      const digests = hashed.value;
      const adopted = moved.value;
      if (adopted) {
        if (adopted.size !== digests.size) throw new Error(`stored ${adopted.size} bytes of the conversion but read ${digests.size}`);
        return digests;
      }
      return this.store(key, out, outSize, signal, false); // another filesystem: streamed after all
    }
    const hash = new HashingStream({ md5: this.cfg.ingestion.computeMd5 });
    const [put] = await Promise.all([
      this.storage.putStream(key, hash, { signal, sizeHint: outSize, contentType: 'application/octet-stream' }),
      pipeline(createReadStream(out, { highWaterMark: 1024 * 1024 }), hash),
    ]);
    const digests = hash.digests!;
    if (put.size !== digests.size) throw new Error(`stored ${put.size} bytes of the conversion but read ${digests.size}`);
    return digests;
  }

  private async convertInto(
    id: string,
    srcKey: string,
    from: DiskFormat,
    size: number,
    virtualSize: number,
    to: ConvertFormat,
    quota: ImageBytesQuota,
    signal?: AbortSignal,
  ): Promise<Converted> {
    const key = objectKeys.imageDisk(id);
    const dir = conversionDir(id);
    await this.cleanUp(id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const out = join(dir, `disk.${to}`);
    const started = Date.now();
    try {
      const onProgress = (f: number) => {
        const done = Math.round(f * virtualSize);
        const secs = (Date.now() - started) / 1000;
        void quota.keepAlive().catch(() => undefined);
        void this.catalog.recordConversionProgress(id, { bytesDone: done, bytesPerSecond: secs > 0 ? Math.round(done / secs) : 0 }).catch(() => undefined);
      };
      const file = this.storage.localPath(srcKey);
      const directOutput = await supportsDirectIo(dir);
      const run = (target: { file: string } | { url: string }) =>
        this.inspector.qemu.convert(from, target, { file: out, format: to }, { signal, onProgress, directOutput });
      if (file) await run({ file });
      else await withRangeRelay(this.storage, srcKey, size, (url) => run({ url }));
      const convertedAt = Date.now();
      // the same rules on the result as on anything brought
      const judged = await this.inspector.qemu.inspect(to, { file: out });
      const judgedAt = Date.now();
      const outSize = (await stat(out)).size;
      await quota.ensure(Math.max(outSize, virtualSize));
      const digests = await this.store(key, out, outSize, signal);
      await this.catalog.transition(id, ImagePhase.Verifying, { sizeBytes: digests.size, bytesDone: virtualSize, bytesPerSecond: null }, [
        ImagePhase.Converting,
      ]);
      const end = Date.now();
      this.log.log(
        `Converted ${id} from ${from} to ${to}: ${size} -> ${digests.size} bytes in ${end - started} ms (qemu-img convert${directOutput ? ' -t none' : ''} ${convertedAt - started} ms, judged ${judgedAt - convertedAt} ms, stored ${end - judgedAt} ms)`,
      );
      return { size: digests.size, sha256: digests.sha256, md5: digests.md5, format: to, judged };
    } finally {
      await this.cleanUp(id);
    }
  }
}
