import { Module } from '@nestjs/common';
import { CatalogModule } from '../catalog/catalog.module';
import { AppConfig } from '../config/app-config';
import { StorageModule } from '../storage/storage.module';
import { DownloadUrlSigner } from './download-url';
import { DownloadsController } from './downloads.controller';
import { ImageFilesController } from './image-files.controller';
import { ImageFileService } from './image-file.service';

/**
 * Reading an ACTIVE image's bytes back (R19): `GET|HEAD /images/{id}/file` with a bearer token and the signed
 * `GET|HEAD /downloads/{id}` URLs a launch hands out, both answered by ImageFileService (one byte range,
 * If-Range, the sha256 as a strong ETag). It owns the signer of those URLs: vm-links signs with it, this module
 * checks. Depends on the catalog (the image and its access check) and the ObjectStorage port only.
 */
@Module({
  imports: [CatalogModule, StorageModule],
  controllers: [ImageFilesController, DownloadsController],
  providers: [
    ImageFileService,
    { provide: DownloadUrlSigner, useFactory: (cfg: AppConfig) => new DownloadUrlSigner(cfg.vmLinks.downloadUrlSecret), inject: [AppConfig] },
  ],
  exports: [ImageFileService, DownloadUrlSigner],
})
export class ImageBytesModule {}
