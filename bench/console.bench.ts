/**
 * npm run bench:console: the console's first load on loopback in Debian's Chromium, and its JavaScript size.
 * Starts the embedded service in-process (a temp DATA_DIR, 200 images), then opens /console/ in a fresh
 * profile five times (cold cache each time) and prints the time from navigation to the table showing its
 * rows, plus the gzipped size of every script the page loads. Goals: < 1 s, < 500 KiB gzipped.
 */
import 'reflect-metadata';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { createApp } from '../src/app.factory';
import { signToken } from '../src/access/jwt';
import { loadConfig } from '../src/config/app-config';
import { consoleDir } from '../src/console/console-static';

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcm-console-bench-'));
  const config = loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'error', IMPORT_CONCURRENCY: '0', RATE_LIMIT_CREATE_PER_MIN: '0', PORT: '0', HOST: '127.0.0.1' });
  const app = await createApp(config, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  const base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  const token = signToken({ sub: 'bench', dept: 'd1', role: 'super_admin', name: 'bench' }, config.auth.secret!);
  const h = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const zoneId = ((await (await fetch(`${base}/zones`, { headers: h })).json()) as { items: Array<{ id: string }> }).items[0].id;
  for (let i = 0; i < 200; i++) {
    await fetch(`${base}/images`, { method: 'POST', headers: h, body: JSON.stringify({ kind: 'IMAGE', name: `bench-${i}`, osCategory: 'CENTOS', format: 'qcow2', zoneId, scope: 'PUBLIC', source: { type: 'UPLOAD' } }) });
  }
  const assets = join(consoleDir(), 'assets');
  const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
  const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(assets, f)), { level: 9 }).length, 0);
  const times: number[] = [];
  for (let run = 0; run < 5; run++) {
    const profile = mkdtempSync(join(tmpdir(), 'hcm-chromium-bench-'));
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.addInitScript((t) => localStorage.setItem('hcm.console.token', t), token);
    const t0 = Date.now();
    await page.goto(`${base}/console/`);
    await page.waitForSelector('.ant-table-tbody tr.ant-table-row');
    times.push(Date.now() - t0);
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
  await app.close();
  rmSync(dataDir, { recursive: true, force: true });
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`console first load (navigation to the table's rows, cold cache, loopback, 200 images): median ${sorted[2]} ms, min ${sorted[0]} ms, max ${sorted[4]} ms (goal < 1000 ms)`);
  console.log(`console JavaScript: ${js.length} file(s), ${(gz / 1024).toFixed(0)} KiB gzipped (goal < 500 KiB)`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
