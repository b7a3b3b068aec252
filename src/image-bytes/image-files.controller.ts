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
 * Reading an ACTIVE image's bytes with a bearer token (`GET|HEAD /images/{id}/file`). The operationIds stay
 * those of the ingestion controller the routes came from (the contract does not change with the module).
 */
@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class ImageFilesController {
  constructor(private readonly files: ImageFileService) {}

  /**
   * Download the file of an ACTIVE image, for a caller who may use it (R19). One byte range per request
   * (`Range: bytes=start-end`, `bytes=start-`, `bytes=-suffix`; 206 with Content-Range), `If-Range` with the
   * ETag, and the sha256 as a strong `ETag` (`If-None-Match` answers 304). Several ranges in one header are
   * answered with the whole file.
   */
  @ApiUuidParam()
  @Get(':id/file')
  @ApiOperation({ operationId: 'Ingestion_download' })
  @ApiFileDownload()
  @ApiErrors(ACT_ERRORS, FILE_ANSWER_ERRORS)
  async download(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(p, id, req, res, 'GET');
  }

  /** The headers `GET /images/{id}/file` would answer with (size, ETag, range support), without the bytes. */
  @ApiUuidParam()
  @Head(':id/file')
  @ApiOperation({ operationId: 'Ingestion_head' })
  @ApiOkResponse({ description: 'The headers of the whole file.' })
  @ApiResponse({ status: 206, description: 'The headers of the requested range.' })
  @ApiErrors(ACT_ERRORS, FILE_ANSWER_ERRORS)
  async head(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(p, id, req, res, 'HEAD');
  }

  private async send(p: Principal, id: string, req: Request, res: Response, method: FileRequest['method']): Promise<void> {
    await sendFileAnswer(await this.files.answer(p, id, fileRequestOf(req, method)), req, res);
  }
}
