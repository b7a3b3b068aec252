/**
 * Events under load: `npm run bench:events` (builds, then runs dist/bench/events.bench.js).
 *
 * Platform shape: the service (node dist/src/main.js) on a fresh MariaDB test database, BullMQ on the local
 * Redis, the relay publishing to the local RabbitMQ. 200 images are seeded; then
 *   1. a burst of image changes (PATCH /images/{id}, each one image.updated event) offered at BENCH_RATE
 *      (default 1000/s) for BENCH_BURST_SECONDS (default 30), open loop over keep-alive connections;
 *      a consumer bound to the exchange measures the publish lag (arrival - event time) of every event;
 *      after the burst, how long until the outbox backlog is 0;
 *   2. the API's own throughput (closed loop, concurrency BENCH_CONCURRENCY, BENCH_SECONDS in total each) of
 *      that service (events on) and of a second one on the same database with events off (EVENTS_OUTBOX=false,
 *      no relay), and of a third with the outbox but no relay (the embedded shape: what the write costs apart
 *      from the publishing), measured in alternating slices so that other load on the machine falls on all alike;
 *      per request: statements, round trips and the service's CPU time (bench/query-counter.ts preloaded), and
 *      MariaDB's CPU time over the slice (from /proc, the local server);
 *   3. the ceiling: PATCH with events off, closed loop, 256 in flight (as many as the burst allows), so the
 *      burst's rate can be read against both 1,000/s and what the machine does at all.
 * Prints figures and the ratios against the goals.
 */
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../src/access/jwt';
import { TestConsumer, TEST_AMQP_URL } from '../test/support/amqp';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';
import { REPO_ROOT, ServiceProcess, startServiceProcess } from '../test/support/service-process';
import { apiOf, fmt, mariadbCpuMicros } from './support';

const RATE = Number(process.env.BENCH_RATE ?? 1000);
const BURST_SECONDS = Number(process.env.BENCH_BURST_SECONDS ?? 30);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const ROUNDS = 5;
const CEILING_SECONDS = Number(process.env.BENCH_CEILING_SECONDS ?? 10);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const IMAGES = 200;
const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const runId = randomBytes(4).toString('hex');

interface Counts {
  roundTrips: number;
  statements: number;
  cpuMicros: number;
  bySql: Record<string, number>;
}
/** What the preload (bench/query-counter.ts) of a service wrote last: its mysql2 commands and CPU time. */
const counted = async (file: string): Promise<Counts> => {
  await new Promise((r) => setTimeout(r, 250));
  return JSON.parse(readFileSync(file, 'utf8')) as Counts;
};
const minus = (a: Counts, b: Counts): Counts => ({
  roundTrips: a.roundTrips - b.roundTrips,
  statements: a.statements - b.statements,
  cpuMicros: a.cpuMicros - b.cpuMicros,
  bySql: Object.fromEntries(Object.entries(a.bySql).map(([k, v]) => [k, v - (b.bySql[k] ?? 0)])),
});
const plus = (a: Counts, b: Counts): Counts => ({
  roundTrips: a.roundTrips + b.roundTrips,
  statements: a.statements + b.statements,
  cpuMicros: a.cpuMicros + b.cpuMicros,
  bySql: Object.fromEntries([...new Set([...Object.keys(a.bySql), ...Object.keys(b.bySql)])].map((k) => [k, (a.bySql[k] ?? 0) + (b.bySql[k] ?? 0)])),
});
const NO_COUNTS: Counts = { roundTrips: 0, statements: 0, cpuMicros: 0, bySql: {} };

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

interface Driven {
  sent: number;
  ok: number;
  errors: number;
  skipped: number;
  seconds: number;
  latencies: number[];
  firstError?: string;
  /** MariaDB's CPU time over the slices (µs) */
  dbMicros?: number;
}

/** Numbers every PATCH of the run, so that each sets a name never set before and is a change with an event. */
let n = 0;

