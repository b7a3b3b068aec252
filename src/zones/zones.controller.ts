import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiNoContentResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
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

  @Get()
  @ApiOperation({
    summary: 'List zones',
    description:
      'The zones images are created in, with their default hypervisor and required disk format, paged and sorted by name. Every authenticated caller.',
  })
  async list(@Query() q: ListZonesQuery): Promise<ZonePage> {
    const page = await this.zones.list(q);
    return { ...page, items: page.items.map(toZoneResponse) };
  }

  @ApiUuidParam('id', 'The zone id (UUID).', '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21')
  @Get(':id')
  @ApiErrors(ZONE_ERRORS.get)
  @ApiOperation({
    summary: 'Get a zone',
    description: 'One zone. An unknown id is 404 ZONE_NOT_FOUND. Every authenticated caller.',
  })
  async get(@Param('id', uuidPipe) id: string): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.get(id));
  }

  @Post()
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.create)
  @ApiOperation({
    summary: 'Create a zone',
    description:
      'Creates a zone with a unique name (409 ZONE_NAME_TAKEN), its default hypervisor and, optionally, the disk format its images must have. Super admins only.',
  })
  async create(@Body() dto: CreateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.create(dto));
  }

  @ApiUuidParam('id', 'The zone id (UUID).', '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21')
  @Patch(':id')
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.update)
  @ApiOperation({
    summary: 'Update a zone',
    description: 'Renames a zone or changes its description, default hypervisor or required format. Super admins only; a name in use is 409 ZONE_NAME_TAKEN.',
  })
  async update(@Param('id', uuidPipe) id: string, @Body() dto: UpdateZoneDto): Promise<ZoneResponse> {
    return toZoneResponse(await this.zones.update(id, dto));
  }

  @ApiUuidParam('id', 'The zone id (UUID).', '2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21')
  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @Roles(Role.SuperAdmin)
  @ApiErrors(ZONE_ERRORS.delete)
  @ApiOperation({
    summary: 'Delete an empty zone',
    description: 'Deletes a zone that holds no image (409 ZONE_IN_USE otherwise). Super admins only.',
  })
  async remove(@Param('id', uuidPipe) id: string): Promise<void> {
    await this.zones.delete(id);
  }
}
