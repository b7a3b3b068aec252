/**
 * The job queue port. Two adapters: BullMQ on Redis (platform shape: jobs survive restarts and spread over
 * replicas) and in-process (embedded default: the database is the record, so unfinished work is found again
 * at start-up by whoever owns it). A job id is derived from its entity, so adding the same job twice is one job.
 */
export interface JobContext<T> {
  id: string;
  name: string;
  data: T;
  /** 1-based attempt number */
  attempt: number;
  maxAttempts: number;
  /** how long the queue waits before the next attempt when this one fails (and is not the last) */
  retryDelayMs: number;
  /** aborted when the job is cancelled, the process shuts down, or its lock went to another worker (reason: 'cancelled' | 'shutdown' | 'lock-lost') */
  signal: AbortSignal;
}

export interface ProcessOptions<T> {
  concurrency: number;
  /** called once, after the last attempt failed or a PermanentJobError was thrown */
  onFailed: (ctx: JobContext<T>, error: Error) => Promise<void>;
}

export interface AddOptions {
  attempts?: number;
  delayMs?: number;
}

/** Thrown by a handler when retrying cannot help (bad content, quota exhausted, image gone). */
export class PermanentJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentJobError';
  }
}

/** Thrown by a handler that stopped at a resumable point because the process is shutting down. */
export class JobInterrupted extends Error {
  constructor() {
    super('interrupted by shutdown; handed back to the queue');
    this.name = 'JobInterrupted';
  }
}

export const SHUTDOWN = 'shutdown';
export const CANCELLED = 'cancelled';
/** the job's lock now belongs to another worker (this one was taken for dead): stop, touch nothing */
export const LOCK_LOST = 'lock-lost';

export abstract class JobQueue {
  /** Adds a job unless one with this id is waiting or running; a finished or failed one is replaced. */
  abstract add<T>(name: string, jobId: string, data: T, opts?: AddOptions): Promise<void>;
  /** Registers the handler of a job name on this replica. */
  abstract process<T>(name: string, handler: (ctx: JobContext<T>) => Promise<void>, opts: ProcessOptions<T>): void;
  /** Removes a waiting job and aborts it where it runs in this process. */
  abstract cancel(jobId: string): Promise<void>;
  /** Whether a job with this id is waiting, delayed or running (anywhere). */
  abstract isPending(jobId: string): Promise<boolean>;
  /** Of these job ids, the ones with no job waiting, delayed or running anywhere (one round trip where it can). */
  async notPending(jobIds: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const id of jobIds) if (!(await this.isPending(id))) out.push(id);
    return out;
  }
  /** Depth by state, for metrics and health. */
  abstract stats(): Promise<Record<'waiting' | 'active' | 'delayed' | 'failed', number>>;
  abstract ping(): Promise<void>;
  /** Stops taking jobs, interrupts running ones (they hand back), closes connections. */
  abstract close(): Promise<void>;
}

export const backoffDelay = (baseMs: number, attempt: number) => Math.min(baseMs * 2 ** Math.max(0, attempt - 1), 5 * 60_000);
