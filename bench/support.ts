import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

import type { ServiceProcess } from '../test/support/service-process';

export { startServiceProcess as startService } from '../test/support/service-process';

/** A JSON client of a running service for one bearer token. */
export function apiOf(svc: ServiceProcess, token: string) {
  return async (method: string, path: string, body?: unknown): Promise<Record<string, any>> => {
    const r = await fetch(svc.url(path), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return (await r.json()) as Record<string, any>;
  };
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  firstError?: string;
}

/** Drives GET requests at a fixed concurrency for `seconds`, over keep-alive connections. */
export async function load(port: number, paths: () => string, headers: Record<string, string>, concurrency: number, seconds: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const end = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = process.hrtime.bigint();
      const req = request({ host: '127.0.0.1', port, path: paths(), method: 'GET', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (res.statusCode !== 200) {
            errors++;
            firstError ??= `${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`;
          }
          resolve();
        });
      });
      req.on('error', (e) => {
        errors++;
        firstError ??= e.message;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  return { requests: latencies.length, errors, seconds: secs, rps: latencies.length / secs, p50: pct(50), p99: pct(99), firstError };
}

export const fmt = (n: number, digits = 1) => n.toFixed(digits).padStart(8);

/**
 * The CPU time (µs) the local MariaDB server (mariadbd) has used so far, from /proc; NaN when it cannot be read
 * (another machine, another user). Differences around a run give the database's CPU per request.
 */
export function mariadbCpuMicros(): number {
  try {
    const pid = readFileSync('/run/mysqld/mysqld.pid', 'utf8').trim();
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1_000_000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}
