import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ZoneEntity } from './zone.entity';
import { ZonesController } from './zones.controller';
import { ZonesRepository } from './zones.repository';
import { ZonesService } from './zones.service';

@Module({
  imports: [TypeOrmModule.forFeature([ZoneEntity])],
  controllers: [ZonesController],
  providers: [ZonesRepository, ZonesService],
  exports: [ZonesService],
})
export class ZonesModule {}
