import { Logger } from '@nestjs/common';
import { Job, Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import { AppError } from '../common/errors';
import { AddOptions, CANCELLED, JobContext, JobQueue, PermanentJobError, ProcessOptions, SHUTDOWN } from './job-queue';

export interface BullSettings {
  redisUrl: string;
  prefix: string;
  attempts: number;
  backoffMs: number;
  /** how long a job's lock lives without renewal: a crashed worker's job is picked up again after it */
  lockMs: number;
}

export const connectionOf = (url: string) => {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
};

/** How long a queue operation may wait on Redis before it answers DEPENDENCY_UNAVAILABLE. */
export const QUEUE_OP_TIMEOUT_MS = 3000;

const unavailable = (what: string) => new AppError('DEPENDENCY_UNAVAILABLE', `The job queue (Redis) is unavailable: ${what}`);

/** The delay BullMQ's built-in strategies wait after failed attempt `attempt` (1-based). */
export function retryDelayOf(backoff: number | { type?: string; delay?: number } | undefined, attempt: number): number {
  if (backoff === undefined) return 0;
  if (typeof backoff === 'number') return backoff;
  const delay = backoff.delay ?? 0;
  return backoff.type === 'exponential' ? Math.round(2 ** (attempt - 1) * delay) : delay;
}

/**
 * BullMQ on Redis: one queue for all job names; workers on every replica. A job whose worker died is moved
 * back to waiting when its lock expires (stalled-job check), so kill -9 loses nothing. On shutdown running
 * jobs are interrupted and moved back to waiting without using an attempt.
 */
export class BullMqQueue extends JobQueue {
  private readonly logger = new Logger('BullMqQueue');
  private worker?: Worker;
  private readonly handlers = new Map<string, { fn: (ctx: JobContext<unknown>) => Promise<void>; opts: ProcessOptions<unknown> }>();

  /** `queue` is registered (and closed on shutdown) by @nestjs/bullmq; the worker is ours. */
  constructor(
    private readonly queue: Queue,
    private readonly s: BullSettings,
  ) {
    super();
    this.queue.on('error', (e) => this.logger.warn(`queue: ${e.message}`));
  }

  /**
   * Runs `op` on Redis only while the connection is up, within QUEUE_OP_TIMEOUT_MS: ioredis would otherwise
   * hold the command until Redis comes back (maxRetriesPerRequest: null, which BullMQ needs), and the request
   * that waits on it would hang. Fails with DEPENDENCY_UNAVAILABLE instead.
   */
  private async onRedis<T>(what: string, op: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable(`${what} timed out after ${QUEUE_OP_TIMEOUT_MS} ms`)), QUEUE_OP_TIMEOUT_MS);
    });
    try {
      const client = await Promise.race([this.queue.getBackend().connection.client, deadline]);
      if (client.status !== 'ready') throw unavailable(`${what}: connection ${client.status}`);
      return await Promise.race([op(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  add<T>(name: string, jobId: string, data: T, opts: AddOptions = {}): Promise<void> {
    return this.onRedis('add a job', async () => {
      const existing = await this.queue.getJob(jobId);
      if (existing) {
        const state = await existing.getState();
        if (state === 'completed' || state === 'failed') await existing.remove().catch(() => undefined);
        else return;
      }
      await this.queue.add(name, data, { jobId, attempts: opts.attempts ?? this.s.attempts, delay: opts.delayMs });
    });
  }

  process<T>(name: string, fn: (ctx: JobContext<T>) => Promise<void>, opts: ProcessOptions<T>): void {
    this.handlers.set(name, { fn: fn as (ctx: JobContext<unknown>) => Promise<void>, opts: opts as ProcessOptions<unknown> });
    if (this.worker) {
      this.worker.concurrency = Math.max(this.worker.concurrency, opts.concurrency);
      return;
    }
    this.worker = new Worker(this.queue.name, (job, token, signal) => this.handle(job, token, signal), {
      connection: connectionOf(this.s.redisUrl),
      prefix: this.s.prefix,
      concurrency: opts.concurrency,
      lockDuration: this.s.lockMs,
      stalledInterval: Math.max(1000, Math.floor(this.s.lockMs / 2)),
      maxStalledCount: 3,
    });
    this.worker.on('error', (e) => this.logger.warn(`worker: ${e.message}`));
  }

  private async handle(job: Job, token: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    const h = this.handlers.get(job.name);
    if (!h) throw new UnrecoverableError(`no handler for ${job.name}`);
    const maxAttempts = job.opts.attempts ?? this.s.attempts;
    const ctx: JobContext<unknown> = {
      id: job.id!,
      name: job.name,
      data: job.data,
      attempt: job.attemptsMade + 1,
      maxAttempts,
      retryDelayMs: retryDelayOf(job.opts.backoff, job.attemptsMade + 1),
      signal: signal ?? new AbortController().signal,
    };
    try {
      await h.fn(ctx);
    } catch (err) {
      const error = err as Error;
      const reason: unknown = signal?.reason;
      if (reason === SHUTDOWN) {
        await job.moveToWait(token);
        throw new WaitingError();
      }
      if (reason === CANCELLED || error instanceof PermanentJobError || ctx.attempt >= maxAttempts) {
        await h.opts.onFailed(ctx, error).catch((x: unknown) => this.logger.error(`onFailed of ${job.id} threw: ${String(x)}`));
        throw new UnrecoverableError(error.message);
      }
      throw error;
    }
  }

  async cancel(jobId: string): Promise<void> {
    this.worker?.cancelJob(jobId, CANCELLED);
    await this.onRedis('cancel a job', async () => {
      const job = await this.queue.getJob(jobId);
      if (job && ['waiting', 'delayed', 'prioritized'].includes(await job.getState())) await job.remove().catch(() => undefined);
    });
  }

  isPending(jobId: string): Promise<boolean> {
    return this.onRedis('read a job', async () => {
      const job = await this.queue.getJob(jobId);
      if (!job) return false;
      return ['waiting', 'delayed', 'active', 'prioritized', 'waiting-children'].includes(await job.getState());
    });
  }

  stats(): Promise<Record<'waiting' | 'active' | 'delayed' | 'failed', number>> {
    return this.onRedis('count jobs', async () => {
      const c = await this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
      return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0 };
    });
  }

  async ping(): Promise<void> {
    await this.onRedis('ping', () => this.queue.getJobCounts('waiting'));
  }

  async close(): Promise<void> {
    if (this.worker) {
      this.worker.cancelAllJobs(SHUTDOWN);
      await this.worker.close();
    }
  }

  /** For tests: removes every key of this queue. */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }
}
