import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { RateLimited } from '../rate-limit/rate-limit';
import { uuidPipe } from '../common/uuid.pipe';
import { CATALOG_ERRORS, CatalogService } from './catalog.service';
import { lifecycleErrors } from './image-lifecycle.steps';
import { DeleteImageQuery, DisableImageDto, CreateImageDto, ImageCountsResponse, ImageFilterQuery, ImagePage, ImageResponse, ListImagesQuery, UpdateImageDto } from './image.dto';
import { toImageResponse } from './image.mapper';

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class CatalogController {
  constructor(private readonly catalog: CatalogService) {}

  /**
   * Create an image or ISO record in a zone (R13-R15). It starts INACTIVE/QUEUED; its bytes arrive from
   * its source (a URL download job, a picked file, or a PUT of the bytes). Non-super-admins create PRIVATE only
   * (R9: 403 SCOPE_CHANGE_FORBIDDEN); a `service` caller creates nothing, whatever the scope (403 FORBIDDEN).
   * The owner's department quota must have room for one more image and `expectedSizeBytes` (R16): 409 QUOTA_EXCEEDED otherwise.
   */
  @Post()
  @RateLimited('create')
  @ApiCreatedResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.create, lifecycleErrors('create'))
  async create(@CurrentPrincipal() p: Principal, @Body() dto: CreateImageDto): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.create(p, dto));
  }

  /**
   * List images and ISOs the caller may see, in a view (R11), filtered (R12), sorted and paged.
   * Another user's private images never appear.
   */
  @Get()
  @ApiOkResponse({ type: ImagePage })
  @ApiErrors(CATALOG_ERRORS.list)
  async list(@CurrentPrincipal() p: Principal, @Query() q: ListImagesQuery): Promise<ImagePage> {
    const page = await this.catalog.list(p, q);
    return { ...page, items: page.items.map(toImageResponse) };
  }

  /** How many images each view (all, featured, public, private) holds for the caller, with the same filters as the list. */
  @Get('counts')
  @ApiOkResponse({ type: ImageCountsResponse })
  @ApiErrors(CATALOG_ERRORS.list)
  counts(@CurrentPrincipal() p: Principal, @Query() q: ImageFilterQuery): Promise<ImageCountsResponse> {
    return this.catalog.counts(p, q);
  }

  /** One image or ISO, with its status, phase, progress and reason. */
  @ApiUuidParam()
  @Get(':id')
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.get)
  async get(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.get(p, id));
  }

  /**
   * Edit descriptive fields, tags and scope (R18). The source URL, hypervisor, format, kind and zone can never
   * change (400 IMMUTABLE_FIELD). Scope changes follow R9/R10 (403 SCOPE_CHANGE_FORBIDDEN).
   */
  @ApiUuidParam()
  @Patch(':id')
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.update)
  async update(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Body() dto: UpdateImageDto): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.update(p, id, dto));
  }

  /** Enable a disabled image (admins, R7): it becomes ACTIVE again. */
  @ApiUuidParam()
  @Post(':id/enable')
  @HttpCode(200)
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.setEnabled)
  async enable(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.setEnabled(p, id, true));
  }

  /** Disable an ACTIVE image (admins, R7): it becomes INACTIVE/DISABLED and cannot create VMs. */
  @ApiUuidParam()
  @Post(':id/disable')
  @HttpCode(200)
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.setEnabled)
  async disable(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Body() dto: DisableImageDto): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.setEnabled(p, id, false, dto?.reason));
  }

  /**
   * Delete an image or ISO for good: record, tags and stored bytes; its quota goes back (R20). When VMs were
   * created from it or mount it, a plain delete answers 409 IMAGE_IN_USE listing them and changes nothing;
   * `?confirm=true` deletes it anyway. The VMs are untouched: their links stay, marked "image deleted"
   * (`GET /vms/{vmId}/images`).
   */
  @ApiUuidParam()
  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @ApiErrors(CATALOG_ERRORS.delete, lifecycleErrors('delete'))
  async remove(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Query() q: DeleteImageQuery): Promise<void> {
    await this.catalog.delete(p, id, { confirm: q.confirm === true });
  }
}
