import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintAsNumber } from '../common/transformers';

/**
 * The transactional outbox: one row per event, written in the same transaction as the change it reports.
 * `position` is the cursor of GET /events and the SSE stream; it comes from the `#position` counter, taken
 * under that counter's row lock, so positions increase in commit order (see EventsRepository).
 */
@Entity({ name: 'event_outbox' })
@Index('UQ_event_outbox_id', ['id'], { unique: true })
@Index('UQ_event_outbox_subject_sequence', ['subject', 'sequence'], { unique: true })
@Index('IDX_event_outbox_image_position', ['imageId', 'position'])
@Index('IDX_event_outbox_published_position', ['publishedAt', 'position'])
export class EventOutboxEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber })
  position: number;

  @Column({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 64 })
  type: string;

  @Column({ type: 'int' })
  version: number;

  /** ms since the epoch */
  @Column({ type: 'bigint', transformer: bigintAsNumber })
  time: number;

  /** `image:<id>` or `department:<id>`: what `sequence` counts */
  @Column({ type: 'varchar', length: 100 })
  subject: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  sequence: number;

  @Column({ type: 'varchar', length: 36, nullable: true })
  imageId: string | null;

  /** who may see the event, frozen when it was written */
  @Column({ type: 'varchar', length: 16, nullable: true })
  scope: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  ownerId: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  departmentId: string | null;

  /** JSON */
  @Column({ type: 'text' })
  actor: string;

  @Column({ type: 'varchar', length: 128, nullable: true })
  correlationId: string | null;

  /** JSON */
  @Column({ type: 'text' })
  payload: string;

  /** ms since the epoch; NULL until the relay had the broker confirm it */
  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  publishedAt: number | null;

  /** the relay replica that holds the row until `claimedUntil` (ms) */
  @Column({ type: 'varchar', length: 64, nullable: true })
  claimedBy: string | null;

  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  claimedUntil: number | null;
}

/** Counters: `#position` (the cursor) and one per subject (the per-image / per-department sequence). */
@Entity({ name: 'event_counters' })
export class EventCounterEntity {
  @PrimaryColumn({ type: 'varchar', length: 100 })
  name: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  value: number;
}

/** The relay's leader lease: one replica at a time publishes, so order per image holds across replicas. */
@Entity({ name: 'event_relay_lease' })
export class EventRelayLeaseEntity {
  @PrimaryColumn({ type: 'varchar', length: 32 })
  name: string;

  @Column({ type: 'varchar', length: 100, nullable: true })
  holder: string | null;

  /** ms since the epoch */
  @Column({ type: 'bigint', transformer: bigintAsNumber })
  until: number;
}

export const EVENT_ENTITIES = [EventOutboxEntity, EventCounterEntity, EventRelayLeaseEntity];
