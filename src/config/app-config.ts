import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import { ConfigError } from './config-error';
import { IsBoolean, IsIn, IsInt, Matches, IsOptional, IsString, Max, MaxLength, Min, MinLength, validateSync } from 'class-validator';
import { parseCidr, splitList } from '../common/cidr';
import { jwksProblem, pemKeyProblem } from '../common/key-checks';

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));
const toBool = ({ value }: { value: unknown }) => {
  if (value === undefined || value === '') return undefined;
  if (typeof value === 'boolean') return value;
  const v = String(value).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  return value; // left as a string so validation names the key
};
const emptyToUndefined = ({ value }: { value: unknown }) => (value === '' ? undefined : value);

export const DB_TYPES = ['sqlite', 'mariadb', 'mysql'] as const;
export type DbType = (typeof DB_TYPES)[number];
export const LOG_LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const STORAGE_DRIVERS = ['fs', 'minio'] as const;
export type StorageDriver = (typeof STORAGE_DRIVERS)[number];

/**
 * The service's environment, read once at boot. Every setting the service reads is a property here;
 * nothing else reads process.env. Defaults give the embedded shape (SQLite + filesystem under ./data).
 */
export class EnvVars {
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  HOST?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DATA_DIR?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(DB_TYPES as unknown as string[])
  DB_TYPE?: DbType;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DB_PATH?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DB_HOST?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(65535)
  DB_PORT?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DB_SOCKET?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DB_USER?: string;

