import { DataSource } from 'typeorm';
import { Role } from '../../src/access/principal';
import { QuotaService } from '../../src/quota/quota.service';
import { answer, ApiClient, Schemas, typedCallers, typedImageBody } from '../support/api-client';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { createZone } from '../support/fixtures';

const ADMIN: Caller = { sub: 'dept-admin', dept: 'ops', role: Role.Admin };
const SERVICE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const member = (dept: string, sub = `u-${dept}`): Caller => ({ sub, dept, role: Role.User });

type Usage = Schemas['ResourceUsageResponse'];

describe.each(SHAPES)('department quotas (%s)', (shape) => {
  let t: TestApp;
  /** the client typed by openapi.yaml, per caller: the ledger reads, the department list and reconcile go through it */
  let api: (who?: Caller) => ApiClient;
  let zoneId: string;
  let quota: QuotaService;
  let ds: DataSource;
  let n = 0;
  /** a department of its own for each test */
  const dept = () => `qd-${++n}`;

  beforeAll(async () => {
    t = await startApp(shape, 'quota', { QUOTA_SWEEP_INTERVAL_SECONDS: '0' });
    api = await typedCallers(t);
    quota = t.app.get(QuotaService);
    ds = t.app.get(DataSource);
    await quota.startupCheck;
    zoneId = await createZone(t);
  });
  afterAll(() => t?.close());

  const setLimits = (d: string, limits: Schemas['QuotaLimitsDto'], as: Caller = SUPER) =>
    answer(api(as).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: d } }, body: { limits } }));
  /** untyped on purpose: limits the contract forbids (wrong types, unknown resources) */
  const rawSetLimits = (d: string, limits: Record<string, unknown>) => t.http().patch(`/quotas/${d}`).set('Authorization', t.auth(SUPER)).send({ limits });
  const usage = async (d: string, as: Caller = SUPER): Promise<Record<string, Usage>> => {
    const res = await api(as).GET('/quotas/{departmentId}', { params: { path: { departmentId: d } } });
    expect(res.response.status).toBe(200);
    return Object.fromEntries(res.data!.resources.map((r) => [r.resource, r]));
  };
  const create = (as: Caller, over: Partial<Schemas['CreateImageDto']> = {}) => answer(api(as).POST('/images', { body: typedImageBody(zoneId, over) }));
  const reserve = (body: Schemas['CreateReservationDto'], as: Caller = SERVICE) => answer(api(as).POST('/quota-reservations', { body }));
  /** untyped on purpose: reservation bodies the contract forbids */
  const rawReserve = (body: Record<string, unknown>) => t.http().post('/quota-reservations').set('Authorization', t.auth(SERVICE)).send(body);
  const path = (id: string) => ({ params: { path: { id } } });
  /** the reservation actions a service calls */
  const rsv = {
    commit: (id: string, body: Schemas['CommitReservationDto'] = {}) => answer(api(SERVICE).POST('/quota-reservations/{id}/commit', { ...path(id), body })),
    grow: (id: string, body: Schemas['GrowReservationDto']) => answer(api(SERVICE).POST('/quota-reservations/{id}/grow', { ...path(id), body })),
    release: (id: string) => answer(api(SERVICE).POST('/quota-reservations/{id}/release', path(id))),
    refund: (id: string) => answer(api(SERVICE).POST('/quota-reservations/{id}/refund', path(id))),
  };
  /** makes a reservation look expired (test set-up; the service compares expiresAt with the clock) */
  const age = (id: string) => ds.query(`UPDATE quota_reservations SET expiresAt = ? WHERE id = ?`, ['2000-01-01 00:00:00.000', id]);

  describe('limits', () => {
    it('super admins set limits (integer or "unlimited"); a department never seen has the defaults (unlimited) and no usage', async () => {
      const d = dept();
      const before = await usage(d);
      expect(before.IMAGE_COUNT).toEqual({ resource: 'IMAGE_COUNT', limit: null, unlimited: true, used: 0, reserved: 0, remaining: null });
      expect(Object.keys(before)).toEqual(['IMAGE_COUNT', 'IMAGE_BYTES', 'VM_COUNT', 'VCPU', 'MEMORY_BYTES', 'DISK_BYTES']);

      const res = await setLimits(d, { IMAGE_COUNT: 5, IMAGE_BYTES: 1_000_000, VM_COUNT: 'unlimited' });
      expect(res.status).toBe(200);
      expect(res.data!.departmentId).toBe(d);
      const after = await usage(d);
      expect(after.IMAGE_COUNT).toMatchObject({ limit: 5, unlimited: false, used: 0, reserved: 0, remaining: 5 });
      expect(after.IMAGE_BYTES).toMatchObject({ limit: 1_000_000, remaining: 1_000_000 });
      expect(after.VM_COUNT).toMatchObject({ limit: null, unlimited: true, remaining: null });

      // resources left out keep their limit; "unlimited" lifts one
      await setLimits(d, { IMAGE_COUNT: 'unlimited' });
      const again = await usage(d);
      expect(again.IMAGE_COUNT.limit).toBeNull();
      expect(again.IMAGE_BYTES.limit).toBe(1_000_000);
    });

    it.each([
      ['negative', -1, 'must not be negative'],
      ['not an integer', 1.5, 'must be an integer'],
      ['a numeric string', '50', 'must be an integer or "unlimited"'],
      ['absurd', 1e12, 'must not exceed 1000000'],
      ['null', null, 'must be an integer or "unlimited"'],
      ['a boolean', true, 'must be an integer or "unlimited"'],
      ['another word', 'infinite', 'must be an integer or "unlimited"'],
    ])('refuses a limit that is %s with QUOTA_LIMIT_INVALID', async (_what, value, reason) => {
      const d = dept();
      const res = await rawSetLimits(d, { IMAGE_COUNT: value, VM_COUNT: 3 });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('QUOTA_LIMIT_INVALID');
      expect(res.body.details).toMatchObject({ resource: 'IMAGE_COUNT', value });
      expect(res.body.details.reason).toContain(reason);
      expect((await usage(d)).VM_COUNT.limit).toBeNull(); // nothing was applied
    });

    it('refuses absurd byte limits, unknown resources, an empty or missing limits object and a bad department id', async () => {
      const d = dept();
      const big = await setLimits(d, { IMAGE_BYTES: 2 ** 53 });
      expect(big.status).toBe(400);
      expect(big.error?.code).toBe('QUOTA_LIMIT_INVALID');
      const unknown = await rawSetLimits(d, { GPU: 1 });
      expect(unknown.status).toBe(400);
      expect(unknown.body.code).toBe('VALIDATION_FAILED');
      const empty = await setLimits(d, {});
      expect(empty.status).toBe(400);
      expect(empty.error?.code).toBe('VALIDATION_FAILED');
      // untyped on purpose: a body without the limits the contract requires, and a department id it cannot encode
      const missing = await t.http().patch(`/quotas/${d}`).set('Authorization', t.auth(SUPER)).send({});
      expect(missing.status).toBe(400);
      expect(missing.body.code).toBe('VALIDATION_FAILED');
      const badId = await t.http().get('/quotas/bad%20id').set('Authorization', t.auth(SUPER));
      expect(badId.status).toBe(400);
      expect(badId.body.code).toBe('VALIDATION_FAILED');
    });

    it('only super admins set limits; members of the department, admins and services read', async () => {
      const d = dept();
      for (const who of [ADMIN, member(d), SERVICE]) {
        const res = await setLimits(d, { IMAGE_COUNT: 1 }, who);
        expect(res.status).toBe(403);
        expect(res.error?.code).toBe('FORBIDDEN');
      }
      for (const who of [ADMIN, member(d), SERVICE, SUPER]) {
        expect((await api(who).GET('/quotas/{departmentId}', { params: { path: { departmentId: d } } })).response.status).toBe(200);
      }
      const other = await t
        .http()
        .get(`/quotas/${d}`)
        .set('Authorization', t.auth(member('elsewhere')));
      expect(other.status).toBe(403);
      expect(other.body.code).toBe('FORBIDDEN');
      const noToken = await answer(api().GET('/quotas/{departmentId}', { params: { path: { departmentId: d } } }));
      expect(noToken.status).toBe(401);
    });

    it('lists departments with ledgers to super admins and admins only', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 7 });
      const res = await api(ADMIN).GET('/quotas', { params: { query: { pageSize: 200 } } });
      expect(res.response.status).toBe(200);
      expect(res.data!.total).toBeGreaterThanOrEqual(1);
      const mine = res.data!.items.find((i) => i.departmentId === d);
      expect(mine!.resources.find((r: Usage) => r.resource === 'VM_COUNT')!.limit).toBe(7);
      expect((await api(member(d)).GET('/quotas')).response.status).toBe(403);
    });
  });

  describe('catalog create and delete', () => {
    it('an image takes one from the count when created and gives it back when deleted; a full department gets QUOTA_EXCEEDED', async () => {
      const d = dept();
      const u = member(d);
      await setLimits(d, { IMAGE_COUNT: 2 });
      const a = await create(u);
      expect(a.status).toBe(201);
      expect((await create(u)).status).toBe(201);
      expect((await usage(d)).IMAGE_COUNT).toMatchObject({ used: 2, reserved: 0, remaining: 0 });

      const third = await create(u);
      expect(third.status).toBe(409);
      expect(third.error).toMatchObject({
        code: 'QUOTA_EXCEEDED',
        correlationId: expect.any(String),
        details: { departmentId: d, resource: 'IMAGE_COUNT', requested: 1, remaining: 0, limit: 2, used: 2, reserved: 0 },
      });
      // the refused create left nothing behind, and no image
      expect((await usage(d)).IMAGE_COUNT).toMatchObject({ used: 2, reserved: 0 });
      const list = await api(u).GET('/images', { params: { query: { view: 'private' } } });
      expect(list.data!.total).toBe(2);

      expect((await api(u).DELETE('/images/{id}', path(a.data!.id))).response.status).toBe(204);
      expect((await usage(d)).IMAGE_COUNT).toMatchObject({ used: 1, reserved: 0, remaining: 1 });
      expect((await create(u)).status).toBe(201);
    });

    it('reserves the expected size as storage; a create that does not fit gives everything back', async () => {
      const d = dept();
      const u = member(d);
      await setLimits(d, { IMAGE_BYTES: 1000 });
      const a = await create(u, { expectedSizeBytes: 600 });
      expect(a.status).toBe(201);
      expect(a.data!.progress.bytesTotal).toBe(600);
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 1, reserved: 0 }, IMAGE_BYTES: { used: 0, reserved: 600, remaining: 400 } });

      const b = await create(u, { expectedSizeBytes: 600 });
      expect(b.status).toBe(409);
      expect(b.error?.details).toMatchObject({ resource: 'IMAGE_BYTES', requested: 600, remaining: 400, limit: 1000 });
      // the image count it had taken first was rolled back with it
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 1, reserved: 0 }, IMAGE_BYTES: { reserved: 600 } });

      await api(u).DELETE('/images/{id}', path(a.data!.id));
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 0, reserved: 0 }, IMAGE_BYTES: { used: 0, reserved: 0, remaining: 1000 } });
    });

    it('refuses a create of unknown size when the storage quota is used up', async () => {
      const d = dept();
      await setLimits(d, { IMAGE_BYTES: 0 });
      const res = await create(member(d));
      expect(res.status).toBe(409);
      expect(res.error?.details).toMatchObject({ resource: 'IMAGE_BYTES', remaining: 0 });
      const bad = await create(member(d), { expectedSizeBytes: -1 });
      expect(bad.status).toBe(400);
      expect(bad.error?.code).toBe('VALIDATION_FAILED');
    });

    it('lets ingestion grow the bytes while streaming, stop when the quota runs out, and commit the real size', async () => {
      const d = dept();
      const u = member(d);
      await setLimits(d, { IMAGE_BYTES: 1000 });
      const img = (await create(u)).data!;
      const r = (await quota.reservationForImage(img.id))!;
      expect(r.status).toBe('PENDING');
      expect(r.items).toEqual([
        { resource: 'IMAGE_COUNT', reserved: 0, committed: 1, pending: false },
        { resource: 'IMAGE_BYTES', reserved: 0, committed: 0, pending: true },
      ]);
      await quota.grow(r.id, 'IMAGE_BYTES' as never, 400);
      await quota.growTo(r.id, 'IMAGE_BYTES' as never, 900);
      await quota.growTo(r.id, 'IMAGE_BYTES' as never, 900); // idempotent
      expect((await usage(d)).IMAGE_BYTES).toMatchObject({ reserved: 900, remaining: 100 });
      await expect(quota.grow(r.id, 'IMAGE_BYTES' as never, 101)).rejects.toMatchObject({
        code: 'QUOTA_EXCEEDED',
        details: { resource: 'IMAGE_BYTES', requested: 101, remaining: 100 },
      });
      expect((await usage(d)).IMAGE_BYTES.reserved).toBe(900); // a refused grow keeps what it had
      const done = await quota.commit(r.id, { IMAGE_BYTES: 850 });
      expect(done.status).toBe('COMMITTED');
      expect((await usage(d)).IMAGE_BYTES).toMatchObject({ used: 850, reserved: 0, remaining: 150 });
      await quota.commit(r.id, { IMAGE_BYTES: 850 }); // a replay is a no-op
      await expect(quota.commit(r.id, { IMAGE_BYTES: 10 })).rejects.toMatchObject({ code: 'RESERVATION_NOT_PENDING' });

      await api(u).DELETE('/images/{id}', path(img.id));
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 0 }, IMAGE_BYTES: { used: 0, reserved: 0 } });
      expect((await quota.getReservation(r.id)).status).toBe('REFUNDED');
    });

    it('a create refused for quota leaves nothing: no row, no image.created event, no reservation', async () => {
      const d = dept();
      const u = member(d);
      await setLimits(d, { IMAGE_BYTES: 500 });
      const a = await create(u, { expectedSizeBytes: 400 });
      expect(a.status).toBe(201);
      const rows = async () => ({
        images: Number((await ds.query('SELECT COUNT(*) AS n FROM images WHERE departmentId = ?', [d]))[0].n),
        reservations: Number((await ds.query('SELECT COUNT(*) AS n FROM quota_reservations WHERE departmentId = ?', [d]))[0].n),
        items: Number(
          (
            await ds.query('SELECT COUNT(*) AS n FROM quota_reservation_items i JOIN quota_reservations r ON r.id = i.reservationId WHERE r.departmentId = ?', [
              d,
            ])
          )[0].n,
        ),
        created: Number((await ds.query("SELECT COUNT(*) AS n FROM event_outbox WHERE type = 'image.created' AND departmentId = ?", [d]))[0].n),
      });
      expect(await rows()).toEqual({ images: 1, reservations: 1, items: 2, created: 1 });
      // the bytes do not fit (the second ledger row refuses after the first took its share); then the count
      await setLimits(d, { IMAGE_COUNT: 2 });
      expect((await create(u, { expectedSizeBytes: 200 })).error).toMatchObject({
        code: 'QUOTA_EXCEEDED',
        details: { resource: 'IMAGE_BYTES', requested: 200, used: 0, reserved: 400 },
      });
      expect((await create(u, { expectedSizeBytes: 50 })).status).toBe(201);
      expect((await create(u, { expectedSizeBytes: 10 })).error).toMatchObject({
        code: 'QUOTA_EXCEEDED',
        details: { resource: 'IMAGE_COUNT', requested: 1, used: 2 },
      });
      expect(await rows()).toEqual({ images: 2, reservations: 2, items: 4, created: 2 });
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 2, reserved: 0 }, IMAGE_BYTES: { used: 0, reserved: 450 } });
      const refused = await ds.query("SELECT COUNT(*) AS n FROM event_outbox WHERE type = 'quota.refused' AND departmentId = ?", [d]);
      expect(Number(refused[0].n)).toBe(2);
    });

    it('a create that finds the room held by an expired reservation gives that back and succeeds', async () => {
      const d = dept();
      const u = member(d);
      await setLimits(d, { IMAGE_COUNT: 5, IMAGE_BYTES: 100 });
      const held = await reserve({ key: `expiring-${d}`, departmentId: d, amounts: { IMAGE_BYTES: 100 } });
      expect(held.status).toBe(201);
      expect((await create(u, { expectedSizeBytes: 60 })).status).toBe(409);
      await age(held.data!.id);
      const res = await create(u, { expectedSizeBytes: 60 });
      expect(res.status).toBe(201);
      expect((await quota.getReservation(held.data!.id)).status).toBe('EXPIRED');
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 1, reserved: 0 }, IMAGE_BYTES: { used: 0, reserved: 60 } });
    });

    it('holds exactly the limit when many creates race in one process', async () => {
      const d = dept();
      await setLimits(d, { IMAGE_COUNT: 10 });
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => create(member(d, `racer-${i}`))));
      const codes = results.map((r) => (r.status === 201 ? 'created' : r.error?.code));
      expect(codes.filter((c) => c === 'created')).toHaveLength(10);
      expect(codes.filter((c) => c === 'QUOTA_EXCEEDED')).toHaveLength(30);
      expect((await usage(d)).IMAGE_COUNT).toMatchObject({ used: 10, reserved: 0, remaining: 0 });
    });
  });

  describe('reservation API', () => {
    it('reserve, replay, commit with the real amount, refund', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 10, VCPU: 32 });
      const body = { key: `launch-${d}`, departmentId: d, amounts: { VM_COUNT: 2, VCPU: 8 } };
      const first = await reserve(body);
      expect(first.status).toBe(201);
      expect(first.data).toMatchObject({ key: body.key, departmentId: d, status: 'PENDING', expiresAt: expect.any(String) });
      expect(first.data!.items).toEqual([
        { resource: 'VM_COUNT', reserved: 2, committed: 0, pending: true },
        { resource: 'VCPU', reserved: 8, committed: 0, pending: true },
      ]);
      const replay = await reserve(body);
      expect(replay.status).toBe(200);
      expect(replay.data!.id).toBe(first.data!.id);
      expect(await usage(d)).toMatchObject({ VM_COUNT: { reserved: 2 }, VCPU: { reserved: 8 } });

      const reused = await reserve({ ...body, amounts: { VM_COUNT: 3 } });
      expect(reused.status).toBe(422);
      expect(reused.error?.code).toBe('IDEMPOTENCY_KEY_REUSED');

      const got = await answer(api(SERVICE).GET('/quota-reservations/{id}', path(first.data!.id)));
      expect(got.status).toBe(200);
      expect(got.data!.id).toBe(first.data!.id);

      // only one VM came up, with 4 vCPU
      const committed = await rsv.commit(first.data!.id, { amounts: { VM_COUNT: 1, VCPU: 4 } });
      expect([committed.status, committed.error?.message]).toEqual([200, undefined]);
      expect(committed.data!.status).toBe('COMMITTED');
      expect(await usage(d)).toMatchObject({ VM_COUNT: { used: 1, reserved: 0, remaining: 9 }, VCPU: { used: 4, reserved: 0, remaining: 28 } });
      expect((await rsv.commit(first.data!.id, {})).status).toBe(200); // idempotent
      const release = await rsv.release(first.data!.id);
      expect(release.status).toBe(409);
      expect(release.error).toMatchObject({ code: 'RESERVATION_NOT_PENDING', details: { status: 'COMMITTED' } });

      const refund = await rsv.refund(first.data!.id);
      expect(refund.status).toBe(200);
      expect(refund.data!.status).toBe('REFUNDED');
      expect((await rsv.refund(first.data!.id)).status).toBe(200);
      expect(await usage(d)).toMatchObject({ VM_COUNT: { used: 0, reserved: 0 }, VCPU: { used: 0, reserved: 0 } });
      // the key still answers the same (refunded) reservation
      expect((await reserve(body)).data).toMatchObject({ id: first.data!.id, status: 'REFUNDED' });
    });

    it('is all or nothing: QUOTA_EXCEEDED names the resource, what was asked and what is left, and holds nothing', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 3, VCPU: 4 });
      const a = await reserve({ key: `a-${d}`, departmentId: d, amounts: { VM_COUNT: 2, VCPU: 2 } });
      expect(a.status).toBe(201);
      const b = await reserve({ key: `b-${d}`, departmentId: d, amounts: { VM_COUNT: 1, VCPU: 3 } });
      expect(b.status).toBe(409);
      expect(b.error?.details).toEqual({ departmentId: d, resource: 'VCPU', requested: 3, remaining: 2, limit: 4, used: 0, reserved: 2 });
      expect(await usage(d)).toMatchObject({ VM_COUNT: { reserved: 2 }, VCPU: { reserved: 2 } }); // the VM_COUNT it took first went back
      // a failed key can be tried again once there is room
      expect((await rsv.release(a.data!.id)).data!.status).toBe('RELEASED');
      expect((await rsv.release(a.data!.id)).status).toBe(200); // idempotent
      const retry = await reserve({ key: `b-${d}`, departmentId: d, amounts: { VM_COUNT: 1, VCPU: 3 } });
      expect(retry.status).toBe(201);
      const more = await rsv.commit(retry.data!.id, { amounts: { VCPU: 5 } });
      expect(more.status).toBe(409);
      expect(more.error?.details).toMatchObject({ resource: 'VCPU', requested: 2, remaining: 1 });
    });

    it('no route takes any resource past its limit: reserve, grow, commit above the reservation, and a direct charge', async () => {
      for (const resource of ['VM_COUNT', 'VCPU', 'MEMORY_BYTES', 'DISK_BYTES'] as const) {
        const d = dept();
        await setLimits(d, { [resource]: 5 });
        const within = async () => {
          const u = (await usage(d))[resource];
          expect([resource, u.used + u.reserved <= 5]).toEqual([resource, true]);
          return u;
        };
        const refused = (res: { status: number; error?: { code?: string } }, what: string) =>
          expect([resource, what, res.status, res.error?.code]).toEqual([resource, what, 409, 'QUOTA_EXCEEDED']);
        refused(await reserve({ key: `over-${d}`, departmentId: d, amounts: { [resource]: 6 } }), 'reserve');
        const r = (await reserve({ key: `r-${d}`, departmentId: d, amounts: { [resource]: 3 } })).data!;
        refused(await rsv.grow(r.id, { resource, delta: 3 }), 'grow');
        refused(await rsv.grow(r.id, { resource, total: 6 }), 'grow to');
        expect(await within()).toMatchObject({ used: 0, reserved: 3 });
        refused(await rsv.commit(r.id, { amounts: { [resource]: 6 } }), 'commit above');
        expect((await rsv.commit(r.id, { amounts: { [resource]: 4 } })).status).toBe(200);
        expect(await within()).toMatchObject({ used: 4, reserved: 0 });
        // the charge VM registration uses for a VM beyond (or without) a launch reservation
        const charge = (key: string, amount: number) =>
          quota.charge({ key, callerId: 'test', departmentId: d, subjectId: key, amounts: { [resource]: amount } });
        expect((await charge(`c1-${d}`, 1)).fromReservation).toBe(false);
        await expect(charge(`c2-${d}`, 1)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { resource, requested: 1, remaining: 0, limit: 5 } });
        expect(await within()).toMatchObject({ used: 5, reserved: 0 });
        // once something goes back, it fits again
        await quota.refundByKey('test', `c1-${d}`);
        expect((await charge(`c3-${d}`, 1)).created).toBe(true);
        expect(await within()).toMatchObject({ used: 5, reserved: 0 });
      }
    });

    it('grows a reservation by delta or to a total, and validates its input', async () => {
      const d = dept();
      await setLimits(d, { DISK_BYTES: 100 });
      const r = (await reserve({ key: `g-${d}`, departmentId: d, amounts: { DISK_BYTES: 0 } })).data!;
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES', delta: 30 })).data!.items[0].reserved).toBe(30);
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES', total: 60 })).data!.items[0].reserved).toBe(60);
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES', total: 10 })).data!.items[0].reserved).toBe(60);
      const over = await rsv.grow(r.id, { resource: 'DISK_BYTES', delta: 41 });
      expect(over.status).toBe(409);
      expect(over.error?.details).toMatchObject({ resource: 'DISK_BYTES', requested: 41, remaining: 40 });
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES' })).error?.code).toBe('VALIDATION_FAILED');
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES', delta: 1, total: 2 })).error?.code).toBe('VALIDATION_FAILED');
      // untyped on purpose: a resource the contract does not know
      expect(
        (await t.http().post(`/quota-reservations/${r.id}/grow`).set('Authorization', t.auth(SERVICE)).send({ resource: 'GPU', delta: 1 })).body.code,
      ).toBe('VALIDATION_FAILED');
      expect((await rsv.grow(r.id, { resource: 'DISK_BYTES', delta: -1 })).error?.code).toBe('VALIDATION_FAILED');
    });

    it('is for services only, and answers unknown and malformed ids', async () => {
      const d = dept();
      for (const who of [SUPER, ADMIN, member(d)]) {
        const res = await reserve({ key: 'k', departmentId: d, amounts: { VM_COUNT: 1 } }, who);
        expect(res.status).toBe(403);
        expect(res.error?.code).toBe('FORBIDDEN');
      }
      const missing = await answer(api(SERVICE).GET('/quota-reservations/{id}', path('00000000-0000-4000-8000-000000000000')));
      expect(missing.status).toBe(404);
      expect(missing.error?.code).toBe('RESERVATION_NOT_FOUND');
      expect((await rsv.commit('00000000-0000-4000-8000-000000000000')).error?.code).toBe('RESERVATION_NOT_FOUND');
      expect((await rsv.release('nope')).error?.code).toBe('VALIDATION_FAILED');
      for (const bad of [
        { departmentId: d, amounts: { VM_COUNT: 1 } },
        { key: 'x', departmentId: d, amounts: {} },
        { key: 'x', departmentId: d, amounts: { VM_COUNT: -1 } },
        { key: 'x', departmentId: d, amounts: { VM_COUNT: 1.5 } },
        { key: 'x', departmentId: d, amounts: { GPU: 1 } },
        { key: 'x', departmentId: 'bad id', amounts: { VM_COUNT: 1 } },
        { key: 'x y', departmentId: d, amounts: { VM_COUNT: 1 } },
        { key: 'x', departmentId: d, amounts: { VM_COUNT: 1 }, ttlSeconds: 0 },
      ]) {
        const res = await rawReserve(bad);
        expect([res.status, res.body.code]).toEqual([400, 'VALIDATION_FAILED']);
      }
    });
  });

  describe('expiry', () => {
    it('gives back what a reservation never committed holds once it expires (sweeper)', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 5 });
      const r = (await reserve({ key: `e-${d}`, departmentId: d, amounts: { VM_COUNT: 3 }, ttlSeconds: 60 })).data!;
      expect((await usage(d)).VM_COUNT.reserved).toBe(3);
      await quota.sweep();
      expect((await usage(d)).VM_COUNT.reserved).toBe(3); // not due yet
      await age(r.id);
      const swept = await quota.sweep();
      expect(swept.expired).toBeGreaterThanOrEqual(1);
      expect((await usage(d)).VM_COUNT).toMatchObject({ reserved: 0, remaining: 5 });
      expect((await quota.getReservation(r.id)).status).toBe('EXPIRED');
      const commit = await rsv.commit(r.id);
      expect(commit.status).toBe(409);
      expect(commit.error?.details?.status).toBe('EXPIRED');
    });

    it('a commit or grow after the expiry (before any sweep) is refused as EXPIRED and gives the amount back', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 5 });
      const r = (await reserve({ key: `x-${d}`, departmentId: d, amounts: { VM_COUNT: 2 } })).data!;
      await age(r.id);
      const grow = await rsv.grow(r.id, { resource: 'VM_COUNT', delta: 1 });
      expect(grow.status).toBe(409);
      expect(grow.error).toMatchObject({ code: 'RESERVATION_NOT_PENDING', details: { status: 'EXPIRED' } });
      expect((await usage(d)).VM_COUNT.reserved).toBe(0);
    });

    it('a reserve that finds no room first gives back what expired reservations of the department hold', async () => {
      const d = dept();
      await setLimits(d, { VM_COUNT: 2 });
      const old = (await reserve({ key: `o-${d}`, departmentId: d, amounts: { VM_COUNT: 2 } })).data!;
      expect((await reserve({ key: `n-${d}`, departmentId: d, amounts: { VM_COUNT: 1 } })).status).toBe(409);
      await age(old.id);
      const res = await reserve({ key: `n-${d}`, departmentId: d, amounts: { VM_COUNT: 1 } });
      expect(res.status).toBe(201);
      expect((await usage(d)).VM_COUNT).toMatchObject({ reserved: 1, remaining: 1 });
    });
  });

  describe('reconcile', () => {
    it('reports drift (dry run), then repairs it', async () => {
      const d = dept();
      const u = member(d);
      const a = (await create(u, { expectedSizeBytes: 100 })).data!;
      await create(u);
      // ingestion finished the first one: size recorded, bytes committed
      await ds.query('UPDATE images SET sizeBytes = ? WHERE id = ?', [100, a.id]);
      await quota.commit((await quota.reservationForImage(a.id))!.id, { IMAGE_BYTES: 100 }, ['IMAGE_BYTES' as never]);
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 2, reserved: 0 }, IMAGE_BYTES: { used: 100, reserved: 0 } });

      const clean = await api(SUPER).POST('/quotas/reconcile', { body: { departmentId: d } });
      expect(clean.response.status).toBe(200);
      expect(clean.data).toEqual({ dryRun: false, departments: 1, drift: [], skipped: [] });

      await ds.query('UPDATE quota_ledger SET used = ?, reserved = ? WHERE departmentId = ? AND resource = ?', [7, 3, d, 'IMAGE_COUNT']);
      await ds.query('UPDATE quota_ledger SET used = ? WHERE departmentId = ? AND resource = ?', [5, d, 'IMAGE_BYTES']);
      const dry = await api(ADMIN).POST('/quotas/reconcile', { body: { departmentId: d, dryRun: true } });
      expect(dry.response.status).toBe(200);
      expect(dry.data!.dryRun).toBe(true);
      expect(dry.data!.drift).toEqual([
        { departmentId: d, resource: 'IMAGE_COUNT', field: 'used', recorded: 7, actual: 2, repaired: false },
        { departmentId: d, resource: 'IMAGE_COUNT', field: 'reserved', recorded: 3, actual: 0, repaired: false },
        { departmentId: d, resource: 'IMAGE_BYTES', field: 'used', recorded: 5, actual: 100, repaired: false },
      ]);
      expect((await usage(d)).IMAGE_COUNT.used).toBe(7);

      const fix = await api(SUPER).POST('/quotas/reconcile', { body: {} });
      expect(fix.response.status).toBe(200);
      expect(fix.data!.drift.filter((x) => x.departmentId === d).every((x) => x.repaired)).toBe(true);
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 2, reserved: 0 }, IMAGE_BYTES: { used: 100, reserved: 0 } });
      expect((await api(member(d)).POST('/quotas/reconcile', { body: {} })).response.status).toBe(403);
    });

    it('counts images whose usage the ledger lost (e.g. created before quotas), and a later delete gives them back', async () => {
      const d = dept();
      const u = member(d);
      const imgs = [];
      for (let i = 0; i < 3; i++) imgs.push((await create(u)).data!);
      // forget everything the quota knew about this department
      await ds.query('DELETE FROM quota_reservation_items WHERE reservationId IN (SELECT id FROM quota_reservations WHERE departmentId = ?)', [d]);
      await ds.query('DELETE FROM quota_reservations WHERE departmentId = ?', [d]);
      await ds.query('DELETE FROM quota_ledger WHERE departmentId = ?', [d]);
      await ds.query('UPDATE images SET sizeBytes = ? WHERE id = ?', [40, imgs[0].id]);
      expect((await usage(d)).IMAGE_COUNT.used).toBe(0);

      const report = await quota.reconcile({ departmentId: d });
      expect(report.drift).toEqual([
        { departmentId: d, resource: 'IMAGE_COUNT', field: 'used', recorded: 0, actual: 3, repaired: true },
        { departmentId: d, resource: 'IMAGE_BYTES', field: 'used', recorded: 0, actual: 40, repaired: true },
      ]);
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 3 }, IMAGE_BYTES: { used: 40 } });

      expect((await api(u).DELETE('/images/{id}', path(imgs[0].id))).response.status).toBe(204);
      expect(await usage(d)).toMatchObject({ IMAGE_COUNT: { used: 2 }, IMAGE_BYTES: { used: 0 } });
      expect((await quota.reconcile({ departmentId: d })).drift).toEqual([]);
    });

    it('settles delete marks left by a delete that never finished', async () => {
      const d = dept();
      const u = member(d);
      const kept = (await create(u)).data!;
      const gone = (await create(u)).data!;
      // two deletes that stopped after beforeDelete: one image is still there, the other's row went away
      await quota.markImageDeleting(kept.id, d, null);
      await quota.markImageDeleting(gone.id, d, null);
      await ds.query('DELETE FROM images WHERE id = ?', [gone.id]);
      expect((await quota.reconcile({ departmentId: d, dryRun: true })).drift).toEqual([]); // marked images count from their reservation
      await ds.query('UPDATE quota_reservations SET deletingAt = ? WHERE departmentId = ?', ['2000-01-01 00:00:00.000', d]);
      const swept = await quota.sweep();
      expect(swept.settled).toBeGreaterThanOrEqual(2);
      expect((await quota.reservationForImage(kept.id))!).toMatchObject({ status: 'PENDING', deletingAt: null }); // its bytes are still pending
      expect((await quota.reservationForImage(gone.id))!.status).toBe('REFUNDED');
      expect((await usage(d)).IMAGE_COUNT.used).toBe(1);
      expect((await quota.reconcile({ departmentId: d, dryRun: true })).drift).toEqual([]);
    });
  });
});
