/**
 * npm run bench:console: the console's first load on loopback in Debian's Chromium, its JavaScript size, and
 * the table at 100,000 images.
 * Part 1: the embedded service in-process (a temp DATA_DIR, 200 images); /console/ opened in a fresh profile
 * BENCH_RUNS times (default 9, cold cache each time): time from navigation to the table showing its rows
 * (median, p95) with a breakdown from the page's own timings (HTML, scripts, first API answers, rows).
 * Part 2: the platform shape (MariaDB) with BENCH_IMAGES (default 100,000) images seeded by SQL: first load and
 * page changes (next page, a far page by the pager's jump box), and a check that every /images call the page
 * makes asks for one page only (pageSize <= 100): server-side paging and counts, never the whole catalog.
 * Goals: first load < 1 s, first screen's JavaScript < 500 KiB gzipped.
 * The browser is started and warmed once; each first load is a fresh context (cold HTTP cache) and is timed by
 * the page's clock from navigation start. BENCH_CONSOLE_REF=<another build's console/dist> loads that page too,
 * interleaved, and prints the ratios (the figure that holds on a loaded machine), with the renderer's CPU time
 * (main thread and whole process: what other processes on the cores inflate least). BENCH_PROFILE=1 prints where
 * one load's script time goes (BENCH_PROFILE_OUT=<file> keeps the raw CPU profile: map it to a `vite build
 * --sourcemap` of the page); BENCH_DETAIL=1 prints each request's start, first and last byte.
 */
import 'reflect-metadata';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { createApp } from '../src/app.factory';
import { signToken } from '../src/access/jwt';
import { loadConfig } from '../src/config/app-config';
import { consoleDir, consoleHandler } from '../src/console/console-static';
import { createTestDatabase, dropTestDatabase, ensureTestUser, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from '../test/support/mariadb';
import { seed } from './catalog.bench';
import { startService } from './support';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const median = (xs: number[]) => pct(xs, 50);

let browser: Browser | undefined;
/** One Chromium for the whole bench, started and warmed once: its own startup never counts in a figure. */
async function warmBrowser(): Promise<Browser> {
  if (!browser) {
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ARGS });
    const ctx = await browser.newContext();
    await (await ctx.newPage()).goto('about:blank');
    await ctx.close();
  }
  return browser;
}

/**
 * A fresh browser context (empty HTTP cache, empty storage: a first visit) with the caller's token, in the warm
 * browser. An init script records, in the page's own clock (performance.now(): ms since navigation start),
 * when the table's first rows enter the DOM and the next frame after that.
 */
async function withPage<T>(token: string, fn: (page: Page, ctx: BrowserContext) => Promise<T>): Promise<T> {
  const ctx = await (await warmBrowser()).newContext({ viewport: { width: 1280, height: 800 } });
  try {
    await ctx.addInitScript(`(() => {
      localStorage.setItem('hcm.console.token', ${JSON.stringify(token)});
      const w = window;
      new MutationObserver((_, o) => {
        if (!document.querySelector('.ant-table-tbody tr.ant-table-row')) return;
        o.disconnect();
        w.__rows = performance.now();
        requestAnimationFrame(() => setTimeout(() => (w.__painted = performance.now())));
      }).observe(document, { subtree: true, childList: true });
    })()`);
    const page = await ctx.newPage();
    return await fn(page, ctx);
  } finally {
    await ctx.close();
  }
}

interface Load {
  /** navigation start to the first rows in the DOM (the headline figure) */
  total: number;
  painted: number;
  html: number;
  scripts: number;
  boot: number;
  domReady: number;
  firstApi: number;
  data: number;
  /** the renderer main thread busy, ms of this load (CDP Performance metrics: wall time of its tasks, so other processes on the cores inflate it) */
  scriptMs: number;
  taskMs: number;
  styleLayoutMs: number;
  /** CPU time of the renderer's main thread and of its whole process (all its threads: compiling, parsing) in this load: what a busy machine inflates least */
  threadCpuMs: number;
  processCpuMs: number;
  jsGzFirst: number;
  jsWireFirst: number;
  requests: number;
  /** each request: [name, start, first byte, last byte] (ms from navigation start) */
  detail: Array<[string, number, number, number]>;
}
type Timings = Omit<Load, 'jsGzFirst' | 'scriptMs' | 'taskMs' | 'styleLayoutMs' | 'threadCpuMs' | 'processCpuMs'> & { jsNames: string[] };
// runs in the page (a string: the bench is compiled without the DOM's types)
const TIMINGS = `(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const js = res.filter((r) => r.name.endsWith('.js'));
  const api = res.filter((r) => /\\/images(\\?|\\/counts)/.test(r.name));
  const mark = (n) => performance.getEntriesByName(n)[0]?.startTime ?? NaN;
  return {
    total: window.__rows, painted: window.__painted,
    html: nav.responseEnd,
    scripts: Math.max(0, ...js.map((r) => r.responseEnd)),
    boot: mark('hcm:boot'),
    domReady: nav.domContentLoadedEventEnd,
    firstApi: Math.max(0, ...api.map((r) => r.responseEnd)),
    data: mark('hcm:data'),
    jsNames: js.map((r) => r.name.split('/').pop()),
    detail: [nav, ...res].map((r) => [r.name.replace(location.origin, '').replace(/-[\\w-]{8}\\./, '.'), r.startTime, r.responseStart, r.responseEnd]),
    jsWireFirst: js.reduce((n, r) => n + r.transferSize, 0),
    requests: res.length + 1,
  };
})()`;

