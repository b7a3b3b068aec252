import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { answer, ApiClient, typedCallers } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

/**
 * One table of searches, run on every shape at once, each answer compared with what the rule says (so the
 * shapes agree with each other too). The rule (README, "Finding images"): ids and tags match exactly (a tag
 * as stored: trimmed and lower-cased, so `Prod` finds `prod`); text (`name`, `q`) is a case-insensitive,
 * accent-sensitive substring, LIKE wildcards and backslashes taken literally; the query's outer spaces are
 * trimmed; enum filters take their exact values (anything else is 400 on both); a zone id in any case is the
 * same zone; names sort by code point. MariaDB's utf8mb4_general_ci alone would be accent-insensitive and
 * case-insensitive on ids and sort otherwise, and SQLite alone case-sensitive on tags and on non-ASCII text.
 */

type Json = Record<string, any>;
const alice: Caller = { sub: 'alice', dept: 'd1', role: Role.User };
/** another user whose id differs from alice's only in case */
const Alice: Caller = { sub: 'Alice', dept: 'D1', role: Role.User };

/** name, description, tags; every image is alice's, in the test zone */
const IMAGES: Array<[string, string, string[]]> = [
  ['Prod Server', 'the web tier', ['Prod', 'web']],
  ['café image', 'Crème brûlée', ['café']],
  ['cafe image', 'plain', ['cafe']],
  ['100% done_v2', 'back\\slash C:\\images', []],
  ['ÉCOLE Linux', 'Пример ОПИСАНИЯ', ['École']],
  ['Bang! edition', 'two  spaces', ['straße']],
  ['bang lower', 'x', []],
  ['Zeta', 'x', []],
];
const ALL = IMAGES.map(([n]) => n).sort();
const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
/** made PUBLIC (the rest stay alice's PRIVATE images) */
const PUBLIC = 'cafe image';
/** made ACTIVE (the rest stay QUEUED, INACTIVE) */
const ACTIVE = 'Prod Server';

interface Ctx {
  shape: Shape;
  t: TestApp;
  /** the client typed by openapi.yaml, per caller, on this shape's app */
  api: (who?: Caller) => ApiClient;
  zoneId: string;
}

