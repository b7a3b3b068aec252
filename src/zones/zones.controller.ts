import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiNoContentResponse, ApiTags } from '@nestjs/swagger';
import { Roles } from '../access/auth.guard';
import { Role } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { uuidPipe } from '../common/uuid.pipe';
import { CreateZoneDto, ListZonesQuery, toZoneResponse, UpdateZoneDto, ZonePage, ZoneResponse } from './zone.dto';
import { ZonesService } from './zones.service';

@ApiTags('zones')
@ApiBearerAuth()
@ApiErrors('AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED')
@Controller('zones')
export class ZonesController {
  constructor(private readonly zones: ZonesService) {}

  /** List zones (every caller). */
  @Get()
  @ApiErrors('VALIDATION_FAILED')
  async list(@Query() q: ListZonesQuery): Promise<ZonePage> {
    const page = await this.zones.list(q);
    return { ...page, items: page.items.map(toZoneResponse) };
  }

  /** One zone. */
  @ApiUuidParam()
  @Get(':id')
  @ApiErrors('VALIDATION_FAILED', 'ZONE_NOT_FOUND')
  async get(@Param('id', uuidPipe) id: string): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.get(id));
  }

  /** Create a zone (super admin). */
  @Post()
  @Roles(Role.SuperAdmin)
  @ApiErrors('VALIDATION_FAILED', 'MALFORMED_JSON', 'FORBIDDEN', 'ZONE_NAME_TAKEN')
  async create(@Body() dto: CreateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.create(dto));
  }

  /** Rename a zone or change its description or default hypervisor (super admin). */
  @ApiUuidParam()
  @Patch(':id')
  @Roles(Role.SuperAdmin)
  @ApiErrors('VALIDATION_FAILED', 'MALFORMED_JSON', 'FORBIDDEN', 'ZONE_NOT_FOUND', 'ZONE_NAME_TAKEN')
  async update(@Param('id', uuidPipe) id: string, @Body() dto: UpdateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.update(id, dto));
  }

  /** Delete an empty zone (super admin). */
  @ApiUuidParam()
  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @Roles(Role.SuperAdmin)
  @ApiErrors('VALIDATION_FAILED', 'FORBIDDEN', 'ZONE_NOT_FOUND', 'ZONE_IN_USE')
  async remove(@Param('id', uuidPipe) id: string): Promise<void> {
    await this.zones.delete(id);
  }
}