/** PATCHes image names: open loop at `rate`/s (skipping a tick's requests when `cap` are in flight), or closed loop with `rate` = 0. */
async function drive(port: number, auth: string, ids: string[], opts: { rate: number; seconds: number; cap: number }): Promise<Driven> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.cap });
  const r: Driven = { sent: 0, ok: 0, errors: 0, skipped: 0, seconds: 0, latencies: [] };
  let inFlight = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const i = n++;
      const body = JSON.stringify({ name: `bench-${runId}-${i}` });
      const t0 = process.hrtime.bigint();
      inFlight++;
      r.sent++;
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'PATCH',
          path: `/images/${ids[i % ids.length]}`,
          agent,
          headers: { authorization: auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            inFlight--;
            r.latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            if (res.statusCode === 200) r.ok++;
            else {
              r.errors++;
              r.firstError ??= `HTTP ${res.statusCode}`;
            }
            resolve();
          });
        },
      );
      req.on('error', (e) => {
        inFlight--;
        r.errors++;
        r.firstError ??= e.message;
        resolve();
      });
      req.end(body);
    });
  const started = process.hrtime.bigint();
  const end = Date.now() + opts.seconds * 1000;
  const pending: Promise<void>[] = [];
  if (opts.rate > 0) {
    const tickMs = 10;
    const perTick = opts.rate / (1000 / tickMs);
    let due = 0;
    for (let next = Date.now(); Date.now() < end;) {
      due += perTick;
      while (due >= 1) {
        due--;
        if (inFlight >= opts.cap) r.skipped++;
        else pending.push(one());
      }
      next += tickMs;
      await new Promise((res) => setTimeout(res, Math.max(0, next - Date.now())));
    }
  } else {
    await Promise.all(
      Array.from({ length: opts.cap }, async () => {
        while (Date.now() < end) await one();
      }),
    );
  }
  await Promise.all(pending);
  r.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  r.latencies.sort((a, b) => a - b);
  return r;
}

