import { ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createConnection } from 'mysql2/promise';
import { freePort } from './service-process';

/**
 * Private MariaDB and Redis servers for tests that stop a dependency: each on its own port (and socket, data
 * directory), owned by the test and stopped by it, so the shared servers of the machine are never touched.
 */

const run = promisify(execFile);

async function waitFor(what: string, probe: () => Promise<boolean>, proc: ChildProcess, log: () => string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}):\n${log()}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopProcess(proc: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

export interface PrivateMariaDb {
  port: number;
  socket: string;
  /** a database created for the test; any user name connects (--skip-grant-tables) */
  database: string;
  user: string;
  /** SIGTERM (a clean shutdown: the socket file is removed) or SIGKILL (the socket file stays, nobody listens) */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** starts it again on the same port, socket and data */
  start(): Promise<void>;
  /** stops it and removes its data */
  destroy(): Promise<void>;
}

/** A MariaDB server of the test's own: `mariadb-install-db` into a temp dir, then `mariadbd` on a free port. */
export async function startPrivateMariaDb(label = 'private'): Promise<PrivateMariaDb> {
  const dir = mkdtempSync(join(tmpdir(), `hcm-mariadb-${label}-`));
  const datadir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0 ? ['--user=root'] : [];
  await run('mariadb-install-db', ['--no-defaults', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...asRoot], {
    timeout: 120_000,
  });
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    proc = spawn(
      'mariadbd',
      [
        '--no-defaults',
        `--datadir=${datadir}`,
        `--socket=${socket}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        '--skip-grant-tables',
        '--skip-name-resolve',
        '--skip-log-bin',
        '--innodb-buffer-pool-size=16M',
        '--innodb-log-file-size=8M',
        ...asRoot,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const p = proc;
    await waitFor(
      'private mariadbd',
      async () => {
        const c = await createConnection({ socketPath: socket, user: 'root' });
        await c.end();
        return true;
      },
      p,
      () => log,
    );
  };
  await start();
  const database = `hcm_private_${label.replace(/[^a-z0-9_]/gi, '_')}`.slice(0, 64);
  const c = await createConnection({ socketPath: socket, user: 'root' });
  await c.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  await c.end();
  return {
    port,
    socket,
    database,
    user: 'root',
    stop: (signal = 'SIGTERM') => stopProcess(proc, signal),
    start,
    destroy: async () => {
      await stopProcess(proc, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivateRedis {
  port: number;
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** A redis-server of the test's own on a free port, nothing persisted. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'hcm-redis-'));
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const p = proc;
    await waitFor(
      'private redis-server',
      async () => /Ready to accept connections/.test(log),
      p,
      () => log,
    );
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    stop: (signal = 'SIGTERM') => stopProcess(proc, signal),
    start,
    destroy: async () => {
      await stopProcess(proc, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
