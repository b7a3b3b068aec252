/**
 * npm run bench:upload
 * Direct uploads (`PUT /images/{id}/file` with curl -T, from the page cache over loopback) into the service, run
 * as its own process with the filesystem store, in both shapes: embedded (SQLite, in-process jobs) and platform
 * (MariaDB, BullMQ on Redis). Each service process takes BENCH_UPLOADS uploads (default 4): one after start-up,
 * one right after it, then the others each after BENCH_IDLE_S seconds of idleness (default 10: the pattern that
 * set off full-GC storms). Each shape runs twice in the same round: INGEST_HASH_WORKER=true (sha256 in the
 * hashing thread, pooled 1 MiB slots: the default) and =false (the main thread, a fresh 1 MiB buffer per MiB:
 * the old path), so the before/after ratio is measured under the same load.
 *
 * Per upload it prints the MB/s from the PUT to its answer (the image READY: stored, fsync'ed, judged), the
 * service's CPU seconds, its full (mark-compact) garbage collections counted by bench/gc-counter.js, and the
 * growth of its RSS (sampled every 25 ms). References in the same round:
 *   - the machine's durable-write limit for an upload: the same curl -T into a bare Node HTTP server that
 *     writes the body to a file on the same disk and fdatasyncs it before answering, once through the page cache
 *     and once with O_DIRECT from aligned 1 MiB buffers (as the service's filesystem store writes); the faster of
 *     the two (medians) is the limit;
 *   - `cp` of the file + fdatasync (the disk alone, no HTTP).
 * Goals (issue 16): every upload >= 0.8 x the durable-write limit; no full-GC storm whatever the idle time;
 * >= 2 x Glance (198-258 MB/s on this machine in the issue's side-by-side run: Glance is not installed here, so
 * that ratio uses the issue's best Glance figure, not a same-run one); peak RSS growth < 128 MiB.
 * BENCH_SIZE (default 1G), BENCH_RUNS rounds (default 1), BENCH_SHAPES (default "embedded,platform").
 * BENCH_NODE_OPTIONS adds to the service's node options (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 * It measures and prints; it asserts nothing.
 */
import 'reflect-metadata';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../src/access/jwt';
import { Role } from '../src/access/principal';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';
import { REPO_ROOT, startServiceProcess } from '../test/support/service-process';
import { apiOf } from './support';

const MiB = 1024 * 1024;
const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
const TOKEN = signToken({ sub: 'bench', dept: 'bench', role: Role.SuperAdmin, name: 'bench' }, SECRET);
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 1));
const UPLOADS = Math.max(2, Number(process.env.BENCH_UPLOADS ?? 4));
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 10);
const SHAPES = (process.env.BENCH_SHAPES ?? 'embedded,platform').split(',') as ('embedded' | 'platform')[];
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const GLANCE_BEST = 258; // MB/s, the issue's side-by-side run (not measurable here)

