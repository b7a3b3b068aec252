/**
 * What a department's quota counts. One ledger row per department and resource.
 * The catalog uses IMAGE_COUNT and IMAGE_BYTES; the platform's compute side keeps VM_COUNT, VCPU,
 * MEMORY_BYTES and DISK_BYTES in the same ledger through the reservation API.
 * Adding a kind: add it at the END of this enum (the order is the lock order), give it an entry in
 * QUOTA_RESOURCE_INFO and generate a migration (the column is an enum on MariaDB).
 */
export enum QuotaResource {
  ImageCount = 'IMAGE_COUNT',
  ImageBytes = 'IMAGE_BYTES',
  VmCount = 'VM_COUNT',
  Vcpu = 'VCPU',
  MemoryBytes = 'MEMORY_BYTES',
  DiskBytes = 'DISK_BYTES',
}

/** Every resource, in the one order every transaction touches ledger rows in (no lock-order deadlocks). */
export const QUOTA_RESOURCES: readonly QuotaResource[] = Object.values(QuotaResource);

export interface QuotaResourceInfo {
  unit: 'count' | 'bytes';
  /** The largest limit a super admin may set; anything above is refused as absurd (QUOTA_LIMIT_INVALID). */
  maxLimit: number;
}

const PIB = 2 ** 50;

export const QUOTA_RESOURCE_INFO: Record<QuotaResource, QuotaResourceInfo> = {
  [QuotaResource.ImageCount]: { unit: 'count', maxLimit: 1_000_000 },
  [QuotaResource.ImageBytes]: { unit: 'bytes', maxLimit: PIB },
  [QuotaResource.VmCount]: { unit: 'count', maxLimit: 1_000_000 },
  [QuotaResource.Vcpu]: { unit: 'count', maxLimit: 10_000_000 },
  [QuotaResource.MemoryBytes]: { unit: 'bytes', maxLimit: PIB },
  [QuotaResource.DiskBytes]: { unit: 'bytes', maxLimit: PIB },
};

/**
 * PENDING: some amount is held as `reserved`. COMMITTED: everything it holds is `used`, nothing pending.
 * RELEASED / EXPIRED: given back before anything was committed. REFUNDED: what it held was given back
 * (the image or VM it paid for is gone).
 */
export enum ReservationStatus {
  Pending = 'PENDING',
  Committed = 'COMMITTED',
  Released = 'RELEASED',
  Expired = 'EXPIRED',
  Refunded = 'REFUNDED',
}

/** Statuses that hold nothing in the ledger. */
export const FINISHED_STATUSES: readonly ReservationStatus[] = [ReservationStatus.Released, ReservationStatus.Expired, ReservationStatus.Refunded];
