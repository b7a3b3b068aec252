import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ERROR_CODES } from './errors';

/** The one error body every failing request answers with. */
export class ErrorBody {
  /** Stable, machine-readable error code. */
  @ApiProperty({ enum: Object.keys(ERROR_CODES), enumName: 'ErrorCode', example: 'VALIDATION_FAILED' })
  code: string;

  /** A sentence a person can read. */
  @ApiProperty({ example: 'Request validation failed' })
  message: string;

  /** The request's correlation id (also in the X-Correlation-Id response header and the logs). */
  @ApiProperty({ example: '4f1c2a0e-9a59-4b8e-9d0c-2d0c8b5d7c11' })
  correlationId: string;

  /** Code-specific facts, e.g. the invalid fields for VALIDATION_FAILED. */
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { fields: [{ field: 'name', messages: ['name must be shorter than or equal to 255 characters'] }] },
  })
  details?: Record<string, unknown>;
}
