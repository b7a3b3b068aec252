import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ERROR_CODES, ERROR_DESCRIPTIONS, ErrorCode } from './errors';

/** The one error body every failing request answers with. */
export class ErrorBody {
  @ApiProperty({
    enum: Object.keys(ERROR_CODES),
    enumName: 'ErrorCode',
    example: 'VALIDATION_FAILED',
    description: `Stable, machine-readable error code:\n\n${Object.entries(ERROR_CODES)
      .map(([code, status]) => `- \`${code}\` (${status}): ${ERROR_DESCRIPTIONS[code as ErrorCode]}`)
      .join('\n')}`,
  })
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
