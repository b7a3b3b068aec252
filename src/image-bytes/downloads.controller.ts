import { Controller, Get, Head, Param, Query, Req, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { PublicRoute } from '../access/auth.guard';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { uuidPipe } from '../common/uuid.pipe';
import { DOWNLOAD_URL_ERRORS, DownloadUrlSigner } from './download-url';
import { DownloadQuery } from './download-url.dto';
import { FILE_ANSWER_ERRORS, FileRequest, fileRequestOf, ImageFileService, sendFileAnswer, ApiFileDownload, SIGNED_URL_READER } from './image-file.service';

/** The signed download URLs a launch hands out when the object store cannot presign (filesystem store). */
@ApiTags('downloads')
@Controller('downloads')
export class DownloadsController {
  constructor(
    private readonly signer: DownloadUrlSigner,
    private readonly files: ImageFileService,
  ) {}

  @PublicRoute()
  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Get(':id')
  @ApiFileDownload()
  @ApiErrors(DOWNLOAD_URL_ERRORS, FILE_ANSWER_ERRORS)
  @ApiOperation({
    summary: 'Download an image file with a signed URL',
    description:
      "Streams an image's bytes with the signed URL a launch answered (`download.url`), without a bearer token: the signature is the permission, until `expires`. A tampered URL is 403 DOWNLOAD_URL_INVALID, an expired one 403 DOWNLOAD_URL_EXPIRED. Answers like `GET /images/{id}/file`: ACTIVE images only, one byte range per request (206 with `Content-Range`), `If-Range`, and the sha256 as a strong `ETag` (`If-None-Match` answers 304).",
  })
  async download(@Param('id', uuidPipe) id: string, @Query() q: DownloadQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(id, q, req, res, 'GET');
  }

  @PublicRoute()
  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Head(':id')
  @ApiOkResponse({ description: 'The headers of the whole file.' })
  @ApiResponse({ status: 206, description: 'The headers of the requested range.' })
  @ApiErrors(DOWNLOAD_URL_ERRORS, FILE_ANSWER_ERRORS)
  @ApiOperation({
    summary: 'Get the headers of a signed download',
    description:
      'The headers the signed `GET /downloads/{id}` would answer with (size, ETag, range support), without the bytes. No token needed: the signature is the permission. Errors have no body, only their status.',
  })
  async head(@Param('id', uuidPipe) id: string, @Query() q: DownloadQuery, @Req() req: Request, @Res() res: Response): Promise<void> {
    await this.send(id, q, req, res, 'HEAD');
  }

  private async send(id: string, q: DownloadQuery, req: Request, res: Response, method: FileRequest['method']): Promise<void> {
    // the signature is the permission: checked before the image is looked up, so a bad URL learns nothing about it
    this.signer.verify({ imageId: id, expires: Number(q.expires) }, q.signature);
    await sendFileAnswer(await this.files.answer(SIGNED_URL_READER, id, fileRequestOf(req, method)), req, res);
  }
}
