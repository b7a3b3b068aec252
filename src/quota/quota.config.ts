import { plainToInstance, Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, Min, validateSync } from 'class-validator';
import { ConfigError } from '../config/config-error';
import { QUOTA_RESOURCE_INFO, QUOTA_RESOURCES, QuotaResource } from './quota.enums';

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));
const emptyToUndefined = ({ value }: { value: unknown }) => (value === '' ? undefined : value);

export const RECONCILE_ON_START = ['repair', 'report', 'off'] as const;
export type ReconcileOnStart = (typeof RECONCILE_ON_START)[number];

/** The quota module's settings (read from the validated AppConfig.env at boot). */
export class QuotaEnvVars {
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(604800)
  QUOTA_RESERVATION_TTL_SECONDS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600)
  QUOTA_SWEEP_INTERVAL_SECONDS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(RECONCILE_ON_START as unknown as string[])
  QUOTA_RECONCILE_ON_START?: ReconcileOnStart;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  QUOTA_DEFAULT_LIMITS?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(87600)
  QUOTA_RETENTION_HOURS?: number;
}

export class QuotaConfig {
  /** How long a reservation that is never committed lives (each grow renews it). */
  reservationTtlSeconds: number;
  /** How often expired reservations are given back and stale delete markers settled; 0 turns the sweeper off. */
  sweepIntervalSeconds: number;
  /** What the startup check does with drift between the ledger and the catalog. */
  reconcileOnStart: ReconcileOnStart;
  /** The limit a department starts with, per resource (null = unlimited), when it is first seen. */
  defaultLimits: Record<QuotaResource, number | null>;
  /** How long finished (released, expired, refunded) reservations are kept so their keys stay idempotent. */
  retentionHours: number;
}

/** Parses "IMAGE_COUNT=100,IMAGE_BYTES=unlimited". */
function parseDefaultLimits(text: string | undefined, problems: string[]): Record<QuotaResource, number | null> {
  const limits = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, null])) as Record<QuotaResource, number | null>;
  if (!text) return limits;
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Z_]+)\s*=\s*(\S+)$/.exec(part);
    const resource = m?.[1] as QuotaResource | undefined;
    if (!m || !resource || !QUOTA_RESOURCES.includes(resource)) {
      problems.push(`QUOTA_DEFAULT_LIMITS: "${part}" is not <${QUOTA_RESOURCES.join('|')}>=<integer|unlimited>`);
      continue;
    }
    if (m[2] === 'unlimited') continue;
    const n = Number(m[2]);
    if (!/^\d+$/.test(m[2]) || !Number.isSafeInteger(n) || n > QUOTA_RESOURCE_INFO[resource].maxLimit) {
      problems.push(`QUOTA_DEFAULT_LIMITS: ${resource} must be "unlimited" or an integer 0..${QUOTA_RESOURCE_INFO[resource].maxLimit}`);
      continue;
    }
    limits[resource] = n;
  }
  return limits;
}

/** Validates the QUOTA_* settings; throws ConfigError naming every bad key. */
export function loadQuotaConfig(env: Record<string, string | undefined>): QuotaConfig {
  const vars = plainToInstance(QuotaEnvVars, { ...env });
  const problems = validateSync(vars, { whitelist: false, forbidUnknownValues: false }).map(
    (e) => `${e.property}=${JSON.stringify(env[e.property])}: ${Object.values(e.constraints ?? {}).join('; ')}`,
  );
  const defaultLimits = parseDefaultLimits(vars.QUOTA_DEFAULT_LIMITS, problems);
  if (problems.length) throw new ConfigError(problems);
  return Object.assign(new QuotaConfig(), {
    reservationTtlSeconds: vars.QUOTA_RESERVATION_TTL_SECONDS ?? 900,
    sweepIntervalSeconds: vars.QUOTA_SWEEP_INTERVAL_SECONDS ?? 30,
    reconcileOnStart: vars.QUOTA_RECONCILE_ON_START ?? 'repair',
    defaultLimits,
    retentionHours: vars.QUOTA_RETENTION_HOURS ?? 168,
  });
}

/** The check loadConfig runs at boot with the rest of the configuration (src/feature-configs.ts). */
export function checkQuotaConfig(env: Record<string, string | undefined>, problems: string[]): void {
  try {
    loadQuotaConfig(env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
}
