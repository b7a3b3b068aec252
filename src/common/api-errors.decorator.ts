import { ApiParam } from '@nestjs/swagger';
import { ErrorCode, ErrorSet } from './errors';

export const API_ERRORS_KEY = 'hcm:api-errors';
export const NO_DEPENDENCY_KEY = 'hcm:api-no-dependency';

/**
 * Declares codes a route (method) or every route of a controller (class) can answer with, on top of the ones the
 * route's traits add by themselves (see src/common/error-contract.ts: authentication, roles, a JSON body, validated
 * parameters, rate limits, dependencies). Usually given the error sets of the services the route calls. Several
 * uses add up; the OpenAPI document gets one response per status listing its codes.
 */
export function ApiErrors(...codes: Array<ErrorSet | ErrorCode>): MethodDecorator & ClassDecorator {
  const flat = codes.flat();
  return ((target: object, _key?: string | symbol, descriptor?: PropertyDescriptor) => {
    const on = (descriptor ? descriptor.value : target) as object;
    const prev = (Reflect.getMetadata(API_ERRORS_KEY, on) as ErrorCode[] | undefined) ?? [];
    Reflect.defineMetadata(API_ERRORS_KEY, [...prev, ...flat], on);
    return descriptor;
  }) as MethodDecorator & ClassDecorator;
}

/** Marks a route that reaches no database, queue or object store, so it never answers 503 DEPENDENCY_UNAVAILABLE. */
export function ApiNoDependency(): MethodDecorator {
  return (_target, _key, descriptor) => {
    Reflect.defineMetadata(NO_DEPENDENCY_KEY, true, descriptor.value as object);
    return descriptor;
  };
}

/** A UUID path parameter, documented as such (a bad one answers 400 VALIDATION_FAILED, declared by the contract). */
export const ApiUuidParam = (name = 'id', description = 'The resource id (UUID).', example = '6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13') =>
  ApiParam({ name, format: 'uuid', type: String, description, example });
