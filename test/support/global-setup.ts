import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureTestUser } from './mariadb';

/**
 * Prepares what the tests need and a fresh machine may lack: Debian's samba and smbclient (the SMB source
 * tests run a real smbd; installed here when missing, as root, by the same script .ci/run uses) and the
 * dedicated MariaDB test user.
 */
export default async function globalSetup(): Promise<void> {
  execFileSync('bash', [join(__dirname, '..', '..', 'scripts', 'install-system-packages.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await ensureTestUser();
}