/** One first load in a warm browser: navigation start to the table's rows, with the page's timings. */
async function firstLoad(base: string, token: string, repeat = false, profile = false): Promise<Load> {
  return withPage(token, async (page, ctx) => {
    if (repeat) {
      // a returning visitor: the same context has loaded the page once (hashed assets in its HTTP cache)
      await page.goto(`${base}/console/`);
      await page.waitForFunction('window.__painted !== undefined');
    }
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Performance.enable');
    if (profile) await cdp.send('Profiler.enable').then(() => cdp.send('Profiler.start'));
    const before = await cdp.send('Performance.getMetrics');
    await page.goto(`${base}/console/`);
    await page.waitForFunction('window.__painted !== undefined');
    const after = await cdp.send('Performance.getMetrics');
    if (profile) {
      const { profile: prof } = await cdp.send('Profiler.stop');
      // BENCH_PROFILE_OUT=<file.cpuprofile>: the raw profile too (open it in Chromium's DevTools, or map it to a sourcemap build)
      if (process.env.BENCH_PROFILE_OUT) writeFileSync(process.env.BENCH_PROFILE_OUT, JSON.stringify(prof));
      topFunctions(prof);
    }
    const metric = (n: string) => 1000 * ((after.metrics.find((m) => m.name === n)?.value ?? 0) - (before.metrics.find((m) => m.name === n)?.value ?? 0));
    const m = await page.evaluate<Timings>(TIMINGS);
    // the file is this build's, or the reference page's (BENCH_CONSOLE_REF)
    const file = (f: string) => [consoleDir(), process.env.BENCH_CONSOLE_REF ?? ''].map((d) => join(d, 'assets', f)).find((p) => existsSync(p))!;
    const jsGzFirst = m.jsNames.reduce((n, f) => n + gzipSync(readFileSync(file(f)), { level: 9 }).length, 0);
    const { jsNames: _, ...rest } = m;
    return {
      ...rest,
      scriptMs: metric('ScriptDuration'),
      taskMs: metric('TaskDuration'),
      styleLayoutMs: metric('RecalcStyleDuration') + metric('LayoutDuration'),
      threadCpuMs: metric('ThreadTime'),
      processCpuMs: metric('ProcessTime'),
      jsGzFirst,
    };
  });
}

