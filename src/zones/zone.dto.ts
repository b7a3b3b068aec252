import { ApiProperty } from '@nestjs/swagger';
import { IsEnum, ValidateIf, IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { PageQuery } from '../common/pagination.dto';
import { Hypervisor, RequiredFormat, ZoneEntity } from './zone.entity';
import { Optional } from '../common/validation';

export class CreateZoneDto {
  /** Unique zone name. */
  @IsString()
  @IsNotEmpty()
  @MaxLength(64)
  @Matches(/^\S(.*\S)?$/, { message: 'name must not start or end with spaces' })
  @ApiProperty({ example: 'zone-beijing-1' })
  name: string;

  /** The zone's virtualization technology; images created in the zone default to it. */
  @IsEnum(Hypervisor)
  @ApiProperty({ enum: Hypervisor, enumName: 'Hypervisor', example: Hypervisor.KVM })
  hypervisor: Hypervisor;

  /** Free text. @example "Rack A, Ceph-backed KVM hosts" */
  @Optional()
  @IsString()
  @MaxLength(500)
  description?: string;

  /** The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought. */
  @Optional()
  @ValidateIf((_o, v) => v !== null)
  @IsEnum(RequiredFormat)
  @ApiProperty({ example: 'raw', enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true, required: false })
  requiredFormat?: RequiredFormat | null;
}

export class UpdateZoneDto {
  /** New unique name. @example "zone-b" */
  @Optional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(64)
  @Matches(/^\S(.*\S)?$/, { message: 'name must not start or end with spaces' })
  name?: string;

  /** New virtualization technology (existing images keep theirs). */
  @Optional()
  @IsEnum(Hypervisor)
  @ApiProperty({ example: 'KVM', enum: Hypervisor, enumName: 'Hypervisor', required: false })
  hypervisor?: Hypervisor;

  /** Free text. @example "Rack B, local SSD" */
  @Optional()
  @IsString()
  @MaxLength(500)
  description?: string;

  /** The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought. */
  @Optional()
  @ValidateIf((_o, v) => v !== null)
  @IsEnum(RequiredFormat)
  @ApiProperty({ example: 'qcow2', enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true, required: false })
  requiredFormat?: RequiredFormat | null;
}

export class ListZonesQuery extends PageQuery {}

export class ZoneResponse {
  @ApiProperty({ description: 'The zone id.', example: '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21', format: 'uuid' })
  id: string;
  /** Unique name. @example "zone-a" */
  name: string;
  @ApiProperty({ description: 'The default virtualization technology of images created in it.', example: 'KVM', enum: Hypervisor, enumName: 'Hypervisor' })
  hypervisor: Hypervisor;
  /** Free text. @example "Rack A, Ceph-backed KVM hosts" */
  description: string;
  /** The storage format disk images are converted to on import; null when the zone keeps what is brought. */
  @ApiProperty({ example: 'raw', enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true })
  requiredFormat: RequiredFormat | null;
  @ApiProperty({ description: 'When the zone was created.', example: '2026-10-01T09:00:00.000Z', type: String, format: 'date-time' })
  createdAt: string;
  @ApiProperty({ description: 'When the zone last changed.', example: '2026-10-01T09:00:00.000Z', type: String, format: 'date-time' })
  updatedAt: string;
}

export class ZonePage {
  @ApiProperty({ description: 'The zones on this page, by name.', type: [ZoneResponse] })
  items: ZoneResponse[];
  /** Number of zones in all pages. @example 2 */
  @ApiProperty({ type: 'integer' })
  total: number;
  /** The 1-based page number. @example 1 */
  @ApiProperty({ type: 'integer' })
  page: number;
  /** Items per page. @example 20 */
  @ApiProperty({ type: 'integer' })
  pageSize: number;
}

export function toZoneResponse(z: ZoneEntity): ZoneResponse {
  return {
    id: z.id,
    name: z.name,
    hypervisor: z.hypervisor,
    description: z.description,
    requiredFormat: z.requiredFormat ?? null,
    createdAt: new Date(z.createdAt).toISOString(),
    updatedAt: new Date(z.updatedAt).toISOString(),
  };
}
