import { Module, OnModuleInit } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CatalogModule } from '../catalog/catalog.module';
import { ImageLifecycle } from '../catalog/image-lifecycle';
import { EventsModule } from '../events/events.module';
import { IngestionModule } from '../ingestion/ingestion.module';
import { QuotaModule } from '../quota/quota.module';
import { StorageModule } from '../storage/storage.module';
import { DownloadsController } from './downloads.controller';
import { LaunchService } from './launch.service';
import { VmLinkEntity } from './vm-link.entity';
import { ImageVmsController, LaunchesController, VmsController } from './vm-links.controller';
import { VmLinksRepository } from './vm-links.repository';
import { VmLinksService } from './vm-links.service';

/**
 * VM linkage (R19, R20): the launch check with its VM quota reservation and download URL, the links the compute
 * side registers (created-from, ISO mounts, VM deletion), and the catalog's delete hook that shows them first.
 * ImageFileService (ingestion) answers the bytes of a signed download URL as `GET /images/{id}/file` does.
 */
@Module({
  imports: [TypeOrmModule.forFeature([VmLinkEntity]), CatalogModule, QuotaModule, StorageModule, IngestionModule, EventsModule],
  controllers: [LaunchesController, ImageVmsController, VmsController, DownloadsController],
  providers: [VmLinksRepository, VmLinksService, LaunchService],
  exports: [VmLinksService],
})
export class VmLinksModule implements OnModuleInit {
  constructor(
    private readonly lifecycle: ImageLifecycle,
    private readonly links: VmLinksService,
  ) {}

  onModuleInit(): void {
    this.lifecycle.register(this.links);
  }
}
