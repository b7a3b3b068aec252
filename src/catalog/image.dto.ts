import { ApiHideProperty, ApiProperty, ApiPropertyOptional, IntersectionType } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsDefined,
  IsEnum,
  IsObject,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUrl,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { View } from '../access/access.policy';
import { PageQuery } from '../common/pagination.dto';
import { Immutable, Optional } from '../common/validation';
import { Hypervisor, ImageFormat, ImageKind, ImagePhase, ImageStatus, IsoUsage, OS_BITS, OsCategory, Scope, SourceType } from './image.enums';

export const CHECKSUM_PATTERN = /^(?:sha256:[0-9a-fA-F]{64}|md5:[0-9a-fA-F]{32}|[0-9a-fA-F]{64}|[0-9a-fA-F]{32})$/;

/** `sha256:<hex>` / `md5:<hex>` in lower case, from any form CHECKSUM_PATTERN accepts. */
export function normaliseChecksum(text: string): string {
  const t = text.trim().toLowerCase();
  if (t.includes(':')) return t;
  return `${t.length === 64 ? 'sha256' : 'md5'}:${t}`;
}

export const TAG_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N} ._:/+-]{0,63}$/u;
/** How a tag is stored and searched: trimmed and lower-cased, so `Prod`, `PROD` and ` prod ` are one tag. */
export const normaliseTag = (tag: string) => tag.trim().toLowerCase();
const NO_EDGE_SPACES = /^\S(.*\S)?$/s;
const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);
/** `tags=a&tags=b` or `tags=a,b` */
const toList = ({ value }: { value: unknown }) =>
  value === undefined
    ? undefined
    : (Array.isArray(value) ? value : [value])
        .flatMap((v) => (typeof v === 'string' ? v.split(',') : [v]))
        .map((v) => (typeof v === 'string' ? v.trim() : v))
        .filter((v) => v !== '');

export class ImageSourceDto {
  /** URL: the service downloads `url`; UPLOAD: the bytes are PUT to /images/{id}/file; FILE: a file picked from the platform's file directory. */
  @IsEnum(SourceType)
  @ApiProperty({ enum: SourceType, enumName: 'SourceType', example: SourceType.Url })
  type: SourceType;

  /** http(s) URL of the file, for type URL, e.g. `http://10.0.0.5/centos7.qcow2`. */
  @ValidateIf((o: ImageSourceDto) => o.type === SourceType.Url || o.url !== undefined)
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false, allow_underscores: true }, { message: 'url must be an http or https URL' })
  @ApiPropertyOptional({ example: 'http://10.0.0.5/images/centos7.qcow2', maxLength: 2048 })
  url?: string;

  /** Path inside the file source, for type FILE, e.g. `isos/CentOS-7.iso`. */
  @ValidateIf((o: ImageSourceDto) => o.type === SourceType.File || o.path !== undefined)
  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  @ApiPropertyOptional({ example: 'isos/CentOS-7-x86_64-Minimal.iso', maxLength: 1024 })
  path?: string;

  /** Name of the configured file source, for type FILE (default: the first one configured). */
  @Optional()
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9_-]{0,31}$/)
  @ApiPropertyOptional({ example: 'share' })
  fileSource?: string;
}

export class CreateImageDto {
  /** IMAGE (a disk with an OS) or ISO (installation media or a tool kit). */
  @IsEnum(ImageKind)
  @ApiProperty({ enum: ImageKind, enumName: 'ImageKind', example: ImageKind.Image })
  kind: ImageKind;

  /** Display name, 1-255 characters. */
  @Transform(trim)
  @IsString()
  @IsNotEmpty()
  @MaxLength(255)
  @ApiProperty({ example: 'CentOS 7.9 with zabbix agent', maxLength: 255 })
  name: string;

  /** Free text, up to 2000 characters. */
  @Optional()
  @IsString()
  @MaxLength(2000)
  @ApiPropertyOptional({ example: 'Minimal CentOS 7.9, zabbix-agent and filebeat installed', maxLength: 2000 })
  description?: string;

