import { RequestMethod } from '@nestjs/common';
import type { INestApplication, Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { OpenAPIObject } from '@nestjs/swagger';
import { API_ERRORS_KEY, NO_DEPENDENCY_KEY } from './api-errors.decorator';
import { ERROR_CODES, ERROR_DESCRIPTIONS, ERROR_DETAILS_EXAMPLES, ErrorCode, ErrorSet } from './errors';
import { PUBLIC_ROUTE, RATE_LIMIT_KEY, ROLES_KEY } from './route-metadata';

/** @nestjs/swagger's key of @ApiOperation metadata (DECORATORS.API_OPERATION, not exported by the package root) */
const API_OPERATION = 'swagger/apiOperation';

type OperationObject = NonNullable<OpenAPIObject['paths'][string]['get']>;
type ResponseObject = OperationObject['responses'][string] & { description: string };

/** What every route with a bearer token can answer (the global AuthGuard). */
export const AUTH_ERRORS: ErrorSet = ['AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED'];
/** A route restricted by @Roles (the AuthGuard). */
export const ROLE_ERRORS: ErrorSet = ['FORBIDDEN'];
/**
 * Any POST, PUT, PATCH or DELETE: the app-wide JSON body-parser reads a JSON body sent to any route, whether the
 * route takes one or not (bad JSON, too large, an unsupported charset or encoding).
 */
export const BODY_PARSER_ERRORS: ErrorSet = ['MALFORMED_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'];
/** A route with a JSON body (@Body): the body-parser, and the validation pipe on what it parsed. */
export const JSON_BODY_ERRORS: ErrorSet = [...BODY_PARSER_ERRORS, 'VALIDATION_FAILED'];
/** A route with validated path or query parameters (uuid/vm-id pipes, the query DTOs of the validation pipe). */
export const PARAMETER_ERRORS: ErrorSet = ['VALIDATION_FAILED'];
/** A route marked @RateLimited. */
export const RATE_LIMIT_ERRORS: ErrorSet = ['RATE_LIMITED'];
/** A route that reaches the database, the queue or the object store (the exception filter maps lost connections). */
export const DEPENDENCY_ERRORS: ErrorSet = ['DEPENDENCY_UNAVAILABLE'];

export interface RouteTraits {
  authenticated: boolean;
  roles: boolean;
  rateLimited: boolean;
  jsonBody: boolean;
  /** a method a client sends a body with (POST, PUT, PATCH, DELETE) */
  bodyMethod: boolean;
  validatedParameters: boolean;
  dependency: boolean;
}

/** The codes a route answers because of what it is, whatever its handler does. */
export function traitErrors(t: RouteTraits): ErrorCode[] {
  return [
    ...(t.authenticated ? AUTH_ERRORS : []),
    ...(t.roles ? ROLE_ERRORS : []),
    ...(t.jsonBody ? JSON_BODY_ERRORS : []),
    ...(t.bodyMethod ? BODY_PARSER_ERRORS : []),
    ...(t.validatedParameters ? PARAMETER_ERRORS : []),
    ...(t.rateLimited ? RATE_LIMIT_ERRORS : []),
    ...(t.dependency ? DEPENDENCY_ERRORS : []),
  ];
}

const EXAMPLE_CORRELATION_ID = '4f1c2a0e-9a59-4b8e-9d0c-2d0c8b5d7c11';

/**
 * The error response of one status listing its codes: `x-error-codes`, an enum on `code` and one example per
 * code. A HEAD answer has no body, so its error responses have no content (the codes stay in `x-error-codes`).
 */
export function errorResponse(codes: readonly ErrorCode[], head: boolean): ResponseObject & { 'x-error-codes': ErrorCode[] } {
  const sorted = [...codes];
  const description = sorted.map((c) => `\`${c}\`: ${ERROR_DESCRIPTIONS[c]}`).join('\n\n');
  if (head) return { description: `${description}\n\nA HEAD answer has no body: the status says which.`, 'x-error-codes': sorted };
  return {
    description,
    'x-error-codes': sorted,
    content: {
      'application/json': {
        schema: { allOf: [{ $ref: '#/components/schemas/ErrorBody' }, { type: 'object', properties: { code: { type: 'string', enum: sorted } } }] },
        examples: Object.fromEntries(
          sorted.map((c) => [
            c,
            {
              value: {
                code: c,
                message: ERROR_DESCRIPTIONS[c],
                correlationId: EXAMPLE_CORRELATION_ID,
                ...(ERROR_DETAILS_EXAMPLES[c] ? { details: ERROR_DETAILS_EXAMPLES[c] } : {}),
              },
            },
          ]),
        ),
      },
    },
  };
}

interface Route {
  controller: Type<unknown>;
  method: string;
  handler: object;
  operationId: string;
}

/** How the document names an operation: `operationIdFactory` of SwaggerModule.createDocument. */
export type OperationIdOf = (controllerKey: string, methodKey: string) => string;

/** Swagger's own default naming (`Things_list`), for documents built without a table. */
export const defaultOperationId: OperationIdOf = (controllerKey, methodKey) => `${controllerKey.replace(/Controller$/, '')}_${methodKey}`;

/** Every route handler of the app, with the operation id `buildOpenApi` gives it. */
function routesOf(app: INestApplication, operationIdOf: OperationIdOf): Route[] {
  const container = (app as unknown as { container: { getModules(): Map<string, { controllers: Map<unknown, { metatype: unknown }> }> } }).container;
  const out: Route[] = [];
  const seen = new Set<unknown>();
  for (const mod of container.getModules().values()) {
    for (const wrapper of mod.controllers.values()) {
      const controller = wrapper.metatype as Type<unknown> | undefined;
      if (!controller || seen.has(controller)) continue;
      seen.add(controller);
      const proto = controller.prototype as Record<string, unknown>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const handler = proto[name];
        if (name === 'constructor' || typeof handler !== 'function') continue;
        if (Reflect.getMetadata(PATH_METADATA, handler) === undefined || Reflect.getMetadata(METHOD_METADATA, handler) === undefined) continue;
        // an explicit @ApiOperation({ operationId }) wins over the factory, as it does in the document
        const explicit = (Reflect.getMetadata(API_OPERATION, handler) as { operationId?: string } | undefined)?.operationId;
        out.push({ controller, method: name, handler, operationId: explicit ?? operationIdOf(controller.name, name) });
      }
    }
  }
  return out;
}

