import { AccessPolicy } from '../access/access.policy';
import { CatalogService } from '../catalog/catalog.service';
import { AppError } from '../common/errors';
import { EventsService } from '../events/events.service';
import { loadQuotaConfig } from './quota.config';
import { QuotaResource } from './quota.enums';
import { LedgerRow, QuotaRefusal, QuotaRepository } from './quota.repository';
import { QuotaService } from './quota.service';

/**
 * The limit rules and the remaining-amount arithmetic of QuotaService, with the real configuration loader and
 * a small in-memory ledger at the repository port. The ledger programs themselves (reserve, commit, refund
 * under concurrency) need a database and are tested in test/e2e/quota.e2e-spec.ts and
 * test/integration/quota-race.int-spec.ts.
 */
function quota(defaults = '') {
  const ledger = new Map<string, LedgerRow>();
  const calls: string[] = [];
  const repo = {
    ensureLedgerRows: async (departmentId: string, resources: QuotaResource[], limits: Record<string, number | null>, now: Date) => {
      calls.push('ensureLedgerRows');
      for (const r of resources) {
        const k = `${departmentId}/${r}`;
        if (!ledger.has(k)) ledger.set(k, { departmentId, resource: r, limitAmount: limits[r], used: 0, reserved: 0, version: 0, updatedAt: now });
      }
    },
    setLimits: async (departmentId: string, parsed: Array<[QuotaResource, number | null]>, _now: Date, inTx: () => unknown) => {
      calls.push('setLimits');
      for (const [r, limit] of parsed) ledger.get(`${departmentId}/${r}`)!.limitAmount = limit;
      inTx();
    },
    ledgerOf: async (departmentId: string) => [...ledger.values()].filter((r) => r.departmentId === departmentId),
  } as unknown as QuotaRepository;
  const events = { program: (e: { type: string }) => void calls.push(e.type) } as unknown as EventsService;
  const cfg = loadQuotaConfig(defaults ? { QUOTA_DEFAULT_LIMITS: defaults } : {});
  return { service: new QuotaService(repo, cfg, {} as CatalogService, events, new AccessPolicy()), ledger, calls };
}

async function refusal(p: Promise<unknown>): Promise<AppError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AppError);
  return e as AppError;
}

describe('quota: setting limits', () => {
  it.each([
    [QuotaResource.ImageCount, -1, 'must not be negative'],
    [QuotaResource.ImageCount, 1.5, 'must be an integer'],
    [QuotaResource.ImageCount, '10', 'must be an integer or "unlimited"'],
    [QuotaResource.ImageCount, null, 'must be an integer or "unlimited"'],
    [QuotaResource.ImageCount, Infinity, 'must be a finite number'],
    [QuotaResource.ImageCount, 1_000_001, 'must not exceed 1000000 (count); use "unlimited" for no limit'],
    [QuotaResource.ImageBytes, 2 ** 50 + 1, `must not exceed ${2 ** 50} (bytes); use "unlimited" for no limit`],
    [QuotaResource.Vcpu, 10_000_001, 'must not exceed 10000000 (count); use "unlimited" for no limit'],
  ] as const)('refuses %s = %j (QUOTA_LIMIT_INVALID: %s) and writes nothing', async (resource, value, reason) => {
    const { service, calls } = quota();
    const e = await refusal(service.setLimits('d1', { [resource]: value }));
    expect(e.code).toBe('QUOTA_LIMIT_INVALID');
    expect(e.details).toEqual({ resource, value, reason, problems: [{ resource, value, reason }] });
    expect(calls).toEqual([]);
  });

  it('accepts the edges: 0, the maximum and "unlimited"', async () => {
    const { service } = quota();
    const q = await service.setLimits('d1', { IMAGE_COUNT: 0, VM_COUNT: 1_000_000, IMAGE_BYTES: 'unlimited' });
    const limit = (r: QuotaResource) => q.resources.find((x) => x.resource === r)!.limit;
    expect([limit(QuotaResource.ImageCount), limit(QuotaResource.VmCount), limit(QuotaResource.ImageBytes)]).toEqual([0, 1_000_000, null]);
  });

  it('names every bad value at once, and sets none of the good ones', async () => {
    const { service, ledger } = quota();
    const e = await refusal(service.setLimits('d1', { IMAGE_COUNT: 5, VCPU: -2, DISK_BYTES: 'lots' }));
    expect(e.code).toBe('QUOTA_LIMIT_INVALID');
    expect((e.details as { problems: Array<{ resource: string }> }).problems.map((p) => p.resource)).toEqual(['VCPU', 'DISK_BYTES']);
    expect(e.message).toBe('VCPU: must not be negative; DISK_BYTES: must be an integer or "unlimited"');
    expect(ledger.size).toBe(0);
  });

  it('refuses a request naming no resource (VALIDATION_FAILED); unknown names are not resources', async () => {
    const { service, calls } = quota();
    expect((await refusal(service.setLimits('d1', {}))).code).toBe('VALIDATION_FAILED');
    expect((await refusal(service.setLimits('d1', { GPU: 3, IMAGE_COUNT: undefined }))).code).toBe('VALIDATION_FAILED');
    expect(calls).toEqual([]);
  });

  it('keeps the limits left out and records quota.limit_changed with the new ones', async () => {
    const { service, calls } = quota('IMAGE_COUNT=100,VM_COUNT=7');
    const q = await service.setLimits('d1', { IMAGE_COUNT: 3 });
    expect(q.resources.find((r) => r.resource === QuotaResource.ImageCount)!.limit).toBe(3);
    expect(q.resources.find((r) => r.resource === QuotaResource.VmCount)!.limit).toBe(7);
    expect(calls).toEqual(['ensureLedgerRows', 'setLimits', 'quota.limit_changed']);
  });
});

