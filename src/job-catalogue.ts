import { ImportProcessor } from './ingestion/import.processor';
import { IMPORT_JOB, ImportJobData } from './ingestion/ingestion.jobs';
import { JobQueue, AddOptions } from './jobs/job-queue';
import { jobType, PayloadOf } from './jobs/job-catalogue';

/**
 * Every job the service runs: its name, its payload type and its handler (a provider of the owning module). The
 * jobs module registers each handler with the queue at start-up and refuses to start when one is not provided.
 */
export const JOBS = {
  /** one per image (the job id is the image id): fetch/copy the bytes, judge them, commit the size */
  [IMPORT_JOB]: jobType<ImportJobData>({ name: IMPORT_JOB, handler: ImportProcessor, concurrency: (cfg) => cfg.queue.concurrency }),
} as const;

export type JobName = keyof typeof JOBS;
export type JobPayload<K extends JobName> = PayloadOf<(typeof JOBS)[K]>;

export const JOB_TYPES = Object.values(JOBS);

/** Adds a catalogued job with a payload of its type. */
export function addJob<K extends JobName>(queue: JobQueue, name: K, jobId: string, data: JobPayload<K>, opts?: AddOptions): Promise<void> {
  return queue.add<JobPayload<K>>(name, jobId, data, opts);
}
