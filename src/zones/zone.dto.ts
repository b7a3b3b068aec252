import { ApiProperty } from '@nestjs/swagger';
import { IsEnum, ValidateIf, IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';
import { PageQuery } from '../common/pagination.dto';
import { Hypervisor, RequiredFormat, ZoneEntity } from './zone.entity';
import { Optional } from '../common/validation';

export class CreateZoneDto {
  /** Unique zone name. */
  @IsString() @IsNotEmpty() @MaxLength(64) @Matches(/^\S(.*\S)?$/, { message: 'name must not start or end with spaces' })
  @ApiProperty({ example: 'zone-beijing-1' })
  name: string;

  /** The zone's virtualization technology; images created in the zone default to it. */
  @IsEnum(Hypervisor)
  @ApiProperty({ enum: Hypervisor, enumName: 'Hypervisor', example: Hypervisor.KVM })
  hypervisor: Hypervisor;

  /** Free text. */
  @Optional() @IsString() @MaxLength(500)
  description?: string;

  /** The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought. */
  @Optional() @ValidateIf((_o, v) => v !== null) @IsEnum(RequiredFormat)
  @ApiProperty({ enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true, required: false })
  requiredFormat?: RequiredFormat | null;
}

export class UpdateZoneDto {
  /** New unique name. */
  @Optional() @IsString() @IsNotEmpty() @MaxLength(64) @Matches(/^\S(.*\S)?$/, { message: 'name must not start or end with spaces' })
  name?: string;

  /** New virtualization technology (existing images keep theirs). */
  @Optional() @IsEnum(Hypervisor)
  @ApiProperty({ enum: Hypervisor, enumName: 'Hypervisor', required: false })
  hypervisor?: Hypervisor;

  /** Free text. */
  @Optional() @IsString() @MaxLength(500)
  description?: string;

  /** The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought. */
  @Optional() @ValidateIf((_o, v) => v !== null) @IsEnum(RequiredFormat)
  @ApiProperty({ enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true, required: false })
  requiredFormat?: RequiredFormat | null;
}

export class ListZonesQuery extends PageQuery {}

export class ZoneResponse {
  @ApiProperty({ format: 'uuid' })
  id: string;
  name: string;
  @ApiProperty({ enum: Hypervisor, enumName: 'Hypervisor' })
  hypervisor: Hypervisor;
  description: string;
  /** The storage format disk images are converted to on import; null when the zone keeps what is brought. */
  @ApiProperty({ enum: RequiredFormat, enumName: 'RequiredFormat', nullable: true })
  requiredFormat: RequiredFormat | null;
  @ApiProperty({ type: String, format: 'date-time' })
  createdAt: string;
  @ApiProperty({ type: String, format: 'date-time' })
  updatedAt: string;
}

export class ZonePage {
  @ApiProperty({ type: [ZoneResponse] })
  items: ZoneResponse[];
  /** Number of zones in all pages. */
  total: number;
  page: number;
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
