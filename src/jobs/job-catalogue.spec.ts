import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppConfig, loadConfig } from '../config/app-config';
import { ConfigModule } from '../config/config.module';
import { HealthModule } from '../health/health.module';
import { JOB_TYPES, JOBS } from '../job-catalogue';
import { ImportProcessor } from '../ingestion/import.processor';
import { IMPORT_JOB } from '../ingestion/ingestion.jobs';
import { JobHandler, jobType, MissingJobHandlerError } from './job-catalogue';
import { JobContext, JobQueue } from './job-queue';
import { JobsModule } from './jobs.module';

interface Greeting {
  to: string;
}

/** A handler that hands the job it got to the test. */
@Injectable()
class GreetingHandler implements JobHandler<Greeting> {
  static received: (ctx: JobContext<Greeting>) => void = () => undefined;
  handle(ctx: JobContext<Greeting>): Promise<void> {
    GreetingHandler.received(ctx);
    return Promise.resolve();
  }
  onFailed(): Promise<void> {
    return Promise.resolve();
  }
}

@Module({ providers: [GreetingHandler] })
class GreetingModule {}

/** Not provided by any module. */
@Injectable()
class OrphanHandler extends GreetingHandler {}

describe('job catalogue', () => {
  let dir: string;
  let cfg: AppConfig;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcm-jobs-'));
    cfg = loadConfig({ DATA_DIR: dir, AUTH_JWT_SECRET: 'x'.repeat(40), QUEUE_DRIVER: 'memory' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const boot = (jobs: Parameters<typeof JobsModule.forRoot>[1], withGreetings = true) => {
    @Module({ imports: [ConfigModule.forRoot(cfg), HealthModule, JobsModule.forRoot(cfg, jobs), ...(withGreetings ? [GreetingModule] : [])] })
    class Root {}
    return NestFactory.createApplicationContext(Root, { logger: false, abortOnError: false });
  };

  it('names every job the service runs, with its handler', () => {
    expect(Object.keys(JOBS)).toEqual([IMPORT_JOB]);
    expect(JOB_TYPES.map((j) => [j.name, j.handler])).toEqual([[IMPORT_JOB, ImportProcessor]]);
    expect(JOBS[IMPORT_JOB].concurrency(cfg)).toBe(cfg.queue.concurrency);
  });

  it('refuses to start when a catalogued job has no handler', async () => {
    const start = boot([
      jobType<Greeting>({ name: 'greet', handler: GreetingHandler, concurrency: () => 1 }),
      jobType<Greeting>({ name: 'orphan', handler: OrphanHandler, concurrency: () => 1 }),
    ]);
    await expect(start).rejects.toThrow(MissingJobHandlerError);
    await expect(start).rejects.toThrow('Job "orphan" has no handler: OrphanHandler is not provided by any module');
  });

  it('refuses to start even where the job runs on other replicas (concurrency 0)', async () => {
    await expect(boot([jobType<Greeting>({ name: 'greet', handler: GreetingHandler, concurrency: () => 0 })], false)).rejects.toThrow(
      'Job "greet" has no handler',
    );
  });

  it("registers each job's handler with the queue: an added job reaches it with its payload", async () => {
    const app = await boot([jobType<Greeting>({ name: 'greet', handler: GreetingHandler, concurrency: () => 1 })]);
    try {
      const got = new Promise<JobContext<Greeting>>((resolve) => (GreetingHandler.received = resolve));
      await app.get(JobQueue).add<Greeting>('greet', 'greet-1', { to: 'world' });
      await expect(got).resolves.toMatchObject({ id: 'greet-1', name: 'greet', data: { to: 'world' } });
    } finally {
      await app.close();
    }
  });
});
