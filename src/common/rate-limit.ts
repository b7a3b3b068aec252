import { applyDecorators, CanActivate, ExecutionContext, Injectable, SetMetadata, UseGuards } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import type { Principal } from '../access/principal';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { AppError } from './errors';

/** The expensive operations, each with its own per-caller budget. */
export type RateLimitBucket = 'create' | 'upload' | 'import';
export const RATE_LIMIT_KEY = 'hcm:rate-limit';

/**
 * Limits a route per caller (token sub) to the bucket's budget; over it: 429 RATE_LIMITED with Retry-After.
 * A route-level guard, so it runs after the global AuthGuard has verified the caller.
 */
export const RateLimited = (bucket: RateLimitBucket) => applyDecorators(SetMetadata(RATE_LIMIT_KEY, bucket), UseGuards(RateLimitGuard));

interface Bucket {
  tokens: number;
  updated: number;
}

/**
 * Token buckets per (caller, bucket) in this replica's memory: `perMinute` tokens refill evenly, up to a
 * burst of the same size. With N replicas behind a balancer a caller gets at most N times the budget;
 * the limits protect each replica's import capacity, which is what they are for.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = Date.now();

  constructor(
    private readonly reflector: Reflector,
    private readonly cfg: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  canActivate(ctx: ExecutionContext): boolean {
    const bucket = this.reflector.get<RateLimitBucket | undefined>(RATE_LIMIT_KEY, ctx.getHandler());
    if (!bucket) return true;
    const perMinute = this.cfg.rateLimits[bucket];
    if (perMinute <= 0) return true;
    const req = ctx.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const caller = req.principal?.userId ?? req.ip ?? 'anonymous';
    const now = Date.now();
    this.sweep(now);
    const key = `${bucket}:${caller}`;
    const ratePerMs = perMinute / 60_000;
    const b = this.buckets.get(key) ?? { tokens: perMinute, updated: now };
    b.tokens = Math.min(perMinute, b.tokens + (now - b.updated) * ratePerMs);
    b.updated = now;
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return true;
    }
    const retryAfter = Math.max(1, Math.ceil((1 - b.tokens) / ratePerMs / 1000));
    ctx.switchToHttp().getResponse<Response>().setHeader('Retry-After', String(retryAfter));
    this.metrics.rateLimited.inc({ route: bucket });
    throw new AppError('RATE_LIMITED', `Too many ${bucket} requests: at most ${perMinute} a minute; retry in ${retryAfter} s`, {
      bucket,
      limitPerMinute: perMinute,
      retryAfterSeconds: retryAfter,
    });
  }

  /** Drops full buckets now and then so memory stays bounded by the active callers. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [k, b] of this.buckets) if (now - b.updated > 120_000) this.buckets.delete(k);
  }
}
