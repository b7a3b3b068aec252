import { Controller, HttpCode, Param, Post, Put, Req, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBearerAuth, ApiBody, ApiConsumes, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { CurrentPrincipal } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { ImageResponse } from '../catalog/image.dto';
import { toImageResponse } from '../catalog/image.mapper';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { RateLimited } from '../rate-limit/rate-limit';
import { uuidPipe } from '../common/uuid.pipe';
import { INGESTION_ERRORS, IngestionService } from './ingestion.service';
import { UPLOAD_ERRORS, UploadService } from './upload.service';
import { allowBody, bodyInFlight, drainBody } from './upload-body';
import { AppConfig } from '../config/app-config';

/** Getting an image's bytes in (upload, retry); reading them back is image-bytes' ImageFilesController. */
@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class IngestionController {
  constructor(
    private readonly ingestion: IngestionService,
    private readonly uploads: UploadService,
    cfg: AppConfig,
  ) {
    this.idleMs = cfg.ingestion.url.idleTimeoutMs;
  }

  private readonly idleMs: number;

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Put(':id/file')
  @RateLimited('upload')
  @ApiConsumes('application/octet-stream')
  @ApiBody({ schema: { type: 'string', format: 'binary' }, description: "The file's bytes." })
  @ApiOkResponse({ type: ImageResponse, description: 'Stored and verified: the image is ACTIVE.' })
  @ApiErrors(UPLOAD_ERRORS)
  @ApiOperation({
    summary: 'Upload the file of an image',
    description:
      "Uploads the bytes of an image created with source type UPLOAD, as the raw request body (`Content-Type: application/octet-stream`, or none). The bytes stream into storage as they arrive; the sha256 (and md5 where configured) is computed on the way, the first bytes are checked against the declared format (a qcow2 with a backing file is refused), and the `expectedChecksum` given at creation is verified. Allowed while the image is QUEUED or FAILED, for a caller who may edit it; of two concurrent uploads one wins, the other gets 409 INVALID_STATE.\n\nA `Content-Length` is checked against the size limit (413 PAYLOAD_TOO_LARGE) and the department's storage quota (409 QUOTA_EXCEEDED) before a byte is read; without one the quota is reserved as the bytes arrive. Send `Expect: 100-continue` to hear a refusal before sending the body. On success the image is ACTIVE (200, the record); refused content leaves it FAILED with the reason (422 CONTENT_REJECTED); a client that disconnects leaves it FAILED. Progress shows on `GET /images/{id}` while it runs.",
  })
  async upload(
    @CurrentPrincipal() p: Principal,
    @Param('id', uuidPipe) id: string,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ImageResponse> {
    try {
      // "100 Continue" (when the client asked for it) only once every check passed: a refusal comes first
      return toImageResponse(await this.uploads.upload(p, id, req, () => allowBody(req, res)));
    } catch (e) {
      if (!req.complete) {
        // the rest of a refused body is not stored: read it away (bounded) so a client that writes the whole
        // body before reading gets the answer, not a reset; then close the connection
        if (bodyInFlight(req)) await drainBody(req, this.idleMs);
        res.setHeader('Connection', 'close');
      }
      throw e;
    }
  }

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Post(':id/retry')
  @RateLimited('import')
  @HttpCode(202)
  @ApiAcceptedResponse({ type: ImageResponse, description: 'Queued again.' })
  @ApiErrors(INGESTION_ERRORS.retry)
  @ApiOperation({
    summary: 'Retry a failed import',
    description:
      'Puts a FAILED image back to QUEUED with its reason cleared: a URL image is downloaded again, an UPLOAD image waits for a new `PUT /images/{id}/file`. For a caller who may edit the image; an image that is not FAILED answers 409 INVALID_STATE.',
  })
  async retry(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string): Promise<ImageResponse> {
    return toImageResponse(await this.ingestion.retry(p, id));
  }
}
