import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Brackets, DataSource, EntityManager, EntitySubscriberInterface, QueryRunner, TransactionCommitEvent } from 'typeorm';
import type { ScopeClause, VisibilityFilter } from '../access/access.policy';
import { ProgramStatement, SqlResult, SqlStatement, StatementPipeline } from '../common/statement-pipeline';
import type { EventActor, EventEnvelope, EventType } from './event-catalogue';
import { EventRelayLeaseEntity } from './event.entity';

/**
 * The transaction of the change an event reports, as the caller's own repository opened it (a TypeORM
 * EntityManager). Services only pass it from their repository's callback to EventsService.record; only
 * repositories use it.
 */
export type OutboxTransaction = EntityManager;

/** The relay's own database connection (EventsRepository.relayConnection); the relay only passes it back. */
export type RelayConnection = QueryRunner;

/**
 * The outbox write as a "program" of statements: a TypeORM transaction drives it through its manager, the
 * quota's raw transaction programs (mysql2 / synchronous better-sqlite3) `yield*` it inside their own.
 */
export type EventProgram = Generator<ProgramStatement, EventEnvelope, SqlResult>;

/** An event with everything but its position and sequence, which the write takes from the counters. */
export interface NewEvent {
  id: string;
  type: EventType;
  version: number;
  time: number;
  subject: string;
  imageId: string | null;
  scope: string | null;
  ownerId: string | null;
  departmentId: string | null;
  actor: EventActor;
  correlationId: string | null;
  payload: unknown;
}

export interface EventQuery {
  after: number;
  types?: string[];
  imageId?: string;
  limit: number;
  /** what the reader may see (AccessPolicy.visibility), plus department events of `departmentId` */
  visibility: VisibilityFilter;
  readerDepartmentId?: string;
}

const POSITION = '#position';
const COLUMNS = 'position, id, type, version, time, subject, sequence, imageId, scope, ownerId, departmentId, actor, correlationId, payload, publishedAt';

const num = (v: unknown): number => Number(v);
const parse = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

export function toEnvelope(r: Record<string, unknown>): EventEnvelope {
  return {
    id: String(r.id),
    type: r.type as EventType,
    version: num(r.version),
    position: num(r.position),
    time: num(r.time),
    imageId: r.imageId === null || r.imageId === undefined ? null : String(r.imageId),
    sequence: num(r.sequence),
    actor: parse(r.actor) as EventActor,
    correlationId: r.correlationId === null || r.correlationId === undefined ? null : String(r.correlationId),
    payload: parse(r.payload) as EventEnvelope['payload'],
  };
}

/** The event as written: its position and sequence are the values the counter upsert answered (`rows`). */
function envelopeOf(e: NewEvent, rows: SqlResult['rows']): EventEnvelope {
  const value = (name: string) => {
    const row = rows.find((r) => String(r.name) === name);
    if (!row) throw new Error(`the counter ${name} was not returned`);
    return num(row.value);
  };
  return {
    id: e.id,
    type: e.type,
    version: e.version,
    position: value(POSITION),
    time: e.time,
    imageId: e.imageId,
    sequence: value(e.subject),
    actor: e.actor,
    correlationId: e.correlationId,
    payload: e.payload as never,
  };
}

/**
 * The only place that touches the event_outbox and event_counters tables.
 *
 * Ordering: every write first bumps the `#position` counter row, which takes its row lock until the writing
 * transaction ends (MariaDB; SQLite serialises all transactions anyway). Transactions that write events
 * therefore commit one after the other in position order, and a reader paging by `position > cursor` can
 * never see position n+1 before n is committed (nor skip n): the cursor is monotonic in commit order.
 * The lock is taken as the last step of the transaction, so it is held only for its commit. The catalog
 * writes already serialise on catalog_state's version row the same way.
 */
const WROTE_EVENTS = 'hcmWroteEvents';

@Injectable()
export class EventsRepository {
  private readonly committedListeners = new Set<() => void>();

  constructor(@InjectDataSource() private readonly ds: DataSource) {
    // told by TypeORM when a transaction commits: one that wrote events wakes the relay at once (issue 14)
    // instead of leaving it to its next poll. Transactions TypeORM does not run (the quota's raw programs)
    // and other replicas' are found by the poll.
    const subscriber: EntitySubscriberInterface = {
      afterTransactionCommit: (ev: TransactionCommitEvent) => {
        const data = ev.queryRunner.data as Record<string, unknown>;
        if (!data[WROTE_EVENTS]) return;
        data[WROTE_EVENTS] = false;
        for (const f of this.committedListeners) f();
      },
    };
    ds.subscribers.push(subscriber);
  }

