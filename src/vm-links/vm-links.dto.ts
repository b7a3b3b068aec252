import { Injectable, PipeTransform } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsDefined,
  IsEnum,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { Role } from '../access/principal';
import { Hypervisor, ImageFormat, ImageKind, IsoUsage, OsCategory } from '../catalog/image.enums';
import { AppError } from '../common/errors';
import { PageQuery } from '../common/pagination.dto';
import { DEPARTMENT_ID } from '../quota/quota.dto';
import { ReservationStatus } from '../quota/quota.enums';
import { DownloadMethod, LinkRelation, QuotaSource } from './vm-links.enums';
import { Optional } from '../common/validation';

/** The compute side's VM id: 1-64 characters `[A-Za-z0-9._:-]`, starting with a letter or digit. */
export const VM_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** A user id as the token's `sub` carries it. */
export const USER_ID = /^[A-Za-z0-9._:@-]{1,64}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
const NAME = /^[^\p{Cc}]+$/u;
export const MAX_LAUNCH_COUNT = 100;
export const MAX_DATA_DISKS = 64;
/** Largest single disk a launch or registration may name (1 PiB). */
export const MAX_DISK_BYTES = 2 ** 50;
/** Roles a VM owner can have (a service never owns a VM). */
export const OWNER_ROLES = [Role.User, Role.Admin, Role.SuperAdmin] as const;
export type OwnerRole = (typeof OWNER_ROLES)[number];

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

/** Validates a VM id path parameter. */
@Injectable()
export class VmIdPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value !== 'string' || !VM_ID.test(value)) {
      const msg = 'vmId must be 1-64 characters [A-Za-z0-9._:-], starting with a letter or digit';
      throw new AppError('VALIDATION_FAILED', msg, { fields: [{ field: 'vmId', messages: [msg] }] });
    }
    return value;
  }
}
export const vmIdPipe = new VmIdPipe();

/** Who will own the VM(s): the scope rules are checked for this user, and this department pays the VM quota. */
export class VmOwnerDto {
  /** The owner's user id (the `sub` of their tokens). */
  @IsString()
  @Matches(USER_ID, { message: 'owner.userId must be 1-64 characters [A-Za-z0-9._:@-]' })
  @ApiProperty({ example: 'u-alice', pattern: USER_ID.source })
  userId: string;

  /** The owner's department, whose quota pays for the VMs. */
  @IsString()
  @Matches(DEPARTMENT_ID, { message: 'owner.departmentId must be 1-64 characters [A-Za-z0-9._:@-]' })
  @ApiProperty({ example: 'dept-rd', pattern: DEPARTMENT_ID.source })
  departmentId: string;

  /** The owner's role (default `user`): a super admin may use every image, others featured, public and their own. */
  @Optional()
  @IsIn(OWNER_ROLES as unknown as string[])
  @ApiPropertyOptional({ enum: OWNER_ROLES, enumName: 'VmOwnerRole', default: Role.User, example: Role.User })
  role?: OwnerRole;
}

export class LaunchRequestDto {
  /**
   * Chosen by the compute side for this launch (1-128 characters `[A-Za-z0-9._:@/+=-]`): the same key and
   * request again answer the same reservation (200, with a fresh download URL) instead of reserving twice;
   * the same key with another owner department, count or disk sizes is refused (422 IDEMPOTENCY_KEY_REUSED).
   */
  @IsString()
  @Matches(IDEMPOTENCY_KEY, { message: 'idempotencyKey must be 1-128 characters [A-Za-z0-9._:@/+=-]' })
  @ApiProperty({ example: 'launch-2026-11-20-7f3a', pattern: IDEMPOTENCY_KEY.source })
  idempotencyKey: string;

  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => VmOwnerDto)
  @ApiProperty({ description: 'Who will own the VMs: the scope rules are checked for this user, and quota is charged to their department.', type: VmOwnerDto })
  owner: VmOwnerDto;

  /** The zone the VMs are created in; it must be the image's. */
  @IsUUID('all', { message: 'zoneId must be a UUID' })
  @ApiProperty({ format: 'uuid', example: '5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11' })
  zoneId: string;

  /** How many VMs (one or more). */
  @IsInt()
  @Min(1)
  @Max(MAX_LAUNCH_COUNT)
  @ApiProperty({ type: 'integer', minimum: 1, maximum: MAX_LAUNCH_COUNT, example: 3 })
  count: number;

  /** Data disks each VM will have (besides its system disk); a Windows-IDE image or ISO allows at most 1. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_DATA_DISKS)
  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: MAX_DATA_DISKS, default: 0, example: 1 })
  dataDisks?: number;

  /**
   * Size of each VM's root (system) disk in bytes, when the compute side knows it: a disk image whose virtual size is
   * larger is refused (422 ROOT_DISK_TOO_SMALL). An ISO has no such rule.
   */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  @ApiPropertyOptional({ type: 'integer', format: 'int64', minimum: 1, example: 21474836480 })
  rootDiskBytes?: number;

  /**
   * Sizes in bytes of each VM's data disks, when the compute side knows them: they are reserved as DISK_BYTES
   * with the root disk. When `dataDisks` is given too it must be their number; without it, it is.
   */
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(MAX_DATA_DISKS)
  @IsInt({ each: true })
  @Min(1, { each: true })
  @Max(MAX_DISK_BYTES, { each: true })
  @ApiPropertyOptional({
    type: 'array',
    items: { type: 'integer', format: 'int64', minimum: 1, maximum: MAX_DISK_BYTES },
    maxItems: MAX_DATA_DISKS,
    example: [107374182400],
  })
  dataDiskBytes?: number[];
}

