/** One SQL statement with `?` placeholders (the same on mysql2 and better-sqlite3). */
export interface SqlStatement {
  sql: string;
  params: unknown[];
}
/**
 * A statement of a transaction "program" (a generator that yields statements and gets their answers):
 * `deferred` when the program does not read its answer. The runner may then send it with the next statement
 * whose answer is awaited (or with the COMMIT), in one round trip; its failure still fails the program.
 */
export interface ProgramStatement extends SqlStatement {
  deferred?: boolean;
}
export interface SqlResult {
  rows: Array<Record<string, unknown>>;
  affected: number;
}

/** The parts of a mysql2 connection used here. */
export interface MysqlConnection {
  query(sql: string, params: unknown[], cb: (err: Error | null, result: unknown) => void): void;
  release(): void;
  destroy(): void;
}

/** The parts of better-sqlite3 used here. */
interface SqliteStatement {
  reader: boolean;
  all(...params: unknown[]): Array<Record<string, unknown>>;
  run(...params: unknown[]): { changes: number };
}
export interface SqliteDb {
  inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  transaction<T>(fn: () => T): { immediate(): T };
}

/** 'YYYY-MM-DD HH:MM:SS.mmm' in UTC: what TypeORM writes for datetime on SQLite, and a literal MariaDB parses. */
export const sqlDate = (d: Date): string => d.toISOString().replace('T', ' ').replace('Z', '');

const toResult = (result: unknown): SqlResult =>
  Array.isArray(result) ? { rows: result as SqlResult['rows'], affected: 0 } : { rows: [], affected: (result as { affectedRows?: number }).affectedRows ?? 0 };

/** One statement on a mysql2 connection, through its callback API (no TypeORM event broadcast, no captured stack). */
export function mysqlExec(conn: MysqlConnection, s: SqlStatement): Promise<SqlResult> {
  return new Promise<SqlResult>((resolve, reject) => conn.query(s.sql, s.params, (err, result) => (err ? reject(err) : resolve(toResult(result)))));
}

/**
 * Several statements on a mysql2 connection in ONE round trip (the pool connects with multipleStatements):
 * MariaDB runs them in order and answers one result per statement. When one fails, the server runs none
 * after it and every statement of the batch rejects with that error: the caller's transaction rolls back.
 */
export function mysqlExecMany(conn: MysqlConnection, list: SqlStatement[]): Promise<SqlResult[]> {
  if (list.length === 1) return mysqlExec(conn, list[0]).then((r) => [r]);
  const sql = list.map((s) => s.sql).join(';\n');
  const params = list.flatMap((s) => s.params);
  return new Promise<SqlResult[]>((resolve, reject) =>
    conn.query(sql, params, (err, results) => {
      if (err) return reject(err);
      const all = results as unknown[];
      if (!Array.isArray(all) || all.length < list.length)
        return reject(new Error(`a batch of ${list.length} statements answered ${Array.isArray(all) ? all.length : 'one'} result`));
      resolve(list.map((_, i) => toResult(all[i])));
    }),
  );
}

const statementCache = new WeakMap<SqliteDb, Map<string, SqliteStatement>>();

/** Runs statements synchronously on better-sqlite3, prepared once per connection. */
export function sqliteExecutor(db: SqliteDb): (s: SqlStatement) => SqlResult {
  let cache = statementCache.get(db);
  if (!cache) statementCache.set(db, (cache = new Map()));
  const stmts = cache;
  return (s: SqlStatement): SqlResult => {
    let st = stmts.get(s.sql);
    if (!st) stmts.set(s.sql, (st = db.prepare(s.sql)));
    const params = s.params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p instanceof Date ? sqlDate(p) : p));
    return st.reader ? { rows: st.all(...params), affected: 0 } : { rows: [], affected: st.run(...params).changes };
  };
}

/**
 * The parts of a TypeORM EntityManager inside a transaction used here (by shape: common/ imports no TypeORM; the
 * repositories pass their managers).
 */
export interface TransactionManager {
  queryRunner?: { isTransactionActive: boolean };
  connection: { options: { type: string }; driver: unknown };
}

interface Pending {
  statement: SqlStatement;
  resolve: (r: SqlResult) => void;
  reject: (e: unknown) => void;
}

