import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from '../common/transformers';
import { QuotaResource, ReservationStatus } from './quota.enums';

/**
 * The ledger: one row per department and resource. `used + reserved` never exceeds `limitAmount`
 * (NULL = unlimited) because every increase is one conditional UPDATE of this row (see QuotaRepository).
 */
@Entity({ name: 'quota_ledger' })
export class QuotaLedgerEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  departmentId: string;

  @PrimaryColumn({ type: 'simple-enum', enum: QuotaResource })
  resource: QuotaResource;

  /** NULL = unlimited. */
  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  limitAmount: number | null;

  /** What committed reservations hold (images that exist, VMs that run). */
  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  used: number;

  /** What pending reservations hold. */
  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  reserved: number;

  /** Bumped by every change of used/reserved or of what is in flight; reconcile writes only if it did not move. */
  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  version: number;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

/**
 * A reservation: amounts held for one department until committed, released, expired or refunded.
 * `(callerId, idemKey)` makes reserve idempotent; `version` makes every change of it (and of its items)
 * conditional on what the change read.
 */
@Entity({ name: 'quota_reservations' })
@Index('UQ_quota_reservations_key', ['callerId', 'idemKey'], { unique: true })
@Index('IDX_quota_reservations_dept_status', ['departmentId', 'status'])
@Index('IDX_quota_reservations_status_expires', ['status', 'expiresAt'])
@Index('IDX_quota_reservations_deleting', ['deletingAt'])
export class QuotaReservationEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  /** The caller's id (a service's `sub`), or `#catalog` for the catalog's own image reservations. */
  @Column({ type: 'varchar', length: 64 })
  callerId: string;

  /** The caller-supplied idempotency key. */
  @Column({ type: 'varchar', length: 128 })
  idemKey: string;

  /** sha256 of the department and amounts asked: the same key with another request is refused. */
  @Column({ type: 'varchar', length: 64 })
  fingerprint: string;

  @Column({ type: 'varchar', length: 64 })
  departmentId: string;

  /** What the reservation pays for (an image id for the catalog's reservations). */
  @Column({ type: 'varchar', length: 64, nullable: true })
  subjectId: string | null;

  @Column({ type: 'simple-enum', enum: ReservationStatus })
  status: ReservationStatus;

  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  version: number;

  @Column({ type: 'int' })
  ttlSeconds: number;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;

  /** Set while the subject is being deleted (between the catalog's beforeDelete and afterDelete). */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  deletingAt: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

/** One resource of a reservation: what it holds pending (`reserved`) and what it has committed. */
@Entity({ name: 'quota_reservation_items' })
export class QuotaReservationItemEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  reservationId: string;

  @PrimaryColumn({ type: 'simple-enum', enum: QuotaResource })
  resource: QuotaResource;

  /** Held in the ledger's `reserved` while pending. */
  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  reserved: number;

  /** Held in the ledger's `used`. */
  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  committed: number;

  @Column({ type: 'boolean', default: false })
  pending: boolean;
}

export const QUOTA_ENTITIES = [QuotaLedgerEntity, QuotaReservationEntity, QuotaReservationItemEntity];
