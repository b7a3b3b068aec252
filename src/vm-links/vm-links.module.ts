import { Module, OnModuleInit } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CatalogModule } from '../catalog/catalog.module';
import { ImageLifecycle } from '../catalog/image-lifecycle';
import { EventsModule } from '../events/events.module';
import { ImageBytesModule } from '../image-bytes/image-bytes.module';
import { QuotaModule } from '../quota/quota.module';
import { StorageModule } from '../storage/storage.module';
import { LaunchService } from './launch.service';
import { VmLinkEntity } from './vm-link.entity';
import { ImageVmsController, LaunchesController, VmsController } from './vm-links.controller';
import { VmLinksRepository } from './vm-links.repository';
import { VmLinksService } from './vm-links.service';

/**
 * VM linkage (R19, R20): the launch check with its VM quota reservation and download URL, the links the compute
 * side registers (created-from, ISO mounts, VM deletion), and the catalog's delete hook that shows them first.
 * The signed download URL is signed with ImageBytesModule's DownloadUrlSigner; that module answers it.
 */
@Module({
  imports: [TypeOrmModule.forFeature([VmLinkEntity]), CatalogModule, QuotaModule, StorageModule, ImageBytesModule, EventsModule],
  controllers: [LaunchesController, ImageVmsController, VmsController],
  providers: [VmLinksRepository, VmLinksService, LaunchService],
  exports: [VmLinksService],
})
export class VmLinksModule implements OnModuleInit {
  constructor(
    private readonly lifecycle: ImageLifecycle,
    private readonly links: VmLinksService,
  ) {}

  onModuleInit(): void {
    this.lifecycle.register('vm-links', this.links);
  }
}
