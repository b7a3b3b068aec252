import { setImmediate as nextTick } from 'node:timers/promises';
import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import {
  MysqlConnection,
  ProgramStatement,
  SqlResult,
  SqliteDb,
  StatementPipeline,
  mysqlExec,
  mysqlExecMany,
  sqlDate,
  sqliteExecutor,
} from '../common/statement-pipeline';
import { ExceededFacts } from './quota.errors';
import { FINISHED_STATUSES, QUOTA_RESOURCES, QuotaResource, ReservationStatus } from './quota.enums';

/*
 * The only place that touches the quota tables.
 *
 * Every write is a small "transaction program": a generator that yields SQL statements and receives their
 * results. The same program runs
 *   - on MariaDB inside a TypeORM transaction on one pooled connection (row locks and conditional
 *     UPDATEs do the serialising, across any number of processes), retried on deadlock;
 *   - on SQLite synchronously inside one better-sqlite3 transaction. TypeORM shares one SQLite connection
 *     between all callers, so a transaction left open across an `await` would take in (and roll back) other
 *     requests' statements; a synchronous transaction cannot interleave with anything.
 *
 * Race-freedom comes from the database alone: every increase of a ledger row is
 *   UPDATE quota_ledger SET reserved = reserved + n ... WHERE ... AND (limitAmount IS NULL OR used + reserved + n <= limitAmount)
 * and the affected-row count says whether it fitted; every change of a reservation is conditional on the
 * version the program read, so two programs never both act on the same reservation.
 */

type Row = Record<string, unknown>;
type Stmt = ProgramStatement;
type Res = SqlResult;
/** A transaction program: yields statements, gets their results, returns T. */
type Tx<T> = Generator<Stmt, T, Res>;

const q = (sql: string, ...params: unknown[]): Stmt => ({ sql, params });
/** A statement whose answer the program does not read (see Stmt). */
const later = (sql: string, ...params: unknown[]): Stmt => ({ sql, params, deferred: true });
const NO_ANSWER: Res = { rows: [], affected: 0 };
const marks = (n: number, one = '?') => Array.from({ length: n }, () => one).join(', ');

export interface ItemRecord {
  resource: QuotaResource;
  /** held in the ledger's `reserved` while pending */
  reserved: number;
  /** held in the ledger's `used` */
  committed: number;
  pending: boolean;
}

export interface ReservationRecord {
  id: string;
  callerId: string;
  key: string;
  fingerprint: string;
  departmentId: string;
  subjectId: string | null;
  status: ReservationStatus;
  version: number;
  ttlSeconds: number;
  expiresAt: Date;
  deletingAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** in resource order */
  items: ItemRecord[];
}

export interface LedgerRow {
  departmentId: string;
  resource: QuotaResource;
  limitAmount: number | null;
  used: number;
  reserved: number;
  version: number;
  updatedAt: Date;
}

/** Why a program refused; it rolled back everything it did. */
export type Refusal =
  | { refused: 'not_found' }
  | { refused: 'not_pending'; status: ReservationStatus }
  | { refused: 'expired' }
  | { refused: 'exceeded'; facts: ExceededFacts }
  /** ledger rows are created on first use: create them and run again */
  | { refused: 'ledger_missing'; departmentId: string; resources: QuotaResource[] }
  /** the reservation or ledger row changed since it was read: run again */
  | { refused: 'changed' }
  /** (callerId, key) exists already */
  | { refused: 'duplicate' };

export type Outcome<T> = { ok: true; value: T } | (Refusal & { ok: false });

/**
 * A program run inside another module's transaction (runIn) refused: that transaction must roll back (the
 * statements before the refusal ran in it), then the refusal is settled and the whole thing runs again or
 * is answered.
 */
export class QuotaRefusal extends Error {
  constructor(readonly refusal: Refusal) {
    super(`quota refused: ${refusal.refused}`);
  }
}

/** Thrown inside a program to roll it back and answer a refusal. */
class Abort {
  constructor(readonly refusal: Refusal) {}
}
const abort = (r: Refusal): never => {
  throw new Abort(r);
};

export interface NewReservation {
  id: string;
  callerId: string;
  key: string;
  fingerprint: string;
  departmentId: string;
  subjectId: string | null;
  ttlSeconds: number;
  /** resource order, amounts >= 0 */
  amounts: Array<[QuotaResource, number]>;
  status?: ReservationStatus;
}

/** The in-flight part of a catalog reservation, for reconcile. */
export interface InflightRow {
  departmentId: string;
  subjectId: string;
  deleting: boolean;
  resource: QuotaResource;
  pending: boolean;
  committed: number;
}

export interface LedgerSnapshot {
  ledger: LedgerRow[];
  /** sum of pending items per department and resource */
  pending: Array<{ departmentId: string; resource: QuotaResource; total: number }>;
  inflight: InflightRow[];
}

export interface LedgerWrite {
  resource: QuotaResource;
  used: number;
  reserved: number;
  /** the version read in the snapshot, or null when the row did not exist */
  expectedVersion: number | null;
  /** limit of a row created here */
  limitAmount: number | null;
}