/** [what, query (given the shape's zone), expected names or an error status, caller] */
type Case = [string, (c: Ctx) => Json, string[] | number, Caller?];
const none: string[] = [];
const CASES: Case[] = [
  // tags: exact as stored (lower-cased), however typed
  ['tag as stored', () => ({ tags: 'prod' }), ['Prod Server']],
  ['tag as created', () => ({ tags: 'Prod' }), ['Prod Server']],
  ['tag in capitals', () => ({ tags: 'PROD' }), ['Prod Server']],
  ['tag with outer spaces', () => ({ tags: ' prod ' }), ['Prod Server']],
  ['two tags, all of them', () => ({ tags: 'WEB,prod' }), ['Prod Server']],
  ['two tags nobody has both of', () => ({ tags: ['prod', 'cafe'] }), none],
  ['accented tag', () => ({ tags: 'CAFÉ' }), ['café image']],
  ['tag without its accent', () => ({ tags: 'cafe' }), ['cafe image']],
  ['non-ASCII capitals', () => ({ tags: 'ÉCOLE' }), ['ÉCOLE Linux']],
  ['accent dropped', () => ({ tags: 'ecole' }), none],
  ['sharp s', () => ({ tags: 'STRAßE' }), ['Bang! edition']],
  ['a tag prefix is not the tag', () => ({ tags: 'pro' }), none],
  // name: case-insensitive, accent-sensitive substring
  ['name substring', () => ({ name: 'server' }), ['Prod Server']],
  ['name in capitals', () => ({ name: 'PROD SERVER' }), ['Prod Server']],
  ['name with outer spaces', () => ({ name: '  cafe image  ' }), ['cafe image']],
  ['name with a doubled inner space', () => ({ name: 'Prod  Server' }), none],
  ['accented name', () => ({ name: 'CAFÉ' }), ['café image']],
  ['name without the accent', () => ({ name: 'cafe' }), ['cafe image']],
  ['non-ASCII name in lower case', () => ({ name: 'école' }), ['ÉCOLE Linux']],
  ['non-ASCII name without its accent', () => ({ name: 'ecole' }), none],
  ['% is literal', () => ({ name: '%' }), ['100% done_v2']],
  ['_ is literal', () => ({ name: 'e_v' }), ['100% done_v2']],
  ['_ alone', () => ({ name: '_' }), ['100% done_v2']],
  ['the escape character is literal', () => ({ name: '!' }), ['Bang! edition']],
  ['%% matches nothing else', () => ({ name: '0%%' }), none],
  // q: name or description, same rule, or a status
  ['q in a description', () => ({ q: 'CRÈME' }), ['café image']],
  ['q without the accent', () => ({ q: 'creme' }), none],
  ['q in Cyrillic, other case', () => ({ q: 'описания' }), ['ÉCOLE Linux']],
  ['q with a backslash', () => ({ q: 'C:\\images' }), ['100% done_v2']],
  ['q a lone backslash', () => ({ q: '\\' }), ['100% done_v2']],
  ['q with a doubled space', () => ({ q: 'two  spaces' }), ['Bang! edition']],
  ['q a single space between', () => ({ q: 'two spaces' }), none],
  ['q "image" in names', () => ({ q: 'IMAGE' }), ['100% done_v2', 'cafe image', 'café image']],
  ['q matching names in both cases', () => ({ q: 'bang' }), ['Bang! edition', 'bang lower']],
  ['q a status', () => ({ q: 'active' }), [ACTIVE]],
  ['q a status in capitals', () => ({ q: 'ACTIVE' }), [ACTIVE]],
  ['q inactive', () => ({ q: 'Inactive' }), ALL.filter((n) => n !== ACTIVE)],
  // enums: exact values
  ['status', () => ({ status: 'ACTIVE' }), [ACTIVE]],
  ['status in lower case', () => ({ status: 'active' }), 400],
  ['osCategory', () => ({ osCategory: 'CENTOS' }), ALL],
  ['osCategory in lower case', () => ({ osCategory: 'centos' }), 400],
  ['phase', () => ({ phase: 'QUEUED' }), ALL.filter((n) => n !== ACTIVE)],
  ['kind in lower case', () => ({ kind: 'image' }), 400],
  // ids: exact; a UUID in any case
  ['ownerId', () => ({ ownerId: 'alice' }), ALL],
  ['ownerId in another case is another user', () => ({ ownerId: 'ALICE' }), none],
  ['departmentId', () => ({ departmentId: 'd1' }), ALL],
  ['departmentId in another case is another department', () => ({ departmentId: 'D1' }), none],
  ['zoneId in capitals', (c) => ({ zoneId: c.zoneId.toUpperCase() }), ALL],
  // who sees what: user `Alice` is not `alice`
  ['a user whose id differs in case sees only the public one', () => ({ view: 'all' }), [PUBLIC], Alice],
  ['and none of them as private', () => ({ view: 'private' }), none, Alice],
  ['alice sees all of hers', () => ({ view: 'all' }), ALL, alice],
];

