import { Logger, Module, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Server } from 'node:http';
import { CatalogModule } from '../catalog/catalog.module';
import { AppConfig } from '../config/app-config';
import { FileSourcesModule } from '../file-sources/file-sources.module';
import { QuotaModule } from '../quota/quota.module';
import { ingestChunkPool, releaseChunk } from '../storage/chunk-pool';
import { ObjectStorage } from '../storage/object-storage';
import { StorageModule } from '../storage/storage.module';
import { ZonesModule } from '../zones/zones.module';
import { ConversionService } from './conversion';
import { hashThread } from './hash-worker';
import { ConversionController } from './conversion.controller';
import { ImageInspector } from './image-inspector';
import { ImportProcessor } from './import.processor';
import { IngestPipeline } from './ingest-pipeline';
import { IngestionController } from './ingestion.controller';
import { IngestionService } from './ingestion.service';
import { FileImporter } from './sources/file-import';
import { UrlFetcher } from './sources/url-fetcher';
import { UploadService } from './upload.service';

/**
 * Getting bytes into object storage (R13, R14, R17): URL imports and picked files (FileSourcesModule) as
 * queue jobs, direct uploads, retries, the
 * catalog's create/delete hooks and start-up recovery (reading the bytes back is ImageBytesModule).
 * Needs the JobQueue port (JobsModule, global) and the ObjectStorage port.
 */
@Module({
  imports: [CatalogModule, QuotaModule, StorageModule, FileSourcesModule, ZonesModule],
  controllers: [IngestionController, ConversionController],
  providers: [
    { provide: UrlFetcher, useFactory: (cfg: AppConfig) => UrlFetcher.fromConfig(cfg), inject: [AppConfig] },
    ImageInspector,
    ConversionService,
    IngestPipeline,
    FileImporter,
    ImportProcessor,
    UploadService,
    IngestionService,
  ],
  exports: [IngestionService],
})
export class IngestionModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private warming?: Promise<void>;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly cfg: AppConfig,
    private readonly storage: ObjectStorage,
  ) {}

  /** What the start-up made ready goes with the application (a process that starts many, as tests do, keeps none). */
  async onApplicationShutdown(): Promise<void> {
    if (this.storage.driver !== 'fs') return;
    await this.warming;
    ingestChunkPool.drain();
    await hashThread.stop();
  }

  onApplicationBootstrap(): void {
    // the filesystem store's pipeline (IngestPipeline.store): its pooled slots and hashing thread made ready now,
    // not by the first import (bench:upload: the first upload after start-up was the slowest of four)
    if (this.storage.driver === 'fs' && this.cfg.ingestion.hashWorker) {
      ingestChunkPool.prefill();
      const slot = ingestChunkPool.take();
      this.warming = hashThread
        .warm(slot)
        .catch((e: unknown) => new Logger('Ingestion').warn(`the hashing thread did not start: ${String(e)}`))
        .finally(() => releaseChunk(slot));
    }
    // Node cuts any request that takes longer than 5 minutes to arrive (server.requestTimeout); an upload of a
    // multi-GiB image over an ordinary link takes longer. Uploads have their own idle timeout instead
    // (URL_IDLE_TIMEOUT_MS without a byte), and headers still must arrive within headersTimeout.
    const server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    if (server && typeof server.requestTimeout === 'number') {
      server.requestTimeout = 0;
      new Logger('Ingestion').debug('HTTP requestTimeout disabled for streamed uploads');
    }
  }
}