  @IsOptional()
  @IsString()
  DB_PASSWORD?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DB_NAME?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(200)
  DB_POOL_SIZE?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  DB_LOG?: boolean;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MinLength(32, { message: 'AUTH_JWT_SECRET must be at least 32 characters' })
  AUTH_JWT_SECRET?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  AUTH_JWT_PUBLIC_KEY_FILE?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^https?:\/\/[^\s/?#@]+([/?][^\s#]*)?$/, {
    message: 'AUTH_JWKS_URL must be an http(s) URL without credentials, e.g. https://iam.hcm.internal/.well-known/jwks.json',
  })
  AUTH_JWKS_URL?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  AUTH_JWKS_FILE?: string;

  /** how often the JWKS is loaded again even when no token names an unknown kid */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(86_400)
  AUTH_JWKS_REFRESH_SECONDS?: number;

  /** at most one load per this many seconds, however many tokens name unknown kids (0: only one load in flight) */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600)
  AUTH_JWKS_COOLDOWN_SECONDS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(60_000)
  AUTH_JWKS_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  AUTH_JWT_ISSUER?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  AUTH_JWT_AUDIENCE?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600)
  AUTH_CLOCK_SKEW_SECONDS?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  SEED_DEFAULT_ZONE?: boolean;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(LOG_LEVELS as unknown as string[])
  LOG_LEVEL?: LogLevel;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1024)
  @Max(100 * 1024 * 1024)
  HTTP_BODY_LIMIT_BYTES?: number;

  // rate limits per caller and minute (0 = off)
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  RATE_LIMIT_CREATE_PER_MIN?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  RATE_LIMIT_UPLOAD_PER_MIN?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100_000)
  RATE_LIMIT_IMPORT_PER_MIN?: number;

  // jobs (src/jobs)
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['memory', 'redis'])
  QUEUE_DRIVER?: 'memory' | 'redis';

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^rediss?:\/\/[^\s]+$/, { message: 'REDIS_URL must look like redis://host:6379[/db]' })
  REDIS_URL?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^[A-Za-z0-9_-]{1,32}$/)
  QUEUE_PREFIX?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1000)
  @Max(600_000)
  QUEUE_LOCK_MS?: number;

  /** this replica's stable name (default: the host name); a restarted replica takes back the jobs it held */
  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^[A-Za-z0-9._-]{1,64}$/, { message: 'WORKER_ID must be 1-64 of A-Z a-z 0-9 . _ -' })
  WORKER_ID?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(20)
  JOB_ATTEMPTS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(600_000)
  JOB_BACKOFF_MS?: number;

  /** 0: this replica runs no imports (API only); queued imports wait for a replica that does */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(64)
  IMPORT_CONCURRENCY?: number;

  // --- object storage (src/storage) ---
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(STORAGE_DRIVERS as unknown as string[])
  STORAGE_DRIVER?: StorageDriver;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  STORAGE_FS_ROOT?: string;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  STORAGE_FS_DIRECT_IO?: boolean;

  /** S3 multipart part size; bounds the memory one upload holds (about two parts). */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(5)
  @Max(1024)
  STORAGE_PART_SIZE_MB?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  MINIO_ENDPOINT?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(65535)
  MINIO_PORT?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  MINIO_USE_SSL?: boolean;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  MINIO_ACCESS_KEY?: string;

  @IsOptional()
  @IsString()
  MINIO_SECRET_KEY?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  MINIO_BUCKET?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  MINIO_REGION?: string;

  // --- URL downloads (src/ingestion/sources) ---
  @IsOptional()
  @IsString()
  URL_ALLOW_CIDRS?: string;

  @IsOptional()
  @IsString()
  URL_DENY_CIDRS?: string;

  @IsOptional()
  @IsString()
  URL_ALLOW_HOSTS?: string;

  @IsOptional()
  @IsString()
  URL_DENY_HOSTS?: string;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  URL_DENY_PRIVATE?: boolean;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  URL_CONNECT_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3600000)
  URL_IDLE_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(20)
  URL_MAX_REDIRECTS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(100)
  URL_MAX_ATTEMPTS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600000)
  URL_RETRY_BASE_DELAY_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  INGEST_MAX_SIZE_BYTES?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  INGEST_COMPUTE_MD5?: boolean;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  INGEST_RESUME_AFTER_CRASH?: boolean;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  INGEST_HASH_WORKER?: boolean;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  INGEST_YOUNG_GC?: boolean;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(3600)
  INGEST_SWEEP_INTERVAL_SECONDS?: number;

  /** how often (ms) the platform shape looks for unfinished imports whose job is gone from Redis; 0: never */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(600_000)
  INGEST_LOST_JOB_CHECK_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(Number.MAX_SAFE_INTEGER)
  INGEST_MAX_VIRTUAL_SIZE_BYTES?: number;

  // --- qemu-img, the referee on every stored image (src/ingestion/qemu-img.ts) ---
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  QEMU_IMG?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(3600000)
  QEMU_IMG_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3600)
  QEMU_IMG_CPU_SECONDS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(16)
  @Max(65536)
  QEMU_IMG_MAX_MEMORY_MB?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(65536)
  @Max(Number.MAX_SAFE_INTEGER)
  QEMU_IMG_CONVERT_RATE_BYTES?: number;

  // --- the platform's file directory: FILE_SOURCE* are src/file-sources/file-sources.config.ts's own ---

  // --- VM links and launches (src/vm-links) ---
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(60)
  @Max(604800)
  DOWNLOAD_URL_TTL_SECONDS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MinLength(32, { message: 'DOWNLOAD_URL_SECRET must be at least 32 characters' })
  DOWNLOAD_URL_SECRET?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/, { message: 'PUBLIC_BASE_URL must be an http(s) URL without query, e.g. https://images.hcm.internal' })
  PUBLIC_BASE_URL?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(60)
  @Max(604800)
  LAUNCH_RESERVATION_TTL_SECONDS?: number;

  // --- events (src/events) ---
  /** false: no events are written at all (for measuring what they cost); GET /events stays empty */
  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  EVENTS_OUTBOX?: boolean;

  /** at most one image.import.progressed event per image and this many seconds */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3600)
  EVENTS_PROGRESS_INTERVAL_SECONDS?: number;

  /** how often a replica with open event streams looks for new events */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(20)
  @Max(10000)
  EVENTS_SSE_POLL_MS?: number;

  /** a comment line on every idle event stream this often, so proxies keep it open */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(300)
  EVENTS_SSE_HEARTBEAT_SECONDS?: number;

  /** the RabbitMQ the relay publishes to; unset: no relay (the outbox is read through /events only) */
  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^amqps?:\/\/[^\s/?#]+(\/[^\s?#]*)?(\?[^\s#]*)?$/, { message: 'EVENTS_AMQP_URL must look like amqp://[user[:password]@]host[:port][/vhost]' })
  EVENTS_AMQP_URL?: string;

  /** credentials for EVENTS_AMQP_URL (override what the URL carries; never echoed) */
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MaxLength(255)
  EVENTS_AMQP_USER?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MaxLength(1024)
  EVENTS_AMQP_PASSWORD?: string;

  /** the topic exchange (declared durable at start); routing key = event type */
  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^[A-Za-z0-9._:-]{1,255}$/, { message: 'EVENTS_EXCHANGE must be 1-255 letters, digits or ._:-' })
  EVENTS_EXCHANGE?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(10)
  @Max(60000)
  EVENTS_RELAY_INTERVAL_MS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(5000)
  EVENTS_RELAY_BATCH?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(2)
  @Max(600)
  EVENTS_RELAY_LEASE_SECONDS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(100)
  @Max(600000)
  EVENTS_RECONNECT_MAX_MS?: number;

  /** published events (all events when no relay runs) are deleted after this */
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(87600)
  EVENTS_RETENTION_HOURS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(86400)
  EVENTS_PRUNE_INTERVAL_SECONDS?: number;
}

