import { Logger, Module, OnModuleInit } from '@nestjs/common';
import { AppConfig, StorageConfig } from '../config/app-config';
import { HealthRegistry } from '../health/health.registry';
import { FsStorage } from './fs-storage';
import { MinioStorage } from './minio-storage';
import { ObjectStorage } from './object-storage';

/** Builds the adapter STORAGE_DRIVER names. */
export function createObjectStorage(config: StorageConfig): ObjectStorage {
  switch (config.driver) {
    case 'minio':
      return new MinioStorage({ ...config.minio, partSizeBytes: config.partSizeBytes });
    case 'fs':
      return new FsStorage(config.fsRoot, { directIo: config.fsDirectIo });
  }
}

/**
 * Provides the ObjectStorage port (inject `ObjectStorage`). At start it creates the bucket or root
 * directory; when the store is not reachable yet the service still starts, readiness reports
 * `storage: down`, and the first call retries.
 */
@Module({
  providers: [{ provide: ObjectStorage, useFactory: (config: AppConfig) => createObjectStorage(config.storage), inject: [AppConfig] }],
  exports: [ObjectStorage],
})
export class StorageModule implements OnModuleInit {
  private readonly log = new Logger('Storage');

  constructor(
    private readonly storage: ObjectStorage,
    private readonly health: HealthRegistry,
  ) {}

  async onModuleInit(): Promise<void> {
    this.health.register('storage', () => this.storage.ping());
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.storage.init(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
        }),
      ]);
    } catch (e) {
      this.log.error(`Object store (${this.storage.driver}) not ready: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
