import { ValidationError, ValidationPipe } from '@nestjs/common';
import { registerDecorator, ValidateIf, ValidationOptions } from 'class-validator';
import { AppError } from './errors';

export const IMMUTABLE_CONSTRAINT = 'immutable';

/** Marks a property that a request may never set (R18). Any value present fails with IMMUTABLE_FIELD. */
export function Immutable(options?: ValidationOptions): PropertyDecorator {
  return (target, propertyName) => {
    registerDecorator({
      name: IMMUTABLE_CONSTRAINT,
      target: target.constructor,
      propertyName: String(propertyName),
      options: { message: `${String(propertyName)} can never be changed`, ...options },
      validator: { validate: (value: unknown) => value === undefined },
    });
  };
}

/**
 * An optional body property: it may be left out, but when present every other validator runs, null
 * included. class-validator's IsOptional() skips null as well, so `{"name": null}` reached the database
 * (a NOT NULL column: a 500) or meant "absent" without anyone deciding so. Body DTOs use this; a property
 * where null is a meaning of its own says so explicitly. Query DTOs keep IsOptional (a query value is
 * never null).
 */
export function Optional(): PropertyDecorator {
  return ValidateIf((_o: unknown, value: unknown) => value !== undefined);
}

interface FieldError {
  field: string;
  messages: string[];
}

function flatten(errors: ValidationError[], parent = ''): Array<FieldError & { constraints: string[] }> {
  const out: Array<FieldError & { constraints: string[] }> = [];
  for (const e of errors) {
    const field = parent ? `${parent}.${e.property}` : e.property;
    if (e.constraints) {
      out.push({ field, messages: Object.values(e.constraints), constraints: Object.keys(e.constraints) });
    }
    if (e.children?.length) out.push(...flatten(e.children, field));
  }
  return out;
}

export function validationException(errors: ValidationError[]): AppError {
  const flat = flatten(errors);
  const immutable = flat.filter((f) => f.constraints.includes(IMMUTABLE_CONSTRAINT));
  if (immutable.length) {
    return new AppError('IMMUTABLE_FIELD', `These fields can never be changed: ${immutable.map((f) => f.field).join(', ')}`, {
      fields: immutable.map(({ field, messages }) => ({ field, messages })),
    });
  }
  const fields = flat.map(({ field, messages }) => ({ field, messages }));
  return new AppError('VALIDATION_FAILED', `Request validation failed: ${fields.map((f) => f.field).join(', ')}`, { fields });
}

/** The one global pipe: strips nothing silently (unknown properties and query parameters are refused). */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    validationError: { target: false, value: false },
    exceptionFactory: validationException,
  });
}
