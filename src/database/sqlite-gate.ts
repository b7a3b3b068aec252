import { AsyncLocalStorage } from 'node:async_hooks';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';

/**
 * TypeORM's better-sqlite3 driver runs everything on ONE connection and query runner. Two requests that
 * each open a transaction therefore nest (the second becomes a SAVEPOINT of the first), and statements of
 * a request outside any transaction land inside whatever transaction is open: a rollback in one request
 * can undo another's writes. This gate serialises transactions on SQLite and makes statements from
 * outside a transaction wait until the open one has finished. Code inside a transaction (its async
 * context) passes straight through, so nested calls keep working. MariaDB/MySQL use a pool and need none.
 */
export function installSqliteTransactionGate(ds: DataSource): void {
  if (ds.options.type !== 'better-sqlite3') return;
  const inside = new AsyncLocalStorage<true>();
  let tail: Promise<unknown> = Promise.resolve();
  const manager = ds.manager as EntityManager & { transaction: (...args: unknown[]) => Promise<unknown> };
  const transaction = manager.transaction.bind(manager);
  manager.transaction = (...args: unknown[]) => {
    if (inside.getStore()) return transaction(...args);
    const run = tail.then(() => inside.run(true, () => transaction(...args)));
    tail = run.catch(() => undefined);
    return run;
  };
  const runner: QueryRunner = ds.driver.createQueryRunner('master');
  const query = runner.query.bind(runner) as (...args: unknown[]) => Promise<unknown>;
  (runner as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
    if (!inside.getStore()) await tail;
    return query(...args);
  };
}
