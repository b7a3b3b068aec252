import { Body, Controller, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { IsEnum } from 'class-validator';
import { Action, ACT_ERRORS } from '../access/access.policy';
import { CurrentPrincipal } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { CatalogService } from '../catalog/catalog.service';
import { ImageResponse } from '../catalog/image.dto';
import { ImageFormat, ImageKind, ImagePhase, SourceType } from '../catalog/image.enums';
import { toImageResponse } from '../catalog/image.mapper';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { AppError, errorSet } from '../common/errors';
import { uuidPipe } from '../common/uuid.pipe';
import { RateLimited } from '../rate-limit/rate-limit';
import { RequiredFormat } from '../zones/zone.enums';

export class CreateConversionDto {
  /** The format of the copy: raw or qcow2 (what qemu-img convert writes). */
  @IsEnum(RequiredFormat)
  @ApiProperty({
    description: 'The format of the copy: raw or qcow2 (what qemu-img convert writes).',
    enum: RequiredFormat,
    enumName: 'RequiredFormat',
    example: RequiredFormat.Raw,
  })
  format: RequiredFormat;
}

/** A converted copy of an ACTIVE image (issue 11): a new image in the same zone, its own record and quota. */
@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ConversionController {
  constructor(private readonly catalog: CatalogService) {}

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Post(':id/conversions')
  @RateLimited('import')
  @HttpCode(202)
  @ApiAcceptedResponse({ type: ImageResponse, description: 'The new image, QUEUED for conversion.' })
  @ApiErrors(errorSet(ACT_ERRORS, 'VALIDATION_FAILED', 'IMAGE_NOT_ACTIVE', 'CONVERSION_NOT_APPLICABLE', 'QUOTA_EXCEEDED', 'SCOPE_CHANGE_FORBIDDEN'))
  @ApiOperation({
    summary: 'Convert an image to another disk format',
    description:
      "Asks for a copy of an ACTIVE disk image converted to `format` (raw or qcow2, with qemu-img). The copy is a new image in the same zone, owned by the caller, with `convertedFrom` naming the source and `sourceSha256` its checksum; it answers QUEUED at once and is CONVERTING while qemu-img runs. The quota is reserved by the source's virtual size before anything starts (409 QUOTA_EXCEEDED). An ISO, or an image already in that format, is 422 CONVERSION_NOT_APPLICABLE; an image that is not ACTIVE 409 IMAGE_NOT_ACTIVE. Delete the copy to cancel; the `Location` header names it. Any caller who may see the source image and create images.",
  })
  async create(
    @CurrentPrincipal() p: Principal,
    @Param('id', uuidPipe) id: string,
    @Body() dto: CreateConversionDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ImageResponse> {
    const src = await this.catalog.getFor(p, id, Action.See);
    if (src.kind === ImageKind.Iso)
      throw new AppError('CONVERSION_NOT_APPLICABLE', `Image ${id} is an ISO: ISOs are never converted`, { reason: 'ISO', format: src.format });
    if (src.phase !== ImagePhase.Ready)
      throw new AppError('IMAGE_NOT_ACTIVE', `Image ${id} is ${src.phase}: only an ACTIVE image can be converted`, { status: src.status, phase: src.phase });
    if ((src.format as string) === dto.format)
      throw new AppError('CONVERSION_NOT_APPLICABLE', `Image ${id} is already ${dto.format}`, { reason: 'SAME_FORMAT', format: src.format });
    const copy = await this.catalog.create(
      p,
      {
        kind: ImageKind.Image,
        name: `${src.name}`.slice(0, 240) + `.${dto.format}`,
        description: src.description,
        osCategory: src.osCategory,
        osName: src.osName,
        osVersion: src.osVersion,
        osBits: src.osBits as 32 | 64,
        hypervisor: src.hypervisor,
        format: dto.format as unknown as ImageFormat,
        zoneId: src.zoneId,
        // the quota reserves the copy's largest size (its virtual size) before the row is written
        expectedSizeBytes: Math.max(src.virtualSizeBytes ?? 0, src.sizeBytes ?? 0),
        source: { type: SourceType.Conversion },
      },
      { convertedFrom: src.id, sourceSha256: src.checksum },
    );
    res.setHeader('Location', `/images/${copy.id}`);
    return toImageResponse(copy);
  }
}
