import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';

/** The query of a signed download URL (`GET /downloads/{id}?expires=&signature=`), as a launch answered it. */
export class DownloadQuery {
  /** Unix time (seconds) the URL expires at, as the launch gave it. */
  @IsString()
  @Matches(/^\d{1,12}$/, { message: 'expires must be a unix time in seconds' })
  @ApiProperty({ example: '1795719600' })
  expires: string;

  /** HMAC-SHA256 signature (hex), as the launch gave it. */
  @IsString()
  @MaxLength(128)
  @ApiProperty({ example: '9c1f4e0b2a7d6c5e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e' })
  signature: string;
}
