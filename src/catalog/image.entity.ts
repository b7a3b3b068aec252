import { Column, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { bigintAsNumber } from '../common/transformers';
import { Hypervisor, ImageFormat, ImageKind, ImagePhase, ImageStatus, IsoUsage, OsCategory, Scope, SourceType } from './image.enums';
import type { ImageRecord } from './image.record';

@Entity({ name: 'images' })
// every sort is (key, id): the sort indexes end in the id, so a page is read off the index in order, ties
// included (InnoDB appends the primary key by itself, SQLite's rowid is not the id)
@Index('IDX_images_scope_created', ['scope', 'createdAt', 'id'])
@Index('IDX_images_owner_scope', ['ownerId', 'scope'])
@Index('IDX_images_dept_scope', ['departmentId', 'scope'])
@Index('IDX_images_zone', ['zoneId'])
@Index('IDX_images_name', ['name', 'id'])
@Index('IDX_images_created', ['createdAt', 'id'])
@Index('IDX_images_size', ['sizeBytes', 'id'])
// the import watchdog looks up unfinished images every few seconds (IngestionService.checkLostJobs)
@Index('IDX_images_phase', ['phase'])
@Index('IDX_images_virtual_size', ['virtualSizeBytes'])
// the console's OS and hypervisor filters together, in the default order (issue 16: walking the createdAt index
// testing both columns took 5 ms for a plain user's page on 100,000 images, p99 106 ms under load; 0.3 ms read here)
@Index('IDX_images_os_hv_created', ['osCategory', 'hypervisor', 'createdAt', 'id'])
export class ImageEntity implements ImageRecord {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'simple-enum', enum: ImageKind })
  kind: ImageKind;

  @Column({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'varchar', length: 2000, default: '' })
  description: string;

  @Column({ type: 'simple-enum', enum: OsCategory })
  osCategory: OsCategory;

  @Column({ type: 'varchar', length: 128, default: '' })
  osName: string;

  @Column({ type: 'varchar', length: 64, default: '' })
  osVersion: string;

  @Column({ type: 'smallint', default: 64 })
  osBits: number;

  @Column({ type: 'simple-enum', enum: Hypervisor })
  hypervisor: Hypervisor;

  @Column({ type: 'simple-enum', enum: ImageFormat })
  format: ImageFormat;

  @Column({ type: 'simple-enum', enum: IsoUsage, nullable: true })
  isoUsage: IsoUsage | null;

  @Column({ type: 'simple-enum', enum: Scope })
  scope: Scope;

  @Column({ type: 'simple-enum', enum: ImageStatus })
  status: ImageStatus;

  @Column({ type: 'simple-enum', enum: ImagePhase })
  phase: ImagePhase;

  @Column({ type: 'varchar', length: 1000, nullable: true })
  statusReason: string | null;

  @Column({ type: 'varchar', length: 64 })
  ownerId: string;

  @Column({ type: 'varchar', length: 64 })
  departmentId: string;

  @Column({ type: 'varchar', length: 36 })
  zoneId: string;

  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  sizeBytes: number | null;

  /** What the disk holds once expanded (qemu-img's virtual-size), set at READY; an ISO's is its size. */
  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  virtualSizeBytes: number | null;

  /** What the image occupies on its store as qemu-img counts it (allocated blocks), set at READY; null when unknown. */
  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  actualSizeBytes: number | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  checksum: string | null;

  /** md5 of the stored bytes (hex), for legacy consumers: when INGEST_COMPUTE_MD5 is on or the expected checksum is an md5. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  checksumMd5: string | null;

  /** What the owner says the file's checksum is (`sha256:<hex>` or `md5:<hex>`); the import refuses other bytes. */
  @Column({ type: 'varchar', length: 71, nullable: true })
  expectedChecksum: string | null;

  /** sha256 of the file as it came, when the stored image is a conversion of it (then `checksum` is the stored image's). */
  @Column({ type: 'varchar', length: 64, nullable: true })
  sourceSha256: string | null;

  /** The image this one is a converted copy of (POST /images/{id}/conversions). */
  @Column({ type: 'varchar', length: 36, nullable: true })
  convertedFrom: string | null;

  @Column({ type: 'simple-enum', enum: SourceType })
  sourceType: SourceType;

  @Column({ type: 'varchar', length: 2048, nullable: true })
  sourceUrl: string | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  sourcePath: string | null;

  /** The configured file source a FILE image was picked from. */
  @Column({ type: 'varchar', length: 32, nullable: true })
  sourceName: string | null;

  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  bytesDone: number;

  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  bytesTotal: number | null;

  /** Transfer rate while importing (bytes per second, smoothed); null when no transfer runs. */
  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  bytesPerSecond: number | null;

  /**
   * When the record was created, in milliseconds on both databases: set by the code (a CreateDateColumn is
   * seconds on SQLite, and with precision 3 it drifts forever on MariaDB, stack-facts section 2).
   */
  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @UpdateDateColumn()
  updatedAt: Date;
}

/** True when A and B are assignable to each other (and name the same keys, optional ones included). */
type SameShape<A, B> = [A] extends [B]
  ? [B] extends [A]
    ? [keyof A] extends [keyof B]
      ? [keyof B] extends [keyof A]
        ? true
        : false
      : false
    : false
  : false;
type AssertTrue<T extends true> = T;
/**
 * Fails to compile when ImageEntity and ImageRecord drift apart: `implements` checks that the entity has every
 * field of the record with a compatible type; this checks the other way too (no column the record lacks).
 */
export type ImageEntityMatchesImageRecord = AssertTrue<SameShape<ImageEntity, ImageRecord>>;

/**
 * Tags live in their own table so "all of these tags" is an indexed lookup. Each row carries its image's
 * createdAt (which never changes), so a list filtered by a tag walks (tag, createdAt, imageId) in the list's
 * default order and stops after a page, whether the tag is on ten images or on half of them (issue 16).
 */
@Entity({ name: 'image_tags' })
@Index('IDX_image_tags_tag_created', ['tag', 'createdAt', 'imageId'])
export class ImageTagEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  imageId: string;

  @PrimaryColumn({ type: 'varchar', length: 64 })
  tag: string;

  /** the image's createdAt; null only in rows written before the column existed and not yet filled */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  createdAt: Date | null;
}

/**
 * One row whose version goes up in the same transaction as every change that can alter what a list query
 * matches (create, delete, edit, phase change). Cached totals are keyed by it, so they are exact across replicas.
 */
@Entity({ name: 'catalog_state' })
export class CatalogStateEntity {
  @PrimaryColumn({ type: 'int' })
  id: number;

  @Column({ type: 'bigint', default: 0, transformer: bigintAsNumber })
  version: number;
}