/** BENCH_PROFILE=1: where one first load's script time goes (self time by function and by file, from a CPU profile). */
function topFunctions(p: {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples?: number[];
  timeDeltas?: number[];
}): void {
  const self = new Map<number, number>();
  (p.samples ?? []).forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas?.[i] ?? 0) / 1000));
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const n of p.nodes) {
    const ms = self.get(n.id) ?? 0;
    const file = n.callFrame.url.split('/').pop() || '(native)';
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${v.toFixed(1).padStart(8)} ms  ${k}`)
      .join('\n');
  console.log(`CPU profile of one first load, self time by file:\n${top(byFile, 8)}\nby function:\n${top(byFn, 25)}`);
}

function report(title: string, runs: Load[]): void {
  const tot = runs.map((r) => r.total);
  const f = (k: Exclude<keyof Load, 'detail'>) => median(runs.map((r) => r[k])).toFixed(0);
  console.log(
    `\n== ${title}, ${runs.length} runs; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `navigation start -> first rows in the DOM: median ${median(tot).toFixed(0)} ms, p95 ${pct(tot, 95).toFixed(0)} ms, min ${Math.min(...tot).toFixed(0)} ms, max ${Math.max(...tot).toFixed(0)} ms; goal < 1000 ms: median is ${(median(tot) / 1000).toFixed(2)} x the goal`,
  );
  console.log(
    `breakdown (medians, ms from navigation start): HTML ${f('html')} | scripts on the wire ${f('scripts')} | JS evaluated (boot mark) ${f('boot')} | DOM ready ${f('domReady')} | /images + counts answered ${f('firstApi')} | data taken ${f('data')} | rows ${f('total')} | next frame ${f('painted')}`,
  );
  console.log(
    `renderer main thread busy (medians, ms: wall time of its tasks, inflated by a loaded machine): script ${f('scriptMs')} | style + layout ${f('styleLayoutMs')} | all tasks ${f('taskMs')}; CPU time: main thread ${f('threadCpuMs')}, renderer process ${f('processCpuMs')}; requests ${f('requests')}, JS bytes on the wire ${(median(runs.map((r) => r.jsWireFirst)) / 1024).toFixed(0)} KiB`,
  );
  if (process.env.BENCH_DETAIL === '1') {
    // each request's start, first byte and last byte (medians over the runs, ms from navigation start)
    const names = [...new Set(runs.flatMap((r) => r.detail.map((d) => d[0])))];
    for (const n of names) {
      const of = (i: number) => median(runs.flatMap((r) => r.detail.filter((d) => d[0] === n).map((d) => d[i] as number))).toFixed(0);
      console.log(`  ${n.slice(0, 48).padEnd(48)} start ${of(1).padStart(5)} | first byte ${of(2).padStart(5)} | last byte ${of(3).padStart(5)}`);
    }
  }
}

/**
 * BENCH_CONSOLE_REF=<a console/dist built from another commit>: that page served at /console of a second port,
 * every other path proxied to the service, so both pages load against the same service, runs interleaved.
 */