describe('search rules: the same answers on every shape', () => {
  const ctxs: Ctx[] = [];

  beforeAll(async () => {
    for (const shape of SHAPES) {
      const t = await startApp(shape, 'search');
      const api = await typedCallers(t);
      const zoneId = await createZone(t);
      const catalog = t.app.get(CatalogService);
      for (const [name, description, tags] of IMAGES) {
        const img = await createImage(t, alice, zoneId, { name, description, tags });
        if (name === PUBLIC)
          expect((await api(alice).PATCH('/images/{id}', { params: { path: { id: img.id as string } }, body: { scope: 'PUBLIC' } })).response.status).toBe(200);
        if (name === ACTIVE) {
          await catalog.transition(img.id, ImagePhase.Importing);
          await catalog.transition(img.id, ImagePhase.Verifying, { sizeBytes: 10 });
          await catalog.transition(img.id, ImagePhase.Ready, { sizeBytes: 10, checksum: 'a'.repeat(64) });
        }
      }
      ctxs.push({ shape, t, api, zoneId });
    }
  });
  afterAll(async () => {
    for (const c of ctxs) await c.t.close();
  });

  it('sorts names by code point on every shape (capitals before lower case, accented letters after z), ties by id', async () => {
    const orders: Record<string, unknown> = {};
    for (const c of ctxs) {
      const names = async (order: 'asc' | 'desc') =>
        (await c.api(SUPER).GET('/images', { params: { query: { zoneId: c.zoneId, sort: 'name', order, pageSize: 200 } } })).data!.items.map((i) => i.name);
      orders[c.shape] = { asc: await names('asc'), desc: await names('desc') };
    }
    const byCodePoint = [...ALL].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(byCodePoint.slice(0, 3)).toEqual(['100% done_v2', 'Bang! edition', 'Prod Server']);
    expect(orders).toEqual(Object.fromEntries(ctxs.map((c) => [c.shape, { asc: byCodePoint, desc: [...byCodePoint].reverse() }])));
  });

  it('identifiers differ by case on every shape: zone names, quota departments, VM ids', async () => {
    const answers: Record<string, unknown> = {};
    for (const c of ctxs) {
      const api = c.api;
      const zones = [];
      for (const name of ['Case-Zone', 'case-zone']) zones.push((await api(SUPER).POST('/zones', { body: { name, hypervisor: 'KVM' } })).response.status);
      const dup = (await api(SUPER).POST('/zones', { body: { name: 'case-zone', hypervisor: 'KVM' } })).error?.code;
      // two departments whose ids differ by case have two ledgers
      await api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: 'Dq' } }, body: { limits: { VM_COUNT: 1 } } });
      await api(SUPER).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: 'dq' } }, body: { limits: { VM_COUNT: 7 } } });
      const limit = async (d: string) =>
        (await api(SUPER).GET('/quotas/{departmentId}', { params: { path: { departmentId: d } } })).data!.resources.find((r) => r.resource === 'VM_COUNT')!
          .limit;
      // two VMs whose ids differ by case are two VMs
      const list = await api(SUPER).GET('/images', { params: { query: { zoneId: c.zoneId, name: ACTIVE } } });
      const imageId = list.data!.items[0].id;
      const vms = [];
      for (const vmId of ['VM-Case', 'vm-case']) {
        const res = await answer(
          api(COMPUTE).PUT('/vms/{vmId}/origin', {
            params: { path: { vmId } },
            body: { imageId, vmName: vmId, owner: { userId: 'alice', departmentId: 'd1' }, zoneId: c.zoneId },
          }),
        );
        vms.push([res.status, res.data?.vmId]);
      }
      answers[c.shape] = { zones, dup, limits: [await limit('Dq'), await limit('dq')], vms };
    }
    const want = {
      zones: [201, 201],
      dup: 'ZONE_NAME_TAKEN',
      limits: [1, 7],
      vms: [
        [201, 'VM-Case'],
        [201, 'vm-case'],
      ],
    };
    expect(answers).toEqual(Object.fromEntries(ctxs.map((c) => [c.shape, want])));
  });

  // untyped on purpose: the table sends queries the contract forbids (lower-case enums, tags as one string) to see the 400
  it.each(CASES)('%s', async (_what, query, want, who = SUPER) => {
    const answers: Record<string, unknown> = {};
    const counts: Record<string, unknown> = {};
    for (const c of ctxs) {
      const q: Json = { zoneId: c.zoneId, pageSize: 200, ...query(c) };
      const res = await c.t.http().get('/images').query(q).set('Authorization', c.t.auth(who));
      answers[c.shape] = res.status === 200 ? res.body.items.map((i: Json) => i.name).sort() : res.status;
      // the view counts use the same filters
      const { view: _v, pageSize: _p, ...filters } = q;
      const cnt = await c.t.http().get('/images/counts').query(filters).set('Authorization', c.t.auth(who));
      counts[c.shape] = cnt.status === 200 ? cnt.body.all : cnt.status;
    }
    const expected = typeof want === 'number' ? want : [...want].sort();
    expect(answers).toEqual(Object.fromEntries(ctxs.map((c) => [c.shape, expected])));
    if (!('view' in query(ctxs[0]))) expect(counts).toEqual(Object.fromEntries(ctxs.map((c) => [c.shape, typeof want === 'number' ? want : want.length])));
  });
});
