import {
  applyDecorators,
  CanActivate,
  ExecutionContext,
  Global,
  Injectable,
  Logger,
  Module,
  OnModuleDestroy,
  OnModuleInit,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Principal } from '../access/principal';
import { AppConfig } from '../config/app-config';
import { connectionOf } from '../jobs/bullmq-queue';
import { MetricsService } from '../observability/metrics.service';
import { AppError } from '../common/errors';
import { RATE_LIMIT_KEY } from '../common/route-metadata';

/** The expensive operations, each with its own per-caller budget. */
export type RateLimitBucket = 'create' | 'upload' | 'import';
export { RATE_LIMIT_KEY };
const BUCKETS: RateLimitBucket[] = ['create', 'upload', 'import'];
const WINDOW_SECONDS = 60;

/**
 * Limits a route per caller (token sub) to the bucket's budget; over it: 429 RATE_LIMITED with Retry-After.
 * A route-level guard, so it runs after the global AuthGuard has verified the caller.
 */
export const RateLimited = (bucket: RateLimitBucket) => applyDecorators(SetMetadata(RATE_LIMIT_KEY, bucket), UseGuards(RateLimitGuard));

/** What one request got: allowed, or refused with the seconds until the caller's budget has room again. */
export type Verdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Limiters {
  perMinute: number;
  memory: RateLimiterMemory;
  redis?: RateLimiterRedis;
}

/**
 * The budgets, per (bucket, caller) and fixed 60-second window, counted by rate-limiter-flexible: in Redis
 * (one atomic script per request, keys `<QUEUE_PREFIX>:rl:<bucket>:<caller>`) when the queue runs on Redis,
 * so every replica draws on the same budget; in this process's memory in the embedded shape.
 *
 * Redis down: the request is counted in this replica's memory instead (each replica then allows the budget
 * on its own, as before the shared limits), with a warning at most every 30 s and
 * `hcm_rate_limit_store_errors_total`. The limits protect import capacity; refusing every create with 503
 * because Redis blinked would take the catalog down with it, and imports need Redis anyway.
 */
@Injectable()
export class RateLimiter implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger('RateLimit');
  private readonly limiters = new Map<RateLimitBucket, Limiters>();
  private readonly redis?: Redis;
  private lastWarning = 0;

  constructor(
    cfg: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    const q = cfg.queue;
    if (q.driver === 'redis' && q.redisUrl && BUCKETS.some((b) => cfg.rateLimits[b] > 0)) {
      // its own connection: fail fast instead of queueing commands while Redis is away
      this.redis = new Redis({ ...connectionOf(q.redisUrl), maxRetriesPerRequest: 1, enableOfflineQueue: false, commandTimeout: 1000, lazyConnect: false });
      this.redis.on('error', () => undefined); // reported per request below
    }
    for (const bucket of BUCKETS) {
      const perMinute = cfg.rateLimits[bucket];
      if (perMinute <= 0) continue;
      const keyPrefix = `${q.prefix}:rl:${bucket}`;
      this.limiters.set(bucket, {
        perMinute,
        memory: new RateLimiterMemory({ points: perMinute, duration: WINDOW_SECONDS, keyPrefix }),
        redis: this.redis
          ? new RateLimiterRedis({ storeClient: this.redis, points: perMinute, duration: WINDOW_SECONDS, keyPrefix, rejectIfRedisNotReady: true })
          : undefined,
      });
    }
  }

  /** The budget of a bucket per caller and minute; 0 when the limit is off. */
  limit(bucket: RateLimitBucket): number {
    return this.limiters.get(bucket)?.perMinute ?? 0;
  }

  /** Takes one request from the caller's budget. */
  async consume(bucket: RateLimitBucket, caller: string): Promise<Verdict> {
    const l = this.limiters.get(bucket);
    if (!l) return { allowed: true };
    try {
      await (l.redis ?? l.memory).consume(caller);
      return { allowed: true };
    } catch (e) {
      if (e instanceof RateLimiterRes) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(e.msBeforeNext / 1000)) };
      if (!l.redis) throw e;
      this.storeFailed(e);
    }
    try {
      await l.memory.consume(caller);
      return { allowed: true };
    } catch (e) {
      if (e instanceof RateLimiterRes) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(e.msBeforeNext / 1000)) };
      throw e;
    }
  }

  private storeFailed(e: unknown): void {
    this.metrics.rateLimitStoreErrors.inc();
    const now = Date.now();
    if (now - this.lastWarning < 30_000) return;
    this.lastWarning = now;
    this.log.warn({ msg: 'rate limits counted per replica: Redis is unavailable', error: e instanceof Error ? e.message : String(e) });
  }

  /** Waits (at most 2 s) for the Redis connection, so the first requests are not counted per replica. */
  async onModuleInit(): Promise<void> {
    const r = this.redis;
    if (!r || r.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        r.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, 2000);
      r.once('ready', done);
    });
  }

  async onModuleDestroy(): Promise<void> {
    if (!this.redis) return;
    await this.redis.quit().catch(() => this.redis?.disconnect());
  }
}

@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly limiter: RateLimiter,
    private readonly metrics: MetricsService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const bucket = this.reflector.get<RateLimitBucket | undefined>(RATE_LIMIT_KEY, ctx.getHandler());
    if (!bucket) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const caller = req.principal?.userId ?? req.ip ?? 'anonymous';
    const v = await this.limiter.consume(bucket, caller);
    if (v.allowed) return true;
    const perMinute = this.limiter.limit(bucket);
    ctx.switchToHttp().getResponse<Response>().setHeader('Retry-After', String(v.retryAfterSeconds));
    this.metrics.rateLimited.inc({ route: bucket });
    throw new AppError('RATE_LIMITED', `Too many ${bucket} requests: at most ${perMinute} a minute; retry in ${v.retryAfterSeconds} s`, {
      bucket,
      limitPerMinute: perMinute,
      retryAfterSeconds: v.retryAfterSeconds,
    });
  }
}

/** The one RateLimiter of the process (one Redis connection), for every module's RateLimitGuard. */
@Global()
@Module({ providers: [RateLimiter], exports: [RateLimiter] })
export class RateLimitModule {}
