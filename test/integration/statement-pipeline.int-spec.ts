/**
 * StatementPipeline (issue 16): the statements a transaction issues in one turn go to MariaDB in one round trip,
 * in the order issued, with one answer each; a failure among them fails all of them and the transaction rolls
 * back, on both shapes. Then the create and the edit of an image, watched at mysql2's command queue: START,
 * one batch holding the quota's reservation, the row, its tags, the version bump and the event, COMMIT.
 */
import { DataSource } from 'typeorm';
import { Role } from '../../src/access/principal';
import { StatementPipeline } from '../../src/common/statement-pipeline';
import { Caller, SHAPES, startApp, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

interface Sent {
  conn: unknown;
  name: string;
  sql: string;
}

/** Runs `f`, recording every command mysql2 queues meanwhile (each one round trip) with the connection that sends it. */
async function watched<T>(f: () => Promise<T>): Promise<{ sent: Sent[]; value: T }> {
  const Base = (require('mysql2') as { Connection: { prototype: { addCommand: (cmd: { constructor: { name: string }; sql?: string }) => unknown } } })
    .Connection;
  const add = Base.prototype.addCommand;
  const sent: Sent[] = [];
  Base.prototype.addCommand = function (this: unknown, cmd: { constructor: { name: string }; sql?: string }) {
    sent.push({ conn: this, name: cmd?.constructor?.name ?? '?', sql: typeof cmd?.sql === 'string' ? cmd.sql : '' });
    return add.call(this, cmd);
  };
  try {
    return { sent, value: await f() };
  } finally {
    Base.prototype.addCommand = add;
  }
}

/** A transaction's commands, a multi-statement batch shown as 'batch'. */
const shapeOf = (tx: Sent[]) => tx.map((s) => (s.sql.includes(';\n') ? 'batch' : s.sql));

/** The table each statement of a batch writes, in order. */
const tablesOf = (sql: string) =>
  sql.split(';\n').map((s) => {
    const m = /^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)/i.exec(s);
    return m ? m[1] : s.trim().slice(0, 20);
  });

const alice: Caller = { sub: 'alice', dept: 'pipe-dept', role: Role.User };

