import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { EventsModule } from '../events/events.module';
import { ZonesModule } from '../zones/zones.module';
import { CatalogController } from './catalog.controller';
import { CatalogRepository } from './catalog.repository';
import { CatalogService } from './catalog.service';
import { CatalogStateEntity, ImageEntity, ImageTagEntity } from './image.entity';
import { ImageLifecycle } from './image-lifecycle';

@Module({
  imports: [TypeOrmModule.forFeature([ImageEntity, ImageTagEntity, CatalogStateEntity]), ZonesModule, EventsModule],
  controllers: [CatalogController],
  providers: [CatalogRepository, CatalogService, ImageLifecycle],
  exports: [CatalogService, ImageLifecycle],
})
export class CatalogModule {}
