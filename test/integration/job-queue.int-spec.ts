import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { BullMqQueue, connectionOf, MAX_TAKEOVERS } from '../../src/jobs/bullmq-queue';
import { InProcessQueue } from '../../src/jobs/in-process-queue';
import { JobContext, JobInterrupted, JobQueue, LOCK_LOST, PermanentJobError } from '../../src/jobs/job-queue';
import { until } from '../support/kit';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
interface Made {
  queue: JobQueue;
  reopen: () => JobQueue;
  cleanup: () => Promise<void>;
}

const adapters: Array<[string, () => Made]> = [
  ['in-process', () => ({ queue: new InProcessQueue(3, 10), reopen: () => new InProcessQueue(3, 10), cleanup: () => Promise.resolve() })],
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
    m.queue.process<{ n: number }>(
      'work',
      async (ctx) => {
        seen.push(`${ctx.id}:${ctx.data.n}`);
        await gate;
      },
      { concurrency: 2, onFailed: () => Promise.resolve() },
    );
    await m.queue.add('work', 'job-a', { n: 1 });
    await m.queue.add('work', 'job-a', { n: 2 });
    await until(() => seen.length === 1, '1 seen');
    expect(await m.queue.isPending('job-a')).toBe(true);
    release();
    await until(async () => !(await m.queue.isPending('job-a')), 'job-a no longer pending');
    expect(seen).toEqual(['job-a:1']);
  });

  it('retries a failing job up to its attempts, then reports the failure once', async () => {
    const attempts: number[] = [];
    const failures: string[] = [];
    m.queue.process(
      'flaky',
      (ctx: JobContext<unknown>) => {
        attempts.push(ctx.attempt);
        return Promise.reject(new Error(`boom ${ctx.attempt}`));
      },
      { concurrency: 1, onFailed: (ctx, e) => Promise.resolve(void failures.push(`${ctx.id}:${e.message}`)) },
    );
    await m.queue.add('flaky', 'job-b', {});
    await until(() => failures.length === 1, '1 failures');
    expect(attempts).toEqual([1, 2, 3]);
    expect(failures).toEqual(['job-b:boom 3']);
  });

  it('does not retry a permanent failure, and can add the same id again afterwards', async () => {
    let runs = 0;
    const failures: string[] = [];
    m.queue.process(
      'perm',
      () => {
        runs++;
        return runs === 1 ? Promise.reject(new PermanentJobError('bad content')) : Promise.resolve();
      },
      { concurrency: 1, onFailed: (_c, e) => Promise.resolve(void failures.push(e.message)) },
    );
    await m.queue.add('perm', 'job-c', {});
    await until(() => failures.length === 1, '1 failures');
    expect(runs).toBe(1);
    await m.queue.add('perm', 'job-c', {});
    await until(() => runs === 2, 'runs = 2');
    await until(async () => !(await m.queue.isPending('job-c')), 'job-c no longer pending');
    expect(failures).toEqual(['bad content']);
  });

  it('cancels a running job through its signal', async () => {
    const failures: string[] = [];
    let started = false;
    m.queue.process(
      'long',
      (ctx) =>
        new Promise<void>((_res, rej) => {
          started = true;
          ctx.signal.addEventListener('abort', () => rej(new Error('aborted')));
        }),
      { concurrency: 1, onFailed: (c) => Promise.resolve(void failures.push(c.id)) },
    );
    await m.queue.add('long', 'job-d', {});
    await until(() => started, 'started');
    await m.queue.cancel('job-d');
    await until(() => failures.length === 1, '1 failures');
    expect(failures).toEqual(['job-d']);
  });

  it('hands a running job back on shutdown without using an attempt or reporting a failure', async () => {
    const failures: string[] = [];
    let started = 0;
    m.queue.process(
      'resumable',
      (ctx) =>
        new Promise<void>((_res, rej) => {
          started++;
          ctx.signal.addEventListener('abort', () => rej(new JobInterrupted()));
        }),
      { concurrency: 1, onFailed: (c) => Promise.resolve(void failures.push(c.id)) },
    );
    await m.queue.add('resumable', 'job-e', { x: 1 });
    await until(() => started === 1, 'started = 1');
    await m.queue.close();
    opened.splice(opened.indexOf(m.queue), 1);
    expect(failures).toEqual([]);
    if (_name === 'BullMQ on Redis') {
      // another replica takes it from where it was handed back, as attempt 1 again
      const next = m.reopen();
      opened.push(next);
      const attempts: number[] = [];
      next.process<{ x: number }>('resumable', (ctx) => Promise.resolve(void attempts.push(ctx.attempt * 10 + ctx.data.x)), {
        concurrency: 1,
        onFailed: () => Promise.resolve(),
      });
      await until(() => attempts.length === 1, '1 attempts');
      expect(attempts).toEqual([11]);
    }
  });
});