/**
 * The statements of one transaction, sent in as few round trips as the code allows (issue 16): every statement
 * given to `exec` before the current turn of the event loop ends goes to MariaDB in one multi-statement query,
 * in the order given. A create's quota reservation, row, tags, version bump and event are ten statements that
 * needed ten round trips (each a socket write of about 45 µs on this machine, on both sides); sent this way they
 * need one, besides the transaction's START and COMMIT. Callers issue what does not depend on an earlier answer
 * without awaiting in between, and check the answers before the transaction commits.
 *
 * The batch goes at `setImmediate`, after every promise continuation of the turn has run, so statements issued
 * after any number of `await`s of settled promises still join it. A statement sent another way on the same
 * transaction (TypeORM's manager) is not ordered with the pipeline's: a caller awaits the pipeline's answers
 * before it sends any. On SQLite (in-process, no round trips) each statement runs at once, synchronously.
 */
export class StatementPipeline {
  private static readonly byRunner = new WeakMap<object, StatementPipeline>();

  private queue: Pending[] = [];
  private scheduled = false;
  /** the batches sent and not yet answered */
  private readonly inFlight = new Set<Promise<void>>();
  /** the first failure of a batch, kept until the transaction ends */
  private failure: unknown = undefined;

  private constructor(
    private readonly mysql: MysqlConnection | null,
    private readonly sqlite: ((s: SqlStatement) => SqlResult) | null,
  ) {}

  /** The pipeline of the transaction `m` runs in (one per query runner). */
  static of(m: TransactionManager): StatementPipeline {
    const runner = m.queryRunner;
    if (!runner?.isTransactionActive) throw new Error('the statement pipeline needs a manager inside a transaction');
    let p = StatementPipeline.byRunner.get(runner);
    if (!p) {
      if (m.connection.options.type === 'better-sqlite3') {
        const db = (m.connection.driver as unknown as { databaseConnection: SqliteDb }).databaseConnection;
        p = new StatementPipeline(null, sqliteExecutor(db));
      } else {
        const conn = (runner as unknown as { databaseConnection?: MysqlConnection }).databaseConnection;
        if (!conn) throw new Error('the transaction has no connection');
        p = new StatementPipeline(conn, null);
      }
      StatementPipeline.byRunner.set(runner, p);
    }
    return p;
  }

  /**
   * Queues one statement. Its failure also fails the transaction's COMMIT (beforeEnd), so a caller that leaves the
   * promise unawaited loses nothing (and the promise is marked handled: no unhandled rejection).
   */
  exec(statement: SqlStatement): Promise<SqlResult> {
    let answer: Promise<SqlResult>;
    if (this.sqlite) {
      try {
        answer = Promise.resolve(this.sqlite(statement));
      } catch (e) {
        if (this.failure === undefined) this.failure = e;
        answer = Promise.reject(e);
      }
    } else {
      answer = new Promise<SqlResult>((resolve, reject) => {
        this.queue.push({ statement, resolve, reject });
        if (!this.scheduled) {
          this.scheduled = true;
          setImmediate(() => this.flush());
        }
      });
    }
    answer.catch(() => undefined);
    return answer;
  }

  /**
   * Called by TypeORM (a subscriber the database module registers) right before the transaction of `runner` sends
   * its COMMIT or ROLLBACK, so that no queued statement can go to the connection after it (where it would run
   * outside the transaction). Before a COMMIT the queue is sent at once and every batch's answer awaited; a batch
   * that failed fails the commit (the transaction then rolls back). Before a ROLLBACK what is queued is not sent:
   * its promises reject.
   */
  static async beforeEnd(runner: object | undefined, end: 'commit' | 'rollback'): Promise<void> {
    const p = runner ? StatementPipeline.byRunner.get(runner) : undefined;
    if (!p) return;
    // a savepoint released or rolled back inside the transaction (on SQLite's one shared runner, another caller's
    // transaction nested into this one) does not end it
    if (((runner as { transactionDepth?: number }).transactionDepth ?? 1) > 1) return;
    StatementPipeline.byRunner.delete(runner!);
    if (end === 'rollback') {
      const dropped = p.queue;
      p.queue = [];
      const why = new Error('the transaction rolled back before this statement was sent');
      for (const d of dropped) d.reject(why);
    } else p.flush();
    await Promise.all([...p.inFlight]);
    if (end === 'commit' && p.failure !== undefined) throw p.failure;
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return;
    const sent: Promise<void> = mysqlExecMany(
      this.mysql!,
      batch.map((b) => b.statement),
    ).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i])),
      (e: unknown) => {
        if (this.failure === undefined) this.failure = e;
        batch.forEach((b) => b.reject(e));
      },
    );
    this.inFlight.add(sent);
    void sent.finally(() => this.inFlight.delete(sent));
  }
}