  /** `f` runs after every commit (on this replica, through TypeORM) of a transaction that wrote an event. */
  onCommitted(f: () => void): () => void {
    this.committedListeners.add(f);
    return () => this.committedListeners.delete(f);
  }

  private get sqlite(): boolean {
    return this.ds.options.type === 'better-sqlite3';
  }

  /**
   * Bumps the `#position` counter and the subject's counter and answers both new values, in ONE statement
   * (issue 16: one round trip instead of two). A two-row upsert with RETURNING (MariaDB 10.5+, SQLite 3.35+);
   * the rows are locked in primary-key order, and '#position' sorts before every subject ('department:...',
   * 'image:...'), so every writer takes the two locks in the same order, as the two statements did.
   */
  private get bumpSql(): string {
    return this.sqlite
      ? 'INSERT INTO event_counters (name, value) VALUES (?, 1), (?, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING name, value'
      : 'INSERT INTO event_counters (name, value) VALUES (?, 1), (?, 1) ON DUPLICATE KEY UPDATE value = value + 1 RETURNING name, value';
  }

  /** The statements that write one event (two); the caller runs them inside the transaction of the change. */
  *insertProgram(e: NewEvent): EventProgram {
    const bumped = yield { sql: this.bumpSql, params: [POSITION, e.subject] };
    yield { ...this.insertSelect(e), deferred: true };
    return envelopeOf(e, bumped.rows);
  }

  /**
   * Runs the write through a TypeORM transaction's manager: the counter upsert, then the INSERT, which takes the
   * position and sequence the upsert just wrote (INSERT ... SELECT from event_counters, the transaction's own
   * rows), so no value goes back and forth through the application.
   */
  async insert(m: OutboxTransaction, e: NewEvent): Promise<EventEnvelope> {
    if (m.queryRunner) (m.queryRunner.data as Record<string, unknown>)[WROTE_EVENTS] = true;
    // both statements at once, through the transaction's pipeline: they go in this order, in the round trip of
    // whatever else the change issues in the same turn (issue 16); on SQLite they run at once, in this order
    const pipeline = StatementPipeline.of(m);
    const [bumped] = await Promise.all([pipeline.exec({ sql: this.bumpSql, params: [POSITION, e.subject] }), pipeline.exec(this.insertSelect(e))]);
    return envelopeOf(e, bumped.rows);
  }

  /** The outbox row, with the position and sequence the counter upsert just wrote (the transaction's own rows). */
  private insertSelect(e: NewEvent): SqlStatement {
    return {
      sql: `INSERT INTO event_outbox (position, id, type, version, time, subject, sequence, imageId, scope, ownerId, departmentId, actor, correlationId, payload)
       SELECT p.value, ?, ?, ?, ?, ?, s.value, ?, ?, ?, ?, ?, ?, ? FROM event_counters p, event_counters s WHERE p.name = ? AND s.name = ?`,
      params: [
        e.id,
        e.type,
        e.version,
        e.time,
        e.subject,
        e.imageId,
        e.scope,
        e.ownerId,
        e.departmentId,
        JSON.stringify(e.actor),
        e.correlationId,
        JSON.stringify(e.payload),
        POSITION,
        e.subject,
      ],
    };
  }

  /** A write with no change to join (a refusal): its own transaction. */
  insertAlone(e: NewEvent): Promise<EventEnvelope> {
    return this.ds.transaction((m) => this.insert(m, e));
  }

  /** Events after `after` in position order that the reader may see. */
  async list(q: EventQuery): Promise<EventEnvelope[]> {
    const where: string[] = ['position > ?'];
    const params: unknown[] = [q.after];
    if (q.types?.length) {
      where.push(`type IN (${q.types.map(() => '?').join(', ')})`);
      params.push(...q.types);
    }
    if (q.imageId !== undefined) {
      where.push('imageId = ?');
      params.push(q.imageId);
    }
    const vis = this.visibilitySql(q.visibility, q.readerDepartmentId, params);
    if (vis) where.push(vis);
    params.push(q.limit);
    const rows: Array<Record<string, unknown>> = await this.ds.query(
      `SELECT ${COLUMNS} FROM event_outbox WHERE ${where.join(' AND ')} ORDER BY position ASC LIMIT ?`,
      params,
    );
    return rows.map(toEnvelope);
  }

  // ---------------------------------------------------------------- the relay

  /**
   * A connection of its own for the relay (issue 14): under load every pooled connection is busy with
   * requests, and the relay's few statements would queue behind them (the publish lag grew with the load).
   * The caller releases it (and takes a new one after a connection error).
   */
  relayConnection(): RelayConnection {
    return this.ds.createQueryRunner();
  }

