import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiNoContentResponse, ApiTags } from '@nestjs/swagger';
import { Roles } from '../access/auth.guard';
import { Role } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { uuidPipe } from '../common/uuid.pipe';
import { CreateZoneDto, ListZonesQuery, toZoneResponse, UpdateZoneDto, ZonePage, ZoneResponse } from './zone.dto';
import { ZONE_ERRORS, ZonesService } from './zones.service';

@ApiTags('zones')
@ApiBearerAuth()
@Controller('zones')
export class ZonesController {
  constructor(private readonly zones: ZonesService) {}

  /** List zones (every caller). */
  @Get()
  async list(@Query() q: ListZonesQuery): Promise<ZonePage> {
    const page = await this.zones.list(q);
    return { ...page, items: page.items.map(toZoneResponse) };
  }

  /** One zone. */
  @ApiUuidParam()
  @Get(':id')
  @ApiErrors(ZONE_ERRORS.get)
  async get(@Param('id', uuidPipe) id: string): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.get(id));
  }

  /** Create a zone (super admin). */
  @Post()
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.create)
  async create(@Body() dto: CreateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.create(dto));
  }

  /** Rename a zone or change its description or default hypervisor (super admin). */
  @ApiUuidParam()
  @Patch(':id')
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.update)
  async update(@Param('id', uuidPipe) id: string, @Body() dto: UpdateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.update(id, dto));
  }

  /** Delete an empty zone (super admin). */
  @ApiUuidParam()
  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.delete)
  async remove(@Param('id', uuidPipe) id: string): Promise<void> {
    await this.zones.delete(id);
  }
}
