import { createHash, randomUUID } from 'node:crypto';
import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { AccessPolicy } from '../access/access.policy';
import { Principal } from '../access/principal';
import { AppError } from '../common/errors';
import { Page, pageOf } from '../common/pagination.dto';
import { CatalogService } from '../catalog/catalog.service';
import type { CreateTransaction } from '../catalog/image-lifecycle';
import { EventsService } from '../events/events.service';
import { QuotaConfig } from './quota.config';
import { QUOTA_RESOURCE_INFO, QUOTA_RESOURCES, QuotaResource, ReservationStatus } from './quota.enums';
import { ExceededFacts, idempotencyKeyReused, limitInvalid, quotaExceeded, reservationNotFound, reservationNotPending } from './quota.errors';
import {
  CATALOG_CALLER,
  isDeadlock,
  ItemRecord,
  LedgerRow,
  LedgerSnapshot,
  LedgerWrite,
  NewReservation,
  Outcome,
  QuotaRefusal,
  QuotaRepository,
  Refusal,
  ReservationRecord,
} from './quota.repository';

export type Amounts = Partial<Record<QuotaResource, number>>;

export interface ResourceUsage {
  resource: QuotaResource;
  /** null = unlimited */
  limit: number | null;
  used: number;
  reserved: number;
  /** null when unlimited; never negative (a limit lowered below usage leaves 0) */
  remaining: number | null;
}

export interface DepartmentQuota {
  departmentId: string;
  resources: ResourceUsage[];
}

export interface ReserveRequest {
  /** idempotency key, unique per caller */
  key: string;
  /** who reserves: a service's `sub`; the catalog uses `#catalog` (no token can carry a `#`) */
  callerId: string;
  departmentId: string;
  amounts: Amounts;
  /** default QUOTA_RESERVATION_TTL_SECONDS */
  ttlSeconds?: number;
  /** what the reservation pays for (an image or VM id) */
  subjectId?: string | null;
}

export interface Drift {
  departmentId: string;
  resource: QuotaResource;
  field: 'used' | 'reserved';
  recorded: number;
  actual: number;
  repaired: boolean;
}

export interface ReconcileReport {
  dryRun: boolean;
  /** departments checked */
  departments: number;
  drift: Drift[];
  /** departments whose ledger kept moving while they were checked (try again) */
  skipped: Array<{ departmentId: string; reason: string }>;
}

const CATALOG_RESOURCES = [QuotaResource.ImageCount, QuotaResource.ImageBytes];
const RETRIES = 20;
const imageKey = (imageId: string) => `image:${imageId}`;
const invalid = (field: string, message: string) => new AppError('VALIDATION_FAILED', message, { fields: [{ field, messages: [message] }] });

/** Amounts in resource order, zeros kept (a zero opens an item that grow fills later). */
function orderedAmounts(amounts: Amounts): Array<[QuotaResource, number]> {
  return QUOTA_RESOURCES.filter((r) => amounts[r] !== undefined).map((r) => [r, amounts[r]!]);
}

function fingerprint(departmentId: string, amounts: Array<[QuotaResource, number]>, subjectId: string | null): string {
  return createHash('sha256')
    .update(JSON.stringify([departmentId, amounts, subjectId]))
    .digest('hex');
}

/**
 * Department quotas (R16, R19): limits, usage and reservations in one ledger.
 *
 * Other modules reserve before they create something, commit when it exists (with the real amount),
 * release when it is not going to exist, and refund when it is gone:
 *
 *   const r = await quota.reserve({ key, callerId, departmentId, amounts: { VM_COUNT: 1, VCPU: 4 } });
 *   ...create the thing...
 *   await quota.commit(r.reservation.id)            // or quota.release(r.reservation.id) if creating failed
 *   ...later, the thing is deleted...
 *   await quota.refund(r.reservation.id)
 *
 * Every method that takes room throws QUOTA_EXCEEDED (409) when the department has none left.
 */
