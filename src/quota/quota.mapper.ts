import { DepartmentQuotaResponse, ReconcileResponse, ReservationResponse } from './quota.dto';
import { ReservationRecord } from './quota.repository';
import { DepartmentQuota, ReconcileReport } from './quota.service';

export function toDepartmentQuotaResponse(q: DepartmentQuota): DepartmentQuotaResponse {
  return {
    departmentId: q.departmentId,
    resources: q.resources.map((r) => ({
      resource: r.resource,
      limit: r.limit,
      unlimited: r.limit === null,
      used: r.used,
      reserved: r.reserved,
      remaining: r.remaining,
    })),
  };
}

export function toReservationResponse(r: ReservationRecord): ReservationResponse {
  return {
    id: r.id,
    key: r.key,
    departmentId: r.departmentId,
    status: r.status,
    expiresAt: r.expiresAt.toISOString(),
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    items: r.items.map((i) => ({ resource: i.resource, reserved: i.reserved, committed: i.committed, pending: i.pending })),
  };
}

export function toReconcileResponse(r: ReconcileReport): ReconcileResponse {
  return { dryRun: r.dryRun, departments: r.departments, drift: r.drift.map((d) => ({ ...d })), skipped: r.skipped.map((s) => ({ ...s })) };
}
