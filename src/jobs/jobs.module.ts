import { BeforeApplicationShutdown, DynamicModule, Global, Inject, Module, OnModuleInit, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { BullModule, getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { AppConfig } from '../config/app-config';
import { HealthRegistry } from '../health/health.registry';
import { BullMqQueue, connectionOf } from './bullmq-queue';
import { InProcessQueue } from './in-process-queue';
import { JOB_CATALOGUE, JobHandler, JobType, MissingJobHandlerError } from './job-catalogue';
import { JobQueue } from './job-queue';

export const JOBS_QUEUE = 'hcm-jobs';

/** Provides the JobQueue port: BullMQ on Redis when QUEUE_DRIVER=redis, else in-process. */
@Global()
@Module({})
export class JobsModule implements OnModuleInit, BeforeApplicationShutdown {
  constructor(
    @Inject(JobQueue) private readonly queue: JobQueue,
    private readonly health: HealthRegistry,
    private readonly cfg: AppConfig,
    private readonly moduleRef: ModuleRef,
    @Optional() @Inject(JOB_CATALOGUE) private readonly jobs: readonly JobType<unknown>[] = [],
  ) {}

  /** `jobs`: every job type the service runs (src/job-catalogue.ts); each needs its handler provided somewhere. */
  static forRoot(cfg: AppConfig, jobs: readonly JobType<unknown>[] = []): DynamicModule {
    const catalogue = { provide: JOB_CATALOGUE, useValue: jobs };
    const q = cfg.queue;
    if (q.driver === 'redis') {
      return {
        module: JobsModule,
        imports: [
          BullModule.forRoot({ connection: connectionOf(q.redisUrl!), prefix: q.prefix }),
          BullModule.registerQueue({
            name: JOBS_QUEUE,
            defaultJobOptions: {
              attempts: q.attempts,
              backoff: { type: 'exponential', delay: q.backoffMs },
              removeOnComplete: { age: 3600, count: 1000 },
              removeOnFail: { age: 24 * 3600, count: 5000 },
            },
          }),
        ],
        providers: [
          {
            provide: JobQueue,
            inject: [getQueueToken(JOBS_QUEUE)],
            useFactory: (queue: Queue) =>
              new BullMqQueue(queue, {
                redisUrl: q.redisUrl!,
                prefix: q.prefix,
                attempts: q.attempts,
                backoffMs: q.backoffMs,
                lockMs: q.lockMs,
                workerId: q.workerId,
              }),
          },
          catalogue,
        ],
        exports: [JobQueue],
      };
    }
    return {
      module: JobsModule,
      providers: [{ provide: JobQueue, useFactory: () => new InProcessQueue(q.attempts, q.backoffMs) }, catalogue],
      exports: [JobQueue],
    };
  }

  /**
   * Every catalogued job gets its handler here (every provider exists before any onModuleInit runs, so the
   * owners' start-up work in onApplicationBootstrap finds the handlers registered). A job whose handler no module
   * provides stops the start. A job with concurrency 0 here (IMPORT_CONCURRENCY=0: an API-only replica) is run by
   * the replicas that take it.
   */
  onModuleInit(): void {
    if (this.cfg.queue.driver === 'redis') this.health.register('queue', () => this.queue.ping());
    for (const job of this.jobs) {
      let handler: JobHandler<unknown>;
      try {
        handler = this.moduleRef.get(job.handler, { strict: false });
      } catch {
        throw new MissingJobHandlerError(job.name, job.handler.name);
      }
      const concurrency = job.concurrency(this.cfg);
      if (concurrency > 0) {
        this.queue.process<unknown>(job.name, (ctx) => handler.handle(ctx), { concurrency, onFailed: (ctx, error) => handler.onFailed(ctx, error) });
      }
    }
  }

  /** Before the database closes (TypeORM closes it on application shutdown): running jobs hand back first. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }
}