describe('quota: what remains', () => {
  it('is the limit less used and reserved, never below zero, and null when unlimited', async () => {
    const { service, ledger } = quota();
    await service.setLimits('d1', { IMAGE_COUNT: 10, VM_COUNT: 2, VCPU: 'unlimited' });
    Object.assign(ledger.get('d1/IMAGE_COUNT')!, { used: 4, reserved: 3 });
    Object.assign(ledger.get('d1/VM_COUNT')!, { used: 5, reserved: 1 }); // a limit lowered below usage
    Object.assign(ledger.get('d1/VCPU')!, { used: 64, reserved: 8 });
    const q = await service.setLimits('d1', { DISK_BYTES: 1024 });
    const row = (r: QuotaResource) => q.resources.find((x) => x.resource === r)!;
    expect(row(QuotaResource.ImageCount)).toEqual({ resource: 'IMAGE_COUNT', limit: 10, used: 4, reserved: 3, remaining: 3 });
    expect(row(QuotaResource.VmCount)).toEqual({ resource: 'VM_COUNT', limit: 2, used: 5, reserved: 1, remaining: 0 });
    expect(row(QuotaResource.Vcpu)).toEqual({ resource: 'VCPU', limit: null, used: 64, reserved: 8, remaining: null });
    expect(row(QuotaResource.DiskBytes)).toEqual({ resource: 'DISK_BYTES', limit: 1024, used: 0, reserved: 0, remaining: 1024 });
    expect(q.resources.map((r) => r.resource)).toEqual(['IMAGE_COUNT', 'IMAGE_BYTES', 'VM_COUNT', 'VCPU', 'MEMORY_BYTES', 'DISK_BYTES']);
  });
});

describe('quota: settling a failed create transaction (issue 16)', () => {
  const deadlock = Object.assign(new Error('Deadlock found when trying to get lock'), { code: 'ER_LOCK_DEADLOCK' });

  it('runs the create again after a lock conflict or a ledger row that did not fit, and leaves other errors alone', async () => {
    const { service } = quota();
    await expect(service.settleImageCreate('d1', deadlock, false, 1)).resolves.toBe('again');
    await expect(service.settleImageCreate('d1', new QuotaRefusal({ refused: 'changed' }), false, 1)).resolves.toBe('again-one-by-one');
    await expect(service.settleImageCreate('d1', new AppError('CONFLICT', 'someone else'), false, 1)).resolves.toBe('not-mine');
  });

  it('creates the ledger rows of a department seen for the first time, then runs again', async () => {
    const { service, ledger, calls } = quota();
    const next = await service.settleImageCreate(
      'd2',
      new QuotaRefusal({ refused: 'ledger_missing', departmentId: 'd2', resources: [QuotaResource.ImageCount] }),
      false,
      1,
    );
    expect(next).toBe('again');
    expect(calls).toEqual(['ensureLedgerRows']);
    expect([...ledger.keys()].filter((k) => k.startsWith('d2/'))).toContain('d2/IMAGE_COUNT');
  });

  it('answers CONFLICT, not the driver error, when the ledger keeps moving', async () => {
    const { service } = quota();
    const e = await refusal(service.settleImageCreate('d1', deadlock, false, 19));
    expect(e.code).toBe('CONFLICT');
  });
});
