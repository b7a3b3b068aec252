import { applyDecorators } from '@nestjs/common';
import { ApiParam, ApiResponse } from '@nestjs/swagger';
import { ERROR_CODES, ERROR_DESCRIPTIONS, ERROR_DETAILS_EXAMPLES, ErrorCode } from './errors';

/**
 * Declares the error answers of a route: one response per HTTP status, listing the codes it can carry,
 * each with an example body (with `details` where ERROR_DETAILS_EXAMPLES has them).
 */
export function ApiErrors(...codes: ErrorCode[]): MethodDecorator & ClassDecorator {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of codes) byStatus.set(ERROR_CODES[c], [...(byStatus.get(ERROR_CODES[c]) ?? []), c]);
  const decorators = [...byStatus.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, cs]) =>
      ApiResponse({
        status,
        description: cs.map((c) => `\`${c}\`: ${ERROR_DESCRIPTIONS[c]}`).join('\n\n'),
        content: {
          'application/json': {
            schema: { $ref: '#/components/schemas/ErrorBody' },
            examples: Object.fromEntries(
              cs.map((c) => [
                c,
                {
                  value: {
                    code: c,
                    message: ERROR_DESCRIPTIONS[c],
                    correlationId: '4f1c2a0e-9a59-4b8e-9d0c-2d0c8b5d7c11',
                    ...(ERROR_DETAILS_EXAMPLES[c] ? { details: ERROR_DETAILS_EXAMPLES[c] } : {}),
                  },
                },
              ]),
            ),
          },
        },
      }),
    );
  return applyDecorators(...decorators);
}

/** A UUID path parameter, documented as such. */
export const ApiUuidParam = (name = 'id', description = 'The resource id (UUID).') => ApiParam({ name, format: 'uuid', type: String, description });
