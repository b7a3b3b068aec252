import { Controller, Get, Head, Param, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ACT_ERRORS } from '../access/access.policy';
import { CurrentPrincipal } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { uuidPipe } from '../common/uuid.pipe';
import { ApiFileDownload, FILE_ANSWER_ERRORS, FileRequest, fileRequestOf, ImageFileService, sendFileAnswer } from './image-file.service';

/**
 * Reading an ACTIVE image's bytes with a bearer token (`GET|HEAD /images/{id}/file`).
 */
@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ImageFilesController {
  constructor(private readonly files: ImageFileService) {}

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Get(':id/file')
  @ApiFileDownload()
  @ApiErrors(ACT_ERRORS, FILE_ANSWER_ERRORS)
  @ApiOperation({
    summary: 'Download the file of an image',
    description:
      'Streams the bytes of an ACTIVE image or ISO to a caller who may use it (409 IMAGE_NOT_ACTIVE otherwise). One byte range per request (`Range: bytes=start-end`, `bytes=start-`, `bytes=-suffix`; 206 with `Content-Range`; an unsatisfiable range is 416), `If-Range` with the ETag, and the sha256 as a strong `ETag` (`If-None-Match` answers 304). Several ranges in one header are answered with the whole file.',
  })
  async download(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(p, id, req, res, 'GET');
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Head(':id/file')
  @ApiOkResponse({ description: 'The headers of the whole file.' })
  @ApiResponse({ status: 206, description: 'The headers of the requested range.' })
  @ApiErrors(ACT_ERRORS, FILE_ANSWER_ERRORS)
  @ApiOperation({
    summary: 'Get the headers of an image file',
    description:
      'The headers `GET /images/{id}/file` would answer with (size, ETag, range support, file name), without the bytes: to learn the size or check the checksum before downloading. Errors have no body, only their status.',
  })
  async head(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(p, id, req, res, 'HEAD');
  }

  private async send(p: Principal, id: string, req: Request, res: Response, method: FileRequest['method']): Promise<void> {
    await sendFileAnswer(await this.files.answer(p, id, fileRequestOf(req, method)), req, res);
  }
}
