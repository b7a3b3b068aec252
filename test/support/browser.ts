import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type ConsoleMessage, type Page } from 'playwright-core';
import { REPO_ROOT } from './service-process';

export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = join(REPO_ROOT, 'test-output', 'screenshots');

/** Builds the console unless console/dist is stamped with the current sources (seconds when nothing changed). */
export function buildConsole(): void {
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-console.mjs')], { cwd: REPO_ROOT, stdio: 'pipe' });
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors seen so far (the tests fail on any). */
  errors: string[];
  shot: (name: string) => Promise<void>;
  close: () => Promise<void>;
}

/**
 * Debian's Chromium driven by playwright-core: headless, a fresh profile directory, no network of its own
 * (no QUIC, no background or component updates, no sync), 1280x800.
 */
export async function openBrowser(allowedFailures: RegExp[] = []): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'hcm-chromium-'));
  mkdirSync(SCREENSHOTS, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    locale: 'zh-CN',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() !== 'error') return;
    const where = m.location().url ?? '';
    // a response the test expects (e.g. 404 of an optional route) is logged by Chromium as a failed resource
    if (/Failed to load resource/.test(m.text()) && allowedFailures.some((r) => r.test(where))) return;
    errors.push(`${m.text()} @ ${where}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return {
    context,
    page,
    errors,
    shot: async (name) => {
      await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: false });
    },
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Polls `fn` until it returns a truthy value (every 50 ms, up to `ms`), returning it; throws with `what` after. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