function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: MiB, G: 1024 * MiB }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G']);
}
const SIZE = parseSize(process.env.BENCH_SIZE ?? '1G');
const GiB = SIZE / (1024 * MiB);

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd}: ${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

async function makeFile(path: string, size: number): Promise<void> {
  const block = randomFillSync(Buffer.alloc(16 * MiB));
  block.write('RAW!', 0, 'latin1');
  const out = createWriteStream(path);
  for (let left = size; left > 0;) {
    const piece = left >= block.length ? block : block.subarray(0, left);
    if (!out.write(piece)) await once(out, 'drain');
    left -= piece.length;
  }
  out.end();
  await once(out, 'finish');
}

/** curl -T of `file` to `url` (PUT): seconds and the HTTP status. */
async function curlPut(file: string, url: string, headers: string[] = []): Promise<{ seconds: number; status: number; body: string }> {
  const bodyFile = `${file}.answer-${process.pid}`;
  const out = await run('curl', ['-s', '-T', file, '-X', 'PUT', ...headers.flatMap((h) => ['-H', h]), '-o', bodyFile, '-w', '%{time_total} %{http_code}', url]);
  const [t, code] = out.trim().split(' ');
  let body = '';
  try {
    body = readFileSync(bodyFile, 'utf8').slice(0, 300);
  } catch {
    /* no answer body */
  }
  rmSync(bodyFile, { force: true });
  return { seconds: Number(t), status: Number(code), body };
}

/**
 * A bare Node HTTP server in its own process: a PUT's body to a file, fdatasync, then 200. `direct`: the body is
 * copied into 1 MiB page-aligned buffers (a shared WebAssembly memory, as the service's pool) and every full MiB is
 * written with O_DIRECT, the tail through the page cache, then fdatasync: the same way to the disk the service takes
 * (src/storage/direct-io.ts), with nothing else (no hash, no checks), so the stricter of the two references.
 */
async function startBareReceiver(dir: string, direct = false): Promise<{ port: number; stop: () => Promise<void> }> {
  const script = `
    const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path');
    const MiB = 1024 * 1024;
    const server = http.createServer((req, res) => {
      const file = path.join(${JSON.stringify(dir)}, 'bare-' + Date.now() + '.bin');
      const done = () => { const fd = fs.openSync(file, 'r+'); fs.fdatasyncSync(fd); fs.closeSync(fd); fs.rmSync(file); res.end('ok'); };
      if (!${direct}) {
        const out = fs.createWriteStream(file);
        req.pipe(out);
        out.on('finish', done);
        return;
      }
      const fd = fs.openSync(file, 'w'); const dfd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_DIRECT);
      const newSlot = () => Buffer.from(new WebAssembly.Memory({ initial: 16, maximum: 16, shared: true }).buffer);
      const free = Array.from({ length: 8 }, newSlot);
      let slot = free.pop(), held = 0, pos = 0, writing = 0, ended = false;
      const finish = () => { if (!ended || writing) return; if (held) fs.writeSync(fd, slot, 0, held, pos); fs.closeSync(dfd); fs.closeSync(fd); done(); };
      const flush = () => { const b = slot, at = pos; pos += MiB; held = 0; slot = free.pop() ?? newSlot(); writing++;
        fs.write(dfd, b, 0, MiB, at, (e) => { if (e) throw e; writing--; free.push(b); finish(); }); };
      req.on('data', (c) => { for (let o = 0; o < c.length;) { const n = c.copy(slot, held, o); o += n; held += n; if (held === MiB) flush(); } });
      req.on('end', () => { ended = true; finish(); });
    });
    server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (c) => reject(new Error(`bare receiver exited ${c}`)));
  });
  return {
    port,
    stop: async () => {
      proc.kill('SIGTERM');
      if (proc.exitCode === null) await once(proc, 'exit');
    },
  };
}

async function copySeconds(file: string, dir: string): Promise<number> {
  const dest = join(dir, `cp-${Date.now()}.bin`);
  const t0 = process.hrtime.bigint();
  await run('cp', [file, dest]);
  await run('sync', ['-d', dest]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(dest, { force: true });
  return s;
}

function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const majorGcs = (log: string) => (log.match(/\[bench-gc\] major/g) ?? []).length;

interface Upload {
  idle: number;
  rate: number;
  cpu: number;
  gcs: number;
  rss: number;
  ok: boolean;
  why?: string;
}

async function serviceUploads(shape: 'embedded' | 'platform', worker: boolean, file: string): Promise<Upload[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-bench-upload-'));
  let db: string | undefined;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    AUTH_JWT_SECRET: SECRET,
    LOG_LEVEL: 'warn',
    SEED_DEFAULT_ZONE: 'true',
    RATE_LIMIT_CREATE_PER_MIN: '0',
    RATE_LIMIT_UPLOAD_PER_MIN: '0',
    STORAGE_DRIVER: 'fs',
    INGEST_HASH_WORKER: String(worker),
    INGEST_YOUNG_GC: String(worker),
    // BENCH_ENV='A=1,B=2': extra settings for the service (to measure one change at a time)
    ...Object.fromEntries(
      (process.env.BENCH_ENV ?? '')
        .split(',')
        .filter(Boolean)
        .map((kv) => kv.split('=') as [string, string]),
    ),
    NODE_OPTIONS: `--require ${join(REPO_ROOT, 'dist', 'bench', 'gc-counter.js')} ${process.env.BENCH_NODE_OPTIONS ?? ''}`.trim(),
    BENCH_TRACE_GC: process.env.BENCH_TRACE_GC ?? '0',
    BENCH_V8_FLAGS: process.env.BENCH_V8_FLAGS ?? '',
  };
  if (shape === 'platform') {
    db = await createTestDatabase(`bench_upload_${worker ? 'w' : 'm'}`);
    Object.assign(env, {
      DB_TYPE: 'mariadb',
      DB_HOST: TEST_DB_HOST,
      DB_PORT: String(TEST_DB_PORT),
      DB_USER: TEST_DB_USER,
      DB_PASSWORD: TEST_DB_PASSWORD,
      DB_NAME: db,
      QUEUE_DRIVER: 'redis',
      REDIS_URL: REDIS,
      QUEUE_PREFIX: `bench-upload-${process.pid}`,
    });
  }
  const svc = await startServiceProcess(env, `service (${shape})`);
  const api = apiOf(svc, TOKEN);
  const results: Upload[] = [];
  try {
    const zoneId = (await api('GET', '/zones')).items[0].id as string;
    const pid = svc.proc.pid!;
    await new Promise((r) => setTimeout(r, 1000));
    for (let n = 0; n < UPLOADS; n++) {
      const idle = n < 2 ? 0 : IDLE_S;
      if (idle) await new Promise((r) => setTimeout(r, idle * 1000));
      const created = await api('POST', '/images', {
        kind: 'IMAGE',
        name: `bench-${n}`,
        osCategory: 'OTHER',
        format: 'raw',
        zoneId,
        source: { type: 'UPLOAD' },
      });
      const rss0 = rssOf(pid);
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 25);
      const gc0 = majorGcs(svc.output());
      const cpu0 = cpuOf(pid);
      const put = await curlPut(file, svc.url(`/images/${created.id}/file`), [`Authorization: Bearer ${TOKEN}`, 'Content-Type: application/octet-stream']);
      clearInterval(sampler);
      const cpu = cpuOf(pid) - cpu0;
      const gcs = majorGcs(svc.output()) - gc0;
      const ok = put.status === 200 && /"READY"/.test(put.body);
      results.push({
        idle,
        rate: mbps(SIZE, put.seconds),
        cpu,
        gcs,
        rss: Math.max(peak, rssOf(pid)) - rss0,
        ok,
        why: ok ? undefined : `${put.status} ${put.body}`,
      });
      await fetch(svc.url(`/images/${created.id}`), { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } }); // 204, no body
    }
  } finally {
    if (process.env.BENCH_TRACE_GC === '1')
      console.log(
        svc
          .output()
          .split('\n')
          .filter((l) => /Mark-Compact|Scavenge|bench-gc/.test(l))
          .join('\n'),
      );
    await svc.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (db) await dropTestDatabase(db).catch(() => undefined);
  }
  return results;
}

async function main(): Promise<void> {
  if (SHAPES.includes('platform')) await ensureTestUser();
  const work = mkdtempSync(join(tmpdir(), 'hcm-bench-upload-files-'));
  const file = join(work, 'upload.raw');
  await makeFile(file, SIZE);
  for await (const _ of createReadStream(file, { highWaterMark: 4 * MiB })) void _; // into the page cache
  const bare = await startBareReceiver(work);
  const bareDirect = await startBareReceiver(work, true);
  console.log(`upload benchmark: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, ${new Date().toISOString()}`);
  console.log(
    `file ${(SIZE / MiB).toFixed(0)} MiB, ${UPLOADS} uploads per service process (2 back to back, then each after ${IDLE_S} s idle), ${RUNS} round(s)`,
  );
  console.log(`load average at start: ${load()}\n`);
  const refs: { bare: number[]; direct: number[]; cp: number[] } = { bare: [], direct: [], cp: [] };
  const all = new Map<string, Upload[]>();
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const shape of SHAPES) {
        for (const worker of (process.env.BENCH_MODES ?? 'new,old').split(',').map((m) => m === 'new')) {
          // the references right before each service run: the same load for both
          const b = await curlPut(file, `http://127.0.0.1:${bare.port}/`);
          refs.bare.push(mbps(SIZE, b.seconds));
          refs.direct.push(mbps(SIZE, (await curlPut(file, `http://127.0.0.1:${bareDirect.port}/`)).seconds));
          refs.cp.push(mbps(SIZE, await copySeconds(file, work)));
          const key = `${shape} ${worker ? 'new: hash thread, pool, young GC' : 'old: main thread, fresh buffers'}`;
          const ups = await serviceUploads(shape, worker, file);
          all.set(key, [...(all.get(key) ?? []), ...ups]);
          for (const u of ups) {
            console.log(
              `  ${key.padEnd(46)} idle ${String(u.idle).padStart(2)} s  ${u.rate.toFixed(1).padStart(6)} MB/s  CPU ${u.cpu.toFixed(2)} s  full GCs ${String(u.gcs).padStart(3)}  RSS +${(u.rss / MiB).toFixed(1)} MiB${u.ok ? '' : `  NOT OK: ${u.why}`}`,
            );
          }
          console.log(
            `    (bare receiver ${refs.bare[refs.bare.length - 1].toFixed(1)} MB/s, with O_DIRECT ${refs.direct[refs.direct.length - 1].toFixed(1)} MB/s, cp + fdatasync ${refs.cp[refs.cp.length - 1].toFixed(1)} MB/s, load ${load()})`,
          );
        }
      }
    }
  } finally {
    await bare.stop();
    await bareDirect.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // the goal's limit: the faster of the two bare receivers (through the page cache, or with O_DIRECT as the service)
  const limit = Math.max(med(refs.bare), med(refs.direct));
  console.log(
    `\nreferences (median of ${refs.bare.length}): bare receiver + fdatasync ${med(refs.bare).toFixed(1)} MB/s (runs ${refs.bare.map((x) => x.toFixed(0)).join(', ')}), with O_DIRECT ${med(refs.direct).toFixed(1)} MB/s (runs ${refs.direct.map((x) => x.toFixed(0)).join(', ')}), cp + fdatasync ${med(refs.cp).toFixed(1)} MB/s; the limit: the faster receiver, ${limit.toFixed(1)} MB/s`,
  );
  console.log(
    `goals: every upload >= 0.8 x the faster bare receiver (${(0.8 * limit).toFixed(0)} MB/s); >= 2 x Glance's ${GLANCE_BEST} MB/s (issue figure); no full-GC storm; RSS growth < 128 MiB`,
  );
  for (const [key, ups] of all) {
    const rates = ups.map((u) => u.rate);
    const idle = ups.filter((u) => u.idle > 0);
    const worst = Math.min(...rates);
    console.log(
      `  ${key.padEnd(46)} worst ${worst.toFixed(1)} MB/s (${(worst / limit).toFixed(2)} x limit, ${(worst / GLANCE_BEST).toFixed(2)} x Glance), median ${med(rates).toFixed(1)}; ` +
        `full GCs per GiB: max ${(Math.max(...ups.map((u) => u.gcs)) / GiB).toFixed(1)}, after idle max ${(Math.max(0, ...idle.map((u) => u.gcs)) / GiB).toFixed(1)}; ` +
        `CPU s per GiB max ${(Math.max(...ups.map((u) => u.cpu)) / GiB).toFixed(2)}; RSS growth max +${(Math.max(...ups.map((u) => u.rss)) / MiB).toFixed(1)} MiB`,
    );
  }
  for (const shape of SHAPES) {
    const n = all.get(`${shape} new: hash thread, pool, young GC`);
    const o = all.get(`${shape} old: main thread, fresh buffers`);
    if (n && o)
      console.log(
        `  ${shape}: new / old, median MB/s ${(med(n.map((u) => u.rate)) / med(o.map((u) => u.rate))).toFixed(2)}, median CPU ${(med(n.map((u) => u.cpu)) / med(o.map((u) => u.cpu))).toFixed(2)}`,
      );
  }
  console.log(`load average at the end: ${load()}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
