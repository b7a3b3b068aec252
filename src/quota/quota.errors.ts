import { AppError, ErrorSet } from '../common/errors';
import { QuotaResource, ReservationStatus } from './quota.enums';

export interface ExceededFacts {
  departmentId: string;
  resource: QuotaResource;
  /** what the operation asked for on top of what is held */
  requested: number;
  limit: number | null;
  used: number;
  reserved: number;
}

/** 409 QUOTA_EXCEEDED: the resource, what was asked and what is left. */
export function quotaExceeded(f: ExceededFacts): AppError {
  const remaining = f.limit === null ? null : Math.max(0, f.limit - f.used - f.reserved);
  return new AppError('QUOTA_EXCEEDED', `Department ${f.departmentId} has ${remaining} ${f.resource} left; ${f.requested} asked`, {
    departmentId: f.departmentId,
    resource: f.resource,
    requested: f.requested,
    remaining,
    limit: f.limit,
    used: f.used,
    reserved: f.reserved,
  });
}

export const reservationNotFound = (id: string) => new AppError('RESERVATION_NOT_FOUND', `Reservation ${id} not found`, { id });

export const reservationNotPending = (id: string, status: ReservationStatus, action: string) =>
  new AppError('RESERVATION_NOT_PENDING', `Reservation ${id} is ${status}: it cannot be ${action}`, { id, status });

export const limitInvalid = (resource: string, value: unknown, reason: string) =>
  new AppError('QUOTA_LIMIT_INVALID', `The ${resource} limit ${JSON.stringify(value)} is invalid: ${reason}`, { resource, value, reason });

export const idempotencyKeyReused = (key: string) =>
  new AppError('IDEMPOTENCY_KEY_REUSED', `The key "${key}" was already used for a different reservation`, { key });

/** What each QuotaService call can raise (CONFLICT: the ledger stayed too busy to settle after its retries). */
export const QUOTA_ERRORS = {
  read: ['FORBIDDEN'],
  setLimits: ['QUOTA_LIMIT_INVALID', 'VALIDATION_FAILED'],
  reserve: ['QUOTA_EXCEEDED', 'IDEMPOTENCY_KEY_REUSED', 'VALIDATION_FAILED', 'CONFLICT'],
  get: ['RESERVATION_NOT_FOUND'],
  grow: ['RESERVATION_NOT_FOUND', 'RESERVATION_NOT_PENDING', 'QUOTA_EXCEEDED', 'VALIDATION_FAILED', 'CONFLICT'],
  commit: ['RESERVATION_NOT_FOUND', 'RESERVATION_NOT_PENDING', 'QUOTA_EXCEEDED', 'VALIDATION_FAILED', 'CONFLICT'],
  release: ['RESERVATION_NOT_FOUND', 'RESERVATION_NOT_PENDING', 'CONFLICT'],
  refund: ['RESERVATION_NOT_FOUND', 'CONFLICT'],
  /** a thing that exists now is charged as its own reservation (a registered VM), moved from a launch's or added */
  charge: ['QUOTA_EXCEEDED', 'RESERVATION_NOT_FOUND', 'RESERVATION_NOT_PENDING', 'VALIDATION_FAILED', 'CONFLICT'],
} as const satisfies Record<string, ErrorSet>;