  /** OS category. A WINDOWS_IDE image gives VMs with at most one data disk. */
  @IsEnum(OsCategory)
  @ApiProperty({ enum: OsCategory, enumName: 'OsCategory', example: OsCategory.CentOS })
  osCategory: OsCategory;

  /** OS name, e.g. "CentOS". */
  @Optional()
  @IsString()
  @MaxLength(128)
  @ApiPropertyOptional({ example: 'CentOS', maxLength: 128 })
  osName?: string;

  /** OS version, e.g. "7.9". */
  @Optional()
  @IsString()
  @MaxLength(64)
  @ApiPropertyOptional({ example: '7.9', maxLength: 64 })
  osVersion?: string;

  /** OS architecture bits. */
  @Optional()
  @IsIn(OS_BITS as unknown as number[])
  @ApiPropertyOptional({ example: 64, enum: OS_BITS, default: 64, type: 'integer' })
  osBits?: 32 | 64;

  /** Virtualization technology; default: the zone's. */
  @Optional()
  @IsEnum(Hypervisor)
  @ApiPropertyOptional({ example: 'KVM', enum: Hypervisor, enumName: 'Hypervisor' })
  hypervisor?: Hypervisor;

  /** File format. Required for an IMAGE; an ISO's format is `iso` (the default for ISOs). */
  @ValidateIf((o: CreateImageDto) => o.kind === ImageKind.Image || o.format !== undefined)
  @IsEnum(ImageFormat)
  @ApiPropertyOptional({ enum: ImageFormat, enumName: 'ImageFormat', example: ImageFormat.Qcow2 })
  format?: ImageFormat;

  /** ISO only, and required there: OS (bootable install media) or TOOL (a tool kit; never creates a VM). */
  @ValidateIf((o: CreateImageDto) => o.kind === ImageKind.Iso || o.isoUsage !== undefined)
  @IsEnum(IsoUsage)
  @ApiPropertyOptional({ example: 'OS', enum: IsoUsage, enumName: 'IsoUsage' })
  isoUsage?: IsoUsage;

  /** Scope: PRIVATE by default; only a super admin may create FEATURED or PUBLIC. */
  @Optional()
  @IsEnum(Scope)
  @ApiPropertyOptional({ example: 'PRIVATE', enum: Scope, enumName: 'Scope', default: Scope.Private })
  scope?: Scope;

  /** The zone the image is created in. */
  @IsUUID()
  @ApiProperty({ example: '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21', format: 'uuid' })
  zoneId: string;

  /** Up to 20 tags, each 1-64 letters, digits, spaces or `._:/+-`, starting with a letter or digit. */
  @Optional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Matches(TAG_PATTERN, { each: true, message: 'each tag must be 1-64 letters, digits, spaces or ._:/+-, starting with a letter or digit' })
  @ApiPropertyOptional({ type: [String], example: ['centos', 'zabbix'], maxItems: 20 })
  tags?: string[];

