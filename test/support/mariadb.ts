import { createConnection, Connection } from 'mysql2/promise';

/**
 * MariaDB for tests and scripts. The tests never use root for their work: an admin connection (root over
 * the unix socket, as on this machine, or TEST_DB_ADMIN_* settings) creates a dedicated user once, and
 * every test database (named hcm_test_*) is created and used by that user.
 */
export const TEST_DB_USER = process.env.TEST_DB_USER ?? 'hcm_test';
export const TEST_DB_PASSWORD = process.env.TEST_DB_PASSWORD ?? 'hcm_test_pw';
export const TEST_DB_HOST = process.env.TEST_DB_HOST ?? '127.0.0.1';
export const TEST_DB_PORT = Number(process.env.TEST_DB_PORT ?? 3306);

async function adminConnection(): Promise<Connection> {
  if (process.env.TEST_DB_ADMIN_USER) {
    return createConnection({
      host: TEST_DB_HOST,
      port: TEST_DB_PORT,
      user: process.env.TEST_DB_ADMIN_USER,
      password: process.env.TEST_DB_ADMIN_PASSWORD ?? '',
    });
  }
  return createConnection({ socketPath: process.env.TEST_DB_ADMIN_SOCKET ?? '/run/mysqld/mysqld.sock', user: 'root' });
}

/** Creates the dedicated test user (idempotent) with rights on hcm_test_* databases only. */
export async function ensureTestUser(): Promise<void> {
  try {
    const probe = await userConnection();
    await probe.end();
    return;
  } catch {
    // not there yet: create it below
  }
  const admin = await adminConnection();
  try {
    for (const host of ['localhost', '127.0.0.1', '::1']) {
      await admin.query(`CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?`, [TEST_DB_USER, host, TEST_DB_PASSWORD]);
      await admin.query(`GRANT ALL PRIVILEGES ON \`hcm\\_test\\_%\`.* TO ?@?`, [TEST_DB_USER, host]);
    }
    await admin.query('FLUSH PRIVILEGES');
  } finally {
    await admin.end();
  }
}

export function userConnection(database?: string): Promise<Connection> {
  return createConnection({ host: TEST_DB_HOST, port: TEST_DB_PORT, user: TEST_DB_USER, password: TEST_DB_PASSWORD, database });
}

/** A fresh, empty database for one test file; returns its name. */
export async function createTestDatabase(label: string): Promise<string> {
  const name = `hcm_test_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${Date.now().toString(36)}`.slice(0, 64);
  const c = await userConnection();
  try {
    await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  } finally {
    await c.end();
  }
  return name;
}

export async function dropTestDatabase(name: string): Promise<void> {
  if (!name.startsWith('hcm_test_')) throw new Error(`refusing to drop ${name}`);
  const c = await userConnection();
  try {
    await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await c.end();
  }
}
