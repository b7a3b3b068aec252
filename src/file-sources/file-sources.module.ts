import { Module } from '@nestjs/common';
import { FileSourcesController } from './file-sources.controller';
import { FileSourcesService } from './file-sources.service';

/**
 * The platform's file directory (R14): the sources FILE_SOURCES configures (SMB shares through smbclient,
 * directories mounted on the host, buckets of an S3 store), their listing API, and the FileSource adapters
 * ingestion reads picked files with (FileSourcesService.get).
 */
@Module({
  controllers: [FileSourcesController],
  providers: [FileSourcesService],
  exports: [FileSourcesService],
})
export class FileSourcesModule {}
