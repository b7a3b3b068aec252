import { Injectable, Logger } from '@nestjs/common';
import { ImageRecord } from '../catalog/image.record';
import { CreateTransaction, ImageLifecycleListener } from '../catalog/image-lifecycle';
import { QuotaService } from './quota.service';

/**
 * The catalog's create and delete flows, as seen by the quota (R16):
 *   reserveInTransaction  inside the create's transaction: the image's reservation with its count committed
 *                         and its expected bytes pending (QUOTA_EXCEEDED rolls the whole create back)
 *   createFailed          the create's transaction rolled back: settle the quota's refusal (create the
 *                         department's ledger rows, give back expired reservations) and run it again, or
 *                         answer QUOTA_EXCEEDED
 *   beforeDelete          mark the reservation as being deleted
 *   afterDelete           refund everything the image held
 * The reservation commits with the row or not at all, so a create needs no compensation and no commit after
 * it (issue 16). afterDelete runs after the row is gone: a failure there is logged, not thrown (the delete
 * mark is then settled by the sweeper, and reconcile repairs usage).
 */
@Injectable()
export class QuotaImageListener implements ImageLifecycleListener {
  private readonly logger = new Logger('Quota');
  /** per create in progress: what an earlier attempt learned */
  private readonly attempts = new WeakMap<ImageRecord, { oneByOne: boolean; swept: boolean; failures: number }>();

  constructor(private readonly quota: QuotaService) {}

  async reserveInTransaction(image: ImageRecord, m: CreateTransaction): Promise<void> {
    const state = this.attempts.get(image);
    await this.quota.reserveImageIn(m, image.id, image.departmentId, image.bytesTotal, state?.oneByOne ?? false);
  }

  async createFailed(image: ImageRecord, error: unknown): Promise<boolean> {
    const state = this.attempts.get(image) ?? { oneByOne: false, swept: false, failures: 0 };
    this.attempts.set(image, state);
    state.failures++;
    const next = await this.quota.settleImageCreate(image.departmentId, error, state.swept, state.failures);
    if (next === 'again-one-by-one') state.oneByOne = true;
    if (next === 'swept-again') state.swept = true;
    return next !== 'not-mine';
  }

  async beforeDelete(image: ImageRecord): Promise<void> {
    await this.quota.markImageDeleting(image.id, image.departmentId, image.sizeBytes);
  }

  async afterDelete(image: ImageRecord): Promise<void> {
    await this.quota.refundImage(image.id).catch((e: unknown) => this.logger.error(`Refunding image ${image.id} failed: ${String(e)}`));
  }
}
