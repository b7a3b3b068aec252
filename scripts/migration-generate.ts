/**
 * Generates (or checks) the committed migrations for both dialects from the entities.
 *   node dist/scripts/migration-generate.js <Name>   writes migrations/<dialect>/<timestamp>-<Name>.ts where the schema differs
 *   node dist/scripts/migration-generate.js --check  exits 1 when the entities differ from the migrations
 * Each dialect is compared against a throwaway database (SQLite in memory, MariaDB hcm_test_migrations_*)
 * on which the committed migrations were run first.
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { DbConfig } from '../src/config/app-config';
import { dataSourceOptions } from '../src/database/database.options';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';

interface Query {
  query: string;
  parameters?: unknown[];
}

const root = join(__dirname, '..', '..');

function render(className: string, up: Query[], down: Query[]): string {
  const line = (q: Query) => `    await queryRunner.query(${JSON.stringify(q.query)}${q.parameters?.length ? `, ${JSON.stringify(q.parameters)}` : ''});`;
  return `import { MigrationInterface, QueryRunner } from 'typeorm';

export class ${className} implements MigrationInterface {
  name = '${className}';

  public async up(queryRunner: QueryRunner): Promise<void> {
${up.map(line).join('\n')}
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
${[...down].reverse().map(line).join('\n')}
  }
}
`;
}

async function diff(db: DbConfig): Promise<{ up: Query[]; down: Query[] }> {
  // plain node cannot load the .ts migrations: this runs from dist, where they are compiled
  const ds = new DataSource({ ...dataSourceOptions(db), migrationsRun: false, logging: false });
  await ds.initialize();
  try {
    await ds.runMigrations({ transaction: 'each' });
    const sql = await ds.driver.createSchemaBuilder().log();
    return { up: sql.upQueries, down: sql.downQueries };
  } finally {
    await ds.destroy();
  }
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const name = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 'Migration';
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) throw new Error('the migration name must be letters and digits');
  await ensureTestUser();
  const dbName = await createTestDatabase('migrations');
  const base = { host: TEST_DB_HOST, port: TEST_DB_PORT, user: TEST_DB_USER, password: TEST_DB_PASSWORD, poolSize: 2, log: false, path: ':memory:' };
  const dialects: Array<[string, DbConfig]> = [
    ['sqlite', { ...base, type: 'sqlite', name: '' }],
    ['mariadb', { ...base, type: 'mariadb', name: dbName }],
  ];
  let drift = false;
  const ts = Date.now();
  try {
    for (const [dir, db] of dialects) {
      const { up, down } = await diff(db);
      if (!up.length) {
        console.log(`${dir}: no changes in database schema were found`);
        continue;
      }
      drift = true;
      if (check) {
        console.error(`${dir}: the entities differ from the migrations:\n${up.map((q) => `  ${q.query}`).join('\n')}`);
        continue;
      }
      const className = `${name}${ts}`;
      const file = join(root, 'migrations', dir, `${ts}-${name}.ts`);
      writeFileSync(file, render(className, up, down));
      console.log(`${dir}: wrote ${file}`);
    }
  } finally {
    await dropTestDatabase(dbName);
  }
  if (check && drift) process.exit(1);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