async function backlogOf(svc: ServiceProcess): Promise<number> {
  const text = await (await fetch(svc.url('/metrics'))).text();
  return Number(/^hcm_events_outbox_backlog (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function main(): Promise<void> {
  await ensureTestUser();
  const db = await createTestDatabase('benchevents');
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-bench-events-'));
  const exchange = `hcm.bench.${runId}`;
  const base: Record<string, string> = {
    DATA_DIR: dataDir,
    AUTH_JWT_SECRET: SECRET,
    LOG_LEVEL: 'warn',
    DB_TYPE: 'mariadb',
    DB_HOST: TEST_DB_HOST,
    DB_PORT: String(TEST_DB_PORT),
    DB_USER: TEST_DB_USER,
    DB_PASSWORD: TEST_DB_PASSWORD,
    DB_NAME: db,
    DB_POOL_SIZE: '20',
    QUEUE_DRIVER: 'redis',
    REDIS_URL: 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `hcm_bench_${runId}`,
    IMPORT_CONCURRENCY: '0',
    RATE_LIMIT_CREATE_PER_MIN: '0',
    RATE_LIMIT_UPLOAD_PER_MIN: '0',
    RATE_LIMIT_IMPORT_PER_MIN: '0',
    QUOTA_SWEEP_INTERVAL_SECONDS: '0',
    INGEST_SWEEP_INTERVAL_SECONDS: '0',
  };
  // each service counts its statements and CPU time (bench/query-counter.ts)
  // BENCH_NODE_OPTIONS (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof) is added to the events-on service's
  const preload = `--require ${join(REPO_ROOT, 'dist', 'bench', 'query-counter.js')}`;
  // (on tmpfs when there is one: rewriting the file on a loaded disk cost the measured process milliseconds)
  const countDir = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/hcm-bench-events-') : dataDir;
  const onFile = join(countDir, 'counts-on.json');
  const offFile = join(countDir, 'counts-off.json');
  const withEvents = {
    ...base,
    EVENTS_AMQP_URL: TEST_AMQP_URL,
    EVENTS_EXCHANGE: exchange,
    NODE_OPTIONS: `${preload} ${process.env.BENCH_NODE_OPTIONS ?? ''}`,
    BENCH_COUNT_FILE: onFile,
  };
  const withoutEvents = { ...base, EVENTS_OUTBOX: 'false', NODE_OPTIONS: `${preload} ${process.env.BENCH_NODE_OPTIONS_ALL ?? ''}`, BENCH_COUNT_FILE: offFile };
  // the outbox written but no relay (the embedded shape): splits the cost into the write and the publishing
  const outboxFile = join(countDir, 'counts-outbox.json');
  const outboxOnly = { ...base, NODE_OPTIONS: `${preload} ${process.env.BENCH_NODE_OPTIONS_ALL ?? ''}`, BENCH_COUNT_FILE: outboxFile };
  const user = { sub: 'bench-user', dept: 'bench-dept', role: 'user' };
  const auth = `Bearer ${signToken({ ...user, name: 'bench' }, SECRET)}`;
  const superAuth = signToken({ sub: 'bench-root', dept: 'ops', role: 'super_admin', name: 'root' }, SECRET);
  const consumer = await new TestConsumer(TEST_AMQP_URL, exchange).start('image.updated');
  let svc: ServiceProcess | undefined;
  let offSvc: ServiceProcess | undefined;
  let outboxSvc: ServiceProcess | undefined;
  try {
    svc = await startServiceProcess(withEvents, 'service (events on)');
    const zone = await apiOf(svc, superAuth)('POST', '/zones', { name: 'bench', hypervisor: 'KVM' });
    const api = apiOf(svc, auth.slice(7));
    const ids: string[] = [];
    for (let i = 0; i < IMAGES; i++)
      ids.push(
        (await api('POST', '/images', { kind: 'IMAGE', name: `seed-${i}`, osCategory: 'CENTOS', format: 'qcow2', zoneId: zone.id, source: { type: 'UPLOAD' } }))
          .id as string,
      );

    // 1. the burst, with the lag of every event it causes
    const arrivals: number[] = [];
    const seenBefore = consumer.received.length;
    const burst = await drive(svc.port, auth, ids, { rate: RATE, seconds: BURST_SECONDS, cap: 256 });
    const burstEnd = Date.now();
    let drainedMs = NaN;
    for (;;) {
      const b = await backlogOf(svc);
      if (b === 0) {
        drainedMs = Date.now() - burstEnd;
        break;
      }
      if (Date.now() - burstEnd > 120_000) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await consumer.until((r) => r.length - seenBefore >= burst.ok);
    for (const m of consumer.received.slice(seenBefore)) arrivals.push(m.arrivedAt - (m.body.time as number));
    arrivals.sort((a, b) => a - b);

    // 2. throughput with events on and off: both services run, measured in alternating slices, so load from
    // elsewhere on the machine falls on both alike
    offSvc = await startServiceProcess(withoutEvents, 'service (events off)');
    outboxSvc = await startServiceProcess(outboxOnly, 'service (outbox, no relay)');
    const outbox: Driven = { sent: 0, ok: 0, errors: 0, skipped: 0, seconds: 0, latencies: [] };
    let outboxCounts = NO_COUNTS;
    const on: Driven = { sent: 0, ok: 0, errors: 0, skipped: 0, seconds: 0, latencies: [] };
    const off: Driven = { sent: 0, ok: 0, errors: 0, skipped: 0, seconds: 0, latencies: [] };
    const add = (into: Driven, r: Driven, dbMicros: number) => {
      into.dbMicros = (into.dbMicros ?? 0) + dbMicros;
      into.ok += r.ok;
      into.errors += r.errors;
      into.seconds += r.seconds;
      into.latencies.push(...r.latencies);
    };
    // what each service burns while idle (timers, queue polling) is not the requests' CPU: measured over 3 s
    // of quiet first and taken off the per-request figures ("net")
    const idleStart = await Promise.all([onFile, offFile, outboxFile].map((f) => counted(f)));
    const idleT0 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const idleEnd = await Promise.all([onFile, offFile, outboxFile].map((f) => counted(f)));
    const idleSeconds = (Date.now() - idleT0) / 1000;
    const [idleOn, idleOff, idleOutbox] = idleEnd.map((c, i) => (c.cpuMicros - idleStart[i].cpuMicros) / idleSeconds);
    let onCounts = NO_COUNTS;
    let offCounts = NO_COUNTS;
    for (let round = 0; round < ROUNDS; round++) {
      // the counts of a slice include what its service did until the next slice starts (the relay finishing)
      const onBefore = await counted(onFile);
      let db0 = mariadbCpuMicros();
      add(on, await drive(svc.port, auth, ids, { rate: 0, seconds: SECONDS / ROUNDS, cap: CONCURRENCY }), mariadbCpuMicros() - db0);
      const onAfter = await counted(onFile);
      onCounts = plus(onCounts, minus(onAfter, onBefore));
      const offBefore = await counted(offFile);
      db0 = mariadbCpuMicros();
      add(off, await drive(offSvc.port, auth, ids, { rate: 0, seconds: SECONDS / ROUNDS, cap: CONCURRENCY }), mariadbCpuMicros() - db0);
      offCounts = plus(offCounts, minus(await counted(offFile), offBefore));
      const outboxBefore = await counted(outboxFile);
      db0 = mariadbCpuMicros();
      add(outbox, await drive(outboxSvc.port, auth, ids, { rate: 0, seconds: SECONDS / ROUNDS, cap: CONCURRENCY }), mariadbCpuMicros() - db0);
      outboxCounts = plus(outboxCounts, minus(await counted(outboxFile), outboxBefore));
    }
    // the ceiling: events off, closed loop with as many in flight as the burst allows (256), so that the burst's
    // rate can be read against what this machine does at all
    const ceilingRun = await drive(offSvc.port, auth, ids, { rate: 0, seconds: CEILING_SECONDS, cap: 256 });
    on.latencies.sort((a, b) => a - b);
    off.latencies.sort((a, b) => a - b);
    await svc.stop();
    await offSvc.stop();
    await outboxSvc.stop();
    svc = offSvc = outboxSvc = undefined;

    const achieved = burst.ok / burst.seconds;
    console.log(
      `\nbench:events  ${new Date().toISOString()}  ${cpus().length} cores ${cpus()[0]?.model ?? ''}  load ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log(`platform shape: MariaDB, BullMQ on Redis, relay to RabbitMQ; ${IMAGES} images; each change = PATCH /images/{id} = one image.updated event\n`);
    console.log(
      `burst: offered ${RATE}/s for ${BURST_SECONDS} s: sent ${burst.sent}, ok ${burst.ok}, errors ${burst.errors}, skipped (256 in flight) ${burst.skipped}${burst.firstError ? ` (${burst.firstError})` : ''}`,
    );
    console.log(
      `  achieved        ${fmt(achieved)} changes/s   ratio to ${RATE}/s: ${(achieved / RATE).toFixed(2)}   request p50 ${fmt(pct(burst.latencies, 50))} ms  p99 ${fmt(pct(burst.latencies, 99))} ms`,
    );
    console.log(
      `  publish lag     p50 ${fmt(pct(arrivals, 50))} ms  p99 ${fmt(pct(arrivals, 99))} ms  max ${fmt(arrivals[arrivals.length - 1] ?? NaN)} ms   goal p99 < 1000 ms: ${pct(arrivals, 99) < 1000 ? 'met' : 'MISSED'} (ratio ${(pct(arrivals, 99) / 1000).toFixed(2)})`,
    );
    console.log(`  backlog 0 after ${fmt(drainedMs)} ms from the end of the burst   goal < 5000 ms: ${drainedMs < 5000 ? 'met' : 'MISSED'}`);
    console.log(
      `throughput, closed loop, concurrency ${CONCURRENCY}, ${SECONDS} s each in ${ROUNDS} alternating slices (all three services up on the same database):`,
    );
    const rps = (d: Driven) => d.ok / d.seconds;
    // the CPU a service spent on its slices' requests, less its idle rate over the same time
    const netCpu = (c: Counts, d: Driven, idle: number) => Math.max(0, c.cpuMicros - idle * (d.seconds + 0.25 * ROUNDS)) / 1000 / Math.max(1, d.ok);
    const line = (label: string, d: Driven, c: Counts, idle: number) => {
      const n = Math.max(1, d.ok + d.errors);
      console.log(
        `  ${label.padEnd(24)} ${fmt(rps(d))} req/s  p50 ${fmt(pct(d.latencies, 50))} ms  p99 ${fmt(pct(d.latencies, 99))} ms  errors ${d.errors}` +
          `   per request: ${(c.statements / n).toFixed(2)} statements, ${(c.roundTrips / n).toFixed(2)} round trips, ${(c.cpuMicros / 1000 / n).toFixed(2)} ms service CPU (net of idle ${netCpu(c, d, idle).toFixed(2)}; idle ${(idle / 1000).toFixed(1)} ms/s), ${((d.dbMicros ?? NaN) / 1000 / n).toFixed(2)} ms MariaDB CPU`,
      );
    };
    line('events on (relay)', on, onCounts, idleOn);
    line('outbox only (no relay)', outbox, outboxCounts, idleOutbox);
    line('events off', off, offCounts, idleOff);
    const cost = 1 - rps(on) / rps(off);
    console.log(
      `  cost of events  ${(cost * 100).toFixed(1)}% fewer req/s (on/off ratio ${(rps(on) / rps(off)).toFixed(2)})   goal < 10%: ${cost < 0.1 ? 'met' : 'MISSED'}`,
    );
    console.log(
      `  outbox only     ${((1 - rps(outbox) / rps(off)) * 100).toFixed(1)}% fewer req/s (ratio ${(rps(outbox) / rps(off)).toFixed(2)})   service CPU per request (net) on/off ${(netCpu(onCounts, on, idleOn) / netCpu(offCounts, off, idleOff)).toFixed(2)}, outbox only/off ${(netCpu(outboxCounts, outbox, idleOutbox) / netCpu(offCounts, off, idleOff)).toFixed(2)}`,
    );
    const shapes = (c: Counts, d: Driven) =>
      Object.entries(c.bySql)
        .filter(([, v]) => v / Math.max(1, d.ok) >= 0.005)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `      ${(v / Math.max(1, d.ok)).toFixed(3)}  ${k}`)
        .join('\n');
    console.log(`  statements per request, events on:\n${shapes(onCounts, on)}\n  statements per request, events off:\n${shapes(offCounts, off)}`);
    const ceiling = ceilingRun.ok / ceilingRun.seconds;
    console.log(
      `ceiling: PATCH with events off, closed loop, 256 in flight, ${CEILING_SECONDS} s: ${fmt(ceiling)} req/s  p50 ${fmt(pct(ceilingRun.latencies, 50))} ms  errors ${ceilingRun.errors} (service, MariaDB, RabbitMQ and this load generator on ${cpus().length} cores)`,
    );
    console.log(
      `  burst achieved ${fmt(achieved)} changes/s = ${(achieved / RATE).toFixed(2)} x the ${RATE}/s goal, ${(achieved / ceiling).toFixed(2)} x the events-off ceiling; the ceiling is ${(ceiling / RATE).toFixed(2)} x the goal`,
    );
  } finally {
    await svc?.kill9();
    await offSvc?.kill9();
    await outboxSvc?.kill9();
    await consumer.close({ deleteExchange: true });
    await dropTestDatabase(db);
    rmSync(dataDir, { recursive: true, force: true });
    if (countDir !== dataDir) rmSync(countDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