describe.each(SHAPES)('statement pipeline (%s)', (shape) => {
  let t: TestApp;
  let ds: DataSource;

  beforeAll(async () => {
    t = await startApp(shape, 'pipeline');
    ds = t.app.get(DataSource);
    await ds.query('CREATE TABLE pipe_t (id INT PRIMARY KEY, v VARCHAR(20))');
  });
  afterAll(() => t?.close());

  it('runs statements issued together in order, one answer each', async () => {
    const answers = await ds.transaction(async (m) => {
      const p = StatementPipeline.of(m);
      return Promise.all([
        p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?), (?, ?)', params: [1, 'a', 2, 'b'] }),
        p.exec({ sql: 'UPDATE pipe_t SET v = ? WHERE id = ?', params: ['a2', 1] }),
        p.exec({ sql: 'SELECT id, v FROM pipe_t ORDER BY id', params: [] }),
        p.exec({ sql: 'DELETE FROM pipe_t WHERE id = ?', params: [2] }),
      ]);
    });
    expect(answers.map((a) => a.affected)).toEqual([2, 1, 0, 1]);
    // the SELECT saw the INSERT and the UPDATE before it, not the DELETE after it
    expect(answers[2].rows.map((r) => [Number(r.id), r.v])).toEqual([
      [1, 'a2'],
      [2, 'b'],
    ]);
    expect((await ds.query('SELECT id, v FROM pipe_t')).map((r: { id: unknown; v: string }) => [Number(r.id), r.v])).toEqual([[1, 'a2']]);
  });

  it('fails every statement of a batch when one fails, and the transaction leaves nothing', async () => {
    const outcome = await ds
      .transaction(async (m) => {
        const p = StatementPipeline.of(m);
        const steps = await Promise.allSettled([
          p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [10, 'x'] }),
          p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [1, 'duplicate'] }),
          p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [11, 'y'] }),
        ]);
        const failed = steps.filter((s) => s.status === 'rejected');
        // MariaDB runs nothing after the failed statement and answers the batch with its error; SQLite runs each at once
        expect(failed.length).toBe(shape === 'mariadb' ? 3 : 1);
        throw (failed[0] as PromiseRejectedResult).reason;
      })
      .then(
        () => 'committed',
        (e: { code?: string; driverError?: { code?: string } }) => e.code ?? e.driverError?.code ?? String(e),
      );
    expect(outcome).toMatch(/DUP|UNIQUE|PRIMARYKEY|CONSTRAINT/);
    expect((await ds.query('SELECT id FROM pipe_t ORDER BY id')).map((r: { id: unknown }) => Number(r.id))).toEqual([1]);
  });

  it('sends nothing after the transaction ends: what is queued goes before a COMMIT and never after a ROLLBACK', async () => {
    // a statement left unawaited when the transaction commits: sent before the COMMIT, in the transaction
    let unawaited: Promise<unknown> | undefined;
    await ds.transaction(async (m) => {
      unawaited = StatementPipeline.of(m).exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [20, 'committed'] });
    });
    await expect(unawaited).resolves.toMatchObject({ affected: 1 });
    // one left unawaited when the transaction throws: never run (on SQLite it ran at once, and the rollback undoes it)
    let dropped: Promise<unknown> | undefined;
    await expect(
      ds.transaction(async (m) => {
        dropped = StatementPipeline.of(m).exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [21, 'rolled back'] });
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    if (shape === 'mariadb') await expect(dropped).rejects.toThrow(/rolled back before this statement was sent/);
    else await dropped;
    // a failing statement left unawaited fails the commit instead of being lost (MariaDB, where statements wait for
    // the turn's end; on SQLite each runs at once and its caller sees its failure at once)
    if (shape !== 'mariadb') return;
    await expect(
      ds.transaction(async (m) => {
        const p = StatementPipeline.of(m);
        void p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [22, 'x'] });
        void p.exec({ sql: 'INSERT INTO pipe_t (id, v) VALUES (?, ?)', params: [20, 'duplicate'] });
        // a savepoint inside (on SQLite's shared runner, another caller's transaction nests like this) ends nothing
        await m.queryRunner!.startTransaction();
        await m.queryRunner!.commitTransaction();
      }),
    ).rejects.toThrow(/Duplicate|UNIQUE|PRIMARY/i);
    // give a statement sent late the time to arrive, then look
    await new Promise((r) => setTimeout(r, 50));
    expect((await ds.query('SELECT id FROM pipe_t WHERE id >= 20 ORDER BY id')).map((r: { id: unknown }) => Number(r.id))).toEqual([20]);
  });

  it('refuses a manager outside a transaction', () => {
    expect(() => StatementPipeline.of(ds.manager)).toThrow(/inside a transaction/);
  });

  if (shape !== 'mariadb') return;

  /** The commands the connection of the batch that writes `table` sent, from its START TRANSACTION to its COMMIT. */
  const transactionOf = (sent: Sent[], table: RegExp): Sent[] => {
    const at = sent.findIndex((s) => table.test(s.sql));
    expect(at).toBeGreaterThanOrEqual(0);
    const own = sent.filter((s) => s.conn === sent[at].conn);
    const i = own.indexOf(sent[at]);
    const start = own.map((s) => s.sql).lastIndexOf('START TRANSACTION', i);
    const end = own.findIndex((s, k) => k > i && s.sql === 'COMMIT');
    return own.slice(start, end + 1);
  };

  it('sends a create as START, one batch, COMMIT: the quota first, then the row, tags, version and event', async () => {
    const zoneId = await createZone(t, 'pipe-zone');
    // the department's first create also makes its ledger rows (a refusal settled, then the create again)
    await createImage(t, alice, zoneId, { source: { type: 'UPLOAD' } });
    const { sent, value: image } = await watched(() => createImage(t, alice, zoneId, { tags: ['b', 'a'], source: { type: 'UPLOAD' } }));
    const tx = transactionOf(sent, /INSERT INTO images/);
    expect(shapeOf(tx)).toEqual(['START TRANSACTION', 'batch', 'COMMIT']);
    expect(tablesOf(tx[1].sql)).toEqual([
      'quota_reservations',
      'quota_reservation_items',
      'quota_ledger',
      'images',
      'image_tags',
      'catalog_state',
      'event_counters',
      'event_outbox',
    ]);
    // and what it wrote is what a read answers
    const read = await t.http().get(`/images/${image.id}`).set('authorization', t.auth(alice));
    expect(read.body).toMatchObject({ id: image.id, tags: ['a', 'b'], status: image.status, name: image.name });
    const events = await ds.query('SELECT type FROM event_outbox WHERE imageId = ?', [image.id]);
    expect(events.map((e: { type: string }) => e.type)).toEqual(['image.created']);
  });

  it('sends an edit that changes the tags and the scope as one batch with both of its events', async () => {
    const zoneId = await createZone(t, 'pipe-zone-2');
    const image = await createImage(t, alice, zoneId, { tags: ['old'], source: { type: 'UPLOAD' } });
    const admin: Caller = { sub: 'ada', dept: alice.dept, role: Role.Admin }; // an admin may make an image PUBLIC
    const { sent, value: res } = await watched(() =>
      t
        .http()
        .patch(`/images/${image.id}`)
        .set('authorization', t.auth(admin))
        .send({ name: 'renamed', tags: ['new'], scope: 'PUBLIC' }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'renamed', tags: ['new'], scope: 'PUBLIC' });
    const tx = transactionOf(sent, /UPDATE images SET/);
    expect(shapeOf(tx)).toEqual(['START TRANSACTION', 'batch', 'COMMIT']);
    expect(tablesOf(tx[1].sql)).toEqual([
      'images',
      'image_tags',
      'image_tags',
      'catalog_state',
      'event_counters',
      'event_outbox',
      'event_counters',
      'event_outbox',
    ]);
    const events = await ds.query('SELECT type, sequence FROM event_outbox WHERE imageId = ? ORDER BY position', [image.id]);
    expect(events.map((e: { type: string; sequence: unknown }) => [e.type, Number(e.sequence)])).toEqual([
      ['image.created', 1],
      ['image.updated', 2],
      ['image.scope_changed', 3],
    ]);
  });
});
