import type { Type } from '@nestjs/common';
import type { AppConfig } from '../config/app-config';
import type { JobContext } from './job-queue';

/** What handles one job type: a provider of the module that owns the job (found by class, in any module). */
export interface JobHandler<T> {
  handle(ctx: JobContext<T>): Promise<void>;
  /** called once, after the last attempt failed or a PermanentJobError was thrown */
  onFailed(ctx: JobContext<T>, error: Error): Promise<void>;
}

/** One job type: its name, the handler class, and how many run at once on this replica (0: none here). */
export interface JobType<T> {
  name: string;
  handler: Type<JobHandler<T>>;
  concurrency: (cfg: AppConfig) => number;
  /** the payload's type, carried for `JobsOf`/`PayloadOf`; never read */
  readonly payload?: T;
}

/** Declares a job type with its payload type: `jobType<ImportJobData>({ name: 'import', handler: ImportProcessor, ... })`. */
export const jobType = <T>(t: Omit<JobType<T>, 'payload'>): JobType<T> => t;

export type PayloadOf<J> = J extends JobType<infer T> ? T : never;

/** Thrown at start-up when a catalogued job has no handler provider in the application. */
export class MissingJobHandlerError extends Error {
  constructor(job: string, handler: string) {
    super(`Job "${job}" has no handler: ${handler} is not provided by any module (src/job-catalogue.ts)`);
    this.name = 'MissingJobHandlerError';
  }
}

/** The catalogue JobsModule.forRoot takes (src/job-catalogue.ts): every job type the service runs. */
export const JOB_CATALOGUE = Symbol('JOB_CATALOGUE');