  /** Takes or renews the relay lease; true when `holder` holds it until `until`. */
  async acquireLease(holder: string, now: number, until: number, runner?: QueryRunner): Promise<boolean> {
    const res = await this.ds
      .createQueryBuilder(runner)
      .update(EventRelayLeaseEntity)
      .set({ holder, until })
      .where('name = :name', { name: 'relay' })
      .andWhere(new Brackets((w) => w.where('holder = :holder', { holder }).orWhere('holder IS NULL').orWhere('until < :now', { now })))
      .execute();
    return (res.affected ?? 0) > 0;
  }

  async releaseLease(holder: string): Promise<void> {
    await this.ds
      .createQueryBuilder()
      .update(EventRelayLeaseEntity)
      .set({ holder: null, until: 0 })
      .where('name = :name', { name: 'relay' })
      .andWhere('holder = :holder', { holder })
      .execute();
  }

  /**
   * The oldest events not yet published after position `after`, in position order (so in order per image).
   * A relay that is caught up passes the last position it published: then the read is a primary-key range
   * from there (the unpublished events are at the end), not a walk of the publishedAt index from its start.
   */
  async unpublished(limit: number, after = 0, runner?: QueryRunner): Promise<EventEnvelope[]> {
    const rows: Array<Record<string, unknown>> = await this.ds.query(
      `SELECT ${COLUMNS} FROM event_outbox WHERE position > ? AND publishedAt IS NULL ORDER BY position ASC LIMIT ?`,
      [after, limit],
      runner,
    );
    return rows.map(toEnvelope);
  }

  /**
   * Marks the events from `first` to `last` (positions) published: the batch the relay read, which is every
   * unpublished event in that range (a position below a committed one is committed or never will be: the
   * `#position` row lock orders commits), so one range on the primary key instead of a list of positions.
   */
  async markPublished(first: number, last: number, at: number, runner?: QueryRunner): Promise<void> {
    await this.ds.query('UPDATE event_outbox SET publishedAt = ? WHERE position >= ? AND position <= ? AND publishedAt IS NULL', [at, first, last], runner);
  }

  /** How many events wait for the relay. */
  async backlog(): Promise<number> {
    const rows: Array<Record<string, unknown>> = await this.ds.query('SELECT COUNT(*) AS n FROM event_outbox WHERE publishedAt IS NULL');
    return num(rows[0]?.n ?? 0);
  }

  /**
   * Deletes up to `limit` events older than `before` (ms): published ones by when they were published, or,
   * with `publishedOnly` false (no relay), every event by its time. Returns how many went.
   */
  async prune(before: number, publishedOnly: boolean, limit = 1000): Promise<number> {
    const cond = publishedOnly ? 'publishedAt IS NOT NULL AND publishedAt < ?' : 'time < ?';
    const rows: Array<Record<string, unknown>> = await this.ds.query(`SELECT position FROM event_outbox WHERE ${cond} ORDER BY position ASC LIMIT ?`, [
      before,
      limit,
    ]);
    if (!rows.length) return 0;
    const positions = rows.map((r) => num(r.position));
    await this.ds.query(`DELETE FROM event_outbox WHERE position IN (${positions.map(() => '?').join(', ')})`, positions);
    return positions.length;
  }

  /** The highest position written so far (0 when none). */
  async lastPosition(): Promise<number> {
    const rows: Array<Record<string, unknown>> = await this.ds.query('SELECT MAX(position) AS p FROM event_outbox');
    return rows[0]?.p === null || rows[0]?.p === undefined ? 0 : num(rows[0].p);
  }

  /** Image events follow the image's scope rules; department events (quota) are for that department. */
  private visibilitySql(vis: VisibilityFilter, dept: string | undefined, params: unknown[]): string | null {
    if (vis === null) return null;
    const ors = vis.map((c: ScopeClause) => {
      const parts = [`scope IN (${c.scopes.map(() => '?').join(', ')})`];
      params.push(...c.scopes);
      if (c.ownerId !== undefined) {
        parts.push('ownerId = ?');
        params.push(c.ownerId);
      }
      if (c.departmentId !== undefined) {
        parts.push('departmentId = ?');
        params.push(c.departmentId);
      }
      return `(${parts.join(' AND ')})`;
    });
    if (dept !== undefined) {
      ors.push('(scope IS NULL AND departmentId = ?)');
      params.push(dept);
    }
    return ors.length ? `(${ors.join(' OR ')})` : '1 = 0';
  }
}
