import { Injectable, PipeTransform } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  Allow,
  ArrayMaxSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsDefined,
  IsEnum,
  IsInt,
  IsObject,
  IsString,
  Matches,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';
import { AppError } from '../common/errors';
import { PageQuery } from '../common/pagination.dto';
import { QUOTA_RESOURCE_INFO, QuotaResource, ReservationStatus } from './quota.enums';
import { Optional } from '../common/validation';

export const DEPARTMENT_ID = /^[A-Za-z0-9._:@-]{1,64}$/;
const KEY = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

/** Validates a department id path parameter (the token's `dept` claim format). */
@Injectable()
export class DepartmentIdPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value !== 'string' || !DEPARTMENT_ID.test(value)) {
      const msg = 'departmentId must be 1-64 characters [A-Za-z0-9._:@-]';
      throw new AppError('VALIDATION_FAILED', msg, { fields: [{ field: 'departmentId', messages: [msg] }] });
    }
    return value;
  }
}

const amount = (description: string, example: number) =>
  ApiPropertyOptional({ type: 'integer', format: 'int64', minimum: 0, maximum: MAX_AMOUNT, description, example });

/** Amounts per resource; at least one. */
export class QuotaAmountsDto {
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('Images (count).', 1)
  IMAGE_COUNT?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('Image storage (bytes).', 10737418240)
  IMAGE_BYTES?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('Virtual machines (count).', 2)
  VM_COUNT?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('Virtual CPUs (count).', 4)
  VCPU?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('VM memory (bytes).', 8589934592)
  MEMORY_BYTES?: number;

  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @amount('VM disk (bytes).', 107374182400)
  DISK_BYTES?: number;
}

const limit = (r: QuotaResource, what: string) =>
  ApiPropertyOptional({
    description: `${what}: an integer from 0 to ${QUOTA_RESOURCE_INFO[r].maxLimit}, or "unlimited".`,
    oneOf: [
      { type: 'integer', format: 'int64', minimum: 0, maximum: QUOTA_RESOURCE_INFO[r].maxLimit },
      { type: 'string', enum: ['unlimited'] },
    ],
    example: QUOTA_RESOURCE_INFO[r].unit === 'bytes' ? 1099511627776 : 50,
  });

/**
 * Limits per resource. Each value is checked by the service so a bad one answers QUOTA_LIMIT_INVALID
 * (negative, not an integer, above the resource's maximum, or not a number at all).
 */
export class QuotaLimitsDto {
  @Allow()
  @limit(QuotaResource.ImageCount, 'Images (count)')
  IMAGE_COUNT?: number | 'unlimited';

  @Allow()
  @limit(QuotaResource.ImageBytes, 'Image storage (bytes)')
  IMAGE_BYTES?: number | 'unlimited';

  @Allow()
  @limit(QuotaResource.VmCount, 'Virtual machines (count)')
  VM_COUNT?: number | 'unlimited';

  @Allow()
  @limit(QuotaResource.Vcpu, 'Virtual CPUs (count)')
  VCPU?: number | 'unlimited';

  @Allow()
  @limit(QuotaResource.MemoryBytes, 'VM memory (bytes)')
  MEMORY_BYTES?: number | 'unlimited';

  @Allow()
  @limit(QuotaResource.DiskBytes, 'VM disk (bytes)')
  DISK_BYTES?: number | 'unlimited';
}

export class SetQuotaLimitsDto {
  /** New limits by resource; resources left out keep theirs. */
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => QuotaLimitsDto)
  @ApiProperty({ type: QuotaLimitsDto, example: { IMAGE_COUNT: 50, IMAGE_BYTES: 'unlimited' } })
  limits: QuotaLimitsDto;
}

export class ListQuotasQuery extends PageQuery {}

export class ReconcileDto {
  /** Only this department (default: every department with images or ledger rows). */
  @Optional()
  @IsString()
  @Matches(DEPARTMENT_ID)
  @ApiPropertyOptional({ example: 'dept-rd' })
  departmentId?: string;

  /** Report drift without repairing it. */
  @Optional()
  @IsBoolean()
  @ApiPropertyOptional({ example: false, default: false })
  dryRun?: boolean;
}

