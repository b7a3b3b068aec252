import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { ApiClient, fieldsOf, Schemas, typedCallers, typedImageBody } from '../support/api-client';
import type { operations } from '../../console/src/api/schema';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone, imageBody } from '../support/fixtures';

type ListQuery = NonNullable<operations['listImages']['parameters']['query']>;
type CountsQuery = NonNullable<operations['countImages']['parameters']['query']>;

const alice: Caller = { sub: 'alice', dept: 'd1', role: Role.User };
const bob: Caller = { sub: 'bob', dept: 'd2', role: Role.User };
const admin: Caller = { sub: 'ada', dept: 'd1', role: Role.Admin };

/** Through the client typed by openapi.yaml (test/support/api-client.ts), except where a test sends what the contract forbids. */
describe.each(SHAPES)('catalog over HTTP (%s)', (shape) => {
  let t: TestApp;
  let as: (who?: Caller) => ApiClient;
  let zoneKvm: string;
  let zoneVmw: string;

  beforeAll(async () => {
    t = await startApp(shape, 'catalog');
    as = await typedCallers(t);
    zoneKvm = await createZone(t, 'kvm-zone', 'KVM');
    zoneVmw = await createZone(t, 'vmware-zone', 'VMWARE');
  });
  afterAll(() => t?.close());

  const list = (who: Caller, query: ListQuery = {}) => as(who).GET('/images', { params: { query } });
  const counts = (who: Caller = SUPER, query: CountsQuery = {}) => as(who).GET('/images/counts', { params: { query } });
  const getImage = (id: string, who: Caller = SUPER) => as(who).GET('/images/{id}', { params: { path: { id } } });
  const listZones = (query: NonNullable<operations['listZones']['parameters']['query']>) => as(SUPER).GET('/zones', { params: { query } });

  describe('create', () => {
    it('records every field, defaults bits to 64 and the hypervisor to the zone', async () => {
      const res = await as(alice).POST('/images', {
        body: typedImageBody(zoneVmw, {
          name: '  Win 2019  ',
          description: 'IDE build',
          osCategory: 'WINDOWS_IDE',
          osName: 'Windows Server',
          osVersion: '2019',
          format: 'vmdk',
          tags: ['Windows', 'windows', 'ide'],
        }),
      });
      expect(res.response.status).toBe(201);
      expect(res.data).toMatchObject({
        kind: 'IMAGE',
        name: 'Win 2019',
        description: 'IDE build',
        osCategory: 'WINDOWS_IDE',
        osName: 'Windows Server',
        osVersion: '2019',
        osBits: 64,
        hypervisor: 'VMWARE',
        format: 'vmdk',
        isoUsage: null,
        scope: 'PRIVATE',
        status: 'INACTIVE',
        phase: 'QUEUED',
        ownerId: 'alice',
        departmentId: 'd1',
        zoneId: zoneVmw,
        sizeBytes: null,
        checksum: null,
        source: { type: 'URL', url: 'http://10.1.2.3/images/centos.qcow2', path: null, fileSource: null },
        progress: { bytesDone: 0, bytesTotal: null, percent: null },
      });
      const created = res.data!;
      expect(created.tags).toEqual(['ide', 'windows']);
      expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
      // the new record's URL, as the contract declares on 201
      expect(res.response.headers.get('location')).toBe(`/images/${created.id}`);
      expect(new Date(created.createdAt).getTime()).toBeGreaterThan(Date.now() - 60_000);
      const again = await getImage(created.id, alice);
      expect(again.data).toEqual(created);
    });

    it('creates an ISO with format iso and its usage', async () => {
      const res = await as(alice).POST('/images', {
        body: { kind: 'ISO', name: 'virtio-win', osCategory: 'OTHER', isoUsage: 'TOOL', zoneId: zoneKvm, osBits: 32, source: { type: 'UPLOAD' } },
      });
      expect(res.response.status).toBe(201);
      expect(res.data).toMatchObject({ kind: 'ISO', format: 'iso', isoUsage: 'TOOL', osBits: 32, hypervisor: 'KVM', source: { type: 'UPLOAD', url: null } });
    });

    it.each([
      ['an ISO without usage', { kind: 'ISO', format: undefined, isoUsage: undefined }, 'isoUsage'],
      ['an ISO with format qcow2', { kind: 'ISO', isoUsage: 'OS', format: 'qcow2' }, 'format'],
      ['an IMAGE with format iso', { format: 'iso' }, 'format'],
      ['an IMAGE without format', { format: undefined }, 'format'],
      ['an IMAGE with isoUsage', { isoUsage: 'OS' }, 'isoUsage'],
      ['osBits 16', { osBits: 16 }, 'osBits'],
      ['osBits as a string', { osBits: '64' }, 'osBits'],
      ['an unknown osCategory', { osCategory: 'BEOS' }, 'osCategory'],
      ['an unknown hypervisor', { hypervisor: 'QEMU' }, 'hypervisor'],
      ['an empty name', { name: '   ' }, 'name'],
      ['a 256-character name', { name: 'x'.repeat(256) }, 'name'],
      ['a 2001-character description', { description: 'd'.repeat(2001) }, 'description'],
      ['a name that is a number', { name: 42 }, 'name'],
      ['a bad zone id', { zoneId: 'zone-1' }, 'zoneId'],
      ['a ftp URL', { source: { type: 'URL', url: 'ftp://10.0.0.1/a.qcow2' } }, 'source.url'],
      ['a URL source without url', { source: { type: 'URL' } }, 'source.url'],
      ['a FILE source without path', { source: { type: 'FILE' } }, 'source.path'],
      ['an unknown source type', { source: { type: 'NFS' } }, 'source.type'],
      ['no source', { source: undefined }, 'source'],
      ['a url on an UPLOAD source', { source: { type: 'UPLOAD', url: 'http://10.0.0.1/a' } }, 'source.url'],
      ['21 tags', { tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, 'tags'],
      ['a tag with a newline', { tags: ['ok', 'bad\ntag'] }, 'tags'],
      ['tags as a string', { tags: 'linux' }, 'tags'],
      ['an unknown property', { owner: 'someone' }, 'owner'],
      ['a scope in lower case', { scope: 'private' }, 'scope'],
    ])('refuses %s with 400 naming the field, and stores nothing', async (_what, over, field) => {
      const before = (await counts()).data!.all;
      // untyped on purpose: these bodies break the contract (wrong types, unknown fields and values, missing parts)
      const res = await t.http().post('/images').set('Authorization', t.auth(alice)).send(imageBody(zoneKvm, over));
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('VALIDATION_FAILED');
      expect(res.body.details.fields.map((f: { field: string }) => f.field)).toContain(field);
      expect((await counts()).data!.all).toBe(before);
    });

    it('refuses an unknown zone with 404 ZONE_NOT_FOUND', async () => {
      const res = await as(alice).POST('/images', { body: typedImageBody('8d0b7e0c-0000-4000-8000-000000000000') });
      expect(res.response.status).toBe(404);
      expect(res.error?.code).toBe('ZONE_NOT_FOUND');
    });
  });

  // untyped on purpose: malformed JSON, bodies and queries the contract forbids, bad paths, unknown routes
  describe('bad input never gives a 500', () => {
    it.each([
      ['malformed JSON', (r: any) => r.post('/images').set('Content-Type', 'application/json').send('{"kind": "IMAGE",'), 400, 'MALFORMED_JSON'],
      ['a JSON array body', (r: any) => r.post('/images').send([1, 2]), 400, 'VALIDATION_FAILED'],
      [
        'a JSON string body (strict JSON takes objects and arrays only)',
        (r: any) => r.post('/images').set('Content-Type', 'application/json').send('"hello"'),
        400,
        'MALFORMED_JSON',
      ],
      ['an empty body', (r: any) => r.post('/images'), 400, 'VALIDATION_FAILED'],
      ['a text body', (r: any) => r.post('/images').set('Content-Type', 'text/plain').send('hi'), 400, 'VALIDATION_FAILED'],
      ['a body over the size limit', (r: any) => r.post('/images').send({ name: 'x'.repeat(2 * 1024 * 1024) }), 413, 'PAYLOAD_TOO_LARGE'],
      ['a bad UUID in the path', (r: any) => r.get('/images/not-a-uuid'), 400, 'VALIDATION_FAILED'],
      ['a bad percent-encoding in the path', (r: any) => r.get('/images/%E0%A4%A'), 400, 'VALIDATION_FAILED'],
      ['page 0', (r: any) => r.get('/images?page=0'), 400, 'VALIDATION_FAILED'],
      ['page size 201', (r: any) => r.get('/images?pageSize=201'), 400, 'VALIDATION_FAILED'],
      ['a page that is not a number', (r: any) => r.get('/images?page=abc'), 400, 'VALIDATION_FAILED'],
      ['an unknown query parameter', (r: any) => r.get('/images?color=red'), 400, 'VALIDATION_FAILED'],
      ['an unknown view', (r: any) => r.get('/images?view=mine'), 400, 'VALIDATION_FAILED'],
      ['an unknown sort', (r: any) => r.get('/images?sort=owner'), 400, 'VALIDATION_FAILED'],
      ['a nested query object', (r: any) => r.get('/images?q[a]=b'), 400, 'VALIDATION_FAILED'],
      ['a repeated q', (r: any) => r.get('/images?q=a&q=b'), 400, 'VALIDATION_FAILED'],
      ['an oversized q', (r: any) => r.get(`/images?q=${'q'.repeat(101)}`), 400, 'VALIDATION_FAILED'],
      ['an unknown route', (r: any) => r.get('/imagez'), 404, 'ROUTE_NOT_FOUND'],
      ['a counts filter with an unknown enum', (r: any) => r.get('/images/counts?kind=VM'), 400, 'VALIDATION_FAILED'],
      ['a bad zone id filter', (r: any) => r.get('/images?zoneId=1'), 400, 'VALIDATION_FAILED'],
    ])('%s', async (_what, build, status, code) => {
      const res = await build(t.http()).set('Authorization', t.auth(alice));
      expect(res.status).toBe(status);
      expect(res.body.code).toBe(code);
      expect(res.body.correlationId).toEqual(expect.any(String));
    });
  });

  describe('list, search and counts', () => {
    let ids: Record<string, string>;
    let zoneList: string;
    const zoneQ = () => ({ zoneId: zoneList });

    beforeAll(async () => {
      ids = {};
      zoneList = await createZone(t, 'list-zone', 'KVM');
      const mk = async (key: string, who: Caller, over: Record<string, unknown>, scope?: Schemas['Scope']) => {
        const img = await createImage(t, who, (over.zoneId as string) ?? zoneList, { zoneId: zoneList, ...over });
        ids[key] = img.id;
        if (scope) await as(SUPER).PATCH('/images/{id}', { params: { path: { id: img.id } }, body: { scope } });
      };
      await mk('centos', alice, { name: 'CentOS 7.9 base', description: 'minimal', osCategory: 'CENTOS', tags: ['linux', 'base'] }, 'FEATURED');
      await mk('ubuntu', bob, { name: 'Ubuntu 22.04', description: 'with CentOS tools', osCategory: 'UBUNTU', tags: ['linux'] }, 'PUBLIC');
      await mk('win', alice, { name: 'Windows 2019', description: 'virtio drivers', osCategory: 'WINDOWS_VIRTIO', tags: ['windows', 'base'] });
      await mk('kylin', bob, { name: '麒麟 V10 服务器', description: '国产操作系统', osCategory: 'KYLIN', tags: ['linux', '国产'] });
      await mk(
        'iso',
        alice,
        { kind: 'ISO', format: undefined, isoUsage: 'OS', name: 'CentOS 7 DVD 100%_off', osCategory: 'CENTOS', tags: ['linux', 'iso'] },
        'PUBLIC',
      );
      await mk('vmw', alice, { name: 'vmware image', osCategory: 'DEBIAN', zoneId: zoneVmw, format: 'vmdk' }, 'PUBLIC');
    });

    const idsOf = (res: { data?: { items: Array<{ id: string }> } }) => res.data!.items.map((i) => i.id).sort();
    const want = (...keys: string[]) => keys.map((k) => ids[k]).sort();

    it('filters by tags (all must match)', async () => {
      expect(idsOf(await list(SUPER, { ...zoneQ(), tags: ['linux'] }))).toEqual(want('centos', 'ubuntu', 'kylin', 'iso'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), tags: ['linux', 'base'] }))).toEqual(want('centos'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), tags: ['base,windows'] }))).toEqual(want('win'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), tags: ['国产'] }))).toEqual(want('kylin'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), tags: ['linux', 'nope'] }))).toEqual([]);
    });

    it('pages a tag filter in the list order, as the unfiltered list orders the same images, for every caller', async () => {
      // on MariaDB a tag filter in createdAt order is read from the tags' own (tag, createdAt, imageId) index
      // (issue 16); the unfiltered list walks the images: both must give one order
      const inOrder = async (who: Caller, order: 'asc' | 'desc', tags: string[]) => {
        const all = (await list(who, { ...zoneQ(), view: 'all', order, pageSize: 100 })).data!.items;
        return all.filter((i: { tags: string[] }) => tags.every((tag) => i.tags.includes(tag))).map((i: { id: string }) => i.id);
      };
      for (const who of [SUPER, alice, bob]) {
        for (const order of ['desc', 'asc'] as const) {
          for (const tags of [['linux'], ['linux', 'base'], ['base']]) {
            const expected = await inOrder(who, order, tags);
            const pages: string[] = [];
            for (let page = 1; page <= 3; page++) {
              const res = await list(who, { ...zoneQ(), view: 'all', order, tags, pageSize: 2, page });
              expect(res.data!.total).toBe(expected.length);
              pages.push(...res.data!.items.map((i: { id: string }) => i.id));
            }
            expect([who.sub, order, tags, pages]).toEqual([who.sub, order, tags, expected]);
          }
        }
      }
      expect(await inOrder(SUPER, 'desc', ['linux'])).toEqual([ids.iso, ids.kylin, ids.ubuntu, ids.centos]);
    });

    it('keeps a retagged image in its place in a tag filter (its tag rows carry its createdAt)', async () => {
      const before = (await list(SUPER, { ...zoneQ(), tags: ['base'] })).data!.items.map((i: { id: string }) => i.id);
      expect(before).toEqual([ids.win, ids.centos]);
      await as(SUPER).PATCH('/images/{id}', { params: { path: { id: ids.kylin } }, body: { tags: ['linux', '国产', 'base'] } });
      try {
        expect((await list(SUPER, { ...zoneQ(), tags: ['base'] })).data!.items.map((i: { id: string }) => i.id)).toEqual([ids.kylin, ids.win, ids.centos]);
        expect((await list(SUPER, { ...zoneQ(), tags: ['base'], order: 'asc' })).data!.items.map((i: { id: string }) => i.id)).toEqual([
          ids.centos,
          ids.win,
          ids.kylin,
        ]);
      } finally {
        await as(SUPER).PATCH('/images/{id}', { params: { path: { id: ids.kylin } }, body: { tags: ['linux', '国产'] } });
      }
    });

    it('filters by kind, OS category, hypervisor, status, zone and owner', async () => {
      expect(idsOf(await list(SUPER, { ...zoneQ(), kind: 'ISO' }))).toEqual(want('iso'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), osCategory: 'CENTOS' }))).toEqual(want('centos', 'iso'));
      expect(idsOf(await list(SUPER, { hypervisor: 'VMWARE', osCategory: 'DEBIAN' }))).toEqual(want('vmw'));
      expect(idsOf(await list(SUPER, { zoneId: zoneVmw, name: 'vmware' }))).toEqual(want('vmw'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), ownerId: 'bob' }))).toEqual(want('ubuntu', 'kylin'));
      expect((await list(SUPER, { ...zoneQ(), status: 'ACTIVE' })).data!.total).toBe(0);
    });

    it('quick-searches name, description and status, case-insensitively, with LIKE wildcards taken literally', async () => {
      expect(idsOf(await list(SUPER, { ...zoneQ(), q: 'centos' }))).toEqual(want('centos', 'ubuntu', 'iso'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), q: 'VIRTIO' }))).toEqual(want('win'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), q: '麒麟' }))).toEqual(want('kylin'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), q: '100%_' }))).toEqual(want('iso'));
      expect(idsOf(await list(SUPER, { ...zoneQ(), q: '%' }))).toEqual(want('iso'));
      expect((await list(SUPER, { ...zoneQ(), q: 'inactive' })).data!.total).toBe(5);
      expect(idsOf(await list(SUPER, { ...zoneQ(), name: 'ubuntu' }))).toEqual(want('ubuntu'));
    });

    it('shows a user only what it may see, in every view', async () => {
      expect(idsOf(await list(alice, { ...zoneQ(), view: 'all' }))).toEqual(want('centos', 'ubuntu', 'win', 'iso'));
      expect(idsOf(await list(alice, { ...zoneQ(), view: 'private' }))).toEqual(want('win'));
      expect(idsOf(await list(alice, { ...zoneQ(), view: 'public' }))).toEqual(want('ubuntu', 'iso'));
      expect(idsOf(await list(alice, { ...zoneQ() }))).toEqual(want('centos'));
      expect(idsOf(await list(bob, { ...zoneQ(), view: 'private' }))).toEqual(want('kylin'));
      expect((await list(alice, { ...zoneQ(), view: 'all', q: '麒麟' })).data!.total).toBe(0);
      expect((await list(alice, { ...zoneQ(), view: 'all', ownerId: 'bob' })).data!.items.map((i: { id: string }) => i.id)).toEqual([ids.ubuntu]);
      expect((await getImage(ids.kylin, alice)).response.status).toBe(404);
      // the admin of d1 sees d1's private images (alice's), not d2's (bob's)
      expect(idsOf(await list(admin, { ...zoneQ(), view: 'private' }))).toEqual(want('win'));
    });

    it('counts every view in one call, with the filters applied', async () => {
      expect((await counts(alice, zoneQ())).data).toEqual({ all: 4, featured: 1, public: 2, private: 1 });
      expect((await counts(alice, { ...zoneQ(), tags: ['linux'] })).data).toEqual({ all: 3, featured: 1, public: 2, private: 0 });
      expect((await counts(SUPER, zoneQ())).data).toEqual({ all: 5, featured: 1, public: 2, private: 2 });
      expect((await counts(bob, zoneQ())).data).toEqual({ all: 4, featured: 1, public: 2, private: 1 });
    });

    it('sorts by name and pages with a stable total', async () => {
      const asc = await list(SUPER, { ...zoneQ(), sort: 'name', order: 'asc', pageSize: 2 });
      expect(asc.data!.total).toBe(5);
      expect(asc.data!.items.map((i: { name: string }) => i.name)).toEqual(['CentOS 7 DVD 100%_off', 'CentOS 7.9 base']);
      const page3 = await list(SUPER, { ...zoneQ(), sort: 'name', order: 'asc', pageSize: 2, page: 3 });
      expect(page3.data).toMatchObject({ total: 5, page: 3, pageSize: 2 });
      expect(page3.data!.items).toHaveLength(1);
      const all: string[] = [];
      for (let page = 1; page <= 3; page++)
        all.push(...(await list(SUPER, { ...zoneQ(), sort: 'name', pageSize: 2, page })).data!.items.map((i: { id: string }) => i.id));
      expect(all.sort()).toEqual(
        Object.entries(ids)
          .filter(([k]) => k !== 'vmw')
          .map(([, v]) => v)
          .sort(),
      );
      const beyond = await list(SUPER, { ...zoneQ(), page: 99 });
      expect(beyond.data).toMatchObject({ items: [], total: 5 });
    });

    it('sorts by size and by creation time', async () => {
      const catalog = t.app.get(CatalogService);
      await catalog.transition(ids.centos, ImagePhase.Importing);
      await catalog.transition(ids.centos, ImagePhase.Verifying, { sizeBytes: 5_000_000_000 });
      await catalog.transition(ids.centos, ImagePhase.Ready, { sizeBytes: 5_000_000_000, checksum: 'a'.repeat(64) });
      await catalog.transition(ids.win, ImagePhase.Importing);
      await catalog.transition(ids.win, ImagePhase.Verifying, { sizeBytes: 1_000 });
      await catalog.transition(ids.win, ImagePhase.Ready, { sizeBytes: 1_000 });
      const bySize = await list(SUPER, { ...zoneQ(), sort: 'sizeBytes', order: 'desc', status: 'ACTIVE' });
      expect(bySize.data!.items.map((i: { id: string; sizeBytes: number | null }) => [i.id, i.sizeBytes])).toEqual([
        [ids.centos, 5_000_000_000],
        [ids.win, 1_000],
      ]);
      const byCreated = await list(SUPER, { ...zoneQ(), sort: 'createdAt', order: 'asc' });
      const times = byCreated.data!.items.map((i: { createdAt: string }) => new Date(i.createdAt).getTime());
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect((await list(SUPER, { ...zoneQ(), q: 'active' })).data!.total).toBe(2);
    });
  });

  describe('sorting and paging', () => {
    it('stores createdAt in milliseconds: images created a few ms apart sort in the order they were created', async () => {
      const zone = await createZone(t);
      const made: Array<{ id: string; createdAt: string }> = [];
      for (let i = 0; i < 8; i++) {
        made.push((await createImage(t, alice, zone, { name: `ms-${i}` })) as { id: string; createdAt: string });
        await new Promise((r) => setTimeout(r, 3));
      }
      expect(new Set(made.map((m) => m.createdAt)).size).toBe(8);
      expect(made.some((m) => !m.createdAt.endsWith('.000Z'))).toBe(true);
      for (const order of ['asc', 'desc'] as const) {
        const res = await list(SUPER, { zoneId: zone, sort: 'createdAt', order });
        const want = made.map((m) => m.id);
        expect(res.data!.items.map((i: { id: string }) => i.id)).toEqual(order === 'asc' ? want : [...want].reverse());
        // what the list answers is what was stored
        expect(res.data!.items.map((i: { createdAt: string }) => i.createdAt)).toEqual((order === 'asc' ? made : [...made].reverse()).map((m) => m.createdAt));
      }
    });

    it('pages through every sort without repeating or skipping an image, ties broken by id', async () => {
      const zone = await createZone(t);
      // equal names and sizes, created as fast as the service takes them (many share a millisecond)
      const ids = (await Promise.all(Array.from({ length: 23 }, () => createImage(t, alice, zone, { name: 'same name' })))).map((i) => i.id as string);
      const sorted = [...ids].sort();
      for (const sort of ['name', 'createdAt', 'sizeBytes'] as const) {
        for (const order of ['asc', 'desc'] as const) {
          const whole = (await list(SUPER, { zoneId: zone, sort, order, pageSize: 200 })).data!.items.map((i: { id: string }) => i.id);
          const paged: string[] = [];
          for (let page = 1; page <= 6; page++) {
            const res = await list(SUPER, { zoneId: zone, sort, order, pageSize: 4, page });
            expect(res.data!.total).toBe(23);
            paged.push(...res.data!.items.map((i: { id: string }) => i.id));
          }
          expect([sort, order, paged.length, new Set(paged).size]).toEqual([sort, order, 23, 23]);
          expect([sort, order, [...paged].sort()]).toEqual([sort, order, sorted]);
          // stable: the pages read the same order as one big page, and again the same
          expect([sort, order, paged]).toEqual([sort, order, whole]);
          expect((await list(SUPER, { zoneId: zone, sort, order, pageSize: 200 })).data!.items.map((i: { id: string }) => i.id)).toEqual(whole);
          // equal keys are ordered by id, in the sort's direction
          if (sort !== 'createdAt') expect([sort, order, paged]).toEqual([sort, order, order === 'asc' ? sorted : [...sorted].reverse()]);
        }
      }
      // zones page the same way: name, then id
      const zones = (await listZones({ pageSize: 200 })).data!.items.map((z: { id: string }) => z.id);
      const zonePages: string[] = [];
      for (let page = 1; page <= Math.ceil(zones.length / 2); page++)
        zonePages.push(...(await listZones({ pageSize: 2, page })).data!.items.map((z: { id: string }) => z.id));
      expect(zonePages).toEqual(zones);
    });
  });

  describe('edit (R18)', () => {
    it('edits descriptive fields and replaces tags', async () => {
      const img = await createImage(t, alice, zoneKvm, { tags: ['a'] });
      const res = await as(alice).PATCH('/images/{id}', {
        params: { path: { id: img.id } },
        body: { name: 'renamed', description: 'd', osCategory: 'ROCKY', osName: 'Rocky', osVersion: '9', osBits: 32, tags: ['x', 'y'] },
      });
      expect(res.response.status).toBe(200);
      expect(res.data).toMatchObject({
        name: 'renamed',
        description: 'd',
        osCategory: 'ROCKY',
        osName: 'Rocky',
        osVersion: '9',
        osBits: 32,
        tags: ['x', 'y'],
        format: 'qcow2',
      });
    });

    it('answers exactly what the next read answers, though it does not read the row back (issue 14)', async () => {
      const img = await createImage(t, alice, zoneKvm, { tags: ['b'] });
      for (const body of [
        { name: 'édit-1', osBits: 32 as const },
        { tags: ['zeta', 'Alpha', 'ä', 'b'] },
        { description: 'only this', tags: [] },
        { name: 'édit-1' },
      ]) {
        const res = await as(alice).PATCH('/images/{id}', { params: { path: { id: img.id } }, body });
        expect(res.response.status).toBe(200);
        expect(res.data).toEqual((await getImage(img.id, alice)).data);
      }
    });

    it.each([
      ['hypervisor', { hypervisor: 'XEN' }],
      ['format', { format: 'raw' }],
      ['source', { source: { type: 'URL', url: 'http://10.0.0.9/other.qcow2' } }],
      ['url', { url: 'http://10.0.0.9/other.qcow2' }],
      ['kind', { kind: 'ISO' }],
      ['zoneId', { zoneId: '8d0b7e0c-0000-4000-8000-000000000001' }],
    ])('never changes %s: 400 IMMUTABLE_FIELD and nothing changes', async (field, body) => {
      const img = await createImage(t, alice, zoneKvm);
      // untyped on purpose: the contract's UpdateImageDto has none of these fields
      const res = await t
        .http()
        .patch(`/images/${img.id}`)
        .set('Authorization', t.auth(alice))
        .send({ ...body, name: 'should not stick' });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('IMMUTABLE_FIELD');
      expect(res.body.details.fields.map((f: { field: string }) => f.field)).toEqual([field]);
      const after = await getImage(img.id, alice);
      expect(after.data).toEqual(img);
    });

    it('refuses isoUsage on an IMAGE', async () => {
      const img = await createImage(t, alice, zoneKvm);
      const res = await as(alice).PATCH('/images/{id}', { params: { path: { id: img.id } }, body: { isoUsage: 'OS' } });
      expect(res.response.status).toBe(400);
      expect(fieldsOf(res.error)[0]).toBe('isoUsage');
    });
  });

  describe('enable and disable (R7)', () => {
    it('disables a READY image with a reason and enables it again', async () => {
      const img = await createImage(t, alice, zoneKvm);
      const catalog = t.app.get(CatalogService);
      await catalog.transition(img.id, ImagePhase.Importing);
      await catalog.transition(img.id, ImagePhase.Verifying);
      await catalog.transition(img.id, ImagePhase.Ready, { sizeBytes: 10, checksum: 'b'.repeat(64) });
      const off = await as(admin).POST('/images/{id}/disable', { params: { path: { id: img.id } }, body: { reason: 'broken drivers' } });
      expect(off.response.status).toBe(200);
      expect(off.data).toMatchObject({ status: 'INACTIVE', phase: 'DISABLED', statusReason: 'broken drivers' });
      expect((await list(SUPER, { q: 'inactive', ownerId: 'alice', phase: 'DISABLED' })).data!.items.map((i: { id: string }) => i.id)).toEqual([img.id]);
      const on = await as(admin).POST('/images/{id}/enable', { params: { path: { id: img.id } } });
      expect(on.response.status).toBe(200);
      expect(on.data).toMatchObject({ status: 'ACTIVE', phase: 'READY', statusReason: null });
    });

    it('refuses to enable an image that never got its bytes', async () => {
      const img = await createImage(t, alice, zoneKvm);
      const res = await as(SUPER).POST('/images/{id}/enable', { params: { path: { id: img.id } } });
      expect(res.response.status).toBe(409);
      expect(res.error).toMatchObject({ code: 'INVALID_STATE', details: { phase: 'QUEUED', status: 'INACTIVE' } });
    });
  });

  describe('zones', () => {
    it('creates, renames, lists and deletes zones; refuses duplicates and deleting a zone in use', async () => {
      const id = await createZone(t, 'zone-tmp', 'XEN');
      const dup = await as(SUPER).POST('/zones', { body: { name: 'zone-tmp', hypervisor: 'KVM' } });
      expect(dup.response.status).toBe(409);
      expect(dup.error?.code).toBe('ZONE_NAME_TAKEN');
      const renamed = await as(SUPER).PATCH('/zones/{id}', { params: { path: { id } }, body: { name: 'zone-tmp2', description: 'x' } });
      expect(renamed.data).toMatchObject({ id, name: 'zone-tmp2', hypervisor: 'XEN', description: 'x' });
      const listed = await as(alice).GET('/zones');
      expect(listed.data!.items.map((z: { name: string }) => z.name)).toEqual(expect.arrayContaining(['kvm-zone', 'vmware-zone', 'zone-tmp2']));
      const img = await createImage(t, alice, id);
      expect(img.hypervisor).toBe('XEN');
      const inUse = await as(SUPER).DELETE('/zones/{id}', { params: { path: { id } } });
      expect(inUse.response.status).toBe(409);
      expect(inUse.error).toMatchObject({ code: 'ZONE_IN_USE', details: { images: 1 } });
      expect((await as(alice).DELETE('/images/{id}', { params: { path: { id: img.id } } })).response.status).toBe(204);
      expect((await as(SUPER).DELETE('/zones/{id}', { params: { path: { id } } })).response.status).toBe(204);
      expect((await as(SUPER).GET('/zones/{id}', { params: { path: { id } } })).error?.code).toBe('ZONE_NOT_FOUND');
    });

    it.each([
      [{ name: '', hypervisor: 'KVM' }, 'name'],
      [{ name: ' padded ', hypervisor: 'KVM' }, 'name'],
      [{ name: 'z'.repeat(65), hypervisor: 'KVM' }, 'name'],
      [{ name: 'ok', hypervisor: 'kvm' }, 'hypervisor'],
      [{ name: 'ok', hypervisor: 'KVM', extra: 1 }, 'extra'],
    ])('refuses a bad zone %j', async (body, field) => {
      // untyped on purpose: bad names, an unknown hypervisor value, an unknown field
      const res = await t.http().post('/zones').set('Authorization', t.auth(SUPER)).send(body);
      expect(res.status).toBe(400);
      expect(res.body.details.fields.map((f: { field: string }) => f.field)).toContain(field);
    });
  });
});