const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(`${String(v).replace(' ', 'T')}Z`));
const toNum = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));
const toBool = (v: unknown): boolean => v === true || v === 1 || v === '1';

const RES_ORDER = new Map(QUOTA_RESOURCES.map((r, i) => [r, i]));
const byResource = <T extends { resource: QuotaResource }>(a: T, b: T) => RES_ORDER.get(a.resource)! - RES_ORDER.get(b.resource)!;

const RESERVATION_COLUMNS =
  'id, callerId, idemKey, fingerprint, departmentId, subjectId, status, version, ttlSeconds, expiresAt, deletingAt, createdAt, updatedAt';

function toLedgerRow(r: Row): LedgerRow {
  return {
    departmentId: String(r.departmentId),
    resource: r.resource as QuotaResource,
    limitAmount: r.limitAmount === null || r.limitAmount === undefined ? null : Number(r.limitAmount),
    used: toNum(r.used),
    reserved: toNum(r.reserved),
    version: toNum(r.version),
    updatedAt: toDate(r.updatedAt),
  };
}

function toReservation(r: Row, items: Row[]): ReservationRecord {
  return {
    id: String(r.id),
    callerId: String(r.callerId),
    key: String(r.idemKey),
    fingerprint: String(r.fingerprint),
    departmentId: String(r.departmentId),
    subjectId: r.subjectId === null || r.subjectId === undefined ? null : String(r.subjectId),
    status: r.status as ReservationStatus,
    version: toNum(r.version),
    ttlSeconds: toNum(r.ttlSeconds),
    expiresAt: toDate(r.expiresAt),
    deletingAt: r.deletingAt === null || r.deletingAt === undefined ? null : toDate(r.deletingAt),
    createdAt: toDate(r.createdAt),
    updatedAt: toDate(r.updatedAt),
    items: items
      .map((i) => ({ resource: i.resource as QuotaResource, reserved: toNum(i.reserved), committed: toNum(i.committed), pending: toBool(i.pending) }))
      .sort(byResource),
  };
}

const DEADLOCK_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);
const DUPLICATE_CODES = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const driverCode = (e: unknown): string | undefined => {
  const x = e as { code?: string; driverError?: { code?: string } };
  return x?.driverError?.code ?? x?.code;
};

/** The catalog's own caller id: '#' never occurs in a token's `sub`, so no HTTP caller can use its keys. */
export const CATALOG_CALLER = '#catalog';
/** A lock conflict the whole transaction can simply run again for. */
export const isDeadlock = (e: unknown): boolean => DEADLOCK_CODES.has(driverCode(e) ?? '');
const CATALOG_RESOURCES = [QuotaResource.ImageCount, QuotaResource.ImageBytes];

@Injectable()
export class QuotaRepository {
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  private get sqlite(): boolean {
    return this.ds.options.type === 'better-sqlite3';
  }

  private get insertIgnore(): string {
    return this.sqlite ? 'INSERT OR IGNORE INTO' : 'INSERT IGNORE INTO';
  }

  // ---------------------------------------------------------------- running programs

