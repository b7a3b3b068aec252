import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { CONTRACT_DIR_ENV } from './contract-recorder';

/** The repository root, from the sources (test/support) or from dist (dist/test/support). */
export const REPO_ROOT = ((): string => {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) || existsSync(join(dir, '..', 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above ' + __dirname);
    dir = up;
  }
  return dir;
})();

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface ServiceProcess {
  port: number;
  proc: ChildProcess;
  url: (path: string) => string;
  /** everything the process printed so far */
  output: () => string;
  /** kill -9: no shutdown hook runs */
  kill9: () => Promise<void>;
  /** SIGTERM, then SIGKILL after 15 s */
  stop: () => Promise<void>;
}

/**
 * Runs the built service (`node dist/src/main.js`, build it first; of `root` when given) as a child process with exactly `env`
 * (plus PATH, PORT, HOST) and waits until /health/ready answers 200.
 */
export async function startServiceProcess(
  env: Record<string, string>,
  label = 'service',
  readyMs = 60_000,
  /** another checkout whose built service to run (a benchmark's same-run reference); this one by default */
  root = REPO_ROOT,
): Promise<ServiceProcess> {
  const port = await freePort();
  // when the run records answers for the contract test, the child records its own (built with the service)
  const recordDir = process.env[CONTRACT_DIR_ENV];
  const preload = join(REPO_ROOT, 'dist', 'test', 'support', 'contract-recorder-preload.js');
  const record = recordDir && existsSync(preload) ? { args: ['--require', preload], env: { [CONTRACT_DIR_ENV]: recordDir } } : { args: [], env: {} };
  const proc = spawn(process.execPath, [...record.args, join(root, 'dist', 'src', 'main.js')], {
    cwd: root,
    // PUBLIC_BASE_URL (required in the platform shape): this process's own address unless the caller names one
    env: { PATH: process.env.PATH ?? '', PUBLIC_BASE_URL: `http://127.0.0.1:${port}`, ...env, ...record.env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${label} exited (${proc.exitCode ?? proc.signalCode}):\n${log}`);
    const ok = await fetch(`http://127.0.0.1:${port}/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${label} not ready after ${readyMs} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  return {
    port,
    proc,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    output: () => log,
    kill9: async () => {
      if (gone()) return;
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (gone()) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * For a suite that starts service processes: `start` runs one and remembers it; every one still running is
 * killed (kill -9) after each test, so a failed test leaves no process behind for the next.
 */
export function serviceProcesses(): { start: (env: Record<string, string>, label: string) => Promise<ServiceProcess> } {
  const children: ServiceProcess[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) await c.kill9();
  });
  return {
    start: async (env, label) => {
      const s = await startServiceProcess(env, label);
      children.push(s);
      return s;
    },
  };
}

/** One JSON call to a service process with a bearer token; the body is {} when the answer has none. */
export async function callService(
  svc: ServiceProcess,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, any> }> {
  const res = await fetch(svc.url(path), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
}
