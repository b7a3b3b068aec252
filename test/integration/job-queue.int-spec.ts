import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { BullMqQueue, connectionOf } from '../../src/jobs/bullmq-queue';
import { InProcessQueue } from '../../src/jobs/in-process-queue';
import { JobContext, JobInterrupted, JobQueue, PermanentJobError } from '../../src/jobs/job-queue';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const until = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

interface Made {
  queue: JobQueue;
  reopen: () => JobQueue;
  cleanup: () => Promise<void>;
}

const adapters: Array<[string, () => Made]> = [
  [
    'in-process',
    () => ({ queue: new InProcessQueue(3, 10), reopen: () => new InProcessQueue(3, 10), cleanup: () => Promise.resolve() }),
  ],
  [
    'BullMQ on Redis',
    () => {
      const prefix = `hcm_test_${randomUUID().slice(0, 8)}`;
      const queues: Queue[] = [];
      const make = () => {
        const q = new Queue('jobs', { connection: connectionOf(REDIS), prefix, defaultJobOptions: { attempts: 3, backoff: { type: 'fixed', delay: 10 } } });
        queues.push(q);
        return new BullMqQueue(q, { redisUrl: REDIS, prefix, attempts: 3, backoffMs: 10, lockMs: 2000 });
      };
      return {
        queue: make(),
        reopen: make,
        cleanup: async () => {
          await queues[0].obliterate({ force: true }).catch(() => undefined);
          for (const q of queues) await q.close();
        },
      };
    },
  ],
];

describe.each(adapters)('job queue: %s', (_name, make) => {
  let m: Made;
  const opened: JobQueue[] = [];
  beforeEach(() => {
    m = make();
    opened.push(m.queue);
  });
  afterEach(async () => {
    for (const q of opened.splice(0)) await q.close();
    await m.cleanup();
  });

  it('runs a job once even when added twice with the same id', async () => {
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    m.queue.process<{ n: number }>('work', async (ctx) => {
      seen.push(`${ctx.id}:${ctx.data.n}`);
      await gate;
    }, { concurrency: 2, onFailed: () => Promise.resolve() });
    await m.queue.add('work', 'job-a', { n: 1 });
    await m.queue.add('work', 'job-a', { n: 2 });
    await until(() => seen.length === 1);
    expect(await m.queue.isPending('job-a')).toBe(true);
    release();
    await until(async () => !(await m.queue.isPending('job-a')));
    expect(seen).toEqual(['job-a:1']);
  });

  it('retries a failing job up to its attempts, then reports the failure once', async () => {
    const attempts: number[] = [];
    const failures: string[] = [];
    m.queue.process('flaky', (ctx: JobContext<unknown>) => {
      attempts.push(ctx.attempt);
      return Promise.reject(new Error(`boom ${ctx.attempt}`));
    }, { concurrency: 1, onFailed: (ctx, e) => Promise.resolve(void failures.push(`${ctx.id}:${e.message}`)) });
    await m.queue.add('flaky', 'job-b', {});
    await until(() => failures.length === 1);
    expect(attempts).toEqual([1, 2, 3]);
    expect(failures).toEqual(['job-b:boom 3']);
  });

  it('does not retry a permanent failure, and can add the same id again afterwards', async () => {
    let runs = 0;
    const failures: string[] = [];
    m.queue.process('perm', () => {
      runs++;
      return runs === 1 ? Promise.reject(new PermanentJobError('bad content')) : Promise.resolve();
    }, { concurrency: 1, onFailed: (_c, e) => Promise.resolve(void failures.push(e.message)) });
    await m.queue.add('perm', 'job-c', {});
    await until(() => failures.length === 1);
    expect(runs).toBe(1);
    await m.queue.add('perm', 'job-c', {});
    await until(() => runs === 2);
    await until(async () => !(await m.queue.isPending('job-c')));
    expect(failures).toEqual(['bad content']);
  });

  it('cancels a running job through its signal', async () => {
    const failures: string[] = [];
    let started = false;
    m.queue.process('long', (ctx) => new Promise<void>((_res, rej) => {
      started = true;
      ctx.signal.addEventListener('abort', () => rej(new Error('aborted')));
    }), { concurrency: 1, onFailed: (c) => Promise.resolve(void failures.push(c.id)) });
    await m.queue.add('long', 'job-d', {});
    await until(() => started);
    await m.queue.cancel('job-d');
    await until(() => failures.length === 1);
    expect(failures).toEqual(['job-d']);
  });

  it('hands a running job back on shutdown without using an attempt or reporting a failure', async () => {
    const failures: string[] = [];
    let started = 0;
    m.queue.process('resumable', (ctx) => new Promise<void>((_res, rej) => {
      started++;
      ctx.signal.addEventListener('abort', () => rej(new JobInterrupted()));
    }), { concurrency: 1, onFailed: (c) => Promise.resolve(void failures.push(c.id)) });
    await m.queue.add('resumable', 'job-e', { x: 1 });
    await until(() => started === 1);
    await m.queue.close();
    opened.splice(opened.indexOf(m.queue), 1);
    expect(failures).toEqual([]);
    if (_name === 'BullMQ on Redis') {
      // another replica takes it from where it was handed back, as attempt 1 again
      const next = m.reopen();
      opened.push(next);
      const attempts: number[] = [];
      next.process<{ x: number }>('resumable', (ctx) => Promise.resolve(void attempts.push(ctx.attempt * 10 + ctx.data.x)), { concurrency: 1, onFailed: () => Promise.resolve() });
      await until(() => attempts.length === 1);
      expect(attempts).toEqual([11]);
    }
  });
});
