import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { DbConfig } from '../config/app-config';
import { CatalogStateEntity, ImageEntity, ImageTagEntity } from '../catalog/image.entity';
import { EVENT_ENTITIES } from '../events/event.entity';
import { QUOTA_ENTITIES } from '../quota/quota.entity';
import { VmLinkEntity } from '../vm-links/vm-link.entity';
import { ZoneEntity } from '../zones/zone.entity';

/** Every entity of the service. A module that adds a table adds its entity here (and a migration). */
export const ENTITIES = [ZoneEntity, ImageEntity, ImageTagEntity, CatalogStateEntity, ...QUOTA_ENTITIES, VmLinkEntity, ...EVENT_ENTITIES];

export const dialectOf = (db: DbConfig): 'mariadb' | 'sqlite' => (db.type === 'sqlite' ? 'sqlite' : 'mariadb');

/** Committed migrations, one folder per dialect: .js under dist, .ts under jest. */
export function migrationsGlob(db: DbConfig): string {
  return join(__dirname, '..', '..', 'migrations', dialectOf(db), '*.{js,ts}');
}

/** The parts of a better-sqlite3 connection used to prepare it. */
interface SqliteConnection {
  pragma(s: string): unknown;
  function(name: string, opts: { deterministic: boolean }, fn: (v: unknown) => unknown): unknown;
}

export function dataSourceOptions(db: DbConfig): DataSourceOptions {
  const common = {
    entities: ENTITIES,
    migrations: [migrationsGlob(db)],
    migrationsTableName: 'migrations',
    migrationsRun: true,
    synchronize: false,
    logging: db.log ? ('all' as const) : false,
  };
  if (db.type === 'sqlite') {
    return {
      type: 'better-sqlite3',
      database: db.path,
      enableWAL: db.path !== ':memory:',
      prepareDatabase: (conn: SqliteConnection) => {
        conn.pragma('busy_timeout = 5000');
        conn.pragma('foreign_keys = ON');
        // SQLite's lower() folds ASCII only: searches fold case the way JavaScript (and MariaDB's LOWER) do
        conn.function('hcm_lower', { deterministic: true }, (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v));
      },
      ...common,
    };
  }
  return {
    type: db.type,
    ...(db.socket ? { socketPath: db.socket } : { host: db.host, port: db.port }),
    username: db.user,
    password: db.password,
    database: db.name,
    timezone: 'Z',
    charset: 'utf8mb4_general_ci',
    poolSize: db.poolSize,
    // several statements of one transaction in one round trip (StatementPipeline, issue 16); every statement
    // of the service binds its values through placeholders, never by splicing text into SQL
    multipleStatements: true,
    extra: { connectionLimit: db.poolSize },
    ...common,
  } as DataSourceOptions;
}