export { ConfigError } from './config-error';

export interface DbConfig {
  type: DbType;
  /** SQLite file path, or ':memory:' */
  path: string;
  host: string;
  port: number;
  socket?: string;
  user: string;
  password: string;
  name: string;
  poolSize: number;
  log: boolean;
}

export interface AuthConfig {
  /** HS256 secret; undefined when only RS256 is configured */
  secret?: string;
  /** PEM public key (RSA, EC P-256 or Ed25519) for RS256/ES256/EdDSA tokens */
  publicKey?: string;
  /** a JWKS (URL or file) whose keys are chosen by kid */
  jwks?: JwksConfig;
  issuer?: string;
  audience?: string;
  clockSkewSeconds: number;
  /** true when the secret was generated for the embedded default */
  generatedSecret: boolean;
}

export interface JwksConfig {
  url?: string;
  file?: string;
  refreshSeconds: number;
  cooldownSeconds: number;
  timeoutMs: number;
}

export interface StorageConfig {
  driver: StorageDriver;
  /** fs driver: where objects live (default <DATA_DIR>/objects) */
  fsRoot: string;
  /** fs driver: write whole pooled MiBs of an object with O_DIRECT where the filesystem allows it (default true) */
  fsDirectIo: boolean;
  /** S3 multipart part size in bytes (default 16 MiB) */
  partSizeBytes: number;
  minio: {
    endPoint: string;
    port: number;
    useSSL: boolean;
    accessKey: string;
    secretKey: string;
    bucket: string;
    region: string;
  };
}

export interface UrlFetchConfig {
  allowCidrs: string[];
  denyCidrs: string[];
  allowHosts: string[];
  denyHosts: string[];
  denyPrivate: boolean;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  maxRedirects: number;
  maxAttempts: number;
  retryBaseDelayMs: number;
}

export interface IngestionConfig {
  /** largest file accepted from any source, in bytes (default 1 TiB) */
  maxSizeBytes: number;
  /** compute md5 beside sha256 while streaming */
  computeMd5: boolean;
  /**
   * a URL import that died with its process resumes from the bytes stored (default on; off: it starts from byte 0
   * as before, and no resume record is kept beside the upload - the benchmark's reference for its cost)
   */
  resumeAfterCrash: boolean;
  /**
   * filesystem store: sha256 (and md5) in a worker thread, fed with reused shared buffers, so hashing overlaps
   * the disk writes and no buffer is allocated per MiB (false: on the main thread, a fresh buffer per MiB)
   */
  hashWorker: boolean;
  /**
   * a young-generation collection every 4 MiB streamed (all transfers together), so the transfer's dead
   * buffers are freed before V8's external-memory limit forces a full collection (../common/young-gc.ts)
   */
  youngGc: boolean;
  /** how often unfinished imports nobody works on are found and queued again (0: only at start-up) */
  sweepIntervalSeconds: number;
  /** BullMQ only: how often (ms) unfinished imports are checked for a job in Redis (0: never) */
  lostJobCheckMs: number;
  /** largest virtual size (what the disk holds once expanded) an image may declare, in bytes (default 16 TiB) */
  maxVirtualSizeBytes: number;
  /** how qemu-img runs on every stored image */
  qemuImg: { binary: string; timeoutMs: number; cpuSeconds: number; maxMemoryMb: number; convertRateBytes?: number };
  url: UrlFetchConfig;
}

export interface VmLinksConfig {
  /** how long a launch's download URL (presigned or signed service URL) is valid */
  downloadUrlTtlSeconds: number;
  /** key material of signed service download URLs: DOWNLOAD_URL_SECRET, else the HS256 JWT secret */
  downloadUrlSecret?: string;
  /** scheme://host[:port][/prefix] that signed service URLs carry; unset: the launch request's own host */
  publicBaseUrl?: string;
  /** how long a launch's VM quota stays reserved while the compute side registers its VMs */
  launchReservationTtlSeconds: number;
}

