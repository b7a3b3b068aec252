import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AccessModule } from './access/access.module';
import { CatalogModule } from './catalog/catalog.module';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { RateLimitModule } from './rate-limit/rate-limit';
import { createValidationPipe } from './common/validation';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { DevModule } from './dev/dev.module';
import { DatabaseModule } from './database/database.module';
import { JOB_TYPES } from './job-catalogue';
import { HealthModule } from './health/health.module';
import { ImageBytesModule } from './image-bytes/image-bytes.module';
import { IngestionModule } from './ingestion/ingestion.module';
import { ObservabilityModule } from './observability/observability.module';
import { JobsModule } from './jobs/jobs.module';
import { QuotaModule } from './quota/quota.module';
import { StorageModule } from './storage/storage.module';
import { VmLinksModule } from './vm-links/vm-links.module';
import { ZonesModule } from './zones/zones.module';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        DatabaseModule,
        HealthModule,
        JobsModule.forRoot(config, JOB_TYPES),
        ObservabilityModule,
        RateLimitModule,
        StorageModule,
        AccessModule,
        ZonesModule,
        CatalogModule,
        QuotaModule,
        IngestionModule,
        ImageBytesModule,
        VmLinksModule,
        DevModule,
      ],
      providers: [
        { provide: APP_PIPE, useFactory: createValidationPipe },
        { provide: APP_FILTER, useClass: HttpExceptionFilter },
      ],
    };
  }
}
