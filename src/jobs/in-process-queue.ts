import { EventEmitter, once } from 'node:events';
import { Logger } from '@nestjs/common';
import { AddOptions, backoffDelay, CANCELLED, JobContext, JobQueue, PermanentJobError, ProcessOptions, SHUTDOWN } from './job-queue';

interface Entry {
  id: string;
  name: string;
  data: unknown;
  attempt: number;
  maxAttempts: number;
  state: 'waiting' | 'delayed' | 'active';
  timer?: NodeJS.Timeout;
  abort?: AbortController;
}

interface Handler {
  fn: (ctx: JobContext<unknown>) => Promise<void>;
  opts: ProcessOptions<unknown>;
  running: number;
}

/**
 * How a job left the queue: its handler returned (completed), it failed for good after `onFailed` ran
 * (failed: attempts used up, a PermanentJobError, or cancelled), or it was handed back at shutdown.
 */
export interface JobSettled {
  id: string;
  name: string;
  outcome: 'completed' | 'failed' | 'handedBack';
  attempt: number;
}

/**
 * Jobs in this process's memory. Nothing survives a restart: owners re-enqueue unfinished work at start-up.
 * Every job's end is told on `settled` (event 'settled', a JobSettled) once it is out of the queue, so tests
 * and callers in the same process wait on that event (`whenSettled`) instead of sleeping and looking.
 */
export class InProcessQueue extends JobQueue {
  private readonly logger = new Logger('InProcessQueue');
  readonly settled = new EventEmitter();
  private readonly jobs = new Map<string, Entry>();
  private readonly handlers = new Map<string, Handler>();
  private failed = 0;
  private closed = false;

  constructor(
    private readonly defaultAttempts: number,
    private readonly backoffMs: number,
  ) {
    super();
  }

  add<T>(name: string, jobId: string, data: T, opts: AddOptions = {}): Promise<void> {
    if (this.closed || this.jobs.has(jobId)) return Promise.resolve();
    const entry: Entry = { id: jobId, name, data, attempt: 0, maxAttempts: opts.attempts ?? this.defaultAttempts, state: 'waiting' };
    this.jobs.set(jobId, entry);
    if (opts.delayMs) this.delay(entry, opts.delayMs);
    else setImmediate(() => this.pump(name));
    return Promise.resolve();
  }

  process<T>(name: string, fn: (ctx: JobContext<T>) => Promise<void>, opts: ProcessOptions<T>): void {
    this.handlers.set(name, { fn: fn as Handler['fn'], opts: opts as ProcessOptions<unknown>, running: 0 });
    setImmediate(() => this.pump(name));
  }

  cancel(jobId: string): Promise<void> {
    const e = this.jobs.get(jobId);
    if (!e) return Promise.resolve();
    if (e.state === 'active') e.abort?.abort(CANCELLED);
    else {
      clearTimeout(e.timer);
      this.jobs.delete(jobId);
    }
    return Promise.resolve();
  }

  isPending(jobId: string): Promise<boolean> {
    return Promise.resolve(this.jobs.has(jobId));
  }

  stats(): Promise<Record<'waiting' | 'active' | 'delayed' | 'failed', number>> {
    const s = { waiting: 0, active: 0, delayed: 0, failed: this.failed };
    for (const e of this.jobs.values()) s[e.state]++;
    return Promise.resolve(s);
  }

  /** Resolves when job `jobId` next leaves the queue (call it before or right after `add`). */
  async whenSettled(jobId: string, signal?: AbortSignal): Promise<JobSettled> {
    for (;;) {
      const [ev] = (await once(this.settled, 'settled', { signal })) as [JobSettled];
      if (ev.id === jobId) return ev;
    }
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    const active = [...this.jobs.values()].filter((e) => e.state === 'active');
    for (const e of this.jobs.values()) {
      clearTimeout(e.timer);
      e.abort?.abort(SHUTDOWN);
    }
    // let running handlers reach their resumable point
    const deadline = Date.now() + 10_000;
    while (active.some((e) => this.jobs.get(e.id) === e) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.jobs.clear();
  }

  private delay(e: Entry, ms: number): void {
    e.state = 'delayed';
    e.timer = setTimeout(() => {
      e.state = 'waiting';
      this.pump(e.name);
    }, ms);
    e.timer.unref();
  }

  private pump(name: string): void {
    const h = this.handlers.get(name);
    if (!h || this.closed) return;
    for (const e of this.jobs.values()) {
      if (h.running >= h.opts.concurrency) return;
      if (e.name !== name || e.state !== 'waiting') continue;
      void this.run(e, h);
    }
  }

  private async run(e: Entry, h: Handler): Promise<void> {
    e.state = 'active';
    e.attempt++;
    e.abort = new AbortController();
    h.running++;
    const ctx: JobContext<unknown> = {
      id: e.id,
      name: e.name,
      data: e.data,
      attempt: e.attempt,
      maxAttempts: e.maxAttempts,
      retryDelayMs: backoffDelay(this.backoffMs, e.attempt),
      signal: e.abort.signal,
    };
    let settled: JobSettled['outcome'] | null = null;
    try {
      await h.fn(ctx);
      this.jobs.delete(e.id);
      settled = 'completed';
    } catch (err) {
      const error = err as Error;
      const reason: unknown = e.abort.signal.reason;
      if (this.closed || reason === SHUTDOWN) {
        this.jobs.delete(e.id); // handed back: the owner finds it again at the next start
        settled = 'handedBack';
      } else if (reason === CANCELLED || error instanceof PermanentJobError || e.attempt >= e.maxAttempts) {
        this.jobs.delete(e.id);
        this.failed++;
        await h.opts.onFailed(ctx, error).catch((x: unknown) => this.logger.error(`onFailed of ${e.id} threw: ${String(x)}`));
        settled = 'failed';
      } else {
        this.logger.warn(`job ${e.name}/${e.id} attempt ${e.attempt} failed: ${error.message}; retrying`);
        this.delay(e, backoffDelay(this.backoffMs, e.attempt));
      }
    } finally {
      h.running--;
      e.abort = undefined;
      if (settled) this.settled.emit('settled', { id: e.id, name: e.name, outcome: settled, attempt: e.attempt } satisfies JobSettled);
      setImmediate(() => this.pump(e.name));
    }
  }
}
