/**
 * The ingestion module's job catalogue. One job per image: the job id is the image id, so enqueueing an
 * image twice (a retry click, start-up recovery racing a sweep) is one job.
 */
export const IMPORT_JOB = 'import';

export interface ImportJobData {
  imageId: string;
  /** the correlation id of the request that queued it, for the worker's logs and errors */
  correlationId?: string;
}

/** Why a running transfer was stopped (the reason of its AbortSignal). */
export const UPLOAD_CLIENT_GONE = 'client-gone';
export const UPLOAD_IDLE = 'idle';