  /** Where the bytes come from. */
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => ImageSourceDto)
  @ApiProperty({ type: ImageSourceDto })
  source: ImageSourceDto;

  /**
   * The file's size when known: the department's storage quota is reserved for it at create.
   * Without it the import reserves storage as the bytes arrive and stops when the quota runs out.
   */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  @ApiPropertyOptional({ type: 'integer', format: 'int64', minimum: 0, example: 2147483648 })
  expectedSizeBytes?: number;

  /**
   * The file's checksum when the owner knows it: `sha256:<64 hex>`, `md5:<32 hex>`, or bare hex (64 digits: sha256,
   * 32: md5). The bytes are checked against it while they stream in, whatever the source; a mismatch fails the
   * import (CHECKSUM_MISMATCH in the reason) and nothing is stored.
   */
  @Optional()
  @IsString()
  @Matches(CHECKSUM_PATTERN, { message: 'expectedChecksum must be sha256:<64 hex>, md5:<32 hex>, or 64 or 32 hex digits' })
  @ApiPropertyOptional({ example: 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', maxLength: 71 })
  expectedChecksum?: string;
}

/**
 * Editable fields. `hypervisor`, `format`, `source`/`url`, `kind` and `zoneId` can never change:
 * sending any of them answers 400 IMMUTABLE_FIELD.
 */
export class UpdateImageDto {
  @Optional()
  @Transform(trim)
  @IsString()
  @IsNotEmpty()
  @MaxLength(255)
  @Matches(NO_EDGE_SPACES)
  @ApiPropertyOptional({ description: 'New display name, 1-255 characters.', example: 'centos7-base-v2', maxLength: 255 })
  name?: string;

  @Optional()
  @IsString()
  @MaxLength(2000)
  @ApiPropertyOptional({ description: 'New free text, up to 2000 characters.', example: 'CentOS 7.9 minimal, patched 2026-11', maxLength: 2000 })
  description?: string;

  @Optional()
  @IsEnum(OsCategory)
  @ApiPropertyOptional({ description: 'New OS family.', example: 'CENTOS', enum: OsCategory, enumName: 'OsCategory' })
  osCategory?: OsCategory;

  @Optional()
  @IsString()
  @MaxLength(128)
  @ApiPropertyOptional({ description: 'New OS name.', example: 'CentOS', maxLength: 128 })
  osName?: string;

  @Optional()
  @IsString()
  @MaxLength(64)
  @ApiPropertyOptional({ description: 'New OS version.', example: '7.9.2009', maxLength: 64 })
  osVersion?: string;

  @Optional()
  @IsIn(OS_BITS as unknown as number[])
  @ApiPropertyOptional({ description: 'New OS architecture: 32 or 64.', example: 64, enum: OS_BITS, type: 'integer' })
  osBits?: 32 | 64;

  /** ISO only. */
  @Optional()
  @IsEnum(IsoUsage)
  @ApiPropertyOptional({ example: 'TOOL', enum: IsoUsage, enumName: 'IsoUsage' })
  isoUsage?: IsoUsage;

  /** New scope (403 SCOPE_CHANGE_FORBIDDEN otherwise). */
  @Optional()
  @IsEnum(Scope)
  @ApiPropertyOptional({ example: 'PUBLIC', enum: Scope, enumName: 'Scope' })
  scope?: Scope;

  /** Replaces all tags. */
  @Optional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Matches(TAG_PATTERN, { each: true, message: 'each tag must be 1-64 letters, digits, spaces or ._:/+-, starting with a letter or digit' })
  @ApiPropertyOptional({ example: ['centos', 'base'], type: [String], maxItems: 20 })
  tags?: string[];

  @ApiHideProperty() @Immutable() hypervisor?: never;
  @ApiHideProperty() @Immutable() format?: never;
  @ApiHideProperty() @Immutable() source?: never;
  @ApiHideProperty() @Immutable() url?: never;
  @ApiHideProperty() @Immutable() sourceUrl?: never;
  @ApiHideProperty() @Immutable() kind?: never;
  @ApiHideProperty() @Immutable() zoneId?: never;
}

export enum ImageSort {
  Name = 'name',
  CreatedAt = 'createdAt',
  Size = 'sizeBytes',
  VirtualSize = 'virtualSizeBytes',
}

/** Filters shared by the list and the per-view counts. */
export class ImageFilterQuery {
  /** Only images carrying every one of these tags: `tags=a&tags=b` or `tags=a,b`; a tag matches however it is typed (`Prod` finds `prod`), accents count. */
  @IsOptional()
  @Transform(toList)
  @IsArray()
  @ArrayMaxSize(10)
  @IsString({ each: true })
  @MaxLength(64, { each: true })
  @ApiPropertyOptional({ example: ['centos'], type: [String], maxItems: 10 })
  tags?: string[];

  @IsOptional()
  @IsEnum(ImageKind)
  @ApiPropertyOptional({ description: 'Only images of this kind (IMAGE or ISO).', example: 'IMAGE', enum: ImageKind, enumName: 'ImageKind' })
  kind?: ImageKind;

  /** Quick search: a case-insensitive, accent-sensitive substring of the name or description (`%`, `_` and backslashes literal), or a status (ACTIVE/INACTIVE). */
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MaxLength(100)
  @ApiPropertyOptional({ maxLength: 100, example: 'centos' })
  q?: string;

  /** Name contains (case-insensitive, accent-sensitive, `%`, `_` and backslashes literal). */
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MaxLength(255)
  @ApiPropertyOptional({ example: 'centos', maxLength: 255 })
  name?: string;

  @IsOptional()
  @IsEnum(OsCategory)
  @ApiPropertyOptional({ description: 'Only images of this OS family.', example: 'CENTOS', enum: OsCategory, enumName: 'OsCategory' })
  osCategory?: OsCategory;

  @IsOptional()
  @IsEnum(Hypervisor)
  @ApiPropertyOptional({ description: 'Only images for this hypervisor.', example: 'KVM', enum: Hypervisor, enumName: 'Hypervisor' })
  hypervisor?: Hypervisor;

  @IsOptional()
  @IsEnum(ImageStatus)
  @ApiPropertyOptional({ description: 'Only ACTIVE, or only INACTIVE, images.', example: 'ACTIVE', enum: ImageStatus, enumName: 'ImageStatus' })
  status?: ImageStatus;

  @IsOptional()
  @IsEnum(ImagePhase)
  @ApiPropertyOptional({ description: 'Only images in this phase.', example: 'READY', enum: ImagePhase, enumName: 'ImagePhase' })
  phase?: ImagePhase;

  @IsOptional()
  @IsEnum(ImageFormat)
  @ApiPropertyOptional({ description: 'Only images in this file format.', example: 'qcow2', enum: ImageFormat, enumName: 'ImageFormat' })
  format?: ImageFormat;

  @IsOptional()
  @IsUUID()
  @ApiPropertyOptional({ description: 'Only images of this zone.', example: '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21', format: 'uuid' })
  zoneId?: string;

  /** Owner user id, exactly (case-sensitive). */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9._:@-]{1,64}$/)
  @ApiPropertyOptional({ example: 'u-alice' })
  ownerId?: string;

  /** Owner's department id, exactly (case-sensitive). */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9._:@-]{1,64}$/)
  @ApiPropertyOptional({ example: 'dept-rd' })
  departmentId?: string;

  /** Only images whose virtual size is at least this many bytes (images without one yet never match). */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  @ApiPropertyOptional({ example: 1073741824, type: 'integer', format: 'int64', minimum: 0 })
  minVirtualSize?: number;

  /** Only images whose virtual size is at most this many bytes (images without one yet never match). */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  @ApiPropertyOptional({ example: 21474836480, type: 'integer', format: 'int64', minimum: 0 })
  maxVirtualSize?: number;
}