export class CreateReservationDto {
  /**
   * Idempotency key chosen by the caller (1-128 characters `[A-Za-z0-9._:@/+=-]`): the same key and request
   * answer the same reservation (200); the same key with another department or other amounts is refused.
   */
  @IsString()
  @Matches(KEY, { message: 'key must be 1-128 characters [A-Za-z0-9._:@/+=-]' })
  @ApiProperty({ example: 'vm-launch-7f3a:quota' })
  key: string;

  /** The department that pays. */
  @IsString()
  @Matches(DEPARTMENT_ID, { message: 'departmentId must be 1-64 characters [A-Za-z0-9._:@-]' })
  @ApiProperty({ example: 'dept-rd' })
  departmentId: string;

  /** What to hold, all or nothing. An amount of 0 opens an item that grow fills later (it needs one unit of room). */
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => QuotaAmountsDto)
  @ApiProperty({ type: QuotaAmountsDto, example: { VM_COUNT: 2, VCPU: 8, MEMORY_BYTES: 17179869184 } })
  amounts: QuotaAmountsDto;

  /** Seconds until an uncommitted reservation expires and its amounts return (default QUOTA_RESERVATION_TTL_SECONDS). */
  @Optional()
  @IsInt()
  @Min(1)
  @Max(604800)
  @ApiPropertyOptional({ example: 900, type: 'integer', minimum: 1, maximum: 604800 })
  ttlSeconds?: number;
}

export class GrowReservationDto {
  @IsEnum(QuotaResource)
  @ApiProperty({ description: 'The resource to grow.', example: 'IMAGE_BYTES', enum: QuotaResource, enumName: 'QuotaResource' })
  resource: QuotaResource;

  /** Add this much to the pending amount (0 renews the expiry). Give `delta` or `total`. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @ApiPropertyOptional({ example: 1073741824, type: 'integer', format: 'int64', minimum: 0 })
  delta?: number;

  /** Make the pending amount at least this much (idempotent). Give `delta` or `total`. */
  @Optional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  @ApiPropertyOptional({ example: 4294967296, type: 'integer', format: 'int64', minimum: 0 })
  total?: number;
}

export class CommitReservationDto {
  /** The real amounts where they differ from what was reserved (less gives the rest back; more needs room). */
  @Optional()
  @IsObject()
  @ValidateNested()
  @Type(() => QuotaAmountsDto)
  @ApiPropertyOptional({ type: QuotaAmountsDto })
  amounts?: QuotaAmountsDto;

  /** Commit only these resources and leave the others pending (default: every pending one). */
  @Optional()
  @IsArray()
  @ArrayMaxSize(16)
  @ArrayUnique()
  @IsEnum(QuotaResource, { each: true })
  @ApiPropertyOptional({ example: ['IMAGE_BYTES'], enum: QuotaResource, enumName: 'QuotaResource', isArray: true })
  resources?: QuotaResource[];
}

// ---------------------------------------------------------------- responses

export class ResourceUsageResponse {
  @ApiProperty({ description: 'The resource.', example: 'IMAGE_BYTES', enum: QuotaResource, enumName: 'QuotaResource' })
  resource: QuotaResource;
  /** The limit; null when unlimited. */
  @ApiProperty({ example: 107374182400, type: 'integer', format: 'int64', nullable: true })
  limit: number | null;
  /** True when there is no limit. @example false */
  unlimited: boolean;
  /** Held by what exists (committed reservations). */
  @ApiProperty({ example: 32212254720, type: 'integer', format: 'int64' })
  used: number;
  /** Held by pending reservations. */
  @ApiProperty({ example: 10737418240, type: 'integer', format: 'int64' })
  reserved: number;
  /** limit - used - reserved, never below 0; null when unlimited. */
  @ApiProperty({ example: 64424509440, type: 'integer', format: 'int64', nullable: true })
  remaining: number | null;
}

export class DepartmentQuotaResponse {
  @ApiProperty({ description: "The department id (the `dept` claim of its members' tokens).", example: 'dept-rd' })
  departmentId: string;
  /** Every resource, in a fixed order. */
  @ApiProperty({ type: [ResourceUsageResponse] })
  resources: ResourceUsageResponse[];
}

