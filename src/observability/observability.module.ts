import { Global, Injectable, Logger, MiddlewareConsumer, Module, NestMiddleware, NestModule, OnModuleInit } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { JobQueue } from '../jobs/job-queue';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

/** Metrics for every request, and one access-log line per request (level `log`) with its correlation id. */
@Injectable()
export class HttpMetricsMiddleware implements NestMiddleware {
  private readonly access = new Logger('HTTP');

  constructor(private readonly metrics: MetricsService) {}

  use(req: Request, res: Response, next: NextFunction): void {
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const route = req.route ? `${req.baseUrl}${(req.route as { path: string }).path}` : 'unmatched';
      this.metrics.httpDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      this.access.log({
        msg: 'request',
        method: req.method,
        route,
        path: req.originalUrl.split('?')[0],
        status: res.statusCode,
        ms: Math.round(seconds * 10000) / 10,
      });
    });
    next();
  }
}

@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService],
  exports: [MetricsService],
})
export class ObservabilityModule implements NestModule, OnModuleInit {
  constructor(
    private readonly metrics: MetricsService,
    private readonly queue: JobQueue,
  ) {}

  onModuleInit(): void {
    this.metrics.addCollector(async () => {
      const s = await this.queue.stats();
      for (const [state, n] of Object.entries(s)) this.metrics.queueDepth.set({ state }, n);
    });
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HttpMetricsMiddleware).forRoutes('{*path}');
  }
}
