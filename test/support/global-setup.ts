import { ensureTestUser } from './mariadb';

/** Prepares what the tests need and the machine may lack: the dedicated MariaDB test user. */
export default async function globalSetup(): Promise<void> {
  await ensureTestUser();
}
