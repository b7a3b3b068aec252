import { InProcessQueue } from './in-process-queue';
import { CANCELLED, JobContext, PermanentJobError, SHUTDOWN } from './job-queue';

/** The in-process queue's contract, observed through its 'settled' events: no test here sleeps. */
describe('InProcessQueue', () => {
  let q: InProcessQueue;
  const failures: Array<{ id: string; attempt: number; message: string }> = [];
  const onFailed = async (ctx: JobContext<unknown>, e: Error) => void failures.push({ id: ctx.id, attempt: ctx.attempt, message: e.message });

  beforeEach(() => {
    q = new InProcessQueue(3, 1);
    failures.length = 0;
  });
  afterEach(() => q.close());

  it('runs a job once and tells it completed', async () => {
    const seen: unknown[] = [];
    q.process('work', async (ctx) => void seen.push(ctx.data), { concurrency: 1, onFailed });
    const done = q.whenSettled('j1');
    await q.add('work', 'j1', { n: 1 });
    expect(await done).toEqual({ id: 'j1', name: 'work', outcome: 'completed', attempt: 1 });
    expect(seen).toEqual([{ n: 1 }]);
    expect(await q.isPending('j1')).toBe(false);
  });

  it('adds a job id twice as one job', async () => {
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    q.process(
      'work',
      async () => {
        runs++;
        await gate;
      },
      { concurrency: 1, onFailed },
    );
    const done = q.whenSettled('j1');
    await q.add('work', 'j1', {});
    await q.add('work', 'j1', {});
    release();
    await done;
    expect(runs).toBe(1);
  });

  it('retries a failing job up to its attempts, then calls onFailed once and tells it failed', async () => {
    const attempts: number[] = [];
    q.process(
      'work',
      async (ctx) => {
        attempts.push(ctx.attempt);
        throw new Error(`boom ${ctx.attempt}`);
      },
      { concurrency: 1, onFailed },
    );
    const done = q.whenSettled('j2');
    await q.add('work', 'j2', {});
    expect(await done).toMatchObject({ outcome: 'failed', attempt: 3 });
    expect(attempts).toEqual([1, 2, 3]);
    expect(failures).toEqual([{ id: 'j2', attempt: 3, message: 'boom 3' }]);
    expect((await q.stats()).failed).toBe(1);
  });

  it('honours attempts given with the job', async () => {
    q.process('work', async () => Promise.reject(new Error('no')), { concurrency: 1, onFailed });
    const done = q.whenSettled('j3');
    await q.add('work', 'j3', {}, { attempts: 1 });
    expect(await done).toMatchObject({ outcome: 'failed', attempt: 1 });
  });

  it('does not retry a PermanentJobError', async () => {
    q.process('work', async () => Promise.reject(new PermanentJobError('bad content')), { concurrency: 1, onFailed });
    const done = q.whenSettled('j4');
    await q.add('work', 'j4', {});
    expect(await done).toMatchObject({ outcome: 'failed', attempt: 1 });
    expect(failures).toEqual([{ id: 'j4', attempt: 1, message: 'bad content' }]);
  });

  it('succeeds on a later attempt without calling onFailed', async () => {
    q.process(
      'work',
      async (ctx) => {
        if (ctx.attempt < 2) throw new Error('transient');
      },
      { concurrency: 1, onFailed },
    );
    const done = q.whenSettled('j5');
    await q.add('work', 'j5', {});
    expect(await done).toMatchObject({ outcome: 'completed', attempt: 2 });
    expect(failures).toEqual([]);
  });

  it('aborts a running job on cancel (reason cancelled) and fails it without retrying', async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let reason: unknown;
    q.process(
      'work',
      async (ctx) => {
        started();
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error(String((reason = ctx.signal.reason))))));
      },
      { concurrency: 1, onFailed },
    );
    const done = q.whenSettled('j6');
    await q.add('work', 'j6', {});
    await running;
    await q.cancel('j6');
    expect(await done).toMatchObject({ outcome: 'failed', attempt: 1 });
    expect(reason).toBe(CANCELLED);
  });

  it('removes a waiting job on cancel: it never runs', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const ran: string[] = [];
    q.process(
      'work',
      async (ctx) => {
        ran.push(ctx.id);
        if (ctx.id === 'first') await gate;
      },
      { concurrency: 1, onFailed },
    );
    const first = q.whenSettled('first');
    await q.add('work', 'first', {});
    await q.add('work', 'second', {});
    await q.cancel('second');
    const third = q.whenSettled('third');
    await q.add('work', 'third', {});
    release();
    await first;
    await third; // the queue went on past where 'second' was
    expect(ran).toEqual(['first', 'third']);
    expect(await q.isPending('second')).toBe(false);
  });

  it('keeps to the concurrency', async () => {
    let active = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    q.process(
      'work',
      async () => {
        peak = Math.max(peak, ++active);
        await new Promise<void>((r) => releases.push(r));
        active--;
      },
      { concurrency: 2, onFailed },
    );
    const all = ['a', 'b', 'c', 'd'].map((id) => q.whenSettled(id));
    for (const id of ['a', 'b', 'c', 'd']) await q.add('work', id, {});
    for (let settled = 0; settled < 4; settled++) {
      while (releases.length === 0) await new Promise((r) => setImmediate(r));
      expect(active).toBeLessThanOrEqual(2);
      releases.shift()!();
      await all[settled];
    }
    expect(peak).toBe(2);
  });

  it('hands a running job back at close (reason shutdown), without onFailed', async () => {
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    let reason: unknown;
    q.process(
      'work',
      async (ctx) => {
        started();
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error(String((reason = ctx.signal.reason))))));
      },
      { concurrency: 1, onFailed },
    );
    const done = q.whenSettled('j7');
    await q.add('work', 'j7', {});
    await running;
    await q.close();
    expect(await done).toMatchObject({ outcome: 'handedBack' });
    expect(reason).toBe(SHUTDOWN);
    expect(failures).toEqual([]);
  });
});