@Injectable()
export class QuotaService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Quota');
  private sweeper?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;
  /** the startup check, for whoever wants to wait for it (tests) */
  startupCheck: Promise<ReconcileReport | null> = Promise.resolve(null);

  constructor(
    private readonly repo: QuotaRepository,
    private readonly cfg: QuotaConfig,
    private readonly catalog: CatalogService,
    private readonly events: EventsService,
    private readonly access: AccessPolicy,
  ) {}

  onApplicationBootstrap(): void {
    if (this.cfg.reconcileOnStart !== 'off') {
      const dryRun = this.cfg.reconcileOnStart === 'report';
      this.startupCheck = this.reconcile({ dryRun }).then(
        (r) => {
          const what = r.drift.map((d) => `${d.departmentId} ${d.resource}.${d.field} ${d.recorded} -> ${d.actual}`).join('; ');
          if (r.drift.length) this.logger.warn(`Startup check: ${r.drift.length} drift(s) ${dryRun ? 'found (not repaired)' : 'repaired'}: ${what}`);
          else this.logger.log(`Startup check: ${r.departments} department(s), no drift`);
          return r;
        },
        (e: unknown) => {
          this.logger.error(`Startup check failed: ${(e as Error)?.stack ?? String(e)}`);
          return null;
        },
      );
    }
    if (this.cfg.sweepIntervalSeconds > 0) {
      this.sweeper = setInterval(() => {
        this.sweeping ??= this.sweep()
          .catch((e: unknown) => this.logger.error(`Sweep failed: ${(e as Error)?.message ?? String(e)}`))
          .finally(() => (this.sweeping = undefined));
      }, this.cfg.sweepIntervalSeconds * 1000);
      this.sweeper.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.allSettled([this.startupCheck, this.sweeping]);
  }

  // ------------------------------------------------------------------ reservations

  /**
   * Reserves `amounts` for a department, all or nothing. Idempotent by (callerId, key): the same request
   * again answers the same reservation (`created: false`), whatever its state now; the same key with
   * another department or other amounts throws IDEMPOTENCY_KEY_REUSED. A request that failed (for example
   * QUOTA_EXCEEDED) left nothing behind, so retrying its key tries again.
   *
   * An amount of 0 opens an item that grow() fills later; it still needs one unit of room.
   * The reservation expires after `ttlSeconds` unless committed, released or grown (each grow renews it);
   * expiring gives its pending amounts back.
   * @throws QUOTA_EXCEEDED with the resource, what was asked and what is left
   */
  async reserve(req: ReserveRequest): Promise<{ reservation: ReservationRecord; created: boolean }> {
    const amounts = orderedAmounts(req.amounts);
    if (!amounts.length) throw invalid('amounts', 'amounts must name at least one resource');
    for (const [r, n] of amounts) if (!Number.isSafeInteger(n) || n < 0) throw invalid(`amounts.${r}`, `amounts.${r} must be a non-negative integer`);
    const subjectId = req.subjectId ?? null;
    const n: NewReservation = {
      id: randomUUID(),
      callerId: req.callerId,
      key: req.key,
      fingerprint: fingerprint(req.departmentId, amounts, subjectId),
      departmentId: req.departmentId,
      subjectId,
      ttlSeconds: req.ttlSeconds ?? this.cfg.reservationTtlSeconds,
      amounts,
    };
    let swept = false;
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const o = await this.repo.reserve(n, new Date());
      if (o.ok) return { reservation: o.value, created: true };
      switch (o.refused) {
        case 'duplicate': {
          const existing = await this.repo.findByKey(req.callerId, req.key);
          if (!existing) continue; // the first one rolled back: try again
          if (existing.fingerprint !== n.fingerprint) throw idempotencyKeyReused(req.key);
          return { reservation: existing, created: false };
        }
        case 'exceeded':
          // reservations past their expiry may still hold room the sweeper has not given back yet
          if (!swept) {
            swept = true;
            if ((await this.expireDue(req.departmentId)) > 0) continue;
          }
          throw await this.refused(o.facts, req.callerId, null);
        default:
          await this.settle(o, n.id, 'reserved');
      }
    }
    throw this.busy();
  }

  /**
   * Grows the pending amount of one resource by `delta` (0 just renews the expiry), for example while
   * streaming a file of unknown size. Works on a PENDING reservation, and reopens a COMMITTED one (a retried
   * import reserves its bytes again). Not idempotent: a retried call grows twice; see growTo.
   * @throws QUOTA_EXCEEDED when the department has no room for `delta` more; the reservation keeps what it had
   * @throws RESERVATION_NOT_FOUND, RESERVATION_NOT_PENDING (released, expired or refunded)
   */
  grow(reservationId: string, resource: QuotaResource, delta: number): Promise<ReservationRecord> {
    if (!Number.isSafeInteger(delta) || delta < 0) throw invalid('delta', 'delta must be a non-negative integer');
    return this.retry(reservationId, 'grown', () => this.repo.grow(reservationId, resource, (c) => c + delta, new Date()));
  }

  /**
   * Makes the pending amount of one resource at least `total` (idempotent: "I have now streamed `total`
   * bytes"). Renews the expiry.
   * @throws QUOTA_EXCEEDED, RESERVATION_NOT_FOUND, RESERVATION_NOT_PENDING
   */
  growTo(reservationId: string, resource: QuotaResource, total: number): Promise<ReservationRecord> {
    if (!Number.isSafeInteger(total) || total < 0) throw invalid('total', 'total must be a non-negative integer');
    return this.retry(reservationId, 'grown', () => this.repo.grow(reservationId, resource, () => total, new Date()));
  }

  /**
   * Commits the pending amounts: they move from `reserved` to `used`. `actualAmounts` gives the real amount
   * per resource where it differs from what was reserved (less gives the rest back; more needs room).
   * `only` commits just those resources and leaves the others pending (the catalog commits the image count
   * at create and leaves the bytes to ingestion). Committing again with the same amounts is a no-op.
   * Contract for ingestion: record the image's size in the catalog BEFORE committing its bytes, so the
   * catalog and the ledger never disagree for a reconcile to see.
   * @throws QUOTA_EXCEEDED (an actual amount above the reservation without room), RESERVATION_NOT_FOUND,
   * RESERVATION_NOT_PENDING (released, expired, refunded, or committed with other amounts)
   */
  commit(reservationId: string, actualAmounts?: Amounts, only?: QuotaResource[]): Promise<ReservationRecord> {
    const actual = actualAmounts && Object.fromEntries(orderedAmounts(actualAmounts));
    for (const [r, n] of Object.entries(actual ?? {})) {
      if (!Number.isSafeInteger(n) || n < 0) throw invalid(`amounts.${r}`, `amounts.${r} must be a non-negative integer`);
    }
    return this.retry(reservationId, 'committed', () => this.repo.commit(reservationId, actual, only, new Date()));
  }

  /**
   * Gives back what is still pending (the thing will not be created). Releasing a released or expired
   * reservation is a no-op; what was already committed stays committed.
   * @throws RESERVATION_NOT_FOUND, RESERVATION_NOT_PENDING (committed: use refund; refunded)
   */
  release(reservationId: string): Promise<ReservationRecord> {
    return this.retry(reservationId, 'released', () => this.repo.release(reservationId, 'release', new Date()));
  }

  /**
   * Gives back everything the reservation holds, committed and pending (the thing it paid for is gone).
   * Refunding twice is a no-op.
   * @throws RESERVATION_NOT_FOUND
   */
  refund(reservationId: string): Promise<ReservationRecord> {
    return this.retry(reservationId, 'refunded', () => this.repo.refund(reservationId, new Date()));
  }

  /**
   * Charges one thing that exists now (a VM made from a launch: its VM_COUNT and DISK_BYTES) as its own
   * COMMITTED reservation `key`, so it can be refunded alone when it is gone: each amount moves from the PENDING
   * reservation `fromReservationId` (the launch's) while that holds enough of it for the same department, else
   * it is added to `used` directly by the conditional increase every route goes through; all or nothing.
   * Zero amounts are left out. `fromReservation` says whether the first resource (in resource order) came from
   * the reservation. Idempotent by (callerId, key): the same key again answers the first charge
   * (`created: false`) and charges nothing.
   * @throws QUOTA_EXCEEDED when an amount is not taken from the reservation and the department has no room
   */
  async charge(req: {
    key: string;
    callerId: string;
    departmentId: string;
    subjectId: string;
    amounts: Amounts;
    fromReservationId?: string | null;
  }): Promise<{ reservation: ReservationRecord; fromReservation: boolean; created: boolean }> {
    const amounts = orderedAmounts(req.amounts).filter(([, n]) => n !== 0);
    if (!amounts.length) throw invalid('amounts', 'amounts must name at least one resource with a positive amount');
    for (const [r, n] of amounts) if (!Number.isSafeInteger(n) || n < 1) throw invalid(`amounts.${r}`, `amounts.${r} must be a positive integer`);
    const fromId = req.fromReservationId ?? null;
    const n: NewReservation = {
      id: randomUUID(),
      callerId: req.callerId,
      key: req.key,
      fingerprint: '', // set by the repository: where the amount came from
      departmentId: req.departmentId,
      subjectId: req.subjectId,
      ttlSeconds: this.cfg.reservationTtlSeconds,
      amounts,
    };
    let swept = false;
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const o = await this.repo.charge(n, amounts, fromId, new Date());
      if (o.ok) return { reservation: o.value.rec, fromReservation: o.value.fromReservation, created: true };
      if (o.refused === 'duplicate') {
        const existing = await this.repo.findByKey(req.callerId, req.key);
        if (existing) return { reservation: existing, fromReservation: existing.fingerprint.startsWith('charged-from:'), created: false };
        continue;
      }
      // as in reserve: reservations past their expiry may still hold room the sweeper has not given back yet
      if (o.refused === 'exceeded' && !swept) {
        swept = true;
        if ((await this.expireDue(req.departmentId)) > 0) continue;
      }
      await this.settle(o, n.id, 'charged');
    }
    throw this.busy();
  }

  /** Refunds the reservation a caller made under `key` (see charge), if there is one. Idempotent. */
  async refundByKey(callerId: string, key: string): Promise<ReservationRecord | null> {
    const r = await this.repo.findByKey(callerId, key);
    return r ? this.refund(r.id) : null;
  }

  async getReservation(reservationId: string): Promise<ReservationRecord> {
    return (await this.repo.findReservation(reservationId)) ?? Promise.reject(reservationNotFound(reservationId));
  }

  /** The catalog's reservation for an image (1 image + its bytes), or null. Ingestion grows and commits its bytes. */
  reservationForImage(imageId: string): Promise<ReservationRecord | null> {
    return this.repo.findByKey(CATALOG_CALLER, imageKey(imageId));
  }

  // ------------------------------------------------------------------ the catalog's hooks

  /**
   * Inside the catalog's create transaction (`m`), before the row is written: the image's reservation as it
   * stands once the image exists, in the same transaction as the row (issue 16: one transaction per create
   * instead of three): its count committed (used), its expected bytes (0 when unknown) pending for ingestion.
   * The ledger takes both only if they fit (max(amount, 1) each, as reserve). A refusal throws QuotaRefusal:
   * the create's transaction rolls back, leaving nothing, and settleImageCreate says what happens next.
   * `oneByOne` (set by settleImageCreate after a refusal) moves the ledger rows one at a time to name the one
   * that did not fit.
   */
  async reserveImageIn(
    m: CreateTransaction,
    imageId: string,
    departmentId: string,
    expectedBytes: number | null,
    oneByOne = false,
  ): Promise<ReservationRecord> {
    const bytes = expectedBytes ?? 0;
    if (!Number.isSafeInteger(bytes) || bytes < 0)
      throw invalid(`amounts.${QuotaResource.ImageBytes}`, `amounts.${QuotaResource.ImageBytes} must be a non-negative integer`);
    const amounts = orderedAmounts({ [QuotaResource.ImageCount]: 1, [QuotaResource.ImageBytes]: bytes });
    const items: ItemRecord[] = [
      { resource: QuotaResource.ImageCount, reserved: 0, committed: 1, pending: false },
      { resource: QuotaResource.ImageBytes, reserved: bytes, committed: 0, pending: true },
    ];
    const n: NewReservation = {
      id: randomUUID(),
      callerId: CATALOG_CALLER,
      key: imageKey(imageId),
      fingerprint: fingerprint(departmentId, amounts, imageId),
      departmentId,
      subjectId: imageId,
      ttlSeconds: this.cfg.reservationTtlSeconds,
      amounts,
      status: ReservationStatus.Pending,
    };
    return this.repo.reserveIn(m, n, items, new Date(), oneByOne);
  }

  /**
   * The create's transaction rolled back with `error`. Answers what to do next: 'again' (the cause is settled:
   * a ledger row created, expired reservations given back, a lock conflict), 'again-one-by-one' (a ledger row
   * did not fit: run again naming it), or 'not-mine' (someone else's error). A department without room throws
   * QUOTA_EXCEEDED (and writes the quota.refused event, as reserve does). `swept`: expired reservations were
   * already given back for this create; `failures`: how many times this create's transaction failed so far
   * (CONFLICT once it is RETRIES - 1, before the lifecycle gives up with the raw error).
   */
  async settleImageCreate(
    departmentId: string,
    error: unknown,
    swept: boolean,
    failures = 1,
  ): Promise<'again' | 'again-one-by-one' | 'swept-again' | 'not-mine'> {
    const next = await this.settleOnce(departmentId, error, swept);
    // as every other quota operation: a ledger that keeps moving answers CONFLICT, never a driver error
    if (next !== 'not-mine' && failures >= RETRIES - 1) throw this.busy();
    return next;
  }

  private async settleOnce(departmentId: string, error: unknown, swept: boolean): Promise<'again' | 'again-one-by-one' | 'swept-again' | 'not-mine'> {
    if (isDeadlock(error)) {
      await new Promise((r) => setTimeout(r, Math.random() * 5));
      return 'again';
    }
    if (!(error instanceof QuotaRefusal)) return 'not-mine';
    const o = error.refusal;
    switch (o.refused) {
      case 'ledger_missing':
        await this.repo.ensureLedgerRows(o.departmentId, [...QUOTA_RESOURCES], this.cfg.defaultLimits, new Date());
        return 'again';
      case 'changed':
        return 'again-one-by-one';
      case 'duplicate':
        return 'again';
      case 'exceeded':
        // reservations past their expiry may still hold room the sweeper has not given back yet
        if (!swept && (await this.expireDue(departmentId)) > 0) return 'swept-again';
        throw await this.refused(o.facts, CATALOG_CALLER, null);
      default:
        throw new Error(`unexpected quota refusal ${o.refused} while creating an image`);
    }
  }

  /** Before the row is removed: mark the reservation (adopting images that have none) so reconcile stays exact. */
  async markImageDeleting(imageId: string, departmentId: string, sizeBytes: number | null): Promise<void> {
    const amounts = orderedAmounts({ [QuotaResource.ImageCount]: 1, [QuotaResource.ImageBytes]: sizeBytes ?? 0 });
    const n: NewReservation = {
      id: randomUUID(),
      callerId: CATALOG_CALLER,
      key: imageKey(imageId),
      fingerprint: 'adopted',
      departmentId,
      subjectId: imageId,
      ttlSeconds: this.cfg.reservationTtlSeconds,
      amounts,
    };
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const o = await this.repo.markDeleting(n, new Date());
      if (o.ok) return;
      if (o.refused !== 'duplicate') await this.settle(o, n.id, 'marked');
    }
    throw this.busy();
  }

  /** After the row is removed: the image's count, bytes and anything pending go back. */
  async refundImage(imageId: string): Promise<void> {
    const r = await this.reservationForImage(imageId);
    if (r) await this.refund(r.id);
  }

  // ------------------------------------------------------------------ limits and usage

  async department(p: Principal, departmentId: string): Promise<DepartmentQuota> {
    // who reads which department's quota is the access policy's decision
    this.access.assertCanReadDepartmentQuota(p, departmentId);
    return this.usageOf(departmentId, await this.repo.ledgerOf(departmentId));
  }

  async departments(page = 1, pageSize = 20): Promise<Page<DepartmentQuota>> {
    const { total, rows } = await this.repo.listLedger((page - 1) * pageSize, pageSize);
    const ids = [...new Set(rows.map((r) => r.departmentId))].sort();
    return pageOf(
      ids.map((id) =>
        this.usageOf(
          id,
          rows.filter((r) => r.departmentId === id),
        ),
      ),
      total,
      { page, pageSize },
    );
  }

  /**
   * Sets limits (super admins): an integer from 0 to the resource's maximum, or "unlimited". Resources left
   * out keep theirs. A limit below current usage is allowed: nothing more fits until usage drops.
   * @throws QUOTA_LIMIT_INVALID naming each bad value and why
   */
  async setLimits(departmentId: string, limits: Record<string, unknown>): Promise<DepartmentQuota> {
    const parsed: Array<[QuotaResource, number | null]> = [];
    const problems: Array<{ resource: string; value: unknown; reason: string }> = [];
    for (const resource of QUOTA_RESOURCES) {
      if (!(resource in limits) || limits[resource] === undefined) continue;
      const value = limits[resource];
      const reason = this.limitProblem(resource, value);
      if (reason) problems.push({ resource, value, reason });
      else parsed.push([resource, value === 'unlimited' ? null : (value as number)]);
    }
    if (problems.length) {
      const e = limitInvalid(problems[0].resource, problems[0].value, problems[0].reason);
      throw new AppError(e.code, problems.map((x) => `${x.resource}: ${x.reason}`).join('; '), { ...e.details, problems });
    }
    if (!parsed.length) throw invalid('limits', 'limits must name at least one resource');
    const now = new Date();
    await this.repo.ensureLedgerRows(departmentId, [...QUOTA_RESOURCES], this.cfg.defaultLimits, now);
    await this.repo.setLimits(departmentId, parsed, now, () =>
      this.events.program({
        type: 'quota.limit_changed',
        departmentId,
        visibility: { scope: null, ownerId: null, departmentId },
        payload: { departmentId, limits: Object.fromEntries(parsed) },
      }),
    );
    return this.usageOf(departmentId, await this.repo.ledgerOf(departmentId));
  }

  private limitProblem(resource: QuotaResource, value: unknown): string | null {
    if (value === 'unlimited') return null;
    if (typeof value !== 'number') return 'must be an integer or "unlimited"';
    if (!Number.isFinite(value)) return 'must be a finite number';
    if (!Number.isInteger(value)) return 'must be an integer';
    if (value < 0) return 'must not be negative';
    const max = QUOTA_RESOURCE_INFO[resource].maxLimit;
    if (value > max) return `must not exceed ${max} (${QUOTA_RESOURCE_INFO[resource].unit}); use "unlimited" for no limit`;
    return null;
  }

  private usageOf(departmentId: string, rows: LedgerRow[]): DepartmentQuota {
    const byRes = new Map(rows.map((r) => [r.resource, r]));
    return {
      departmentId,
      resources: QUOTA_RESOURCES.map((resource) => {
        const row = byRes.get(resource);
        const limit = row ? row.limitAmount : this.cfg.defaultLimits[resource];
        const used = row?.used ?? 0;
        const reserved = row?.reserved ?? 0;
        return { resource, limit, used, reserved, remaining: limit === null ? null : Math.max(0, limit - used - reserved) };
      }),
    };
  }

  // ------------------------------------------------------------------ reconcile

  /**
   * Recomputes usage from the catalog and reservations and repairs drift (unless dryRun):
   *   used(IMAGE_COUNT, IMAGE_BYTES) = the catalog's images of the department (count, sum of sizes), except
   *     images whose reservation is in flight for that resource (pending, or being deleted), which count
   *     what their reservation has committed;
   *   reserved(every resource) = the sum of pending reservation items.
   * The snapshot is one consistent read; each repaired row is written only if its version did not move
   * since (every event that changes what is in flight bumps it), else that department is read again.
   * Other resources' `used` (VMs, vCPU, ...) belongs to the compute side and is left as it is.
   */
  async reconcile(opts: { departmentId?: string; dryRun?: boolean } = {}): Promise<ReconcileReport> {
    const dryRun = opts.dryRun ?? false;
    const report: ReconcileReport = { dryRun, departments: 0, drift: [], skipped: [] };
    const plans = await this.plan(opts.departmentId);
    report.departments = plans.size;
    for (const [departmentId, first] of plans) {
      let plan = first;
      let done = dryRun || !plan.writes.length;
      for (let attempt = 0; !done && attempt < 5; attempt++) {
        const o = await this.repo.writeReconciled(departmentId, plan.writes, new Date());
        if (o.ok) done = true;
        else plan = (await this.plan(departmentId)).get(departmentId) ?? { drift: [], writes: [] };
        if (!plan.writes.length) done = true;
      }
      if (!done) report.skipped.push({ departmentId, reason: 'the ledger kept changing; run again' });
      report.drift.push(...plan.drift.map((d) => ({ ...d, repaired: !dryRun && done })));
    }
    return report;
  }

  private async plan(departmentId?: string): Promise<Map<string, { drift: Omit<Drift, 'repaired'>[]; writes: LedgerWrite[] }>> {
    const snap: LedgerSnapshot = await this.repo.snapshot(departmentId);
    // catalog reservations in flight: the image counts from its reservation, not from the catalog
    const exclude = new Map<QuotaResource, Set<string>>(CATALOG_RESOURCES.map((r) => [r, new Set()]));
    const fromReservations = new Map<string, number>();
    const k = (d: string, r: QuotaResource) => `${d}\u0000${r}`;
    const bySubject = new Map<string, typeof snap.inflight>();
    for (const row of snap.inflight) bySubject.set(row.subjectId, [...(bySubject.get(row.subjectId) ?? []), row]);
    for (const [subjectId, rows] of bySubject) {
      const deleting = rows[0].deleting;
      for (const r of CATALOG_RESOURCES) {
        const item = rows.find((x) => x.resource === r);
        if (!deleting && !item?.pending) continue;
        exclude.get(r)!.add(subjectId);
        fromReservations.set(k(rows[0].departmentId, r), (fromReservations.get(k(rows[0].departmentId, r)) ?? 0) + (item?.committed ?? 0));
      }
    }
    const images = await this.catalog.imageUsageByDepartment({
      departmentId,
      excludeFromCount: [...exclude.get(QuotaResource.ImageCount)!],
      excludeFromBytes: [...exclude.get(QuotaResource.ImageBytes)!],
    });
    const catalogUsed = new Map<string, number>();
    for (const u of images) {
      catalogUsed.set(k(u.departmentId, QuotaResource.ImageCount), u.imageCount);
      catalogUsed.set(k(u.departmentId, QuotaResource.ImageBytes), u.imageBytes);
    }
    const pending = new Map(snap.pending.map((p) => [k(p.departmentId, p.resource), p.total]));
    const ledger = new Map(snap.ledger.map((l) => [k(l.departmentId, l.resource), l]));
    const departments = new Set([...snap.ledger.map((l) => l.departmentId), ...images.map((i) => i.departmentId), ...snap.pending.map((p) => p.departmentId)]);
    if (departmentId !== undefined) for (const d of [...departments]) if (d !== departmentId) departments.delete(d);

    const plans = new Map<string, { drift: Omit<Drift, 'repaired'>[]; writes: LedgerWrite[] }>();
    for (const d of [...departments].sort()) {
      const drift: Omit<Drift, 'repaired'>[] = [];
      const writes: LedgerWrite[] = [];
      for (const r of QUOTA_RESOURCES) {
        const row = ledger.get(k(d, r));
        const recordedUsed = row?.used ?? 0;
        const recordedReserved = row?.reserved ?? 0;
        const actualReserved = pending.get(k(d, r)) ?? 0;
        const actualUsed = CATALOG_RESOURCES.includes(r) ? (catalogUsed.get(k(d, r)) ?? 0) + (fromReservations.get(k(d, r)) ?? 0) : recordedUsed;
        if (actualUsed !== recordedUsed) drift.push({ departmentId: d, resource: r, field: 'used', recorded: recordedUsed, actual: actualUsed });
        if (actualReserved !== recordedReserved)
          drift.push({ departmentId: d, resource: r, field: 'reserved', recorded: recordedReserved, actual: actualReserved });
        if (actualUsed !== recordedUsed || actualReserved !== recordedReserved) {
          writes.push({
            resource: r,
            used: actualUsed,
            reserved: actualReserved,
            expectedVersion: row ? row.version : null,
            limitAmount: this.cfg.defaultLimits[r],
          });
        }
      }
      plans.set(d, { drift, writes });
    }
    return plans;
  }

  // ------------------------------------------------------------------ sweeping

  /**
   * Gives back expired reservations, settles delete marks older than the reservation TTL (refund when the
   * image is gone, clear when it is still there), and purges finished reservations past the retention.
   * Runs every QUOTA_SWEEP_INTERVAL_SECONDS in every process; each step is conditional, so processes
   * sweeping at once do each thing once.
   */
  async sweep(now = new Date()): Promise<{ expired: number; settled: number; purged: number }> {
    let expired = 0;
    for (const id of await this.repo.expiredIds(now, 500)) if (await this.expireOne(id, now)) expired++;
    let settled = 0;
    const staleBefore = new Date(now.getTime() - this.cfg.reservationTtlSeconds * 1000);
    for (const m of await this.repo.staleDeleting(staleBefore, 200)) {
      const exists = m.subjectId ? await this.catalog.findInternal(m.subjectId) : null;
      const o = exists ? await this.repo.clearDeleting(m.id, now) : await this.repo.refund(m.id, now);
      if (o.ok) settled++;
    }
    const purged = await this.repo.purgeFinished(new Date(now.getTime() - this.cfg.retentionHours * 3600 * 1000));
    return { expired, settled, purged };
  }

  /** Expires a department's reservations that are due; answers how many were. */
  private async expireDue(departmentId: string): Promise<number> {
    const now = new Date();
    let n = 0;
    for (const id of await this.repo.expiredIds(now, 100, departmentId)) if (await this.expireOne(id, now)) n++;
    return n;
  }

  private async expireOne(id: string, now: Date): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const o = await this.repo.release(id, 'expire', now);
      if (o.ok) return o.value.status === ReservationStatus.Expired || o.value.status === ReservationStatus.Committed;
      if (o.refused === 'ledger_missing') await this.repo.ensureLedgerRows(o.departmentId, [...QUOTA_RESOURCES], this.cfg.defaultLimits, now);
      else if (o.refused !== 'changed') return false;
    }
    return false;
  }

  // ------------------------------------------------------------------ helpers

  /** Runs a reservation program until it is done or refuses for good. */
  private async retry(id: string, action: string, op: () => Promise<Outcome<ReservationRecord>>): Promise<ReservationRecord> {
    for (let attempt = 0; attempt < RETRIES; attempt++) {
      const o = await op();
      if (o.ok) return o.value;
      await this.settle(o, id, action);
    }
    throw this.busy();
  }

  /** Turns a refusal into an error, or fixes what can be fixed so the caller runs the program again. */
  private async settle(o: Refusal, id: string, action: string): Promise<void> {
    switch (o.refused) {
      case 'ledger_missing':
        await this.repo.ensureLedgerRows(o.departmentId, [...QUOTA_RESOURCES], this.cfg.defaultLimits, new Date());
        return;
      case 'changed':
      case 'duplicate':
        return;
      case 'not_found':
        throw reservationNotFound(id);
      case 'not_pending':
        throw reservationNotPending(id, o.status, action);
      case 'expired':
        await this.expireOne(id, new Date());
        throw reservationNotPending(id, ReservationStatus.Expired, action);
      case 'exceeded':
        throw await this.refused(o.facts, null, id);
    }
  }

  /** A refusal changes nothing, so its quota.refused event has no transaction to join: it is written alone. */
  private async refused(facts: ExceededFacts, callerId: string | null, reservationId: string | null): Promise<AppError> {
    await this.events.recordAlone({
      type: 'quota.refused',
      departmentId: facts.departmentId,
      visibility: { scope: null, ownerId: null, departmentId: facts.departmentId },
      payload: {
        departmentId: facts.departmentId,
        resource: facts.resource,
        requested: facts.requested,
        limit: facts.limit,
        used: facts.used,
        reserved: facts.reserved,
        callerId,
        reservationId,
      },
    });
    return quotaExceeded(facts);
  }

  private busy(): AppError {
    return new AppError('CONFLICT', 'The quota ledger is too busy to settle this request; try again');
  }
}
