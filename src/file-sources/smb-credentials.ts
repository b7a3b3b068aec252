import { existsSync, promises as fsp, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'hcm-smb-';

/** A RAM-backed place when there is one (nothing reaches a disk), else the temp directory. */
function baseDir(): string {
  try {
    if (existsSync('/dev/shm') && statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // fall through
  }
  return tmpdir();
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

let swept = false;

/** Removes the credential directories of service processes that died without cleaning up (kill -9). */
async function sweepStale(base: string): Promise<void> {
  if (swept) return;
  swept = true;
  const uid = process.getuid?.();
  for (const name of await fsp.readdir(base).catch(() => [] as string[])) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!m || Number(m[1]) === process.pid || alive(Number(m[1]))) continue;
    const dir = join(base, name);
    const st = await fsp.lstat(dir).catch(() => null);
    if (st?.isDirectory() && (uid === undefined || st.uid === uid)) await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * The authentication file smbclient reads with `-A` (user, password, domain), so the password is never on a
 * command line (`ps`) or in an environment: one file per source, mode 0600, in a directory of its own (0700)
 * under /dev/shm (RAM) or the temp directory, written on first use and removed on shutdown. Directories left
 * by a process that died are removed by the next one. (A pipe on an inherited descriptor would never touch a
 * file system, but smbclient opens the `-A` path, and Node's extra stdio descriptors are sockets, which
 * /dev/fd cannot open; PASSWD_FD reads them non-blocking and races the write.)
 */
export class SmbCredentialFile {
  private file?: Promise<{ dir: string; path: string }>;

  constructor(private readonly content: () => string) {}

  path(): Promise<string> {
    this.file ??= this.create().catch((e: unknown) => {
      this.file = undefined;
      throw e;
    });
    return this.file.then((f) => f.path);
  }

  private async create(): Promise<{ dir: string; path: string }> {
    const base = baseDir();
    await sweepStale(base);
    const dir = await fsp.mkdtemp(join(base, `${PREFIX}${process.pid}-`)); // mode 0700
    await fsp.chmod(dir, 0o700);
    const path = join(dir, 'auth');
    await fsp.writeFile(path, this.content(), { mode: 0o600, flag: 'wx' });
    return { dir, path };
  }

  async remove(): Promise<void> {
    const f = await this.file?.catch(() => undefined);
    this.file = undefined;
    if (f) await fsp.rm(f.dir, { recursive: true, force: true });
  }
}
