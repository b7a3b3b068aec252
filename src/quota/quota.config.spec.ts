import { ConfigError } from '../config/app-config';
import { loadQuotaConfig } from './quota.config';

describe('loadQuotaConfig', () => {
  it('defaults: 15 min reservations, sweep every 30 s, repair at startup, no limits, 7 days of finished reservations', () => {
    const c = loadQuotaConfig({});
    expect(c).toMatchObject({ reservationTtlSeconds: 900, sweepIntervalSeconds: 30, reconcileOnStart: 'repair', retentionHours: 168 });
    expect(Object.values(c.defaultLimits).every((v) => v === null)).toBe(true);
  });

  it('reads every setting, default limits included', () => {
    const c = loadQuotaConfig({
      QUOTA_RESERVATION_TTL_SECONDS: '60',
      QUOTA_SWEEP_INTERVAL_SECONDS: '0',
      QUOTA_RECONCILE_ON_START: 'report',
      QUOTA_RETENTION_HOURS: '1',
      QUOTA_DEFAULT_LIMITS: 'IMAGE_COUNT=100, IMAGE_BYTES=1099511627776,VM_COUNT=unlimited',
    });
    expect(c).toMatchObject({ reservationTtlSeconds: 60, sweepIntervalSeconds: 0, reconcileOnStart: 'report', retentionHours: 1 });
    expect(c.defaultLimits).toMatchObject({ IMAGE_COUNT: 100, IMAGE_BYTES: 1099511627776, VM_COUNT: null, VCPU: null });
  });

  it('names every bad key at once', () => {
    let err: unknown;
    try {
      loadQuotaConfig({ QUOTA_RESERVATION_TTL_SECONDS: '5', QUOTA_RECONCILE_ON_START: 'maybe', QUOTA_DEFAULT_LIMITS: 'GPU=1,IMAGE_COUNT=-3,VCPU=1.5' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const bad of ['QUOTA_RESERVATION_TTL_SECONDS', 'QUOTA_RECONCILE_ON_START', '"GPU=1"', 'IMAGE_COUNT must be', 'VCPU must be'])
      expect(problems).toContain(bad);
  });
});