const meta = <T>(key: string, ...targets: object[]): T | undefined => {
  for (const t of targets) {
    const v = Reflect.getMetadata(key, t) as T | undefined;
    if (v !== undefined) return v;
  }
  return undefined;
};

const BODY_METHODS = new Set<RequestMethod>([RequestMethod.POST, RequestMethod.PUT, RequestMethod.PATCH, RequestMethod.DELETE]);

interface RouteArg {
  index: number;
  data?: unknown;
  pipes?: unknown[];
}

/** The traits of one route, from its metadata (guards' keys, its handler's parameter decorators and pipes). */
export function routeTraits(route: Pick<Route, 'controller' | 'method' | 'handler'>): RouteTraits {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, route.controller, route.method) ?? {}) as Record<string, RouteArg>;
  const kinds = Object.entries(args).map(([key, a]) => ({ type: Number(key.split(':')[0]), pipes: a.pipes?.length ?? 0 }));
  return {
    authenticated: !meta<boolean>(PUBLIC_ROUTE, route.handler, route.controller),
    roles: (meta<unknown[]>(ROLES_KEY, route.handler, route.controller)?.length ?? 0) > 0,
    rateLimited: meta<string>(RATE_LIMIT_KEY, route.handler) !== undefined,
    // @Body(): parsed by the JSON body-parser, checked by the global validation pipe
    jsonBody: kinds.some((k) => k.type === (RouteParamtypes.BODY as number)),
    bodyMethod: BODY_METHODS.has(Reflect.getMetadata(METHOD_METADATA, route.handler) as RequestMethod),
    // @Query() (the global validation pipe refuses unknown and invalid parameters) or @Param() with a pipe
    validatedParameters: kinds.some((k) => k.type === (RouteParamtypes.QUERY as number) || (k.type === (RouteParamtypes.PARAM as number) && k.pipes > 0)),
    dependency: !meta<boolean>(NO_DEPENDENCY_KEY, route.handler),
  };
}

/**
 * The one place every operation's error responses are written: the codes its handler and controller declare
 * (@ApiErrors, from the error sets of what they call) plus the ones its traits imply, one response per status.
 * Authenticated routes also get the bearer security requirement here.
 */
export function applyErrorContract(app: INestApplication, doc: OpenAPIObject, operationIdOf: OperationIdOf = defaultOperationId): OpenAPIObject {
  const ops = new Map<string, { op: OperationObject; method: string; path: string }>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item as Record<string, OperationObject>)) {
      if (op && typeof op === 'object' && op.operationId) ops.set(op.operationId, { op, method, path });
    }
  }
  for (const route of routesOf(app, operationIdOf)) {
    const found = ops.get(route.operationId);
    if (!found) continue; // excluded from the document (e.g. @ApiExcludeEndpoint)
    const { op, method, path } = found;
    const traits = routeTraits(route);
    const codes = new Set<ErrorCode>([
      ...((Reflect.getMetadata(API_ERRORS_KEY, route.controller) as ErrorCode[] | undefined) ?? []),
      ...((Reflect.getMetadata(API_ERRORS_KEY, route.handler) as ErrorCode[] | undefined) ?? []),
      ...traitErrors(traits),
    ]);
    const byStatus = new Map<number, ErrorCode[]>();
    for (const c of Object.keys(ERROR_CODES) as ErrorCode[]) if (codes.has(c)) byStatus.set(ERROR_CODES[c], [...(byStatus.get(ERROR_CODES[c]) ?? []), c]);
    for (const [status, cs] of [...byStatus.entries()].sort(([a], [b]) => a - b)) {
      if (op.responses[status] !== undefined)
        throw new Error(`${method.toUpperCase()} ${path}: status ${status} is declared both as an answer and as error codes ${cs.join(', ')}`);
      op.responses[status] = errorResponse(cs, method === 'head') as OperationObject['responses'][string];
    }
    if (traits.authenticated) op.security = [{ bearer: [] }];
  }
  return doc;
}
