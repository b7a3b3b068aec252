import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentPrincipal } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { RateLimited } from '../rate-limit/rate-limit';
import { uuidPipe } from '../common/uuid.pipe';
import { CATALOG_ERRORS, CatalogService } from './catalog.service';
import { lifecycleErrors } from './image-lifecycle.steps';
import {
  DeleteImageQuery,
  DisableImageDto,
  CreateImageDto,
  ImageCountsResponse,
  ImageFilterQuery,
  ImagePage,
  ImageResponse,
  ListImagesQuery,
  UpdateImageDto,
} from './image.dto';
import { toImageResponse } from './image.mapper';

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class CatalogController {
  constructor(private readonly catalog: CatalogService) {}

  @Post()
  @RateLimited('create')
  @ApiCreatedResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.create, lifecycleErrors('create'))
  @ApiOperation({
    summary: 'Create an image or ISO record',
    description:
      "Creates the record of a VM image or an ISO in a zone. It starts INACTIVE/QUEUED; its bytes then arrive from its `source`: the service downloads a URL, copies a file picked from a file source (`GET /file-sources`), or waits for `PUT /images/{id}/file`.\n\nSuper admins, admins and users may create images; only super admins create PUBLIC or FEATURED images directly, everyone else PRIVATE ones (403 SCOPE_CHANGE_FORBIDDEN otherwise), and a `service` caller creates nothing (403 FORBIDDEN). The owner's department quota must have room for one more image and for `expectedSizeBytes` (409 QUOTA_EXCEEDED). A URL outside the allowed hosts is 400 URL_NOT_ALLOWED, an unknown zone 404 ZONE_NOT_FOUND, a missing file 404 FILE_NOT_FOUND. The answer carries a `Location` header with the new image's URL.",
  })
  async create(@CurrentPrincipal() p: Principal, @Body() dto: CreateImageDto, @Res({ passthrough: true }) res: Response): Promise<ImageResponse> {
    const image = await this.catalog.create(p, dto);
    res.setHeader('Location', `/images/${image.id}`);
    return toImageResponse(image);
  }

  @Get()
  @ApiOkResponse({ type: ImagePage })
  @ApiErrors(CATALOG_ERRORS.list)
  @ApiOperation({
    summary: 'List images and ISOs',
    description:
      "Lists the images and ISOs the caller may see, in a `view` (all, featured, public or private), filtered by kind, OS, hypervisor, status, phase, format, zone, tags and a name search, sorted and paged. Another user's private images never appear. Every authenticated caller.",
  })
  async list(@CurrentPrincipal() p: Principal, @Query() q: ListImagesQuery): Promise<ImagePage> {
    const page = await this.catalog.list(p, q);
    return { ...page, items: page.items.map(toImageResponse) };
  }

  @Get('counts')
  @ApiOkResponse({ type: ImageCountsResponse })
  @ApiErrors(CATALOG_ERRORS.list)
  @ApiOperation({
    summary: 'Count images per view',
    description:
      "How many images and ISOs each view (all, featured, public, private) holds for the caller, with the same filters as `GET /images`: the numbers on the console's tabs. Every authenticated caller.",
  })
  counts(@CurrentPrincipal() p: Principal, @Query() q: ImageFilterQuery): Promise<ImageCountsResponse> {
    return this.catalog.counts(p, q);
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Get(':id')
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.get)
  @ApiOperation({
    summary: 'Get an image or ISO',
    description:
      'One image or ISO: its metadata, status, phase, import progress and, when it failed or was disabled, the reason. An image the caller may not see answers 404 IMAGE_NOT_FOUND, as if it did not exist.',
  })
  async get(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.get(p, id));
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Patch(':id')
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.update)
  @ApiOperation({
    summary: "Update an image's descriptive fields, tags or scope",
    description:
      'Edits the name, description, OS fields, tags, ISO usage and scope of an image. The source, hypervisor, format, kind and zone never change (400 IMMUTABLE_FIELD). For a caller who may edit the image (its owner, admins, super admins). A super admin may set any scope, an admin may move what it may edit between scopes (featuring included), a user may make their own private image public and take it back (403 SCOPE_CHANGE_FORBIDDEN otherwise).',
  })
  async update(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Body() dto: UpdateImageDto): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.update(p, id, dto));
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Post(':id/enable')
  @HttpCode(200)
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.setEnabled)
  @ApiOperation({
    summary: 'Enable a disabled image',
    description:
      "Makes a DISABLED image ACTIVE again, so it can create VMs. Admins of the owner's department and super admins; an image that is not disabled answers 409 INVALID_STATE.",
  })
  async enable(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.setEnabled(p, id, true));
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Post(':id/disable')
  @HttpCode(200)
  @ApiOkResponse({ type: ImageResponse })
  @ApiErrors(CATALOG_ERRORS.setEnabled)
  @ApiOperation({
    summary: 'Disable an active image',
    description:
      "Takes an ACTIVE image out of use: it becomes INACTIVE/DISABLED, with an optional reason, and no new VM can be created from it (existing VMs are untouched). Admins of the owner's department and super admins; an image that is not ACTIVE answers 409 INVALID_STATE.",
  })
  async disable(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Body() dto: DisableImageDto): Promise<ImageResponse> {
    return toImageResponse(await this.catalog.setEnabled(p, id, false, dto?.reason));
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'Deleted.' })
  @ApiErrors(CATALOG_ERRORS.delete, lifecycleErrors('delete'))
  @ApiOperation({
    summary: 'Delete an image or ISO',
    description:
      'Deletes an image or ISO for good: its record, tags and stored bytes; its quota goes back to the department. When VMs were created from it or mount it, a plain delete answers 409 IMAGE_IN_USE listing them and changes nothing; `?confirm=true` deletes it anyway. The VMs are untouched: their links stay, marked "image deleted" (`GET /vms/{vmId}/images`). The owner, admins of the department and super admins.',
  })
  async remove(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Query() q: DeleteImageQuery): Promise<void> {
    await this.catalog.delete(p, id, { confirm: q.confirm === true });
  }
}