export interface EventsConfig {
  /** false: events are not written (EVENTS_OUTBOX=false) */
  outbox: boolean;
  /** at most one progress event per image every this many ms */
  progressIntervalMs: number;
  ssePollMs: number;
  sseHeartbeatMs: number;
  /** the relay to RabbitMQ; undefined: off */
  amqp?: {
    /** the URL with EVENTS_AMQP_USER/PASSWORD applied (a secret: never log it) */
    url: string;
    /** scheme://host:port/vhost without credentials, for logs */
    safeUrl: string;
    exchange: string;
    intervalMs: number;
    batch: number;
    leaseMs: number;
    reconnectMaxMs: number;
  };
  retentionMs: number;
  /** 0 = never prune */
  pruneIntervalMs: number;
}

/** The validated, typed configuration every module receives through DI. */
export interface QueueConfig {
  driver: 'memory' | 'redis';
  redisUrl?: string;
  prefix: string;
  lockMs: number;
  /** the replica's stable name: its worker is named <workerId>@<random per start>, see BullMqQueue */
  workerId: string;
  attempts: number;
  backoffMs: number;
  /** imports one replica runs at once */
  concurrency: number;
}

export interface RateLimitConfig {
  create: number;
  upload: number;
  import: number;
}

export class AppConfig {
  /** requests per caller and minute on the expensive routes; 0 turns a limit off */
  rateLimits: RateLimitConfig;
  queue: QueueConfig;
  port: number;
  host: string;
  dataDir: string;
  db: DbConfig;
  auth: AuthConfig;
  seedDefaultZone: boolean;
  logLevel: LogLevel;
  bodyLimitBytes: number;
  storage: StorageConfig;
  ingestion: IngestionConfig;
  vmLinks: VmLinksConfig;
  events: EventsConfig;
  /** Raw, validated variables, for modules that add their own settings (kept typed there). */
  env: Record<string, string | undefined>;
}

/** EVENTS_AMQP_URL with EVENTS_AMQP_USER/PASSWORD applied, and a form without credentials for logs. */
function parseAmqp(vars: EnvVars, problems: string[]): { url: string; safeUrl: string } | undefined {
  if (!vars.EVENTS_AMQP_URL) {
    if (vars.EVENTS_AMQP_USER || vars.EVENTS_AMQP_PASSWORD || vars.EVENTS_EXCHANGE)
      problems.push('EVENTS_AMQP_URL: required when EVENTS_AMQP_USER, EVENTS_AMQP_PASSWORD or EVENTS_EXCHANGE is set');
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(vars.EVENTS_AMQP_URL);
  } catch {
    problems.push('EVENTS_AMQP_URL: not a URL (amqp://[user[:password]@]host[:port][/vhost])');
    return undefined;
  }
  if (!u.hostname) {
    problems.push('EVENTS_AMQP_URL: has no host');
    return undefined;
  }
  if (vars.EVENTS_AMQP_USER !== undefined) u.username = encodeURIComponent(vars.EVENTS_AMQP_USER);
  if (vars.EVENTS_AMQP_PASSWORD !== undefined) u.password = encodeURIComponent(vars.EVENTS_AMQP_PASSWORD);
  if (u.password && !u.username) problems.push('EVENTS_AMQP_PASSWORD: needs a user (EVENTS_AMQP_USER or in the URL)');
  const port = u.port || (u.protocol === 'amqps:' ? '5671' : '5672');
  return { url: u.toString(), safeUrl: `${u.protocol}//${u.hostname}:${port}${u.pathname || '/'}` };
}

export const DEV_SECRET_FILE = 'dev-jwt-secret';

/** Reads (or, in the embedded default, creates) the development JWT secret kept under the data dir. */
export function devSecret(dataDir: string, create: boolean): string | undefined {
  const file = join(dataDir, DEV_SECRET_FILE);
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  if (!create) return undefined;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}

/**
 * Validates the environment and builds the configuration. Throws ConfigError naming every bad key.
 */
/**
 * The platform shape: DB_TYPE mariadb/mysql or STORAGE_DRIVER minio (state other replicas share). The
 * embedded shape is SQLite with the filesystem store, one process on one machine.
 */
