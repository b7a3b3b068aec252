import { Logger } from '@nestjs/common';
import { AppError } from '../common/errors';
import { QuotaResource, ReservationStatus } from '../quota/quota.enums';
import type { ReservationRecord } from '../quota/quota.repository';
import { QuotaService } from '../quota/quota.service';

const log = new Logger('Ingestion');

/** How far ahead an import of unknown size reserves storage quota while it streams. */
export const QUOTA_STEP_BYTES = 64 * 1024 * 1024;

const isCode = (e: unknown, code: string) => e instanceof AppError && e.code === code;

/**
 * The storage bytes of one image's quota reservation (R16), through QuotaService's public API only.
 *
 * The catalog reserves 1 image + the expected bytes when the record is created, and commits the image count
 * once the row exists; the bytes stay pending for the import, which:
 *   open(atLeast)   reopens the bytes item (a retried import reserves again) with at least `atLeast`;
 *   ensure(total)   makes room for `total` bytes before they are stored: the Content-Length of a URL or an
 *                   upload, or, while streaming a file of unknown size, the next step of QUOTA_STEP_BYTES;
 *                   throws QUOTA_EXCEEDED when the department has no room;
 *   keepAlive()     renews the reservation's expiry on a long import;
 *   commit(size)    the real size becomes usage (the rest goes back);
 *   releaseFor(id)  after a failure, gives the pending bytes back and keeps the image count (the record stays).
 *
 * An image without a reservation (created before the quota module existed) imports unenforced; the quota's
 * reconcile counts it from the catalog.
 */
export class ImageBytesQuota {
  private renewedAt = Date.now();

  private constructor(
    private readonly quota: QuotaService,
    readonly imageId: string,
    private reservationId: string | null,
    private reserved: number,
    private readonly ttlMs: number,
  ) {}

  static async open(quota: QuotaService, imageId: string, atLeast: number): Promise<ImageBytesQuota> {
    const r = await quota.reservationForImage(imageId);
    if (!r) {
      log.warn(`Image ${imageId} has no quota reservation; its import is not limited by the quota`);
      return new ImageBytesQuota(quota, imageId, null, Number.MAX_SAFE_INTEGER, 0);
    }
    const q = new ImageBytesQuota(quota, imageId, r.id, 0, r.ttlSeconds * 1000);
    await q.growTo(atLeast);
    return q;
  }

  /** Bytes currently reserved for the file. */
  get allowance(): number {
    return this.reserved;
  }

  /**
   * Room for `total` bytes; asks for `step` more when it has to grow (falling back to what is left when the
   * step does not fit). Resolves with the bytes now reserved.
   * @throws AppError QUOTA_EXCEEDED
   */
  async ensure(total: number, step = 0): Promise<number> {
    if (this.reservationId === null || total <= this.reserved) return this.reserved;
    try {
      await this.growTo(total + step);
    } catch (e) {
      if (!step || !isCode(e, 'QUOTA_EXCEEDED')) throw e;
      // near the limit: take what is left in one go (the error says how much), or fail for `total` itself
      const remaining = (e as AppError).details?.remaining;
      await this.growTo(Math.max(total, typeof remaining === 'number' ? this.reserved + remaining : total));
    }
    return this.reserved;
  }

  /** Renews the reservation's expiry when a third of its lifetime has passed (a long import outlives it). */
  async keepAlive(): Promise<void> {
    if (this.reservationId === null || Date.now() - this.renewedAt < this.ttlMs / 3) return;
    this.renewedAt = Date.now(); // one renewal in flight at a time
    await this.growTo(this.reserved);
  }

  /**
   * The stored size becomes usage. Call it after the catalog recorded the size (QuotaService's contract).
   * @throws AppError QUOTA_EXCEEDED when the file turned out larger than reserved and the rest does not fit
   */
  async commit(size: number): Promise<void> {
    if (this.reservationId === null) return;
    await this.growTo(size); // reopens the item if it expired meanwhile, and renews
    await this.quota.commit(this.reservationId, { [QuotaResource.ImageBytes]: size }, [QuotaResource.ImageBytes]);
  }

  private async growTo(total: number): Promise<void> {
    for (let attempt = 0; this.reservationId !== null; attempt++) {
      try {
        const r = await this.quota.growTo(this.reservationId, QuotaResource.ImageBytes, total);
        this.reserved = bytesItem(r)?.reserved ?? total;
        this.renewedAt = Date.now();
        return;
      } catch (e) {
        // an expired PENDING reservation is expired by the call that notices, which then says NOT_PENDING;
        // it is COMMITTED now (its image count stays) and the next grow reopens its bytes
        if (attempt === 0 && isCode(e, 'RESERVATION_NOT_PENDING')) continue;
        if (isCode(e, 'RESERVATION_NOT_PENDING')) {
          log.warn(`The quota reservation of image ${this.imageId} has ended; its import is not limited by the quota`);
          this.reservationId = null;
          this.reserved = Number.MAX_SAFE_INTEGER;
          return;
        }
        throw e;
      }
    }
  }

  /**
   * After a failed import: the pending bytes go back; the image count stays used (the record still exists).
   * Best effort: a reservation left pending expires on its own (QUOTA_RESERVATION_TTL_SECONDS).
   */
  static async releaseFor(quota: QuotaService, imageId: string): Promise<void> {
    try {
      const r = await quota.reservationForImage(imageId);
      if (!r || r.status !== ReservationStatus.Pending) return;
      if (r.items.find((i) => i.resource === QuotaResource.ImageCount)?.pending) await quota.commit(r.id, undefined, [QuotaResource.ImageCount]);
      await quota.release(r.id);
    } catch (e) {
      log.warn(`Releasing the storage quota of image ${imageId} failed (it expires on its own): ${(e as Error).message}`);
    }
  }
}

const bytesItem = (r: ReservationRecord) => r.items.find((i) => i.resource === QuotaResource.ImageBytes);
