import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Job, Queue, UnrecoverableError, WaitingError, Worker } from 'bullmq';
import Redis from 'ioredis';
import { AppError } from '../common/errors';
import { AddOptions, CANCELLED, JobContext, JobQueue, LOCK_LOST, PermanentJobError, ProcessOptions, SHUTDOWN } from './job-queue';

export interface BullSettings {
  redisUrl: string;
  prefix: string;
  attempts: number;
  backoffMs: number;
  /** how long a job's lock lives without renewal: a crashed worker's job is picked up again after it */
  lockMs: number;
  /** the replica's stable name (WORKER_ID); default: a random one, so nothing is taken back at start */
  workerId?: string;
}

/** How often one job is taken back from a dead worker of the same replica before that is left to the lock expiry. */
export const MAX_TAKEOVERS = 3;

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
 *
 * Taking back at start, without waiting for the lock: the worker is named `<workerId>@<random per start>`, and
 * BullMQ records that name on every job it takes (`processedBy`) and on the worker's Redis connection
 * (`CLIENT LIST`). Once the worker is connected, the active jobs taken by an earlier start of the same replica
 * whose worker has no connection left (a dead process's sockets close with it) are moved back to waiting with
 * their own lock token, atomically: if the lock changed meanwhile (expired and taken elsewhere) nothing moves.
 * A live worker is never robbed (its connection is listed), and a worker that loses a lock anyway stops the job
 * (LOCK_LOST) instead of running it beside the new owner.
 */
export class BullMqQueue extends JobQueue {
  private readonly logger = new Logger('BullMqQueue');
  private worker?: Worker;
  private redis?: Redis;
  /** this start's worker name */
  readonly workerName: string;
  /** the start-up take-back (resolves to the job ids moved back to waiting), for logs and tests */
  takenBack: Promise<string[]> = Promise.resolve([]);
  private readonly handlers = new Map<string, { fn: (ctx: JobContext<unknown>) => Promise<void>; opts: ProcessOptions<unknown> }>();

  /** `queue` is registered (and closed on shutdown) by @nestjs/bullmq; the worker is ours. */
  constructor(
    private readonly queue: Queue,
    private readonly s: BullSettings,
  ) {
    super();
    this.queue.on('error', (e) => this.logger.warn(`queue: ${e.message}`));
    this.workerName = `${s.workerId ?? `anon-${randomBytes(4).toString('hex')}`}@${randomBytes(6).toString('hex')}`;
  }

  /** A plain connection for the few reads BullMQ has no call for (lock tokens, job hashes); opened on first use. */
  private client(): Redis {
    if (!this.redis) {
      this.redis = new Redis({ ...connectionOf(this.s.redisUrl), maxRetriesPerRequest: 1 });
      this.redis.on('error', (e) => this.logger.warn(`redis: ${e.message}`));
    }
    return this.redis;
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
      name: this.workerName,
    });
    this.worker.on('error', (e) => this.logger.warn(`worker: ${e.message}`));
    // another worker took the job (this one looked dead): stop here rather than run it twice
    this.worker.on('lockRenewalFailed', (ids: string[]) => {
      for (const id of ids) {
        this.logger.warn(`lost the lock of job ${id}: stopping it here`);
        this.worker?.cancelJob(id, LOCK_LOST);
      }
    });
    const worker = this.worker;
    this.takenBack = worker
      .waitUntilReady()
      .then(() => this.takeBackOwn())
      .catch((e: unknown) => {
        this.logger.warn(`taking back this replica's jobs failed (their lock expiry brings them back): ${(e as Error).message}`);
        return [];
      });
  }

  /**
   * Moves the jobs an earlier, dead start of this replica was running back to waiting. Only with a stable
   * WORKER_ID; a job is skipped when its worker still has a Redis connection, when its lock is already gone
   * (BullMQ's stalled check takes it), or after MAX_TAKEOVERS (a job that kills its process each time is
   * left to BullMQ's stalled count, which fails it).
   */
  async takeBackOwn(): Promise<string[]> {
    if (!this.s.workerId) return [];
    const mine = `${this.s.workerId}@`;
    const active = await this.queue.getActive(0, -1);
    const candidates = active.filter((j) => j.processedBy?.startsWith(mine) && j.processedBy !== this.workerName);
    if (!candidates.length) return [];
    const live = new Set(
      (await this.queue.getWorkers()).map((w) =>
        String(w.rawname ?? '')
          .split(':w:')
          .pop(),
      ),
    );
    const redis = this.client();
    const moved: string[] = [];
    for (const job of candidates) {
      if (live.has(job.processedBy!)) continue;
      const jobKey = this.queue.toKey(job.id!);
      const token = await redis.get(`${jobKey}:lock`);
      if (!token) continue;
      if (Number(await redis.hget(jobKey, 'hcmTakeovers')) >= MAX_TAKEOVERS) {
        this.logger.warn(`job ${job.id} was taken back ${MAX_TAKEOVERS} times already: left to the lock expiry`);
        continue;
      }
      try {
        await job.moveToWait(token);
        moved.push(job.id!);
        await redis.hincrby(jobKey, 'hcmTakeovers', 1); // on the job's hash: gone with the job
      } catch (e) {
        this.logger.warn(`job ${job.id} could not be taken back (its lock moved on): ${(e as Error).message}`);
      }
    }
    if (moved.length) this.logger.log(`took back ${moved.length} job(s) of an earlier start of ${this.s.workerId}: ${moved.join(', ')}`);
    return moved;
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
      if (reason === LOCK_LOST) throw new WaitingError(); // the job is another worker's now: leave it as it is
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

  /** One pipelined read of the job hashes: no hash, or a finished job, is not pending. */
  override async notPending(jobIds: string[]): Promise<string[]> {
    if (!jobIds.length) return [];
    const pipe = this.client().pipeline();
    for (const id of jobIds) pipe.hmget(this.queue.toKey(id), 'timestamp', 'finishedOn');
    const rows = (await pipe.exec()) ?? [];
    const out: string[] = [];
    for (let i = 0; i < jobIds.length; i++) {
      const [err, value] = rows[i] ?? [new Error('no reply'), null];
      if (err) throw err;
      const [timestamp, finishedOn] = value as [string | null, string | null];
      if (timestamp === null) out.push(jobIds[i]);
      else if (finishedOn !== null && !(await this.isPending(jobIds[i]))) out.push(jobIds[i]); // finished (or retried since)
    }
    return out;
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
      await this.takenBack;
      await this.worker.close();
    }
    if (this.redis) await this.redis.quit().catch(() => this.redis?.disconnect());
  }

  /** For tests: removes every key of this queue. */
  async obliterate(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }
}
