import { Hypervisor, ImageFormat, ImageKind, ImagePhase, ImageStatus, IsoUsage, OsCategory, Scope, SourceType } from './image.enums';

/**
 * An image as other modules see it (quota, ingestion, vm-links, image-bytes): the catalog's port type, plain data
 * with no TypeORM. CatalogService answers it and the ImageLifecycle hooks take it; the table behind it
 * (ImageEntity) stays inside the catalog. image.entity.ts checks at compile time that the entity and this
 * record have exactly the same fields and types, both ways, so the two cannot drift.
 */
export interface ImageRecord {
  id: string;
  kind: ImageKind;
  name: string;
  description: string;
  osCategory: OsCategory;
  osName: string;
  osVersion: string;
  osBits: number;
  hypervisor: Hypervisor;
  format: ImageFormat;
  isoUsage: IsoUsage | null;
  scope: Scope;
  status: ImageStatus;
  phase: ImagePhase;
  statusReason: string | null;
  ownerId: string;
  departmentId: string;
  zoneId: string;
  sizeBytes: number | null;
  /** What the disk holds once expanded (qemu-img's virtual-size), set at READY; an ISO's is its size. */
  virtualSizeBytes: number | null;
  /** What the image occupies on its store as qemu-img counts it (allocated blocks), set at READY; null when unknown. */
  actualSizeBytes: number | null;
  checksum: string | null;
  /** md5 of the stored bytes (hex), for legacy consumers: when INGEST_COMPUTE_MD5 is on or the expected checksum is an md5. */
  checksumMd5: string | null;
  /** What the owner says the file's checksum is (`sha256:<hex>` or `md5:<hex>`); the import refuses other bytes. */
  expectedChecksum: string | null;
  /** sha256 of the file as it came, when the stored image is a conversion of it (then `checksum` is the stored image's). */
  sourceSha256: string | null;
  /** The image this one is a converted copy of (POST /images/{id}/conversions). */
  convertedFrom: string | null;
  sourceType: SourceType;
  sourceUrl: string | null;
  sourcePath: string | null;
  /** The configured file source a FILE image was picked from. */
  sourceName: string | null;
  bytesDone: number;
  bytesTotal: number | null;
  /** Transfer rate while importing (bytes per second, smoothed); null when no transfer runs. */
  bytesPerSecond: number | null;
  /** When the record was created (milliseconds). */
  createdAt: Date;
  updatedAt: Date;
}

/** An image with its tags, as CatalogService's reads answer it. */
export type ImageWithTags = ImageRecord & { tags: string[] };