export class ListImagesQuery extends IntersectionType(PageQuery, ImageFilterQuery) {
  /** The view; default `all` for a super admin, `featured` for everyone else. */
  @IsOptional()
  @IsEnum(View)
  @ApiPropertyOptional({ example: 'all', enum: View, enumName: 'View' })
  view?: View;

  @IsOptional()
  @IsEnum(ImageSort)
  @ApiPropertyOptional({
    description: 'The sort key: name, createdAt (the default), sizeBytes or virtualSizeBytes.',
    example: 'createdAt',
    enum: ImageSort,
    enumName: 'ImageSort',
    default: ImageSort.CreatedAt,
  })
  sort?: ImageSort;

  @IsOptional()
  @IsIn(['asc', 'desc'])
  @ApiPropertyOptional({ description: 'asc or desc (the default).', example: 'desc', enum: ['asc', 'desc'], default: 'desc' })
  order?: 'asc' | 'desc';
}

export class ImageSourceResponse {
  @ApiProperty({ description: 'URL, UPLOAD, FILE or CONVERSION.', example: 'URL', enum: SourceType, enumName: 'SourceType' })
  type: SourceType;
  /** The URL the bytes were downloaded from (type URL). */
  @ApiPropertyOptional({ example: 'http://10.0.0.5/images/centos7.qcow2', nullable: true, type: String })
  url: string | null;
  /** The picked path (type FILE). */
  @ApiPropertyOptional({ example: 'isos/CentOS-7-x86_64-Minimal-2009.iso', nullable: true, type: String })
  path: string | null;
  /** The file source the path belongs to (type FILE). */
  @ApiPropertyOptional({ example: 'share', nullable: true, type: String })
  fileSource: string | null;
}