export class DepartmentQuotaPage {
  @ApiProperty({ description: 'The departments on this page, by department id.', type: [DepartmentQuotaResponse] })
  items: DepartmentQuotaResponse[];
  /** Departments with a ledger, across all pages. @example 3 */
  @ApiProperty({ type: 'integer' })
  total: number;
  /** The 1-based page number. @example 1 */
  @ApiProperty({ type: 'integer' })
  page: number;
  /** Items per page. @example 20 */
  @ApiProperty({ type: 'integer' })
  pageSize: number;
}

export class ReservationItemResponse {
  @ApiProperty({ description: 'The resource.', example: 'IMAGE_BYTES', enum: QuotaResource, enumName: 'QuotaResource' })
  resource: QuotaResource;
  /** Held pending (counted in the department's `reserved`). */
  @ApiProperty({ example: 10737418240, type: 'integer', format: 'int64' })
  reserved: number;
  /** Committed (counted in the department's `used`). */
  @ApiProperty({ example: 0, type: 'integer', format: 'int64' })
  committed: number;
  /** True while the amount is reserved and not yet committed or released. @example true */
  pending: boolean;
}

export class ReservationResponse {
  @ApiProperty({ description: 'The reservation id.', example: 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18', format: 'uuid' })
  id: string;
  /** The caller's idempotency key. @example "launch-7f3a-0001" */
  key: string;
  /** The department the amounts are held for. @example "dept-rd" */
  departmentId: string;
  @ApiProperty({
    description: 'PENDING while something is held, COMMITTED, RELEASED, REFUNDED or EXPIRED.',
    example: 'PENDING',
    enum: ReservationStatus,
    enumName: 'ReservationStatus',
  })
  status: ReservationStatus;
  /** When a PENDING reservation expires (renewed by each grow). */
  @ApiProperty({ example: '2026-11-20T08:30:00.000Z', type: String, format: 'date-time' })
  expiresAt: string;
  @ApiProperty({ description: 'When it was reserved.', example: '2026-11-20T08:15:00.000Z', type: String, format: 'date-time' })
  createdAt: string;
  @ApiProperty({ description: 'When it last changed.', example: '2026-11-20T08:16:10.000Z', type: String, format: 'date-time' })
  updatedAt: string;
  @ApiProperty({ description: 'One entry per resource reserved.', type: [ReservationItemResponse] })
  items: ReservationItemResponse[];
}

export class DriftResponse {
  /** The department whose ledger drifted. @example "dept-rd" */
  departmentId: string;
  @ApiProperty({ description: 'The resource whose figure drifted.', example: 'IMAGE_BYTES', enum: QuotaResource, enumName: 'QuotaResource' })
  resource: QuotaResource;
  @ApiProperty({ description: 'Which figure of the ledger drifted: `used` or `reserved`.', example: 'used', enum: ['used', 'reserved'] })
  field: 'used' | 'reserved';
  /** What the ledger said. */
  @ApiProperty({ example: 6442450944, type: 'integer', format: 'int64' })
  recorded: number;
  /** What the catalog and the reservations say. */
  @ApiProperty({ example: 5368709120, type: 'integer', format: 'int64' })
  actual: number;
  /** True when the ledger now says `actual`. @example true */
  repaired: boolean;
}

export class ReconcileSkipped {
  /** The department that was not checked. @example "dept-ops" */
  departmentId: string;
  /** Why it was not checked, e.g. its ledger kept changing while it was being checked. @example "the ledger kept changing; run again" */
  reason: string;
}

export class ReconcileResponse {
  /** True when drift was only reported, not repaired. @example false */
  dryRun: boolean;
  /** How many departments were checked. @example 3 */
  @ApiProperty({ type: 'integer' })
  departments: number;
  @ApiProperty({ description: 'What differed, per department, resource and figure (empty when nothing drifted).', type: [DriftResponse] })
  drift: DriftResponse[];
  /** Departments whose ledger kept changing while checked; run again. */
  @ApiProperty({ type: [ReconcileSkipped] })
  skipped: ReconcileSkipped[];
}
