/**
 * Quota reservation throughput: `npm run bench:quota` (builds, then runs dist/bench/quota.bench.js).
 *
 * Starts the service (node dist/src/main.js) against a fresh MariaDB test database and drives
 * POST /quota-reservations (one VM_COUNT + one VCPU each, a new idempotency key per request) over keep-alive
 * connections at concurrency 16 and 64, first with every request on ONE department (all of them take the
 * same two ledger rows: the contended case), then spread over 100 departments. Prints reservations/s,
 * p50 and p99 latency, then stops the service and drops the database.
 *
 * Settings: BENCH_SECONDS (default 10 per run), BENCH_PROCESSES (service processes, default 1),
 * BENCH_CONCURRENCY (default "16,64").
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceProcess, startServiceProcess as startService } from '../test/support/service-process';
import { signToken } from '../src/access/jwt';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 1);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '16,64').split(',').map(Number);

type Service = ServiceProcess;

interface Result {
  scenario: string;
  concurrency: number;
  ok: number;
  errors: number;
  /** requests sent again after a keep-alive reset (same idempotency key) */
  resent: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  firstError?: string;
}

let keySeq = 0;
const runId = randomBytes(4).toString('hex');

/** Keeps `concurrency` reservations in flight for `seconds`, round-robin over the services. */
async function drive(
  services: Service[],
  auth: string,
  department: () => string,
  concurrency: number,
  seconds: number,
): Promise<Omit<Result, 'scenario' | 'concurrency'>> {
  const agents = services.map(() => new Agent({ keepAlive: true, maxSockets: concurrency }));
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let turn = 0;
  let resent = 0;
  const one = (retry?: { s: number; body: string; t0: bigint }) =>
    new Promise<void>((resolve) => {
      const s = retry?.s ?? turn++ % services.length;
      const body = retry?.body ?? JSON.stringify({ key: `bench-${runId}-${++keySeq}`, departmentId: department(), amounts: { VM_COUNT: 1, VCPU: 2 } });
      const t0 = retry?.t0 ?? process.hrtime.bigint();
      const req = request(
        {
          host: '127.0.0.1',
          port: services[s].port,
          path: '/quota-reservations',
          method: 'POST',
          agent: agents[s],
          headers: { authorization: auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.statusCode === 201) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            else {
              errors++;
              firstError ??= `${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`;
            }
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        // a keep-alive socket the server closed just as it was reused: send again (same key, so idempotent)
        if (!retry && req.reusedSocket && (e as NodeJS.ErrnoException).code === 'ECONNRESET') {
          resent++;
          return void one({ s, body, t0 }).then(resolve);
        }
        errors++;
        firstError ??= e.message;
        resolve();
      });
      req.end(body);
    });
  const end = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  agents.forEach((a) => a.destroy());
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))] ?? NaN;
  return { ok: latencies.length, errors, resent, seconds: elapsed, perSecond: latencies.length / elapsed, p50: pct(50), p99: pct(99), firstError };
}

async function main(): Promise<void> {
  await ensureTestUser();
  const dbName = await createTestDatabase('quota_bench');
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-quota-bench-'));
  const secret = randomBytes(32).toString('hex');
  const env = {
    DB_TYPE: 'mariadb',
    DB_HOST: TEST_DB_HOST,
    DB_PORT: String(TEST_DB_PORT),
    DB_USER: TEST_DB_USER,
    DB_PASSWORD: TEST_DB_PASSWORD,
    DB_NAME: dbName,
    AUTH_JWT_SECRET: secret,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'warn',
    SEED_DEFAULT_ZONE: 'false',
  };
  const services: Service[] = [];
  const load0 = loadavg()[0].toFixed(2);
  try {
    for (let i = 0; i < PROCESSES; i++) services.push(await startService(env)); // one by one: the first runs the migrations
    const auth = `Bearer ${signToken({ sub: 'bench', dept: 'platform', role: 'service' }, secret, 24 * 3600)}`;
    const scenarios: Array<[string, () => string]> = [
      ['1 department', () => 'bench-one'],
      ['100 departments', () => `bench-${Math.floor(Math.random() * 100)}`],
    ];
    console.log(
      `quota reservations: ${PROCESSES} service process(es), MariaDB, ${cpus().length} CPUs, ${SECONDS} s per run, POST /quota-reservations {VM_COUNT:1, VCPU:2}`,
    );
    // warm up: ledger rows for every department, JIT, connection pools
    await drive(services, auth, () => `bench-${Math.floor(Math.random() * 100)}`, 16, 2);
    await drive(services, auth, () => 'bench-one', 16, 1);
    const results: Result[] = [];
    for (const [scenario, department] of scenarios) {
      for (const concurrency of CONCURRENCY) {
        const r = { scenario, concurrency, ...(await drive(services, auth, department, concurrency, SECONDS)) };
        results.push(r);
        console.log(
          `${scenario.padEnd(16)} c=${String(concurrency).padStart(3)}  ${r.perSecond.toFixed(0).padStart(6)} reservations/s  p50 ${r.p50.toFixed(1).padStart(6)} ms  p99 ${r.p99.toFixed(1).padStart(6)} ms  (${r.ok} ok, ${r.errors} errors${r.resent ? `, ${r.resent} resent` : ''})`,
        );
        if (r.firstError) console.log(`  first error: ${r.firstError}`);
      }
    }
    console.log(`load average before/after: ${load0} / ${loadavg()[0].toFixed(2)} (figures are only comparable on an otherwise idle machine)`);
    console.log(JSON.stringify({ bench: 'quota', processes: PROCESSES, seconds: SECONDS, results: results.map(({ firstError: _f, ...r }) => r) }));
    if (results.some((r) => r.errors > 0)) process.exitCode = 1;
  } finally {
    await Promise.all(services.map((svc) => svc.stop()));
    await dropTestDatabase(dbName);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