export function isPlatformShape(vars: { DB_TYPE?: string; STORAGE_DRIVER?: string }): boolean {
  return (vars.DB_TYPE ?? 'sqlite') !== 'sqlite' || vars.STORAGE_DRIVER === 'minio';
}

/**
 * A feature's check of its own settings (it owns their schema): reads the raw variables, pushes what is wrong onto
 * `problems`. loadConfig runs the checks it is given with its own, so a bad start lists every problem at once.
 */
export type ConfigCheck = (env: Record<string, string | undefined>, problems: string[]) => void;

export function loadConfig(env: Record<string, string | undefined> = process.env, checks: readonly ConfigCheck[] = []): AppConfig {
  const vars = plainToInstance(EnvVars, { ...env }, { excludeExtraneousValues: false });
  const errors = validateSync(vars, { whitelist: false, forbidUnknownValues: false });
  const problems = errors.map((e) => {
    const value = /SECRET|PASSWORD|KEY|AMQP_URL/.test(e.property) ? '(hidden)' : JSON.stringify(env[e.property]);
    return `${e.property}=${value}: ${Object.values(e.constraints ?? {}).join('; ')}`;
  });

  const dataDir = resolve(vars.DATA_DIR ?? './data');
  const dbType: DbType = vars.DB_TYPE ?? 'sqlite';
  const embedded = dbType === 'sqlite';
  let publicKey: string | undefined;
  if (vars.AUTH_JWT_PUBLIC_KEY_FILE) {
    try {
      publicKey = readFileSync(vars.AUTH_JWT_PUBLIC_KEY_FILE, 'utf8');
      const why = publicKey.includes('BEGIN PUBLIC KEY') ? pemKeyProblem(publicKey) : 'not a PEM public key';
      if (why) problems.push(`AUTH_JWT_PUBLIC_KEY_FILE: file is not a usable PEM public key: ${why}`);
    } catch {
      problems.push(`AUTH_JWT_PUBLIC_KEY_FILE: cannot read ${vars.AUTH_JWT_PUBLIC_KEY_FILE}`);
    }
  }
  if (vars.AUTH_JWKS_URL && vars.AUTH_JWKS_FILE) problems.push('AUTH_JWKS_FILE: set either AUTH_JWKS_URL or AUTH_JWKS_FILE, not both');
  if (vars.AUTH_JWKS_FILE) {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(vars.AUTH_JWKS_FILE, 'utf8'));
    } catch (e) {
      problems.push(`AUTH_JWKS_FILE: cannot read ${vars.AUTH_JWKS_FILE} as JSON (${(e as Error).message})`);
    }
    const why = doc === undefined ? undefined : jwksProblem(doc);
    if (why) problems.push(`AUTH_JWKS_FILE: ${why}`);
  }
  const asymmetric = Boolean(vars.AUTH_JWT_PUBLIC_KEY_FILE || vars.AUTH_JWKS_URL || vars.AUTH_JWKS_FILE);
  if (!embedded && !vars.AUTH_JWT_SECRET && !asymmetric) {
    problems.push('AUTH_JWT_SECRET: required when DB_TYPE is not sqlite (or set AUTH_JWT_PUBLIC_KEY_FILE, AUTH_JWKS_URL or AUTH_JWKS_FILE)');
  }
  for (const key of ['URL_ALLOW_CIDRS', 'URL_DENY_CIDRS'] as const) {
    const bad = splitList(vars[key]).filter((c) => !parseCidr(c));
    if (bad.length) problems.push(`${key}: not a CIDR or IP address: ${bad.join(', ')}`);
  }
  if (vars.STORAGE_DRIVER === 'minio') {
    for (const key of ['MINIO_ENDPOINT', 'MINIO_ACCESS_KEY', 'MINIO_SECRET_KEY'] as const) {
      if (!vars[key]) problems.push(`${key}: required when STORAGE_DRIVER is minio`);
    }
  }
  // the platform shape: a database or object store shared by replicas behind a load balancer. The signed
  // download URLs need a name for the service that no request can choose (a Host header is the caller's)
  if (isPlatformShape(vars) && !vars.PUBLIC_BASE_URL) {
    problems.push(
      'PUBLIC_BASE_URL: required when DB_TYPE is mariadb/mysql or STORAGE_DRIVER is minio (the base of the download URLs the service signs, e.g. https://images.hcm.internal)',
    );
  }
  if (vars.QUEUE_DRIVER === 'redis' && !vars.REDIS_URL) problems.push('REDIS_URL: required when QUEUE_DRIVER is redis');
  if ((vars.STORAGE_DRIVER ?? 'fs') === 'fs' && !vars.DOWNLOAD_URL_SECRET && !vars.AUTH_JWT_SECRET && asymmetric) {
    problems.push('DOWNLOAD_URL_SECRET: required with STORAGE_DRIVER=fs when AUTH_JWT_SECRET is not set (it signs the download URLs of launches)');
  }
  const amqp = parseAmqp(vars, problems);
  // the features' own settings (quota, file sources): each feature owns its schema and config/ imports none of
  // them; the composition root passes their checks (src/feature-configs.ts) so every problem is listed at once
  for (const check of checks) check(env, problems);
  if (problems.length) throw new ConfigError(problems);

  let secret = vars.AUTH_JWT_SECRET;
  let generatedSecret = false;
  if (!secret && !asymmetric) {
    secret = devSecret(dataDir, true);
    generatedSecret = true;
  }
  const dbPath = vars.DB_PATH ?? join(dataDir, 'hcm-images.sqlite');
  return Object.assign(new AppConfig(), {
    port: vars.PORT ?? 3000,
    host: vars.HOST ?? '0.0.0.0',
    dataDir,
    db: {
      type: dbType,
      path: dbPath === ':memory:' || isAbsolute(dbPath) ? dbPath : resolve(dbPath),
      host: vars.DB_HOST ?? '127.0.0.1',
      port: vars.DB_PORT ?? 3306,
      socket: vars.DB_SOCKET,
      user: vars.DB_USER ?? 'root',
      password: vars.DB_PASSWORD ?? '',
      name: vars.DB_NAME ?? 'hcm_images',
      poolSize: vars.DB_POOL_SIZE ?? 10,
      log: vars.DB_LOG ?? false,
    },
    auth: {
      secret,
      publicKey,
      jwks:
        vars.AUTH_JWKS_URL || vars.AUTH_JWKS_FILE
          ? {
              url: vars.AUTH_JWKS_URL,
              file: vars.AUTH_JWKS_FILE,
              refreshSeconds: vars.AUTH_JWKS_REFRESH_SECONDS ?? 600,
              cooldownSeconds: vars.AUTH_JWKS_COOLDOWN_SECONDS ?? 30,
              timeoutMs: vars.AUTH_JWKS_TIMEOUT_MS ?? 5000,
            }
          : undefined,
      issuer: vars.AUTH_JWT_ISSUER,
      audience: vars.AUTH_JWT_AUDIENCE,
      clockSkewSeconds: vars.AUTH_CLOCK_SKEW_SECONDS ?? 30,
      generatedSecret,
    },
    queue: {
      driver: vars.QUEUE_DRIVER ?? (vars.REDIS_URL ? 'redis' : 'memory'),
      redisUrl: vars.REDIS_URL,
      prefix: vars.QUEUE_PREFIX ?? 'hcm',
      lockMs: vars.QUEUE_LOCK_MS ?? 30_000,
      workerId:
        vars.WORKER_ID ??
        (hostname()
          .replace(/[^A-Za-z0-9._-]/g, '-')
          .slice(0, 64) ||
          'hcm'),
      attempts: vars.JOB_ATTEMPTS ?? 5,
      backoffMs: vars.JOB_BACKOFF_MS ?? 2_000,
      concurrency: vars.IMPORT_CONCURRENCY ?? 2,
    },
    rateLimits: {
      create: vars.RATE_LIMIT_CREATE_PER_MIN ?? 120,
      upload: vars.RATE_LIMIT_UPLOAD_PER_MIN ?? 30,
      import: vars.RATE_LIMIT_IMPORT_PER_MIN ?? 60,
    },
    seedDefaultZone: vars.SEED_DEFAULT_ZONE ?? embedded,
    logLevel: vars.LOG_LEVEL ?? 'log',
    bodyLimitBytes: vars.HTTP_BODY_LIMIT_BYTES ?? 1024 * 1024,
    storage: {
      driver: vars.STORAGE_DRIVER ?? 'fs',
      fsRoot: resolve(vars.STORAGE_FS_ROOT ?? join(dataDir, 'objects')),
      fsDirectIo: vars.STORAGE_FS_DIRECT_IO ?? true,
      partSizeBytes: (vars.STORAGE_PART_SIZE_MB ?? 16) * 1024 * 1024,
      minio: {
        endPoint: vars.MINIO_ENDPOINT ?? '127.0.0.1',
        port: vars.MINIO_PORT ?? 9000,
        useSSL: vars.MINIO_USE_SSL ?? false,
        accessKey: vars.MINIO_ACCESS_KEY ?? '',
        secretKey: vars.MINIO_SECRET_KEY ?? '',
        bucket: vars.MINIO_BUCKET ?? 'hcm-images',
        region: vars.MINIO_REGION ?? 'us-east-1',
      },
    },
    ingestion: {
      maxSizeBytes: vars.INGEST_MAX_SIZE_BYTES ?? 1024 ** 4,
      computeMd5: vars.INGEST_COMPUTE_MD5 ?? false,
      resumeAfterCrash: vars.INGEST_RESUME_AFTER_CRASH ?? true,
      hashWorker: vars.INGEST_HASH_WORKER ?? true,
      youngGc: vars.INGEST_YOUNG_GC ?? true,
      sweepIntervalSeconds: vars.INGEST_SWEEP_INTERVAL_SECONDS ?? 60,
      lostJobCheckMs: vars.INGEST_LOST_JOB_CHECK_MS ?? 2_000,
      maxVirtualSizeBytes: vars.INGEST_MAX_VIRTUAL_SIZE_BYTES ?? 16 * 1024 ** 4,
      qemuImg: {
        binary: vars.QEMU_IMG ?? 'qemu-img',
        timeoutMs: vars.QEMU_IMG_TIMEOUT_MS ?? 60_000,
        cpuSeconds: vars.QEMU_IMG_CPU_SECONDS ?? 30,
        maxMemoryMb: vars.QEMU_IMG_MAX_MEMORY_MB ?? 1024,
        convertRateBytes: vars.QEMU_IMG_CONVERT_RATE_BYTES,
      },
      url: {
        allowCidrs: splitList(vars.URL_ALLOW_CIDRS),
        denyCidrs: splitList(vars.URL_DENY_CIDRS),
        allowHosts: splitList(vars.URL_ALLOW_HOSTS),
        denyHosts: splitList(vars.URL_DENY_HOSTS),
        denyPrivate: vars.URL_DENY_PRIVATE ?? false,
        connectTimeoutMs: vars.URL_CONNECT_TIMEOUT_MS ?? 10_000,
        idleTimeoutMs: vars.URL_IDLE_TIMEOUT_MS ?? 30_000,
        maxRedirects: vars.URL_MAX_REDIRECTS ?? 5,
        maxAttempts: vars.URL_MAX_ATTEMPTS ?? 5,
        retryBaseDelayMs: vars.URL_RETRY_BASE_DELAY_MS ?? 1000,
      },
    },
    vmLinks: {
      downloadUrlTtlSeconds: vars.DOWNLOAD_URL_TTL_SECONDS ?? 3600,
      downloadUrlSecret: vars.DOWNLOAD_URL_SECRET ?? secret,
      publicBaseUrl: vars.PUBLIC_BASE_URL?.replace(/\/+$/, ''),
      launchReservationTtlSeconds: vars.LAUNCH_RESERVATION_TTL_SECONDS ?? 3600,
    },
    events: {
      outbox: vars.EVENTS_OUTBOX ?? true,
      progressIntervalMs: (vars.EVENTS_PROGRESS_INTERVAL_SECONDS ?? 20) * 1000,
      ssePollMs: vars.EVENTS_SSE_POLL_MS ?? 250,
      sseHeartbeatMs: (vars.EVENTS_SSE_HEARTBEAT_SECONDS ?? 15) * 1000,
      amqp: amqp && {
        ...amqp,
        exchange: vars.EVENTS_EXCHANGE ?? 'hcm.images',
        intervalMs: vars.EVENTS_RELAY_INTERVAL_MS ?? 100,
        batch: vars.EVENTS_RELAY_BATCH ?? 200,
        leaseMs: (vars.EVENTS_RELAY_LEASE_SECONDS ?? 10) * 1000,
        reconnectMaxMs: vars.EVENTS_RECONNECT_MAX_MS ?? 10_000,
      },
      retentionMs: (vars.EVENTS_RETENTION_HOURS ?? 168) * 3600_000,
      pruneIntervalMs: (vars.EVENTS_PRUNE_INTERVAL_SECONDS ?? 300) * 1000,
    },
    env: { ...env },
  });
}
