import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { HealthRegistry } from '../health/health.registry';
import { objectKeys, ObjectStorage } from '../storage/object-storage';
import { DiskFormat } from './format-sniffer';
import { formatBytes } from './import-failure';
import { IngestError } from './ingestion.errors';
import { QemuImageInfo, QemuImg, withRangeRelay } from './qemu-img';

/**
 * qemu-img's verdict on a stored image (qemu-img.ts), on every store: the file itself on the filesystem store, a
 * loopback Range relay over the object on S3 (nothing copied to local disk). At start it checks that qemu-img runs
 * (and has the http driver, Debian's qemu-block-extra, when the store is S3): without it no image could be judged,
 * so the service refuses to start and says what to install; readiness reports `qemu-img` too.
 */
@Injectable()
export class ImageInspector implements OnModuleInit {
  private readonly log = new Logger('Ingestion');
  readonly qemu: QemuImg;
  private lastProbe?: { at: number; result: Promise<{ version: string; drivers: string[] }> };

  constructor(
    private readonly cfg: AppConfig,
    private readonly storage: ObjectStorage,
    private readonly health: HealthRegistry,
  ) {
    this.qemu = new QemuImg(cfg.ingestion.qemuImg);
  }

  async onModuleInit(): Promise<void> {
    const binary = this.cfg.ingestion.qemuImg.binary;
    let found: { version: string; drivers: string[] };
    try {
      found = await this.probe(true);
    } catch (e) {
      throw new Error(
        `qemu-img is required to judge stored images but "${binary}" cannot run (${(e as Error).message}). Install the Debian package qemu-utils (apt-get install qemu-utils) or set QEMU_IMG to its path.`,
      );
    }
    if (!this.storage.localPath(objectKeys.imageDisk('00000000-0000-0000-0000-000000000000')) && !found.drivers.includes('http')) {
      throw new Error(
        `qemu-img ${found.version} has no http block driver, which the S3 store needs to judge stored images in place. Install the Debian package qemu-block-extra (apt-get install qemu-block-extra).`,
      );
    }
    this.log.log(`qemu-img ${found.version} judges every stored image (${this.storage.localPath('probe') ? 'local files' : 'over a loopback HTTP relay'})`);
    this.health.register('qemu-img', async () => {
      await this.probe();
    });
  }

  private probe(fresh = false): Promise<{ version: string; drivers: string[] }> {
    if (fresh || !this.lastProbe || Date.now() - this.lastProbe.at > 30_000) {
      const result = this.qemu.probe();
      this.lastProbe = { at: Date.now(), result };
      result.catch(() => {
        if (this.lastProbe?.result === result) this.lastProbe = undefined;
      });
    }
    return this.lastProbe!.result;
  }

  /**
   * Judges the stored object of `imageId` (`size` bytes, declared `format`).
   * @throws IngestError for a refused image (see QemuImg.inspect; VIRTUAL_SIZE_TOO_LARGE above the ceiling)
   */
  async inspect(imageId: string, format: DiskFormat, size: number): Promise<QemuImageInfo> {
    const key = objectKeys.imageDisk(imageId);
    const file = this.storage.localPath(key);
    const info = file ? await this.qemu.inspect(format, { file }) : await withRangeRelay(this.storage, key, size, (url) => this.qemu.inspect(format, { url }));
    const max = this.cfg.ingestion.maxVirtualSizeBytes;
    if (info.virtualSizeBytes > max) {
      throw new IngestError(
        'VIRTUAL_SIZE_TOO_LARGE',
        `The image's virtual size is ${formatBytes(info.virtualSizeBytes)}, above the largest accepted, ${formatBytes(max)} (INGEST_MAX_VIRTUAL_SIZE_BYTES)`,
        { details: { virtualSizeBytes: info.virtualSizeBytes, maxVirtualSizeBytes: max } },
      );
    }
    return info;
  }
}