  /** Runs a program in one transaction; a refusal rolls it back. */
  async run<T>(program: () => Tx<T>): Promise<Outcome<T>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const value = this.sqlite ? await this.runSqlite(program) : await this.runMariadb(program);
        return { ok: true, value };
      } catch (e) {
        if (e instanceof Abort) return { ok: false, ...e.refusal };
        const code = driverCode(e);
        if (code && DUPLICATE_CODES.has(code)) return { ok: false, refused: 'duplicate' };
        if (code && DEADLOCK_CODES.has(code) && attempt < 8) {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * One pooled connection, driven through mysql2's callback API (TypeORM's query runner adds an event
   * broadcast and a captured stack trace per statement, a third of the CPU a reservation costs). Deferred
   * statements wait for the next one whose answer is needed and go with it in one round trip; the last ones
   * go with the COMMIT.
   */
  private async runMariadb<T>(program: () => Tx<T>): Promise<T> {
    const conn = await (this.ds.driver as unknown as { obtainMasterConnection(): Promise<MysqlConnection> }).obtainMasterConnection();
    let open = false;
    try {
      await mysqlExec(conn, q('START TRANSACTION'));
      open = true;
      const g = program();
      let held: Stmt[] = [];
      const send = async (s: Stmt): Promise<Res> => {
        const batch = [...held, s];
        held = [];
        const results = await mysqlExecMany(conn, batch);
        return results[results.length - 1];
      };
      let step = g.next();
      while (!step.done) {
        if (step.value.deferred) {
          held.push(step.value);
          step = g.next(NO_ANSWER);
        } else step = g.next(await send(step.value));
      }
      // the COMMIT carries the deferred statements left; when one of them fails the server runs no COMMIT
      // after it, so the transaction counts as open until the COMMIT has answered
      await send(q('COMMIT'));
      open = false;
      return step.value;
    } catch (e) {
      if (open) await mysqlExec(conn, q('ROLLBACK')).catch(() => conn.destroy());
      throw e;
    } finally {
      conn.release();
    }
  }

  private async runSqlite<T>(program: () => Tx<T>): Promise<T> {
    const db = this.sqliteDb;
    // another caller's TypeORM transaction is open across an await: let it finish first (never call the
    // quota from inside a TypeORM transaction on SQLite: it would wait for itself)
    for (const deadline = Date.now() + 10_000; db.inTransaction; await nextTick()) {
      if (Date.now() > deadline) throw new Error('the SQLite connection stayed inside another transaction for 10 s');
    }
    const exec = sqliteExecutor(db);
    return db
      .transaction(() => {
        const g = program();
        let step = g.next();
        while (!step.done) step = g.next(exec(step.value));
        return step.value;
      })
      .immediate();
  }

  private get sqliteDb(): SqliteDb {
    return (this.ds.driver as unknown as { databaseConnection: SqliteDb }).databaseConnection;
  }

  /**
   * Runs a program inside a transaction another module opened (the catalog's create: `tx` is that
   * transaction's EntityManager, opaque to the modules between), on that transaction's
   * connection, so what it writes commits or rolls back with the rest. A refusal throws QuotaRefusal (the
   * caller lets it roll its transaction back); nothing is retried here, the caller runs its transaction again.
   * The statements go through the transaction's StatementPipeline: on MariaDB they join whatever else the
   * caller issues in the same turn (the create's row, tags and event: one round trip for all of it); on SQLite
   * they run synchronously on the one connection, which is inside the caller's transaction.
   */
  async runIn<T>(tx: object, program: () => Tx<T>): Promise<T> {
    const pipeline = StatementPipeline.of(tx as EntityManager);
    const deferred: Array<Promise<Res>> = [];
    try {
      const g = program();
      let step = g.next();
      while (!step.done) {
        if (step.value.deferred) {
          const p = pipeline.exec(step.value);
          p.catch(() => undefined); // awaited below; its failure also fails every later statement of the batch
          deferred.push(p);
          step = g.next(NO_ANSWER);
        } else step = g.next(await pipeline.exec(step.value));
      }
      await Promise.all(deferred);
      return step.value;
    } catch (e) {
      if (e instanceof Abort) throw new QuotaRefusal(e.refusal);
      throw e;
    }
  }

  /** Runs a program that never refuses. */
  private async must<T>(program: () => Tx<T>): Promise<T> {
    const o = await this.run(program);
    if (!o.ok) throw new Error(`unexpected refusal ${o.refused}`);
    return o.value;
  }

  // ---------------------------------------------------------------- building blocks

  private *loadTx(where: 'id' | 'key', ...params: unknown[]): Tx<ReservationRecord | null> {
    const cond = where === 'id' ? 'id = ?' : 'callerId = ? AND idemKey = ?';
    const { rows } = yield q(`SELECT ${RESERVATION_COLUMNS} FROM quota_reservations WHERE ${cond}`, ...params);
    if (!rows.length) return null;
    const items = yield q('SELECT resource, reserved, committed, pending FROM quota_reservation_items WHERE reservationId = ?', rows[0].id);
    return toReservation(rows[0], items.rows);
  }

  /**
   * Moves one ledger row by (dReserved, dUsed). With `need` set, only if `need` more fits under the limit:
   * the condition and the change are one statement, evaluated on the row's latest committed values under
   * its row lock, so concurrent programs cannot both take the last unit.
   */
  private *ledgerTx(departmentId: string, resource: QuotaResource, dReserved: number, dUsed: number, need: number | null, now: Date): Tx<void> {
    const check = need === null ? '' : ' AND (limitAmount IS NULL OR used + reserved + ? <= limitAmount)';
    const r = yield q(
      `UPDATE quota_ledger SET reserved = reserved + ?, used = used + ?, version = version + 1, updatedAt = ? WHERE departmentId = ? AND resource = ?${check}`,
      dReserved,
      dUsed,
      sqlDate(now),
      departmentId,
      resource,
      ...(need === null ? [] : [need]),
    );
    if (r.affected === 1) return;
    const { rows } = yield q('SELECT limitAmount, used, reserved FROM quota_ledger WHERE departmentId = ? AND resource = ?', departmentId, resource);
    if (!rows.length) abort({ refused: 'ledger_missing', departmentId, resources: [resource] });
    const row = toLedgerRow({ ...rows[0], departmentId, resource });
    abort({ refused: 'exceeded', facts: { departmentId, resource, requested: need ?? 0, limit: row.limitAmount, used: row.used, reserved: row.reserved } });
  }

  /** Writes the reservation's state if nobody changed it since it was read (its version). */
  private *saveTx(rec: ReservationRecord, now: Date): Tx<ReservationRecord> {
    const r = yield q(
      'UPDATE quota_reservations SET status = ?, version = version + 1, expiresAt = ?, deletingAt = ?, updatedAt = ? WHERE id = ? AND version = ?',
      rec.status,
      sqlDate(rec.expiresAt),
      rec.deletingAt ? sqlDate(rec.deletingAt) : null,
      sqlDate(now),
      rec.id,
      rec.version,
    );
    if (r.affected !== 1) abort({ refused: 'changed' });
    return { ...rec, version: rec.version + 1, updatedAt: now };
  }

  private *saveItemTx(id: string, item: ItemRecord, exists: boolean): Tx<void> {
    if (exists) {
      yield later(
        'UPDATE quota_reservation_items SET reserved = ?, committed = ?, pending = ? WHERE reservationId = ? AND resource = ?',
        item.reserved,
        item.committed,
        item.pending ? 1 : 0,
        id,
        item.resource,
      );
    } else {
      yield later(
        'INSERT INTO quota_reservation_items (reservationId, resource, reserved, committed, pending) VALUES (?, ?, ?, ?, ?)',
        id,
        item.resource,
        item.reserved,
        item.committed,
        item.pending ? 1 : 0,
      );
    }
  }

  private *insertReservationTx(n: NewReservation, items: ItemRecord[], now: Date, deletingAt: Date | null): Tx<ReservationRecord> {
    const expiresAt = new Date(now.getTime() + n.ttlSeconds * 1000);
    const status = n.status ?? ReservationStatus.Pending;
    yield later(
      `INSERT INTO quota_reservations (${RESERVATION_COLUMNS}) VALUES (${marks(13)})`,
      n.id,
      n.callerId,
      n.key,
      n.fingerprint,
      n.departmentId,
      n.subjectId,
      status,
      0,
      n.ttlSeconds,
      sqlDate(expiresAt),
      deletingAt ? sqlDate(deletingAt) : null,
      sqlDate(now),
      sqlDate(now),
    );
    if (items.length) {
      yield later(
        `INSERT INTO quota_reservation_items (reservationId, resource, reserved, committed, pending) VALUES ${marks(items.length, '(?, ?, ?, ?, ?)')}`,
        ...items.flatMap((i) => [n.id, i.resource, i.reserved, i.committed, i.pending ? 1 : 0]),
      );
    }
    return {
      id: n.id,
      callerId: n.callerId,
      key: n.key,
      fingerprint: n.fingerprint,
      departmentId: n.departmentId,
      subjectId: n.subjectId,
      status,
      version: 0,
      ttlSeconds: n.ttlSeconds,
      expiresAt,
      deletingAt,
      createdAt: now,
      updatedAt: now,
      items,
    };
  }

  // ---------------------------------------------------------------- reservation programs

  /**
   * Inserts the reservation and its items, then takes each amount from its ledger row (resource order).
   * The inserts come first so the ledger rows stay locked only for the UPDATE and the COMMIT.
   * An amount of 0 still needs one unit of room: it opens an item that grow() fills later.
   */
  reserve(n: NewReservation, now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    const program = (oneByOne: boolean) =>
      function* (): Tx<ReservationRecord> {
        const items = n.amounts.map(([resource, amount]) => ({ resource, reserved: amount, committed: 0, pending: true }));
        const rec = yield* self.insertReservationTx(n, items, now, null);
        if (oneByOne || items.length === 1) {
          for (const i of items) yield* self.ledgerTx(n.departmentId, i.resource, i.reserved, 0, Math.max(i.reserved, 1), now);
        } else if (!(yield* self.ledgerManyTx(n.departmentId, items, now))) {
          abort({ refused: 'changed' }); // some row refused: run again one row at a time to say which
        }
        return rec;
      };
    return this.run(program(false)).then((o) => (!o.ok && o.refused === 'changed' ? this.run(program(true)) : o));
  }

  /**
   * A reservation whose items are written in their final state at once, in the caller's transaction (runIn):
   * the catalog's create writes its image's reservation with the image count already committed (the row commits
   * in the same transaction) and the bytes pending for ingestion, instead of reserving and committing in two
   * more transactions (issue 16). Each item moves its ledger row by (reserved, committed), only if
   * max(reserved + committed, 1) more fits under the limit (the same rule as reserve), all rows in ONE
   * conditional UPDATE. When a row does not fit it refuses `changed`; run again with `oneByOne`, it refuses
   * `exceeded` (or `ledger_missing`) naming the row, as reserve does.
   */
  reserveIn(tx: object, n: NewReservation, items: ItemRecord[], now: Date, oneByOne: boolean): Promise<ReservationRecord> {
    return this.runIn(tx, () => this.reserveSettledTx(n, items, now, oneByOne));
  }

  private *reserveSettledTx(n: NewReservation, items: ItemRecord[], now: Date, oneByOne: boolean): Tx<ReservationRecord> {
    const rec = yield* this.insertReservationTx(n, items, now, null);
    const needOf = (i: ItemRecord) => Math.max(i.reserved + i.committed, 1);
    if (oneByOne || items.length === 1) {
      // one conditional UPDATE per row, in resource order: the first that does not fit refuses, naming itself
      for (const i of items) yield* this.ledgerTx(n.departmentId, i.resource, i.reserved, i.committed, needOf(i), now);
      return rec;
    }
    const cases = (value: (i: ItemRecord) => number) => ({
      sql: `CASE resource ${items.map(() => 'WHEN ? THEN ?').join(' ')} END`,
      params: items.flatMap((i) => [i.resource, value(i)]),
    });
    const dReserved = cases((i) => i.reserved);
    const dUsed = cases((i) => i.committed);
    const need = cases(needOf);
    const r = yield q(
      `UPDATE quota_ledger SET reserved = reserved + ${dReserved.sql}, used = used + ${dUsed.sql}, version = version + 1, updatedAt = ? WHERE departmentId = ? AND resource IN (${marks(items.length)}) AND (limitAmount IS NULL OR used + reserved + ${need.sql} <= limitAmount)`,
      ...dReserved.params,
      ...dUsed.params,
      sqlDate(now),
      n.departmentId,
      ...items.map((i) => i.resource),
      ...need.params,
    );
    // some row did not take its share (the others did: the caller's transaction rolls all of it back), and
    // which one cannot be told from here: the caller runs again with oneByOne, which names it
    if (r.affected !== items.length) abort({ refused: 'changed' });
    return rec;
  }

  /**
   * Takes every item's amount from its ledger row in ONE conditional UPDATE (rows are locked in primary-key
   * order, which is the resource order). False when any row did not fit or does not exist.
   */
  private *ledgerManyTx(departmentId: string, items: ItemRecord[], now: Date): Tx<boolean> {
    const cases = (value: (i: ItemRecord) => number) => ({
      sql: `CASE resource ${items.map(() => 'WHEN ? THEN ?').join(' ')} END`,
      params: items.flatMap((i) => [i.resource, value(i)]),
    });
    const delta = cases((i) => i.reserved);
    const need = cases((i) => Math.max(i.reserved, 1));
    const r = yield q(
      `UPDATE quota_ledger SET reserved = reserved + ${delta.sql}, version = version + 1, updatedAt = ? WHERE departmentId = ? AND resource IN (${marks(items.length)}) AND (limitAmount IS NULL OR used + reserved + ${need.sql} <= limitAmount)`,
      ...delta.params,
      sqlDate(now),
      departmentId,
      ...items.map((i) => i.resource),
      ...need.params,
    );
    return r.affected === items.length;
  }

  /** Sets the pending amount of one resource to `target(current)`; renews the expiry; reopens a COMMITTED reservation. */
  grow(id: string, resource: QuotaResource, target: (current: number) => number, now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      const rec = (yield* self.loadTx('id', id)) ?? abort({ refused: 'not_found' });
      if (rec.status === ReservationStatus.Pending && rec.expiresAt <= now) abort({ refused: 'expired' });
      if (rec.status !== ReservationStatus.Pending && rec.status !== ReservationStatus.Committed) abort({ refused: 'not_pending', status: rec.status });
      const item = rec.items.find((i) => i.resource === resource);
      const current = item?.pending ? item.reserved : 0;
      const next = Math.max(current, target(current));
      const delta = next - current;
      if (delta > 0 || !item?.pending) yield* self.ledgerTx(rec.departmentId, resource, delta, 0, Math.max(delta, 1), now);
      const updated: ItemRecord = { resource, reserved: next, committed: item?.committed ?? 0, pending: true };
      yield* self.saveItemTx(id, updated, !!item);
      const items = [...rec.items.filter((i) => i.resource !== resource), updated].sort(byResource);
      const expiresAt = new Date(now.getTime() + rec.ttlSeconds * 1000);
      const saved = yield* self.saveTx({ ...rec, status: ReservationStatus.Pending, expiresAt, items }, now);
      return saved;
    });
  }

  /**
   * Commits the pending items (only those of `only`, when given) with the real amounts (`actual`, default:
   * what is reserved). A real amount above the reservation needs room for the difference.
   * Committing again what is already committed, with the same amounts, answers the reservation unchanged.
   */
  commit(
    id: string,
    actual: Partial<Record<QuotaResource, number>> | undefined,
    only: QuotaResource[] | undefined,
    now: Date,
  ): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      const rec = (yield* self.loadTx('id', id)) ?? abort({ refused: 'not_found' });
      if (rec.status === ReservationStatus.Pending && rec.expiresAt <= now) abort({ refused: 'expired' });
      if (rec.status !== ReservationStatus.Pending && rec.status !== ReservationStatus.Committed) abort({ refused: 'not_pending', status: rec.status });
      const asked = new Set<QuotaResource>(
        only ?? [...rec.items.filter((i) => i.pending).map((i) => i.resource), ...(Object.keys(actual ?? {}) as QuotaResource[])],
      );
      const items = new Map(rec.items.map((i) => [i.resource, { ...i }]));
      let changed = false;
      for (const resource of QUOTA_RESOURCES.filter((r) => asked.has(r))) {
        const item = items.get(resource);
        const a = actual?.[resource];
        if (item && !item.pending) {
          // already committed: a replay with the same amount is fine, another amount is not
          if (a === undefined || a === item.committed) continue;
          abort({ refused: 'not_pending', status: ReservationStatus.Committed });
        }
        const r = item?.reserved ?? 0;
        const amount = a ?? r;
        yield* self.ledgerTx(rec.departmentId, resource, -r, amount, amount > r ? amount - r : null, now);
        const updated: ItemRecord = { resource, reserved: 0, committed: (item?.committed ?? 0) + amount, pending: false };
        yield* self.saveItemTx(id, updated, !!item);
        items.set(resource, updated);
        changed = true;
      }
      if (!changed) return rec;
      const list = [...items.values()].sort(byResource);
      const status = list.some((i) => i.pending) ? ReservationStatus.Pending : ReservationStatus.Committed;
      return yield* self.saveTx({ ...rec, status, items: list }, now);
    });
  }

  /**
   * Gives back what is pending. `release`: on request (a COMMITTED or REFUNDED reservation is refused);
   * `expire`: only a PENDING reservation past its expiry (anything else is left alone).
   * What was committed stays (the reservation ends COMMITTED); otherwise it ends RELEASED or EXPIRED.
   */
  release(id: string, mode: 'release' | 'expire', now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      const rec = (yield* self.loadTx('id', id)) ?? abort({ refused: 'not_found' });
      if (rec.status === ReservationStatus.Released || rec.status === ReservationStatus.Expired) return rec;
      if (mode === 'expire' && !(rec.status === ReservationStatus.Pending && rec.expiresAt <= now)) return rec;
      if (rec.status !== ReservationStatus.Pending) abort({ refused: 'not_pending', status: rec.status });
      const items: ItemRecord[] = [];
      for (const i of rec.items) {
        if (!i.pending) {
          items.push(i);
          continue;
        }
        yield* self.ledgerTx(rec.departmentId, i.resource, -i.reserved, 0, null, now);
        const updated = { ...i, reserved: 0, pending: false };
        yield* self.saveItemTx(id, updated, true);
        items.push(updated);
      }
      const held = items.some((i) => i.committed > 0);
      const status = held ? ReservationStatus.Committed : mode === 'expire' ? ReservationStatus.Expired : ReservationStatus.Released;
      return yield* self.saveTx({ ...rec, status, items }, now);
    });
  }

  /** Gives back everything the reservation holds, committed and pending (what it paid for is gone). */
  refund(id: string, now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      const rec = (yield* self.loadTx('id', id)) ?? abort({ refused: 'not_found' });
      if (FINISHED_STATUSES.includes(rec.status) && !rec.deletingAt) return rec;
      const items: ItemRecord[] = [];
      for (const i of rec.items) {
        // every row is touched (version bump) even with nothing to give back: the in-flight set changes
        yield* self.ledgerTx(rec.departmentId, i.resource, i.pending ? -i.reserved : 0, -i.committed, null, now);
        const updated = { ...i, reserved: 0, committed: 0, pending: false };
        yield* self.saveItemTx(id, updated, true);
        items.push(updated);
      }
      const status = FINISHED_STATUSES.includes(rec.status) ? rec.status : ReservationStatus.Refunded;
      return yield* self.saveTx({ ...rec, status, deletingAt: null, items }, now);
    });
  }

  /**
   * Charges something that exists now (a VM) as its own COMMITTED reservation `n` holding `amounts` (resource
   * order; a VM's VM_COUNT first, then its DISK_BYTES). Each amount moves from the PENDING reservation `fromId`
   * (reserved -> used) when that still holds it for the same department; otherwise it is added to `used` by the
   * same conditional increase as every other one (refused with `exceeded` when it does not fit under the
   * limit), all in one transaction. `fromReservation` answers whether the first amount (the VM) came from the
   * reservation. A duplicate key refuses with `duplicate`.
   */
  charge(
    n: NewReservation,
    amounts: Array<[QuotaResource, number]>,
    fromId: string | null,
    now: Date,
  ): Promise<Outcome<{ rec: ReservationRecord; fromReservation: boolean }>> {
    const self = this;
    return this.run(function* () {
      const from = fromId === null ? null : yield* self.loadTx('id', fromId);
      const usable = !!(from && from.status === ReservationStatus.Pending && from.departmentId === n.departmentId);
      // an expired reservation the sweeper has not given back yet still holds its room: taking from it is exact
      const takes = amounts.map(([resource, amount]) => {
        const held = from?.items.find((i) => i.resource === resource);
        return { resource, amount, held: usable && held?.pending && held.reserved >= amount ? held : null };
      });
      const fromReservation = takes[0]?.held != null;
      const items: ItemRecord[] = takes.map((t) => ({ resource: t.resource, reserved: 0, committed: t.amount, pending: false }));
      // the fingerprint records where the VM came from, so a replay can tell
      const fingerprint = fromReservation ? `charged-from:${fromId}` : 'charged-directly';
      const rec = yield* self.insertReservationTx({ ...n, fingerprint, status: ReservationStatus.Committed }, items, now, null);
      let fromItems = from?.items ?? [];
      for (const t of takes) {
        if (t.held) {
          yield* self.ledgerTx(n.departmentId, t.resource, -t.amount, t.amount, null, now);
          const left: ItemRecord = { ...t.held, reserved: t.held.reserved - t.amount, pending: t.held.reserved > t.amount };
          yield* self.saveItemTx(from!.id, left, true);
          fromItems = fromItems.map((i) => (i.resource === t.resource ? left : i));
        } else {
          // like every other increase: only if it fits under the limit (usage never exceeds a limit)
          yield* self.ledgerTx(n.departmentId, t.resource, 0, t.amount, t.amount, now);
        }
      }
      if (from && takes.some((t) => t.held)) {
        yield* self.saveTx(
          { ...from, status: fromItems.some((i) => i.pending) ? ReservationStatus.Pending : ReservationStatus.Committed, items: fromItems },
          now,
        );
      }
      return { rec, fromReservation };
    });
  }

  /**
   * Marks the catalog reservation of an image as "being deleted" (so reconcile counts the image from the
   * reservation, whether or not its row is gone yet). An image without a live reservation (it predates the
   * quota module, or its reservation ended without committing) is adopted: a COMMITTED reservation holding
   * what the catalog says it holds, which the ledger already counts after a reconcile.
   */
  markDeleting(n: NewReservation, now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      for (const r of CATALOG_RESOURCES) yield* self.ledgerTx(n.departmentId, r, 0, 0, null, now);
      const rec = yield* self.loadTx('key', n.callerId, n.key);
      const adopted = n.amounts.map(([resource, amount]) => ({ resource, reserved: 0, committed: amount, pending: false }));
      if (!rec) return yield* self.insertReservationTx({ ...n, status: ReservationStatus.Committed }, adopted, now, now);
      if (FINISHED_STATUSES.includes(rec.status)) {
        yield q('DELETE FROM quota_reservation_items WHERE reservationId = ?', rec.id);
        for (const i of adopted) yield* self.saveItemTx(rec.id, i, false);
        return yield* self.saveTx({ ...rec, status: ReservationStatus.Committed, deletingAt: now, items: adopted }, now);
      }
      return yield* self.saveTx({ ...rec, deletingAt: now }, now);
    });
  }

  /** Clears a delete mark (the delete did not happen). */
  clearDeleting(id: string, now: Date): Promise<Outcome<ReservationRecord>> {
    const self = this;
    return this.run(function* () {
      const rec = (yield* self.loadTx('id', id)) ?? abort({ refused: 'not_found' });
      if (!rec.deletingAt) return rec;
      for (const r of CATALOG_RESOURCES) yield* self.ledgerTx(rec.departmentId, r, 0, 0, null, now);
      return yield* self.saveTx({ ...rec, deletingAt: null }, now);
    });
  }

  // ---------------------------------------------------------------- ledger programs

  /** Creates the department's ledger rows that do not exist yet, with the default limits. */
  async ensureLedgerRows(departmentId: string, resources: QuotaResource[], limits: Record<QuotaResource, number | null>, now: Date): Promise<void> {
    if (!resources.length) return;
    const insert = this.insertIgnore;
    await this.must(function* () {
      yield q(
        `${insert} quota_ledger (departmentId, resource, limitAmount, used, reserved, version, updatedAt) VALUES ${marks(resources.length, '(?, ?, ?, 0, 0, 0, ?)')}`,
        ...resources.flatMap((r) => [departmentId, r, limits[r], sqlDate(now)]),
      );
    });
  }

  /** Sets limits (null = unlimited) on rows that exist; `alsoTx` (the event) runs in the same transaction. */
  async setLimits(departmentId: string, limits: Array<[QuotaResource, number | null]>, now: Date, alsoTx?: () => Generator<Stmt, unknown, Res>): Promise<void> {
    await this.must(function* () {
      for (const [resource, limit] of limits) {
        yield q('UPDATE quota_ledger SET limitAmount = ?, updatedAt = ? WHERE departmentId = ? AND resource = ?', limit, sqlDate(now), departmentId, resource);
      }
      if (alsoTx) yield* alsoTx();
    });
  }

  ledgerOf(departmentId: string): Promise<LedgerRow[]> {
    return this.must(function* () {
      const { rows } = yield q(
        'SELECT departmentId, resource, limitAmount, used, reserved, version, updatedAt FROM quota_ledger WHERE departmentId = ?',
        departmentId,
      );
      return rows.map(toLedgerRow).sort(byResource);
    });
  }

  /** Departments that have ledger rows, in id order, with their rows. */
  listLedger(skip: number, take: number): Promise<{ total: number; rows: LedgerRow[] }> {
    return this.must(function* () {
      const count = yield q('SELECT COUNT(DISTINCT departmentId) AS n FROM quota_ledger');
      const depts = yield q('SELECT DISTINCT departmentId FROM quota_ledger ORDER BY departmentId LIMIT ? OFFSET ?', take, skip);
      const ids = depts.rows.map((r) => String(r.departmentId));
      if (!ids.length) return { total: toNum(count.rows[0]?.n), rows: [] };
      const { rows } = yield q(
        `SELECT departmentId, resource, limitAmount, used, reserved, version, updatedAt FROM quota_ledger WHERE departmentId IN (${marks(ids.length)})`,
        ...ids,
      );
      return { total: toNum(count.rows[0]?.n), rows: rows.map(toLedgerRow) };
    });
  }

  findReservation(id: string): Promise<ReservationRecord | null> {
    const self = this;
    return this.must(function* () {
      return yield* self.loadTx('id', id);
    });
  }

  findByKey(callerId: string, key: string): Promise<ReservationRecord | null> {
    const self = this;
    return this.must(function* () {
      return yield* self.loadTx('key', callerId, key);
    });
  }

  // ---------------------------------------------------------------- sweeping and reconcile

  /** PENDING reservations past their expiry (of one department, or any). */
  expiredIds(now: Date, limit: number, departmentId?: string): Promise<string[]> {
    return this.must(function* () {
      const dept = departmentId === undefined ? '' : ' AND departmentId = ?';
      const { rows } = yield q(
        `SELECT id FROM quota_reservations WHERE status = ? AND expiresAt <= ?${dept} ORDER BY expiresAt LIMIT ?`,
        ReservationStatus.Pending,
        sqlDate(now),
        ...(departmentId === undefined ? [] : [departmentId]),
        limit,
      );
      return rows.map((r) => String(r.id));
    });
  }

  /** Delete marks set before `before` (the delete that set them crashed or was refused). */
  staleDeleting(before: Date, limit: number): Promise<Array<{ id: string; subjectId: string | null }>> {
    return this.must(function* () {
      const { rows } = yield q('SELECT id, subjectId FROM quota_reservations WHERE deletingAt IS NOT NULL AND deletingAt <= ? LIMIT ?', sqlDate(before), limit);
      return rows.map((r) => ({ id: String(r.id), subjectId: r.subjectId === null ? null : String(r.subjectId) }));
    });
  }

  /** Removes finished reservations last changed before `before`. */
  purgeFinished(before: Date): Promise<number> {
    return this.must(function* () {
      const st = FINISHED_STATUSES;
      yield q(
        `DELETE FROM quota_reservation_items WHERE reservationId IN (SELECT id FROM quota_reservations WHERE status IN (${marks(st.length)}) AND deletingAt IS NULL AND updatedAt < ?)`,
        ...st,
        sqlDate(before),
      );
      const r = yield q(
        `DELETE FROM quota_reservations WHERE status IN (${marks(st.length)}) AND deletingAt IS NULL AND updatedAt < ?`,
        ...st,
        sqlDate(before),
      );
      return r.affected;
    });
  }

  /** One consistent read of the ledger, the pending sums and the catalog reservations in flight. */
  snapshot(departmentId?: string): Promise<LedgerSnapshot> {
    const byDept = departmentId === undefined ? [] : [departmentId];
    return this.must(function* () {
      const ledger = yield q(
        `SELECT departmentId, resource, limitAmount, used, reserved, version, updatedAt FROM quota_ledger${departmentId === undefined ? '' : ' WHERE departmentId = ?'}`,
        ...byDept,
      );
      const pending = yield q(
        `SELECT r.departmentId AS departmentId, i.resource AS resource, SUM(i.reserved) AS total FROM quota_reservation_items i JOIN quota_reservations r ON r.id = i.reservationId WHERE i.pending = 1${departmentId === undefined ? '' : ' AND r.departmentId = ?'} GROUP BY r.departmentId, i.resource`,
        ...byDept,
      );
      const inflight = yield q(
        `SELECT r.departmentId AS departmentId, r.subjectId AS subjectId, r.deletingAt AS deletingAt, i.resource AS resource, i.pending AS pending, i.committed AS committed FROM quota_reservations r JOIN quota_reservation_items i ON i.reservationId = r.id WHERE r.callerId = ? AND r.subjectId IS NOT NULL AND (r.status = ? OR (r.status = ? AND r.deletingAt IS NOT NULL))${departmentId === undefined ? '' : ' AND r.departmentId = ?'}`,
        CATALOG_CALLER,
        ReservationStatus.Pending,
        ReservationStatus.Committed,
        ...byDept,
      );
      return {
        ledger: ledger.rows.map(toLedgerRow),
        pending: pending.rows.map((r) => ({ departmentId: String(r.departmentId), resource: r.resource as QuotaResource, total: toNum(r.total) })),
        inflight: inflight.rows.map((r) => ({
          departmentId: String(r.departmentId),
          subjectId: String(r.subjectId),
          deleting: r.deletingAt !== null && r.deletingAt !== undefined,
          resource: r.resource as QuotaResource,
          pending: toBool(r.pending),
          committed: toNum(r.committed),
        })),
      };
    });
  }

  /**
   * Writes reconciled values, each only if its row still has the version the snapshot read (or still does
   * not exist): anything that moved in between refuses with `changed`, and nothing is written.
   */
  writeReconciled(departmentId: string, writes: LedgerWrite[], now: Date): Promise<Outcome<void>> {
    const insert = this.insertIgnore;
    return this.run(function* () {
      for (const w of [...writes].sort(byResource)) {
        const r =
          w.expectedVersion === null
            ? yield q(
                `${insert} quota_ledger (departmentId, resource, limitAmount, used, reserved, version, updatedAt) VALUES (?, ?, ?, ?, ?, 1, ?)`,
                departmentId,
                w.resource,
                w.limitAmount,
                w.used,
                w.reserved,
                sqlDate(now),
              )
            : yield q(
                'UPDATE quota_ledger SET used = ?, reserved = ?, version = version + 1, updatedAt = ? WHERE departmentId = ? AND resource = ? AND version = ?',
                w.used,
                w.reserved,
                sqlDate(now),
                departmentId,
                w.resource,
                w.expectedVersion,
              );
        if (r.affected !== 1) abort({ refused: 'changed' });
      }
    });
  }
}