async function refServer(refDist: string, target: string): Promise<{ base: string; close: () => Promise<void> }> {
  const app = express();
  app.use('/console', consoleHandler(refDist));
  app.use((req, res) => {
    const up = httpRequest(`${target}${req.originalUrl}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function embedded(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-console-bench-'));
  const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'error', IMPORT_CONCURRENCY: '0', RATE_LIMIT_CREATE_PER_MIN: '0', PORT: '0', HOST: '127.0.0.1' });
  const app = await createApp(config, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  try {
    const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    const token = signToken({ sub: 'bench', dept: 'd1', role: 'super_admin', name: 'bench' }, config.auth.secret!);
    const h = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const zoneId = ((await (await fetch(`${base}/zones`, { headers: h })).json()) as { items: Array<{ id: string }> }).items[0].id;
    for (let i = 0; i < 200; i++) {
      await fetch(`${base}/images`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ kind: 'IMAGE', name: `bench-${i}`, osCategory: 'CENTOS', format: 'qcow2', zoneId, scope: 'PUBLIC', source: { type: 'UPLOAD' } }),
      });
    }
    const assets = join(consoleDir(), 'assets');
    const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
    const sizes = js.map((f) => ({ f, gz: gzipSync(readFileSync(join(assets, f)), { level: 9 }).length }));
    const gzAll = sizes.reduce((n, s) => n + s.gz, 0);
    await firstLoad(base, token, false, process.env.BENCH_PROFILE === '1'); // warm the service (first query plans, lazy modules), not counted
    const refDir = process.env.BENCH_CONSOLE_REF;
    const ref = refDir ? await refServer(refDir, base) : undefined;
    const runs: Load[] = [];
    const refRuns: Load[] = [];
    if (ref) await firstLoad(ref.base, token);
    for (let r = 0; r < RUNS; r++) {
      if (ref) refRuns.push(await firstLoad(ref.base, token));
      runs.push(await firstLoad(base, token));
    }
    report('first load, embedded (SQLite), 200 images, warm browser, fresh context (cold HTTP cache), loopback', runs);
    const again: Load[] = [];
    const refAgain: Load[] = [];
    for (let r = 0; r < Math.min(RUNS, 5); r++) {
      if (ref) refAgain.push(await firstLoad(ref.base, token, true));
      again.push(await firstLoad(base, token, true));
    }
    report('repeat load (same context: hashed assets from the HTTP cache, index.html revalidated)', again);
    if (ref) {
      report(`reference page ${refDir}: first load (runs interleaved with the ones above)`, refRuns);
      report('reference page: repeat load', refAgain);
      const ratio = (a: Load[], b: Load[], k: Exclude<keyof Load, 'detail'>) => (median(a.map((x) => x[k])) / median(b.map((x) => x[k]))).toFixed(2);
      console.log(
        `this page / reference, same run: first load rows ${ratio(runs, refRuns, 'total')} x, main-thread script ${ratio(runs, refRuns, 'scriptMs')} x, all tasks ${ratio(runs, refRuns, 'taskMs')} x, main-thread CPU ${ratio(runs, refRuns, 'threadCpuMs')} x, renderer CPU ${ratio(runs, refRuns, 'processCpuMs')} x; repeat load rows ${ratio(again, refAgain, 'total')} x, all tasks ${ratio(again, refAgain, 'taskMs')} x`,
      );
      await ref.close();
    }
    const first = runs[0].jsGzFirst;
    console.log(
      `JavaScript: first screen ${(first / 1024).toFixed(0)} KiB gzipped (goal < 500 KiB: ${(first / 1024 / 500).toFixed(2)} x the goal); all chunks ${(gzAll / 1024).toFixed(0)} KiB in ${js.length} files:`,
    );
    for (const s of sizes.sort((a, b) => b.gz - a.gz)) console.log(`  ${s.f.padEnd(40)} ${(s.gz / 1024).toFixed(1).padStart(7)} KiB gz`);
  } finally {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function platform(): Promise<void> {
  const images = Number(process.env.BENCH_IMAGES ?? 100_000);
  const secret = 'bench-secret-0123456789abcdef0123456789abcdef';
  await ensureTestUser();
  const db = await createTestDatabase('bench_console');
  const env = {
    DB_TYPE: 'mariadb',
    DB_HOST: TEST_DB_HOST,
    DB_PORT: String(TEST_DB_PORT),
    DB_USER: TEST_DB_USER,
    DB_PASSWORD: TEST_DB_PASSWORD,
    DB_NAME: db,
    AUTH_JWT_SECRET: secret,
    LOG_LEVEL: 'warn',
  };
  let svc = await startService(env, 'migrations');
  await svc.stop();
  try {
    await seed(db);
    svc = await startService(env);
    const base = svc.url('').replace(/\/$/, '');
    const token = signToken({ sub: 'root', dept: 'ops', role: 'super_admin', name: 'root' }, secret);
    await firstLoad(base, token);
    const loads: Load[] = [];
    for (let r = 0; r < Math.min(RUNS, 5); r++) loads.push(await firstLoad(base, token));
    const { next, far, sizes } = await withPage(token, async (page) => {
      const sizes: number[] = [];
      page.on('request', (req) => {
        const u = new URL(req.url());
        if (u.pathname === '/images') sizes.push(Number(u.searchParams.get('pageSize') ?? 20));
      });
      await page.goto(`${base}/console/`);
      await page.waitForSelector('.ant-table-tbody tr.ant-table-row');
      const firstRow = () => page.textContent('.ant-table-tbody tr.ant-table-row td:first-child strong');
      const change = async (act: () => Promise<void>) => {
        const before = await firstRow();
        const t0 = Date.now();
        await act();
        await page.waitForFunction(
          `document.querySelector('.ant-table-tbody tr.ant-table-row td:first-child strong')?.textContent !== ${JSON.stringify(before)} && !document.querySelector('.ant-spin-spinning')`,
        );
        return Date.now() - t0;
      };
      const next: number[] = [];
      const far: number[] = [];
      for (let i = 0; i < 5; i++) next.push(await change(() => page.click('.ant-pagination-next')));
      for (let i = 0; i < 5; i++) {
        const target = String(1000 + i * 700);
        far.push(
          await change(async () => {
            await page.fill('.ant-pagination-options-quick-jumper input', target).catch(async () => {
              await page.goto(`${base}/console/?page=${target}`);
            });
            await page.press('.ant-pagination-options-quick-jumper input', 'Enter').catch(() => undefined);
          }),
        );
      }
      return { next, far, sizes };
    });
    console.log(`\n== the table at ${images.toLocaleString('en')} images, platform shape (MariaDB), super admin`);
    report(`first load at ${images.toLocaleString('en')} images (MariaDB)`, loads);
    console.log(
      `next page: median ${median(next)} ms, max ${Math.max(...next)} ms; a far page (1000..3800): median ${median(far)} ms, max ${Math.max(...far)} ms`,
    );
    console.log(`/images calls made by the page: ${sizes.length}, largest pageSize ${Math.max(...sizes)} (server-side paging: never the whole catalog)`);
    if (Math.max(...sizes) > 100) throw new Error('the console asked for more than one page of images');
  } finally {
    await svc.stop();
    await dropTestDatabase(db);
  }
}

async function main(): Promise<void> {
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; ${new Date().toISOString()}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  await embedded();
  if (process.env.BENCH_CONSOLE_PLATFORM !== '0') await platform();
  await browser?.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