/**
 * A restarted replica takes back the jobs its dead predecessor was running, at once (the lock here lasts ten
 * minutes), and never the jobs of a live worker or of another replica.
 */
describe('BullMQ: taking back the jobs of a dead start of the same replica', () => {
  const prefix = `hcm_test_${randomUUID().slice(0, 8)}`;
  const LONG_LOCK = 600_000;
  const queues: Queue[] = [];
  const opened: BullMqQueue[] = [];
  const workers: Worker[] = [];
  let redis: Redis;
  const make = (workerId: string | undefined, lockMs = LONG_LOCK) => {
    const q = new Queue('jobs', { connection: connectionOf(REDIS), prefix });
    queues.push(q);
    const b = new BullMqQueue(q, { redisUrl: REDIS, prefix, attempts: 3, backoffMs: 10, lockMs, workerId });
    opened.push(b);
    return b;
  };
  const noFailure = { concurrency: 1, onFailed: () => Promise.resolve() };
  beforeAll(() => {
    redis = new Redis(connectionOf(REDIS));
  });
  afterEach(async () => {
    for (const b of opened.splice(0)) await b.close();
    for (const w of workers.splice(0)) await w.close(true).catch(() => undefined);
    if (queues[0]) await queues[0].obliterate({ force: true }).catch(() => undefined);
    for (const q of queues.splice(0)) await q.close();
  });
  afterAll(async () => {
    await redis.quit();
  });

  /** A worker of replica `rep` that takes the job and then dies: its connections close, its lock stays. */
  async function diedHolding(jobId: string, producer: BullMqQueue): Promise<string> {
    let took!: () => void;
    const taken = new Promise<void>((r) => (took = r));
    const w = new Worker(
      'jobs',
      () => {
        took();
        return new Promise<void>(() => undefined);
      },
      {
        connection: connectionOf(REDIS),
        prefix,
        name: 'rep@deadbeef',
        lockDuration: LONG_LOCK,
        concurrency: 1,
      },
    );
    workers.push(w);
    await producer.add('work', jobId, { n: 1 });
    await taken;
    const lock = await redis.get(`${prefix}:jobs:${jobId}:lock`);
    expect(lock).toEqual(expect.stringContaining(w.id));
    await w.close(true); // like kill -9: no hand-back, the lock is left to expire in ten minutes
    expect(await redis.pttl(`${prefix}:jobs:${jobId}:lock`)).toBeGreaterThan(60_000);
    return lock!;
  }

  it("moves the dead start's job back to waiting at start and runs it, long before its lock would expire", async () => {
    const producer = make(undefined);
    await diedHolding('job-dead', producer);
    // another replica does not take it (it is not its own)...
    const runs: string[] = [];
    const other = make('other');
    other.process('work', (ctx) => Promise.resolve(void runs.push(`${ctx.id}:${ctx.attempt}`)), noFailure);
    expect(await other.takenBack).toEqual([]);
    const job = await queues[0].getJob('job-dead');
    expect(await job!.getState()).toBe('active');
    // ...the restarted replica does, at once; then whichever worker is free runs it, once
    const restarted = make('rep');
    restarted.process<{ n: number }>('work', (ctx) => Promise.resolve(void runs.push(`${ctx.id}:${ctx.attempt}`)), noFailure);
    expect(await restarted.takenBack).toEqual(['job-dead']);
    await until(async () => (await queues[0].getJob('job-dead'))!.getState().then((st) => st === 'completed'), 'job-dead completed');
    expect(runs).toEqual(['job-dead:1']); // once, and a crash costs no attempt
  });

  it('leaves a job that was taken back MAX_TAKEOVERS times (one that kills its process) to the lock expiry', async () => {
    const producer = make(undefined);
    await diedHolding('job-poison', producer);
    await redis.hset(`${prefix}:jobs:job-poison`, 'hcmTakeovers', String(MAX_TAKEOVERS));
    const restarted = make('rep');
    restarted.process('work', () => Promise.resolve(), noFailure);
    expect(await restarted.takenBack).toEqual([]);
    expect(await (await queues[0].getJob('job-poison'))!.getState()).toBe('active');
    // one take-back fewer and it is moved
    await redis.hset(`${prefix}:jobs:job-poison`, 'hcmTakeovers', String(MAX_TAKEOVERS - 1));
    expect(await restarted.takeBackOwn()).toEqual(['job-poison']);
    expect(await redis.hget(`${prefix}:jobs:job-poison`, 'hcmTakeovers')).toBe(String(MAX_TAKEOVERS));
  });

  it('never takes a job from a live worker of the same replica name (two processes on one host)', async () => {
    const first = make('rep');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const runs: string[] = [];
    first.process(
      'work',
      async (ctx) => {
        runs.push(`first:${ctx.id}`);
        await gate;
      },
      noFailure,
    );
    await first.add('work', 'job-live', {});
    await until(() => runs.length === 1, '1 runs');
    const second = make('rep');
    second.process('work', (ctx) => Promise.resolve(void runs.push(`second:${ctx.id}`)), noFailure);
    expect(await second.takenBack).toEqual([]);
    expect((await queues[0].getJob('job-live'))!.processedBy).toBe(first.workerName);
    release();
    await until(async () => (await queues[0].getJob('job-live'))!.getState().then((st) => st === 'completed'), 'job-live completed');
    expect(runs).toEqual(['first:job-live']);
  });

  it('stops a job whose lock went to another worker, without reporting a failure', async () => {
    const q = make('rep', 2000);
    const reasons: unknown[] = [];
    const failures: string[] = [];
    let started = false;
    q.process(
      'work',
      (ctx) =>
        new Promise<void>((_res, rej) => {
          started = true;
          ctx.signal.addEventListener('abort', () => {
            reasons.push(ctx.signal.reason);
            rej(new JobInterrupted());
          });
        }),
      { concurrency: 1, onFailed: (c) => Promise.resolve(void failures.push(c.id)) },
    );
    await q.add('work', 'job-stolen', {});
    await until(() => started, 'started');
    await redis.set(`${prefix}:jobs:job-stolen:lock`, 'someone-else:1', 'PX', 60_000);
    await until(() => reasons.length === 1, '1 reasons'); // at the next lock renewal (every second here)
    expect(reasons).toEqual([LOCK_LOST]);
    expect(failures).toEqual([]);
    // the job is left to its new owner: still active, under the other lock
    expect(await (await queues[0].getJob('job-stolen'))!.getState()).toBe('active');
    expect(await redis.get(`${prefix}:jobs:job-stolen:lock`)).toBe('someone-else:1');
  });

  it('tells which of many job ids have no pending job, in one round trip', async () => {
    const q = make('rep');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    q.process(
      'work',
      async (ctx) => {
        if (ctx.id === 'job-running') await gate;
      },
      { concurrency: 2, onFailed: () => Promise.resolve() },
    );
    await q.add('work', 'job-done', {});
    await until(async () => (await queues[0].getJob('job-done'))?.getState().then((st) => st === 'completed') ?? false, 'job-done completed');
    await q.add('work', 'job-running', {});
    await q.add('work', 'job-later', {}, { delayMs: 60_000 });
    await until(async () => (await queues[0].getJob('job-running'))!.getState().then((st) => st === 'active'), 'job-running active');
    expect((await q.notPending(['job-done', 'job-running', 'job-later', 'job-never'])).sort()).toEqual(['job-done', 'job-never']);
    release();
  });
});
