import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Principal } from './principal';

export interface RequestContext {
  correlationId: string;
  /** the authenticated caller, set by the auth guard (events record it as their actor) */
  principal?: Principal;
}

/** Carries the correlation id through everything a request (or a job) does, for logs and error bodies. */
export const requestContext = new AsyncLocalStorage<RequestContext>();

export const CORRELATION_HEADER = 'x-correlation-id';
const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function currentCorrelationId(): string | undefined {
  return requestContext.getStore()?.correlationId;
}

/** The caller of the current request, or undefined in workers, sweeps and start-up work. */
export function currentPrincipal(): Principal | undefined {
  return requestContext.getStore()?.principal;
}

/** Takes a well-formed X-Correlation-Id from the caller or makes one; echoes it in the response. */
export function correlationMiddleware(req: Request, res: Response, next: NextFunction): void {
  const given = req.header(CORRELATION_HEADER);
  const correlationId = given && VALID_ID.test(given) ? given : randomUUID();
  (req as Request & { correlationId: string }).correlationId = correlationId;
  res.setHeader('X-Correlation-Id', correlationId);
  requestContext.run({ correlationId }, () => next());
}

export function correlationIdOf(req: unknown): string {
  return (req as { correlationId?: string } | undefined)?.correlationId ?? currentCorrelationId() ?? randomUUID();
}
