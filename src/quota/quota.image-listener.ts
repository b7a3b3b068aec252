import { Injectable, Logger } from '@nestjs/common';
import { ImageEntity } from '../catalog/image.entity';
import { ImageLifecycleListener } from '../catalog/image-lifecycle';
import { QuotaService } from './quota.service';

/**
 * The catalog's create and delete flows, as seen by the quota (R16):
 *   beforeCreate   reserve 1 image + the expected bytes (QUOTA_EXCEEDED stops the create)
 *   createAborted  release it
 *   afterCreate    commit the image count (the image exists); the bytes stay reserved for ingestion
 *   beforeDelete   mark the reservation as being deleted
 *   afterDelete    refund everything the image held
 * afterCreate and afterDelete run after the row changed: a failure there is logged, not thrown (the
 * reservation then expires or its delete mark is settled by the sweeper, and reconcile repairs usage).
 */
@Injectable()
export class QuotaImageListener implements ImageLifecycleListener {
  private readonly logger = new Logger('Quota');

  constructor(private readonly quota: QuotaService) {}

  async beforeCreate(image: ImageEntity): Promise<void> {
    await this.quota.reserveForImage(image.id, image.departmentId, image.bytesTotal);
  }

  async createAborted(image: ImageEntity): Promise<void> {
    await this.quota.releaseForImage(image.id);
  }

  async afterCreate(image: ImageEntity): Promise<void> {
    await this.quota.commitImageCount(image.id).catch((e: unknown) => this.logger.error(`Committing the image count of ${image.id} failed: ${String(e)}`));
  }

  async beforeDelete(image: ImageEntity): Promise<void> {
    await this.quota.markImageDeleting(image.id, image.departmentId, image.sizeBytes);
  }

  async afterDelete(image: ImageEntity): Promise<void> {
    await this.quota.refundImage(image.id).catch((e: unknown) => this.logger.error(`Refunding image ${image.id} failed: ${String(e)}`));
  }
}