export class ImageProgressResponse {
  /** Bytes stored so far. */
  @ApiProperty({ example: 536870912, type: 'integer', format: 'int64' })
  bytesDone: number;
  /** Total bytes when known. */
  @ApiProperty({ example: 1073741824, type: 'integer', format: 'int64', nullable: true })
  bytesTotal: number | null;
  /** 0-100 when the total is known, else null. */
  @ApiProperty({ example: 50, type: 'number', nullable: true })
  percent: number | null;
  /** Current transfer rate while bytes stream in (bytes per second, smoothed), else null. */
  @ApiProperty({ example: 104857600, type: 'integer', format: 'int64', nullable: true })
  bytesPerSecond: number | null;
}

export class ImageResponse {
  @ApiProperty({ description: 'The image id.', example: '6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13', format: 'uuid' })
  id: string;
  @ApiProperty({
    description: 'IMAGE (a disk with an OS) or ISO (installation media or a tool kit).',
    example: 'IMAGE',
    enum: ImageKind,
    enumName: 'ImageKind',
  })
  kind: ImageKind;
  /** Display name. @example "centos7-base" */
  name: string;
  /** Free text, up to 2000 characters; empty when none was given. @example "CentOS 7.9 minimal, cloud-init enabled" */
  description: string;
  @ApiProperty({ description: 'The OS family.', example: 'CENTOS', enum: OsCategory, enumName: 'OsCategory' })
  osCategory: OsCategory;
  /** The OS name. @example "CentOS" */
  osName: string;
  /** The OS version. @example "7.9" */
  osVersion: string;
  @ApiProperty({ description: 'OS architecture: 32 or 64 bits.', example: 64, enum: OS_BITS, type: 'integer' })
  osBits: number;
  @ApiProperty({ description: 'The virtualization technology the image runs on.', example: 'KVM', enum: Hypervisor, enumName: 'Hypervisor' })
  hypervisor: Hypervisor;
  @ApiProperty({ description: 'The file format: qcow2, raw, vmdk, vhd, vhdx or iso.', example: 'qcow2', enum: ImageFormat, enumName: 'ImageFormat' })
  format: ImageFormat;
  /** ISO only: OS or TOOL; null for images. */
  @ApiProperty({ example: 'OS', enum: IsoUsage, enumName: 'IsoUsage', nullable: true })
  isoUsage: IsoUsage | null;
  @ApiProperty({
    description: "Who may see and use it: PRIVATE (owner, and the department's admins), PUBLIC or FEATURED (everyone).",
    example: 'PRIVATE',
    enum: Scope,
    enumName: 'Scope',
  })
  scope: Scope;
  /** ACTIVE: usable to create VMs; INACTIVE: uploading, failed or disabled (see phase and statusReason). */
  @ApiProperty({ example: 'ACTIVE', enum: ImageStatus, enumName: 'ImageStatus' })
  status: ImageStatus;
  @ApiProperty({
    description: 'Where the image is in its life: QUEUED, IMPORTING, CONVERTING, VERIFYING, READY, FAILED or DISABLED.',
    example: 'READY',
    enum: ImagePhase,
    enumName: 'ImagePhase',
  })
  phase: ImagePhase;
  /** Why the image is inactive, in words a person understands (failed imports, disabling). */
  @ApiProperty({ example: 'The checksum does not match the expected one: upload the file again', nullable: true, type: String })
  statusReason: string | null;
  /** Tags, lower-cased. @example ["centos","base"] */
  tags: string[];
  /** The user who created the image. @example "u-alice" */
  ownerId: string;
  /** The owner's department, whose quota the image counts in. @example "dept-rd" */
  departmentId: string;
  @ApiProperty({ description: 'The zone the image belongs to.', example: '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21', format: 'uuid' })
  zoneId: string;
  /** Stored size in bytes, once known. */
  @ApiProperty({ example: 1073741824, type: 'integer', format: 'int64', nullable: true })
  sizeBytes: number | null;
  /** The disk's size once expanded, as qemu-img reports it (what a VM's root disk must hold), once READY; an ISO's is its size. */
  @ApiProperty({ example: 10737418240, type: 'integer', format: 'int64', nullable: true })
  virtualSizeBytes: number | null;
  /** What the image occupies on its store as qemu-img counts it (allocated blocks), once READY; null when unknown (S3). */
  @ApiProperty({ example: 1073741824, type: 'integer', format: 'int64', nullable: true })
  actualSizeBytes: number | null;
  /** sha256 of the stored bytes (hex), once known. */
  @ApiProperty({ nullable: true, type: String, example: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' })
  checksum: string | null;
  /** md5 of the stored bytes (hex), when the service computes it (INGEST_COMPUTE_MD5) or an md5 was expected. */
  @ApiProperty({ nullable: true, type: String, example: 'd41d8cd98f00b204e9800998ecf8427e' })
  checksumMd5: string | null;
  /** The checksum given at creation (`sha256:<hex>` or `md5:<hex>`), which the stored bytes were checked against. */
  @ApiProperty({ example: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', nullable: true, type: String })
  expectedChecksum: string | null;
  /** sha256 of the file as it came when the stored image is a conversion of it (the zone requires another format); `checksum` is then the stored image's. */
  @ApiProperty({ example: '2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae', nullable: true, type: String })
  sourceSha256: string | null;
  /** The image this one is a converted copy of. */
  @ApiProperty({ example: '3d9a1b6e-2c4f-4e7a-8b05-9f1e6c3a7d24', nullable: true, type: String, format: 'uuid' })
  convertedFrom: string | null;
  @ApiProperty({ description: 'Where the bytes came from (URL, UPLOAD, FILE or CONVERSION).', type: ImageSourceResponse })
  source: ImageSourceResponse;
  @ApiProperty({ description: 'Import progress (bytes stored, total, percent, rate).', type: ImageProgressResponse })
  progress: ImageProgressResponse;
  @ApiProperty({ description: 'When the record was created.', example: '2026-11-20T08:15:00.000Z', type: String, format: 'date-time' })
  createdAt: string;
  @ApiProperty({ description: 'When the record last changed.', example: '2026-11-20T08:17:42.000Z', type: String, format: 'date-time' })
  updatedAt: string;
}

export class ImagePage {
  @ApiProperty({ description: 'The images on this page.', type: [ImageResponse] })
  items: ImageResponse[];
  /** Matching images across all pages. @example 42 */
  @ApiProperty({ type: 'integer' })
  total: number;
  /** The 1-based page number. @example 1 */
  @ApiProperty({ type: 'integer' })
  page: number;
  /** Items per page. @example 20 */
  @ApiProperty({ type: 'integer' })
  pageSize: number;
  /** The view that was applied (the role's default when none was asked). */
  @ApiProperty({ example: 'all', enum: View, enumName: 'View' })
  view: View;
}

/** How many images each view holds for the caller, with the same filters applied (the console's tab counts). */
export class ImageCountsResponse {
  /** Images the caller may see in the all view. @example 42 */
  @ApiProperty({ type: 'integer' })
  all: number;
  /** Featured images. @example 5 */
  @ApiProperty({ type: 'integer' })
  featured: number;
  /** Public images. @example 25 */
  @ApiProperty({ type: 'integer' })
  public: number;
  /** The caller's own private images (an admin: the department's). @example 12 */
  @ApiProperty({ type: 'integer' })
  private: number;
}

export class DisableImageDto {
  /** Why the image is disabled; shown as its statusReason. */
  @Optional()
  @IsString()
  @MaxLength(500)
  @ApiPropertyOptional({ maxLength: 500, example: 'Superseded by CentOS 7.9.2009' })
  reason?: string;
}

export class DeleteImageQuery {
  /**
   * `true` deletes even when VMs were created from the image or mount the ISO (their links stay, marked
   * "image deleted"); without it such a delete answers 409 IMAGE_IN_USE listing those VMs and changes nothing.
   */
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean({ message: 'confirm must be true or false' })
  @ApiPropertyOptional({ type: Boolean, default: false, example: true })
  confirm?: boolean;
}
