/**
 * The console (console/) in a real browser: Debian's Chromium driven by playwright-core against the embedded
 * service in-process (SQLite, filesystem store, in-process jobs, the generated development secret, so the
 * development sign-in exists). Each screen is saved to test-output/screenshots/. Any console error or
 * uncaught page error fails the suite.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { signToken } from '../../src/access/jwt';
import { SHAPES, startApp, TEST_SECRET, type TestApp } from '../support/app';
import { buildConsole, openBrowser, type Browser, waitFor } from '../support/browser';
import { iso, qcow2 } from '../support/disk-images';
import { ImageServer } from '../support/image-server';

jest.setTimeout(120_000);

type Who = { sub: string; dept: string; role: 'super_admin' | 'admin' | 'user' | 'service' };
const SUPER: Who = { sub: 'root', dept: 'ops', role: 'super_admin' };
const ADMIN1: Who = { sub: 'adm1', dept: 'd1', role: 'admin' };
const ALICE: Who = { sub: 'alice', dept: 'd1', role: 'user' };
const BOB: Who = { sub: 'bob', dept: 'd2', role: 'user' };
const SERVICE: Who = { sub: 'compute', dept: 'platform', role: 'service' };

let t: TestApp;
let base: string;
let secret: string;
let zoneId: string;
let files: ImageServer;
let mnt: string;
let b: Browser;
let page: Page;

const tok = (w: Who) => signToken({ sub: w.sub, dept: w.dept, role: w.role, name: w.sub }, secret);
async function apiAs(w: Who, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${tok(w)}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
async function create(w: Who, over: Record<string, unknown>) {
  const r = await apiAs(w, 'POST', '/images', { kind: 'IMAGE', osCategory: 'CENTOS', format: 'qcow2', zoneId, source: { type: 'UPLOAD' }, ...over });
  if (r.status !== 201) throw new Error(`create ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
const rowNames = () => page.$$eval('.ant-table-tbody tr.ant-table-row td:first-child strong', (els) => els.map((e) => e.textContent ?? ''));
async function signInAs(w: Who, query = '') {
  await page.goto(`${base}/console/`);
  await page.evaluate((token) => localStorage.setItem('hcm.console.token', token), tok(w));
  await page.goto(`${base}/console/${query}`);
  await page.waitForSelector('[data-testid=whoami]');
}
async function apiNames(w: Who, query: string): Promise<string[]> {
  const r = await apiAs(w, 'GET', `/images?pageSize=200&${query}`);
  return (r.body.items as Array<{ name: string }>).map((i) => i.name);
}
async function rowsEqual(w: Who, query: string) {
  const want = [...(await apiNames(w, query))].sort();
  return waitFor(`rows of ${w.sub} for ${query} to be ${want.join(',')}`, async () => {
    const got = [...(await rowNames())].sort();
    return JSON.stringify(got) === JSON.stringify(want) ? got : false;
  });
}
/** What has the keyboard focus: a label for it, and whether the focus is visible (an outline or a focus ring). */
async function focused(): Promise<{ label: string; visible: boolean }> {
  // runs in the page (a string: the tests compile without the DOM's types)
  return page.evaluate<{ label: string; visible: boolean }>(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { label: '(body)', visible: false };
    const name = el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent ?? el.placeholder ?? '';
    const label = [el.getAttribute('role') ?? el.tagName.toLowerCase() + (el.type === 'radio' ? ':radio' : ''), name, (el.textContent ?? '').trim().slice(0, 30)].join('|');
    const ring = (c) => (c.outlineStyle !== 'none' && parseFloat(c.outlineWidth) > 0) || c.boxShadow !== 'none';
    // an input's ring is drawn on its antd wrapper
    const wrap = el.closest('.ant-input-affix-wrapper, .ant-select, .ant-input-number, .ant-radio-wrapper, .ant-checkbox-wrapper');
    return { label, visible: ring(getComputedStyle(el)) || (wrap !== null && ring(getComputedStyle(wrap))) };
  })()`);
}
/** Presses Tab until `want` matches the focused control (at most `max` times); returns every control passed. */
async function tabTo(want: RegExp, max = 80): Promise<Array<{ label: string; visible: boolean }>> {
  const seen: Array<{ label: string; visible: boolean }> = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await focused();
    seen.push(f);
    if (want.test(f.label)) return seen;
  }
  throw new Error(`Tab never reached ${want}: ${seen.map((f) => f.label).join(' → ')}`);
}
const tabLabel = (v: string) => page.textContent(`[data-testid=tab-${v}]`);
/** The roles of controls a person operates: each must have an accessible name (what a screen reader says). */
const CONTROL_ROLES = new Set([
  'button',
  'link',
  'textbox',
  'searchbox',
  'combobox',
  'checkbox',
  'radio',
  'tab',
  'menuitem',
  'menuitemcheckbox',
  'menuitemradio',
  'spinbutton',
  'switch',
  'slider',
  'listbox',
  'option',
  'treeitem',
]);
/** Every shown control without an accessible name, by Chromium's own accessibility tree (role and HTML). */
async function unnamedControls(): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const bad = nodes.filter((n) => !n.ignored && CONTROL_ROLES.has(String(n.role?.value)) && !String(n.name?.value ?? '').trim());
    return Promise.all(
      bad.map(async (n) => {
        const html = n.backendDOMNodeId
          ? (await cdp.send('DOM.getOuterHTML', { backendNodeId: n.backendDOMNodeId }).catch(() => ({ outerHTML: '?' }))).outerHTML
          : '?';
        return `${String(n.role?.value)}: ${html.slice(0, 160)}`;
      }),
    );
  } finally {
    await cdp.detach();
  }
}
async function expectAllNamed(screen: string) {
  expect({ screen, unnamed: await unnamedControls() }).toEqual({ screen, unnamed: [] });
}

// the embedded default (SQLite) and the platform shape (MariaDB); the development sign-in exists only in the first
describe.each(SHAPES)('the console in Chromium (%s)', (shape) => {
  beforeAll(async () => {
    buildConsole();
    files = await new ImageServer().start();
    mnt = mkdtempSync(join(tmpdir(), 'hcm-console-share-'));
    mkdirSync(join(mnt, 'isos'));
    writeFileSync(join(mnt, 'isos', 'tools-2.iso'), iso(512 * 1024));
    writeFileSync(join(mnt, 'readme.txt'), 'copy images here');
    t = await startApp(shape, 'console', {
      // the embedded default: the service generates its development secret (and so has POST /dev/tokens)
      ...(shape === 'sqlite' ? { AUTH_JWT_SECRET: '' } : {}),
      SEED_DEFAULT_ZONE: 'true',
      IMPORT_CONCURRENCY: '2',
      URL_ALLOW_CIDRS: '127.0.0.0/8',
      URL_MAX_ATTEMPTS: '1',
      FILE_SOURCES: `share=file://${mnt}`,
    });
    base = `http://127.0.0.1:${await t.listen()}`;
    secret = shape === 'sqlite' ? readFileSync(join(t.dataDir, 'dev-jwt-secret'), 'utf8').trim() : TEST_SECRET;
    zoneId = (await apiAs(SUPER, 'GET', '/zones')).body.items[0].id;
    await create(SUPER, { name: 'CentOS-7-精选', scope: 'FEATURED', tags: ['linux'] });
    await create(SUPER, { name: 'Ubuntu-22-公共', scope: 'PUBLIC', osCategory: 'UBUNTU', tags: ['linux', 'web'], hypervisor: 'XEN' });
    await create(SUPER, { name: 'Win2019-公共', scope: 'PUBLIC', osCategory: 'WINDOWS_VIRTIO', format: 'raw', description: 'windows server' });
    await create(ALICE, { name: 'alice-private', tags: ['web'] });
    await create(ALICE, { name: 'alice-tools', kind: 'ISO', isoUsage: 'TOOL', format: undefined });
    await create(BOB, { name: 'bob-secret', tags: ['web'] });
    b = await openBrowser([/\/events\/stream/]);
    page = b.page;
  });

  afterAll(async () => {
    await b?.close();
    await t?.close();
    await files?.close();
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  });

  afterEach(() => {
    // every step of the suite: no console error, no uncaught exception in the page
    expect(b.errors).toEqual([]);
  });

  it('serves the page: index.html not cached, hashed assets immutable, any /console path is the page', async () => {
    const index = await fetch(`${base}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const asset = /\/console\/assets\/[^"]+\.js/.exec(html)![0];
    const js = await fetch(`${base}${asset}`, { headers: { 'Accept-Encoding': 'gzip, deflate, br' } }); // node's fetch offers no br by itself
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    // built compressed (scripts/build-console.mjs): brotli for a client that accepts it, no compression per request
    expect(js.headers.get('content-encoding')).toBe('br');
    expect(js.headers.get('vary')).toBe('Accept-Encoding');
    expect((await js.text()).length).toBeGreaterThan(100_000); // fetch decoded it
    // the browser gets the same: every script and style sheet of the first screen arrives brotli-encoded
    await signInAs(SUPER, '?view=all');
    const encodings = await page.evaluate<Array<{ name: string; encoded: number; decoded: number }>>(
      `performance.getEntriesByType('resource').filter((r) => /\\/console\\/assets\\//.test(r.name)).map((r) => ({ name: r.name, encoded: r.encodedBodySize, decoded: r.decodedBodySize }))`,
    );
    expect(encodings.length).toBeGreaterThan(0);
    for (const e of encodings)
      if (e.decoded > 10_000) expect({ name: e.name, compressed: e.encoded < e.decoded / 2 }).toEqual({ name: e.name, compressed: true });
    // antd's styles come from its prebuilt (trimmed) style sheet, not from run-time CSS-in-JS: the components are styled
    const styles = await page.evaluate<{ primary: string; header: string }>(
      `(() => ({ primary: getComputedStyle(document.querySelector('.ant-btn-primary')).backgroundColor, header: getComputedStyle(document.querySelector('.ant-table-thead th')).backgroundColor }))()`,
    );
    expect(styles.primary).toBe('rgb(22, 119, 255)');
    expect(styles.header).not.toBe('rgba(0, 0, 0, 0)');
    expect((await fetch(`${base}/console/images/anything`)).headers.get('content-type')).toMatch(/text\/html/);
    expect((await fetch(`${base}/console/assets/missing-0000.js`)).status).toBe(404);
  });

  if (shape !== 'sqlite') {
    // the platform shape has no development secret: the same form says so and signs nobody in
    it('offers no development sign-in in the platform shape: the form answers that it exists only in the embedded default', async () => {
      await page.goto(`${base}/console/`);
      await page.evaluate(() => localStorage.removeItem('hcm.console.token'));
      await page.goto(`${base}/console/`);
      await page.getByText('开发用户').first().waitFor();
      await page.getByLabel('用户ID').fill('root');
      await page.getByLabel('部门').fill('ops');
      await page.getByRole('button', { name: /登\s*录/ }).click();
      await page.getByText('开发用户登录仅在嵌入式默认配置').waitFor();
      expect(await page.locator('[data-testid=whoami]').count()).toBe(0);
      expect(await page.evaluate(() => localStorage.getItem('hcm.console.token'))).toBeNull();
      // the one console error of this step is Chromium logging the expected 404 of POST /dev/tokens
      const expected = b.errors.filter((e) => /status of 404 .*\/dev\/tokens$/.test(e));
      expect(expected).toHaveLength(1);
      b.errors.splice(0, b.errors.length, ...b.errors.filter((e) => !expected.includes(e)));
    });
  }

  if (shape === 'sqlite')
    it('signs in as a development user picked on the page; 所有 is the default view of a super admin, with the counts', async () => {
      await page.goto(`${base}/console/`);
      await page.evaluate(() => localStorage.removeItem('hcm.console.token')); // signed out, whatever ran before
      await page.goto(`${base}/console/`);
      await page.getByText('开发用户').first().waitFor();
      await b.shot('sign-in');
      await page.getByLabel('用户ID').fill('root');
      await page.getByLabel('部门').fill('ops');
      await page.getByRole('button', { name: /登\s*录/ }).click();
      await page.waitForSelector('[data-testid=whoami]');
      expect(await page.textContent('[data-testid=whoami]')).toContain('super_admin');
      const counts = (await apiAs(SUPER, 'GET', '/images/counts')).body;
      await waitFor('counts', async () => (await tabLabel('all')) === `所有 (${counts.all})`);
      expect(await tabLabel('featured')).toBe(`精选 (${counts.featured})`);
      expect(await tabLabel('public')).toBe(`公共 (${counts.public})`);
      expect(await tabLabel('private')).toBe(`私有 (${counts.private})`);
      expect(await page.getAttribute('.ant-tabs-tab-active .ant-tabs-tab-btn', 'aria-selected')).toBe('true');
      expect(await page.textContent('.ant-tabs-tab-active')).toContain('所有');
      await rowsEqual(SUPER, 'view=all');
      await b.shot('images-all-super-admin');
    });

  it.each([
    ['super admin', SUPER, 'all'],
    ['department admin', ADMIN1, 'featured'],
    ['plain user', ALICE, 'featured'],
  ] as const)('each view of a %s with its counts', async (_, who, dflt) => {
    await signInAs(who);
    expect(await page.textContent('.ant-tabs-tab-active')).toContain({ all: '所有', featured: '精选' }[dflt]);
    const counts = (await apiAs(who, 'GET', '/images/counts')).body;
    for (const v of ['all', 'featured', 'public', 'private'] as const) {
      await page.click(`[data-testid=tab-${v}]`);
      await waitFor(`url view=${v}`, () => page.url().includes(`view=${v}`) || (v === dflt && !page.url().includes('view=')));
      expect(await tabLabel(v)).toMatch(new RegExp(`\\(${counts[v]}\\)$`));
      await rowsEqual(who, `view=${v}`);
    }
  });

  it("a plain user never sees another user's private image: no view, search or filter shows it", async () => {
    await signInAs(ALICE, '?view=all');
    await rowsEqual(ALICE, 'view=all');
    const body = () => page.textContent('body');
    expect(await body()).toContain('alice-private');
    expect(await body()).not.toContain('bob-secret');
    for (const q of ['?view=private', '?view=all&q=bob', '?view=all&tags=web', '?view=all&name=bob-secret']) {
      await page.goto(`${base}/console/${q}`);
      await rowsEqual(ALICE, q.slice(1));
      expect(await body()).not.toContain('bob-secret');
    }
    await b.shot('images-private-user');
  });

  it('tag search, type filter, quick search and the header filters (name, OS, virtualization) query the service and stay in the URL', async () => {
    await signInAs(SUPER, '?view=all');
    await rowsEqual(SUPER, 'view=all');
    // tags
    await page.click('[data-testid=tag-search]');
    await page.keyboard.type('web');
    await page.keyboard.press('Enter');
    await waitFor('tags in the URL', () => page.url().includes('tags=web'));
    await rowsEqual(SUPER, 'view=all&tags=web');
    await page.reload();
    await rowsEqual(SUPER, 'view=all&tags=web');
    // type filter
    await page.goto(`${base}/console/?view=all`);
    await page.click('[data-testid=type-filter]');
    await page.click('.ant-select-dropdown .ant-select-item-option[title="ISO"]');
    await waitFor('kind in the URL', () => page.url().includes('kind=ISO'));
    await rowsEqual(SUPER, 'view=all&kind=ISO');
    // quick search
    await page.goto(`${base}/console/?view=all`);
    await page.getByPlaceholder('快速搜索：名称、描述、状态').fill('windows');
    await page.keyboard.press('Enter');
    await waitFor('q in the URL', () => page.url().includes('q=windows'));
    await rowsEqual(SUPER, 'view=all&q=windows');
    // header filter: name
    await page.goto(`${base}/console/?view=all`);
    await page.click('th:has-text("名称") .ant-table-filter-trigger');
    await page.getByRole('searchbox', { name: '名称', exact: true }).fill('Ubuntu');
    await page.keyboard.press('Enter');
    await waitFor('name in the URL', () => page.url().includes('name=Ubuntu'));
    await rowsEqual(SUPER, 'view=all&name=Ubuntu');
    // header filter: OS, then virtualization
    for (const [col, value, key] of [
      ['操作系统', 'WINDOWS_VIRTIO', 'osCategory'],
      ['虚拟化技术', 'XEN', 'hypervisor'],
    ]) {
      await page.goto(`${base}/console/?view=all`);
      await rowsEqual(SUPER, 'view=all');
      await page.click(`th:has-text("${col}") .ant-table-filter-trigger`);
      await page.locator('.ant-dropdown:visible').getByRole('radio', { name: value, exact: true }).check();
      await page
        .locator('.ant-dropdown:visible')
        .getByRole('button', { name: /确\s*定/ })
        .click();
      await waitFor(`${key} in the URL`, () => page.url().includes(`${key}=${value}`));
      await rowsEqual(SUPER, `view=all&${key}=${value}`);
    }
    await b.shot('images-filtered');
  });

  it('creates an image from a URL served by the test and shows its progress live until ACTIVE, without reloading', async () => {
    const path = files.put('centos-live.qcow2', qcow2(3 * 1024 * 1024));
    const url = `${files.url(path)}?rate=1000000`;
    await signInAs(ALICE, '?view=private');
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    await page.getByRole('button', { name: '创建镜像' }).click();
    await page.getByTestId('quota-left').waitFor();
    const dialog = page.locator('.ant-modal:visible');
    expect(await dialog.textContent()).toContain('私有');
    expect(await dialog.locator('input[type=radio][value=FEATURED]').count()).toBe(0);
    expect(await dialog.locator('input[type=radio][value="64"]').isChecked()).toBe(true);
    await dialog.getByLabel('名称').fill('alice-live');
    await dialog.getByRole('textbox', { name: /URL/ }).fill(url);
    await b.shot('create-image');
    await dialog.getByRole('button', { name: /确\s*定/ }).click();
    const status = page.getByTestId('status-alice-live');
    await waitFor(
      'IMPORTING with a progress bar',
      async () => (await status.locator('[data-phase=IMPORTING]').count()) > 0 && (await status.locator('.ant-progress').count()) > 0,
    );
    await b.shot('create-progress');
    await waitFor('ACTIVE', async () => (await status.textContent())?.includes('ACTIVE · READY'), 60_000);
    expect(await page.evaluate(() => (globalThis as unknown as { marker: number }).marker)).toBe(42); // no reload happened
  });

  it('a failed import shows its reason and retries from the page', async () => {
    await signInAs(ALICE, '?view=private');
    await page.getByRole('button', { name: '创建镜像' }).click();
    const dialog = page.locator('.ant-modal:visible');
    await dialog.getByLabel('名称').fill('alice-broken');
    await dialog.getByRole('textbox', { name: /URL/ }).fill(files.url('/f/missing.qcow2'));
    await dialog.getByRole('button', { name: /确\s*定/ }).click();
    const status = page.getByTestId('status-alice-broken');
    await waitFor('FAILED with a reason', async () => (await status.locator('[data-testid=failure-reason]').count()) > 0, 60_000);
    const img = (await apiAs(ALICE, 'GET', '/images?view=private&name=alice-broken')).body.items[0];
    expect(await status.locator('[data-testid=failure-reason]').textContent()).toBe(img.statusReason);
    // the status tag's tooltip (antd's, mounted on the first hover or focus) says the reason, and names the tag while shown
    const tag = status.locator('[data-phase=FAILED]');
    await tag.hover();
    const tip = page.locator('.ant-tooltip:visible');
    await waitFor('the reason in a tooltip on hover', async () => (await tip.textContent()) === `原因: ${img.statusReason}`);
    expect(await tag.getAttribute('aria-describedby')).toBe(await tip.locator('[role=tooltip]').getAttribute('id'));
    await page.mouse.move(0, 0);
    await waitFor('the tooltip gone when the mouse leaves', async () => (await tip.count()) === 0);
    await tag.focus();
    await waitFor('the reason in a tooltip on focus', async () => (await tip.textContent()) === `原因: ${img.statusReason}`);
    await page.locator('body').focus();
    const hitsBefore = files.hits('/f/missing.qcow2');
    await page.locator('tr:has([data-testid=status-alice-broken]) button:has-text("重试")').click();
    await waitFor('the retry fetched the URL again', () => files.hits('/f/missing.qcow2') > hitsBefore);
  });

  it('creates an ISO from the file directory: folders, sizes, the share address, pick, then ACTIVE', async () => {
    await signInAs(ALICE, '?view=private');
    await page.getByRole('button', { name: '创建ISO镜像' }).click();
    const dialog = page.locator('.ant-modal:visible').first();
    // a click on the source while the lazily loaded dialog still opens can be lost: choose it until it shows
    const chooseFile = dialog.getByRole('button', { name: '选择文件' });
    await waitFor('the file source chosen', async () => (await chooseFile.isVisible()) || void (await dialog.getByText('选择已有文件').click()));
    await chooseFile.click();
    const share = page.getByTestId('share-location');
    await share.waitFor();
    const src = (await apiAs(ALICE, 'GET', '/file-sources')).body.items[0];
    expect(await share.textContent()).toBe(src.location ?? src.name);
    await page.getByRole('button', { name: /isos/ }).click();
    await page.getByRole('button', { name: 'tools-2.iso' }).waitFor();
    expect(await page.locator('.ant-modal:visible').last().textContent()).toContain('512.0 KiB');
    await b.shot('file-picker');
    await page.getByRole('button', { name: 'tools-2.iso' }).click();
    expect(await page.getByTestId('picked-file').textContent()).toContain('isos/tools-2.iso');
    await dialog.getByText('工具', { exact: true }).click();
    await dialog.getByRole('button', { name: /确\s*定/ }).click();
    const status = page.getByTestId('status-tools-2');
    await waitFor('ACTIVE', async () => (await status.textContent())?.includes('ACTIVE · READY'), 60_000);
    const made = (await apiAs(ALICE, 'GET', '/images?view=private&name=tools-2')).body.items[0];
    expect(made).toMatchObject({ kind: 'ISO', isoUsage: 'TOOL', source: { type: 'FILE', path: 'isos/tools-2.iso' } });
  });

  it('edits the descriptive fields; URL, virtualization and format are shown read-only', async () => {
    await signInAs(ALICE, '?view=private&name=alice-live');
    await page.locator('tr:has-text("alice-live") button:has-text("编辑")').click();
    const dialog = page.locator('.ant-modal:visible');
    await dialog.getByTestId('ro-url').waitFor();
    for (const id of ['ro-url', 'ro-hypervisor', 'ro-format']) expect(await dialog.getByTestId(id).isDisabled()).toBe(true);
    expect(await dialog.getByTestId('ro-format').inputValue()).toBe('qcow2');
    expect(await dialog.textContent()).toContain('不可修改');
    await dialog.getByLabel('描述').fill('edited in the browser');
    await b.shot('edit-image');
    await dialog.getByRole('button', { name: /保\s*存/ }).click();
    await waitFor(
      'saved',
      async () => (await apiAs(ALICE, 'GET', '/images?view=private&name=alice-live')).body.items[0].description === 'edited in the browser',
    );
  });

  it('the launch pre-check says an ACTIVE image is usable; a tool ISO offers no 创建虚拟机', async () => {
    await signInAs(ALICE, '?view=private&name=alice-live');
    await page.locator('tr:has-text("alice-live") button:has-text("创建虚拟机")').click();
    await page.getByRole('button', { name: /检\s*查/ }).click();
    expect(await page.getByTestId('launch-verdict').textContent()).toContain('可用于创建虚拟机');
    await b.shot('launch-check');
    await page.keyboard.press('Escape');
    // a tool ISO never creates a VM: its row offers no 创建虚拟机
    await page.goto(`${base}/console/?view=private&name=tools-2`);
    await waitFor('the tool ISO row', async () => (await rowNames()).includes('tools-2'));
    expect(await page.locator('tr:has-text("tools-2") button:has-text("创建虚拟机")').count()).toBe(0);
  });

  it('deletes an image after listing the VMs created from it', async () => {
    const img = (await apiAs(ALICE, 'GET', '/images?view=private&name=alice-live')).body.items[0];
    const reg = await apiAs(SERVICE, 'PUT', '/vms/vm-web-01/origin', {
      imageId: img.id,
      vmName: 'web-01',
      owner: { userId: 'alice', departmentId: 'd1' },
      zoneId,
    });
    expect(reg.status).toBeLessThan(300);
    await signInAs(ALICE, '?view=private&name=alice-live');
    await page.locator('tr:has-text("alice-live") button:has-text("删除")').click();
    const list = page.getByTestId('linked-vms');
    await list.waitFor();
    expect(await list.textContent()).toContain('web-01 (vm-web-01)');
    await b.shot('delete-image');
    await page.locator('.ant-modal:visible').getByRole('button', { name: '确认删除' }).click();
    await waitFor('deleted', async () => (await apiAs(ALICE, 'GET', `/images/${img.id}`)).status === 404);
    await waitFor('row gone', async () => !(await rowNames()).includes('alice-live'));
  });

  it('is keyboard reachable: Tab reaches every control of the main screen and of the create dialog, with a visible focus; create and submit by keyboard', async () => {
    const path = files.put('kbd.qcow2', qcow2(1024 * 1024));
    await signInAs(ALICE, '?view=private');
    await waitFor('rows', async () => (await rowNames()).length > 0);
    await page.locator('body').focus();
    // one full round of the main screen, from the header to the pager
    const all: Array<{ label: string; visible: boolean }> = [];
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press('Tab');
      all.push(await focused());
    }
    const labels = all.map((f) => f.label).join(' → ');
    for (const want of [
      /English/,
      /退\s*出/,
      /tab\|.*私有/,
      /创建镜像/,
      /创建ISO镜像/,
      /按标签搜索/,
      /combobox\|类型/,
      /快速搜索/,
      /button\|搜索/,
      /刷\s*新/,
      /th\|名称/,
      /button\|筛选：名称/,
      /button\|筛选：操作系统/,
      /button\|筛选：虚拟化技术/,
      /th\|大小/,
      /th\|创建时间/,
      /INACTIVE/,
      /编辑/,
      /创建虚拟机/,
      /删除/,
      /li\|\|1/,
      /页码/,
    ]) {
      expect({ want: String(want), reached: all.some((f) => want.test(f.label)), labels }).toEqual({ want: String(want), reached: true, labels });
    }
    const invisible = all.filter((f) => f.label !== '(body)' && !f.visible).map((f) => f.label);
    expect(invisible).toEqual([]);
    // open 创建镜像 by keyboard, fill it and submit it by keyboard
    await page.locator('body').focus();
    await tabTo(/button\|\|创建镜像$/);
    await page.keyboard.press('Enter');
    const dialog = page.locator('.ant-modal:visible');
    await dialog.waitFor();
    await page.getByTestId('quota-left').waitFor();
    const inDialog = await tabTo(/名称/);
    await page.keyboard.type('kbd-image');
    inDialog.push(...(await tabTo(/^input\|URL\|/)));
    await page.keyboard.type(files.url(path));
    inDialog.push(...(await tabTo(/button\|\|确\s*定/)));
    const dlgLabels = inDialog.map((f) => f.label).join(' → ');
    for (const want of [
      /input:radio\|私有/,
      /input\|名称/,
      /textarea\|描述/,
      /combobox\|操作系统类型/,
      /input:radio\|64位/,
      /combobox\|标签/,
      /combobox\|区域/,
      /input:radio\|HTTP URL/,
      /input\|URL/,
      /高级设置/,
      /取\s*消/,
      /确\s*定/,
    ]) {
      expect({ want: String(want), reached: inDialog.some((f) => want.test(f.label)), dlgLabels }).toEqual({ want: String(want), reached: true, dlgLabels });
    }
    expect(inDialog.filter((f) => f.label !== '(body)' && !f.visible).map((f) => f.label)).toEqual([]);
    await b.shot('keyboard-create');
    await page.keyboard.press('Enter');
    await waitFor('created by keyboard', async () => (await apiNames(ALICE, 'view=private')).includes('kbd-image'));
    await waitFor('dialog closed', async () => (await page.locator('.ant-modal:visible').count()) === 0);
  });

  it('operates the header filters by keyboard: Tab to a filter button, Enter opens it, arrows pick, Enter applies', async () => {
    for (const [col, value, key] of [
      ['操作系统', 'WINDOWS_VIRTIO', 'osCategory'],
      ['虚拟化技术', 'XEN', 'hypervisor'],
    ]) {
      await signInAs(SUPER, '?view=all');
      await rowsEqual(SUPER, 'view=all');
      await page.locator('body').focus();
      await tabTo(new RegExp(`^button\\|筛选：${col}\\|`));
      await page.keyboard.press('Enter');
      // the focus moves into the open filter, on its first value; the arrows move through the values
      await waitFor('focus in the filter', async () => /^input:radio\|/.test((await focused()).label));
      for (let i = 0; i < 20 && !(await focused()).label.includes(`|${value}`); i++) await page.keyboard.press('ArrowDown');
      expect((await focused()).label).toMatch(new RegExp(`^input:radio\\|.*${value}`));
      await b.shot(`keyboard-filter-${key}`);
      await page.keyboard.press('Enter');
      await waitFor(`${key} in the URL`, () => page.url().includes(`${key}=${value}`));
      await rowsEqual(SUPER, `view=all&${key}=${value}`);
      // the focus is back on the filter's button
      await waitFor('focus back on the trigger', async () => (await focused()).label.startsWith(`button|筛选：${col}|`));
    }
    // the name filter: Enter opens it on its search box, type, Enter applies
    await page.goto(`${base}/console/?view=all`);
    await rowsEqual(SUPER, 'view=all');
    await page.locator('body').focus();
    await tabTo(/^button\|筛选：名称\|/);
    await page.keyboard.press('Enter');
    await waitFor('focus in the name box', async () => /^input\|名称\|/.test((await focused()).label));
    await page.keyboard.type('Ubuntu');
    await page.keyboard.press('Enter');
    await waitFor('name in the URL', () => page.url().includes('name=Ubuntu'));
    await rowsEqual(SUPER, 'view=all&name=Ubuntu');
    // Escape closes a filter without applying it
    await page.locator('body').focus();
    await tabTo(/^button\|筛选：操作系统\|/);
    await page.keyboard.press('Enter');
    await waitFor('focus in the filter', async () => /^input:radio\|/.test((await focused()).label));
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Escape');
    await waitFor('filter closed', async () => (await page.locator('.ant-dropdown:visible').count()) === 0);
    expect(page.url()).not.toContain('osCategory=');
  });

  it('every control has an accessible name: main screen, header filters, each dialog, the file picker, sign-in, in Chinese and English', async () => {
    await signInAs(SUPER, '?view=all');
    await rowsEqual(SUPER, 'view=all');
    await expectAllNamed('main screen');
    for (const col of ['名称', '操作系统', '虚拟化技术']) {
      await page.locator(`.ant-table-thead button.hcm-filter-trigger[aria-label="筛选：${col}"]`).click();
      await page.locator('.ant-dropdown:visible').waitFor();
      await expectAllNamed(`filter ${col}`);
      await page.keyboard.press('Escape');
      await waitFor('filter closed', async () => (await page.locator('.ant-dropdown:visible').count()) === 0);
    }
    await page.getByRole('button', { name: '创建镜像' }).click();
    await page.locator('.ant-modal:visible').getByLabel('名称').waitFor();
    await expectAllNamed('create image');
    await page.keyboard.press('Escape');
    await waitFor('dialog closed', async () => (await page.locator('.ant-modal:visible').count()) === 0);
    await page.getByRole('button', { name: '创建ISO镜像' }).click();
    const dialog = page.locator('.ant-modal:visible').first();
    await dialog.getByText('选择已有文件').click();
    await dialog.getByRole('button', { name: '选择文件' }).click();
    await page.getByTestId('share-location').waitFor();
    await page.getByRole('button', { name: /isos/ }).click();
    await page.getByRole('button', { name: 'tools-2.iso' }).waitFor();
    await expectAllNamed('file picker');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await waitFor('dialogs closed', async () => (await page.locator('.ant-modal:visible').count()) === 0);
    for (const [op, ready] of [
      ['编辑', '[data-testid=ro-url]'],
      ['删除', '.ant-btn-dangerous:not([disabled])'], // enabled once the linked VMs are listed
    ]) {
      await page.locator(`tr:has-text("Ubuntu-22-公共") button:has-text("${op}")`).click();
      await page.locator(`.ant-modal:visible ${ready}`).waitFor();
      await expectAllNamed(`${op} dialog`);
      await page.keyboard.press('Escape');
      await waitFor('dialog closed', async () => (await page.locator('.ant-modal:visible').count()) === 0);
    }
    await page.locator('tr:has-text("Ubuntu-22-公共") button:has-text("创建虚拟机")').click();
    await page.getByRole('button', { name: /检\s*查/ }).waitFor();
    await expectAllNamed('launch dialog');
    await page.keyboard.press('Escape');
    await waitFor('dialog closed', async () => (await page.locator('.ant-modal:visible').count()) === 0);
    await page.getByRole('button', { name: 'English' }).click();
    await waitFor('English labels', async () => (await tabLabel('all'))?.startsWith('All ('));
    await expectAllNamed('main screen, English');
    expect(await page.locator('.ant-table-thead button.hcm-filter-trigger[aria-label="Filter: OS"]').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Search', exact: true }).count()).toBe(1);
    await page.getByRole('button', { name: /中\s*文/ }).click();
    await waitFor('Chinese labels', async () => (await tabLabel('all'))?.startsWith('所有 ('));
    // the sign-in screen
    await page.evaluate(() => localStorage.removeItem('hcm.console.token'));
    await page.goto(`${base}/console/`);
    await page.getByRole('tab', { name: '粘贴令牌' }).waitFor();
    await expectAllNamed('sign-in');
  });

  it('switches to English', async () => {
    await signInAs(SUPER, '?view=all');
    await page.getByRole('button', { name: 'English' }).click();
    await waitFor('English labels', async () => (await tabLabel('all'))?.startsWith('All ('));
    expect(await page.textContent('body')).toContain('Create image');
    await page.getByRole('button', { name: /中\s*文/ }).click();
    await waitFor('Chinese labels', async () => (await tabLabel('all'))?.startsWith('所有 ('));
  });
});
