import { Injectable, PipeTransform } from '@nestjs/common';
import { AppError } from './errors';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Validates a UUID path parameter; a bad one is VALIDATION_FAILED naming the parameter. */
@Injectable()
export class UuidPipe implements PipeTransform<string, string> {
  transform(value: string, meta: { data?: string }): string {
    if (typeof value !== 'string' || !UUID.test(value)) {
      const field = meta.data ?? 'id';
      throw new AppError('VALIDATION_FAILED', `${field} must be a UUID`, { fields: [{ field, messages: [`${field} must be a UUID`] }] });
    }
    return value.toLowerCase();
  }
}
export const uuidPipe = new UuidPipe();
