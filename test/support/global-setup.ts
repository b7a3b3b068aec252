import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt } from './build';
import { CONTRACT_DIR_ENV, CONTRACT_OWN_DIR_ENV } from './contract-recorder';
import { ensureTestUser } from './mariadb';

/**
 * Prepares what the tests need and a fresh machine may lack: Debian's samba and smbclient (the SMB source
 * tests run a real smbd; installed here when missing, as root, by the same script .ci/run uses) and the
 * dedicated MariaDB test user; builds dist when it is older than the sources (test/support/build.ts). Creates this run's directory of recorded answers (test/support/contract-recorder.ts),
 * which the contract test (run last, test/support/contract-sequencer.js) compares with openapi.yaml.
 */
export default async function globalSetup(): Promise<void> {
  execFileSync('bash', [join(__dirname, '..', '..', 'scripts', 'install-system-packages.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await ensureTestUser();
  // once for the run: the suites that start the service as a process or read dist find it fresh
  ensureBuilt();
  // a directory given from outside is kept (to look at the records); the run's own one is removed at the end
  if (process.env[CONTRACT_DIR_ENV]) mkdirSync(process.env[CONTRACT_DIR_ENV], { recursive: true });
  else process.env[CONTRACT_DIR_ENV] = process.env[CONTRACT_OWN_DIR_ENV] = mkdtempSync(join(tmpdir(), 'hcm-contract-'));
}