/** The facts about the image the compute side needs to create the VMs. */
export class LaunchImageResponse {
  @ApiProperty({ description: 'The image id.', format: 'uuid', example: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23' })
  id: string;
  @ApiProperty({ description: 'IMAGE or ISO.', enum: ImageKind, enumName: 'ImageKind', example: ImageKind.Image })
  kind: ImageKind;
  @ApiProperty({ description: 'Display name.', example: 'CentOS 7.9 base' })
  name: string;
  @ApiProperty({ description: 'The file format compute must expect.', enum: ImageFormat, enumName: 'ImageFormat', example: ImageFormat.Qcow2 })
  format: ImageFormat;
  @ApiProperty({ description: 'The hypervisor the VMs must run on.', enum: Hypervisor, enumName: 'Hypervisor', example: 'KVM' })
  hypervisor: Hypervisor;
  @ApiProperty({ description: 'The OS family (WINDOWS_IDE limits data disks to one).', enum: OsCategory, enumName: 'OsCategory', example: OsCategory.CentOS })
  osCategory: OsCategory;
  @ApiProperty({ description: 'The OS name.', example: 'CentOS' })
  osName: string;
  @ApiProperty({ description: 'The OS version.', example: '7.9' })
  osVersion: string;
  @ApiProperty({ type: 'integer', description: 'OS architecture: 32 or 64 bits.', enum: [32, 64], example: 64 })
  osBits: number;
  /** An ISO's usage (always OS for a launch), null for a disk image. */
  @ApiProperty({ enum: IsoUsage, enumName: 'IsoUsage', nullable: true, example: null })
  isoUsage: IsoUsage | null;
  @ApiProperty({ description: "The image's zone.", format: 'uuid', example: '5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11' })
  zoneId: string;
  /** Size of the stored file in bytes. */
  @ApiProperty({ type: 'integer', format: 'int64', nullable: true, example: 2147483648 })
  sizeBytes: number | null;
  /** The disk's size once expanded (qemu-img): the smallest root disk the image fits on. */
  @ApiProperty({ type: 'integer', format: 'int64', nullable: true, example: 21474836480 })
  virtualSizeBytes: number | null;
  /** sha256 of the stored file (hex): check the download against it. */
  @ApiProperty({ type: String, nullable: true, example: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' })
  checksum: string | null;
  /** md5 of the stored file (hex), when the service computed it. */
  @ApiProperty({ type: String, nullable: true, example: null })
  checksumMd5: string | null;
}

/** Where to read the image's bytes from, until `expiresAt`, with no token. */
export class LaunchDownloadResponse {
  /** A presigned object-store URL (MinIO) or a signed URL of this service (filesystem store); GET it, Range works. */
  @ApiProperty({ example: 'https://images.hcm.internal/downloads/0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23?expires=1795719600&signature=9c1f...' })
  url: string;
  @ApiProperty({
    description:
      'PRESIGNED (a presigned URL of the object store) or SERVICE (a signed `/downloads/{id}` URL of this service); either is read with an HTTP GET, ranges allowed.',
    enum: DownloadMethod,
    enumName: 'DownloadMethod',
    example: DownloadMethod.Service,
  })
  method: DownloadMethod;
  @ApiProperty({ description: 'Until when `url` works.', format: 'date-time', example: '2026-11-20T09:15:00.000Z' })
  expiresAt: string;
}

export class LaunchResponse {
  /** The VM quota reservation: pass it when registering each VM (`PUT /vms/{vmId}/origin`). */
  @ApiProperty({ format: 'uuid', example: '3f2e1d0c-9b8a-4765-8432-10fedcba9876' })
  reservationId: string;
  /** PENDING while VMs are left to register; COMMITTED once all were; EXPIRED or RELEASED when its time ran out. */
  @ApiProperty({ enum: ReservationStatus, enumName: 'ReservationStatus', example: ReservationStatus.Pending })
  reservationStatus: ReservationStatus;
  /** VMs reserved (the launch's count). */
  @ApiProperty({ type: 'integer', example: 3 })
  count: number;
  /** VMs of the reservation not registered yet. */
  @ApiProperty({ type: 'integer', example: 3 })
  pendingVms: number;
  /**
   * DISK_BYTES reserved for each VM: its root disk (`rootDiskBytes`, else a disk image's virtual size; an ISO's
   * root disk counts only when given) plus its data disks (`dataDiskBytes`). 0 when nothing is known.
   */
  @ApiProperty({ type: 'integer', format: 'int64', example: 21474836480 })
  diskBytesPerVm: number;
  /** When the reservation gives its unregistered VMs back (LAUNCH_RESERVATION_TTL_SECONDS). */
  @ApiProperty({ format: 'date-time', example: '2026-11-20T09:15:00.000Z' })
  expiresAt: string;
  @ApiProperty({ description: 'What compute needs to know about the image.', type: LaunchImageResponse })
  image: LaunchImageResponse;
  @ApiProperty({ description: 'Where compute reads the bytes without a token.', type: LaunchDownloadResponse })
  download: LaunchDownloadResponse;
}

export class RegisterOriginDto {
  /** The image or OS ISO the VM was created from. */
  @IsUUID('all', { message: 'imageId must be a UUID' })
  @ApiProperty({ format: 'uuid', example: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23' })
  imageId: string;

  /** The VM's name as the console shows it (a later PUT with another name renames it here). */
  @Transform(trim)
  @IsString()
  @Matches(NAME, { message: 'vmName must be 1-255 characters without control characters' })
  @MaxLength(255)
  @ApiProperty({ example: 'web-01', maxLength: 255 })
  vmName: string;

  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => VmOwnerDto)
  @ApiProperty({ description: "The VM's owner: the scope rules are checked for this user, and VM quota is charged to their department.", type: VmOwnerDto })
  owner: VmOwnerDto;

  /** The VM's zone; it must be the image's, as at the launch. */
  @IsUUID('all', { message: 'zoneId must be a UUID' })
  @ApiProperty({ format: 'uuid', example: '5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11' })
  zoneId: string;

  /**
   * The launch's reservation (`POST /images/{id}/launches`): one of its VMs is committed for this VM. Without
   * it, or when it no longer holds a VM (expired, all registered), the VM is counted in the department's usage
   * directly, only if the department has room under its VM_COUNT limit (409 QUOTA_EXCEEDED otherwise).
   */
  @Optional()
  @IsUUID('all', { message: 'reservationId must be a UUID' })
  @ApiPropertyOptional({ format: 'uuid', example: '3f2e1d0c-9b8a-4765-8432-10fedcba9876' })
  reservationId?: string;

  /**
   * The VM's disks in bytes (root and data), charged as DISK_BYTES with the VM and refunded with it. Default: its
   * share of the launch's DISK_BYTES while the reservation holds VMs, else a disk image's virtual size (an ISO:
   * nothing). Taken from the launch's reservation while that holds it, else only if the department has room
   * under its DISK_BYTES limit (409 QUOTA_EXCEEDED otherwise).
   */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  @ApiPropertyOptional({ type: 'integer', format: 'int64', minimum: 0, example: 21474836480 })
  diskBytes?: number;
}

export class RegisterMountDto {
  /** The VM's name as the console shows it. */
  @Transform(trim)
  @IsString()
  @Matches(NAME, { message: 'vmName must be 1-255 characters without control characters' })
  @MaxLength(255)
  @ApiProperty({ example: 'web-01', maxLength: 255 })
  vmName: string;

  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => VmOwnerDto)
  @ApiProperty({ description: "The VM's owner: the scope rules are checked for this user.", type: VmOwnerDto })
  owner: VmOwnerDto;

  /** The VM's zone; it must be the ISO's. */
  @IsUUID('all', { message: 'zoneId must be a UUID' })
  @ApiProperty({ format: 'uuid', example: '5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11' })
  zoneId: string;
}

/** One link of a VM to an image, as registered. */
export class VmLinkResponse {
  @ApiProperty({ description: "The compute side's VM id.", example: 'vm-0001' })
  vmId: string;
  @ApiProperty({ description: "The VM's name.", example: 'web-01' })
  vmName: string;
  @ApiProperty({ description: 'The image or ISO id.', format: 'uuid', example: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23' })
  imageId: string;
  @ApiProperty({ description: 'CREATED_FROM or ISO_MOUNTED.', enum: LinkRelation, enumName: 'LinkRelation', example: LinkRelation.CreatedFrom })
  relation: LinkRelation;
  @ApiProperty({ description: "The VM's owner.", example: 'u-alice' })
  ownerId: string;
  @ApiProperty({ description: "The VM owner's department.", example: 'dept-rd' })
  departmentId: string;
  /** The launch reservation the VM was registered with, if any. */
  @ApiProperty({ type: String, format: 'uuid', nullable: true, example: '3f2e1d0c-9b8a-4765-8432-10fedcba9876' })
  reservationId: string | null;
  @ApiProperty({ description: 'When the link was registered.', format: 'date-time', example: '2026-11-20T08:15:00.000Z' })
  since: string;
  /** Where the VM's quota came from (NONE for an ISO mount). */
  @ApiProperty({ enum: QuotaSource, enumName: 'VmQuotaSource', example: QuotaSource.LaunchReservation })
  quota: QuotaSource;
}

export class ListImageVmsQuery extends PageQuery {
  /** Only this relation. */
  @IsOptional()
  @IsEnum(LinkRelation)
  @ApiPropertyOptional({ example: 'CREATED_FROM', enum: LinkRelation, enumName: 'LinkRelation' })
  relation?: LinkRelation;
}

/** A VM linked to an image. */
export class ImageVmResponse {
  @ApiProperty({ description: "The compute side's VM id.", example: 'vm-0001' })
  vmId: string;
  @ApiProperty({ description: "The VM's name.", example: 'web-01' })
  vmName: string;
  @ApiProperty({
    description: 'CREATED_FROM (the VM was created from the image) or ISO_MOUNTED (the VM mounts the ISO).',
    enum: LinkRelation,
    enumName: 'LinkRelation',
    example: LinkRelation.CreatedFrom,
  })
  relation: LinkRelation;
  @ApiProperty({ description: "The VM's owner.", example: 'u-alice' })
  ownerId: string;
  @ApiProperty({ description: "The VM owner's department.", example: 'dept-rd' })
  departmentId: string;
  /** When the link was registered. */
  @ApiProperty({ format: 'date-time', example: '2026-11-20T08:15:00.000Z' })
  since: string;
}

export class ImageVmPage {
  @ApiProperty({ description: 'The image asked about.', format: 'uuid', example: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23' })
  imageId: string;
  /** The image was deleted (confirmed); these VMs still exist and keep their links. */
  @ApiProperty({ example: false })
  imageDeleted: boolean;
  @ApiProperty({ description: 'The VMs on this page, oldest link first.', type: [ImageVmResponse] })
  items: ImageVmResponse[];
  @ApiProperty({ type: 'integer', description: 'VMs linked to the image, across all pages.', example: 2 })
  total: number;
  @ApiProperty({ type: 'integer', description: 'The 1-based page number.', example: 1 })
  page: number;
  @ApiProperty({ type: 'integer', description: 'Items per page.', example: 20 })
  pageSize: number;
}

/** An image a VM came from or mounts. */
export class VmImageResponse {
  @ApiProperty({ description: 'The image or ISO id.', format: 'uuid', example: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23' })
  imageId: string;
  /** The image's name now, or its last name when it was deleted. */
  @ApiProperty({ example: 'CentOS 7.9 base' })
  name: string;
  @ApiProperty({ description: 'IMAGE or ISO.', enum: ImageKind, enumName: 'ImageKind', example: ImageKind.Image })
  kind: ImageKind;
  @ApiProperty({ description: 'CREATED_FROM or ISO_MOUNTED.', enum: LinkRelation, enumName: 'LinkRelation', example: LinkRelation.CreatedFrom })
  relation: LinkRelation;
  @ApiProperty({ description: 'When the link was registered.', format: 'date-time', example: '2026-11-20T08:15:00.000Z' })
  since: string;
  /** The image was deleted after the VM was linked to it ("image deleted"). */
  @ApiProperty({ example: false })
  imageDeleted: boolean;
  @ApiProperty({ description: 'When the image was deleted; null while it exists.', type: String, format: 'date-time', nullable: true, example: null })
  imageDeletedAt: string | null;
}

export class VmImagesResponse {
  @ApiProperty({ description: 'The VM asked about.', example: 'vm-0001' })
  vmId: string;
  /** null when nothing is recorded for this VM (or nothing the caller may see). */
  @ApiProperty({ type: String, nullable: true, example: 'web-01' })
  vmName: string | null;
  @ApiProperty({ description: "The VM's owner; null when nothing is recorded.", type: String, nullable: true, example: 'u-alice' })
  ownerId: string | null;
  @ApiProperty({ description: "The VM owner's department; null when nothing is recorded.", type: String, nullable: true, example: 'dept-rd' })
  departmentId: string | null;
  /** The image or OS ISO the VM was created from; null when none is recorded (a VM that only mounts ISOs). */
  @ApiProperty({ type: VmImageResponse, nullable: true })
  createdFrom: VmImageResponse | null;
  /** The ISOs mounted now. */
  @ApiProperty({ type: [VmImageResponse] })
  isoMounts: VmImageResponse[];
}
