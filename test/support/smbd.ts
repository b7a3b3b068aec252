import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './service-process';

/**
 * A real Samba server for tests (apt packages samba + smbclient; scripts/install-system-packages.sh): smbd on a
 * free loopback port with a config, password database, lock/state/pid directories and share directory of its
 * own under a temp dir (nothing under /etc/samba, /var/lib/samba or /run/samba is touched). The account is the
 * existing unix user `www-data` (smbpasswd -a needs a unix account), given a password in this server's own
 * tdbsam. Needs root (as `.ci/run` and this machine run the tests). See docs stack-facts section 6, appendix E.
 *
 * Files are written into `shareDir` directly; the share `files` serves it (read only).
 */
export interface SmbdServer {
  port: number;
  share: string;
  user: string;
  password: string;
  /** the directory the share serves */
  shareDir: string;
  /** a FILE_SOURCES entry URL for the share (optionally a folder inside it) */
  url: (folder?: string) => string;
  /** the smbd main process id while it runs */
  pid: () => number | undefined;
  /** kill -TERM smbd and the children serving connections (its process group), and wait until the port is closed */
  stop: () => Promise<void>;
  /** start smbd again on the same port, config and users */
  start: () => Promise<void>;
  /** changes the user's password in this server's database (new connections only) */
  setPassword: (password: string) => void;
  /** stop and remove everything */
  close: () => Promise<void>;
}

export const smbdAvailable = (): boolean => {
  try {
    execFileSync('smbd', ['--version'], { stdio: 'pipe' });
    execFileSync('smbclient', ['--version'], { stdio: 'pipe' });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
};

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function until(cond: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`smbd: ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startSmbd(opts: { password?: string; user?: string } = {}): Promise<SmbdServer> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-smbd-'));
  const port = await freePort();
  const user = opts.user ?? 'www-data';
  let password = opts.password ?? 'Test Pass=1;#中';
  const shareDir = join(dir, 'share');
  for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc', 'log', 'share']) mkdirSync(join(dir, d), { recursive: true });
  // smbd reads the share as the connected user: it must reach the share directory
  chmodSync(dir, 0o755);
  chmodSync(shareDir, 0o755);
  const conf = join(dir, 'smb.conf');
  writeFileSync(
    conf,
    `[global]
   workgroup = HCMTEST
   netbios name = HCMTESTSMB
   server role = standalone server
   smb ports = ${port}
   interfaces = 127.0.0.1
   bind interfaces only = yes
   disable netbios = yes
   private dir = ${dir}/private
   lock directory = ${dir}/lock
   state directory = ${dir}/state
   cache directory = ${dir}/cache
   pid directory = ${dir}/pid
   ncalrpc dir = ${dir}/ncalrpc
   binddns dir = ${dir}/private/bind-dns
   log file = ${dir}/log/log.%m
   passdb backend = tdbsam:${dir}/private/passdb.tdb
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   map to guest = never
   server min protocol = SMB2_02
   usershare path =
   registry shares = no
   rpc start on demand helpers = no
   unix charset = UTF-8
[files]
   path = ${shareDir}
   read only = yes
   valid users = ${user}
`,
  );
  const setPassword = (pw: string) => {
    execFileSync('smbpasswd', ['-c', conf, '-s', '-a', user], { input: `${pw}\n${pw}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    password = pw;
  };
  setPassword(password);

  let proc: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    // smbd stops its children with kill(0, ...): without a process group of its own (detached) that would
    // signal the test runner too
    proc = spawn('smbd', ['-s', conf, '--foreground', '--no-process-group', '--debug-stdout', '-d', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const group = proc.pid!;
    const reap = () => {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // gone
      }
    };
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    proc.stdout?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    proc.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    const p = proc;
    await until(
      async () => {
        if (p.exitCode !== null) throw new Error(`smbd exited (${p.exitCode}):\n${log}`);
        return portOpen(port);
      },
      'not listening',
      15_000,
    );
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-p.pid!, sig); // smbd and the children serving connections
      } catch {
        // gone
      }
    };
    signal('SIGTERM');
    const t = setTimeout(() => signal('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    await until(async () => !(await portOpen(port)), 'port still open', 10_000);
  };
  await start();
  return {
    port,
    share: 'files',
    user,
    get password() {
      return password;
    },
    shareDir,
    url: (folder?: string) =>
      `smb://${encodeURIComponent(user)}@127.0.0.1:${port}/files${folder ? `/${folder.split('/').map(encodeURIComponent).join('/')}` : ''}`,
    pid: () => proc?.pid,
    stop,
    start,
    setPassword,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
