import { BeforeApplicationShutdown, DynamicModule, Global, Inject, Module, OnModuleInit } from '@nestjs/common';
import { BullModule, getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { AppConfig } from '../config/app-config';
import { HealthRegistry } from '../health/health.registry';
import { BullMqQueue, connectionOf } from './bullmq-queue';
import { InProcessQueue } from './in-process-queue';
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
  ) {}

  static forRoot(cfg: AppConfig): DynamicModule {
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
            useFactory: (queue: Queue) => new BullMqQueue(queue, { redisUrl: q.redisUrl!, prefix: q.prefix, attempts: q.attempts, backoffMs: q.backoffMs, lockMs: q.lockMs, workerId: q.workerId }),
          },
        ],
        exports: [JobQueue],
      };
    }
    return {
      module: JobsModule,
      providers: [{ provide: JobQueue, useFactory: () => new InProcessQueue(q.attempts, q.backoffMs) }],
      exports: [JobQueue],
    };
  }

  onModuleInit(): void {
    if (this.cfg.queue.driver === 'redis') this.health.register('queue', () => this.queue.ping());
  }

  /** Before the database closes (TypeORM closes it on application shutdown): running jobs hand back first. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }
}
