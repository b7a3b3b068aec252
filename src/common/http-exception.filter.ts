import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AppError, ErrorCode, ERROR_CODES } from './errors';
import { correlationIdOf } from './request-context';
import { DEPENDENCY_RETRY_AFTER_SECONDS, isDependencyUnavailable } from './dependency-errors';

interface Rendered {
  status: number;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

const DUPLICATE_ERRORS = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);

function statusToCode(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'VALIDATION_FAILED';
    case 401:
      return 'AUTH_TOKEN_INVALID';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'ROUTE_NOT_FOUND';
    case 405:
      return 'METHOD_NOT_ALLOWED';
    case 409:
      return 'CONFLICT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 415:
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 503:
      return 'DEPENDENCY_UNAVAILABLE';
    default:
      return status >= 500 ? 'INTERNAL_ERROR' : 'VALIDATION_FAILED';
  }
}

/** Maps anything thrown to one body: { code, message, correlationId, details? }. */
export function renderError(exception: unknown): Rendered {
  if (exception instanceof AppError) {
    return { status: exception.status, code: exception.code, message: exception.message, details: exception.details };
  }
  // body-parser errors reach us wrapped in an HttpException by the Express adapter
  const cause = exception instanceof HttpException ? exception.cause : undefined;
  const e = (cause ?? exception) as { type?: string; status?: number; code?: string; driverError?: { code?: string } };
  // body-parser errors (raised before any pipe runs)
  if (e?.type === 'entity.parse.failed') {
    return { status: 400, code: 'MALFORMED_JSON', message: 'The request body is not valid JSON' };
  }
  if (e?.type === 'entity.too.deep') {
    return { status: 400, code: 'MALFORMED_JSON', message: (e as Error).message, details: { maxDepth: (e as { maxDepth?: number }).maxDepth } };
  }
  if (e?.type === 'entity.too.large') {
    return { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large' };
  }
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported body encoding or charset' };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const code = statusToCode(status);
    const resp = exception.getResponse();
    const message = typeof resp === 'string' ? resp : ((resp as { message?: unknown }).message ?? exception.message);
    return { status, code, message: Array.isArray(message) ? message.join('; ') : String(message) };
  }
  const driverCode = e?.driverError?.code ?? e?.code;
  if (driverCode && DUPLICATE_ERRORS.has(driverCode)) {
    return { status: 409, code: 'CONFLICT', message: 'The resource already exists' };
  }
  if (isDependencyUnavailable(exception)) {
    return { status: 503, code: 'DEPENDENCY_UNAVAILABLE', message: 'A dependency is unavailable, try again later' };
  }
  return { status: HttpStatus.INTERNAL_SERVER_ERROR, code: 'INTERNAL_ERROR', message: 'Internal error' };
}

@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpError');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const r = renderError(exception);
    const correlationId = correlationIdOf(req);
    if (r.code === 'DEPENDENCY_UNAVAILABLE') {
      // expected while a dependency is down: one line, no stack
      this.logger.warn(`${req.method} ${req.originalUrl} -> 503 ${r.code} [${correlationId}]: ${(exception as Error)?.message ?? String(exception)}`);
    } else if (r.status >= 500) {
      this.logger.error(`${req.method} ${req.originalUrl} -> ${r.status} ${r.code} [${correlationId}]: ${(exception as Error)?.stack ?? String(exception)}`);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    // every 503 is worth retrying later (a dependency or a file source is down): say when, as the contract declares
    if ((r.code === 'DEPENDENCY_UNAVAILABLE' || r.code === 'FILE_SOURCE_UNAVAILABLE') && !res.getHeader('Retry-After'))
      res.setHeader('Retry-After', String(DEPENDENCY_RETRY_AFTER_SECONDS));
    res.status(r.status).json({ code: r.code, message: r.message, correlationId, ...(r.details ? { details: r.details } : {}) });
  }
}

export const statusOf = (code: ErrorCode): number => ERROR_CODES[code];
