/**
 * The scope rules (R8-R11) over HTTP, table-driven: every role x every scope x whose image x every action.
 * The expectations below are written out by hand from the requirements, not computed by the policy under test.
 *
 * Callers: `me` of each role in department d1. Image owners: the caller itself (own), another user of d1
 * (same-dept), a user of d2 (other-dept). A service caller never owns images (it cannot create them).
 * Images are QUEUED (no bytes yet), so an allowed disable answers 409 INVALID_STATE; the READY path is
 * covered in catalog.e2e-spec.
 */
import { Role } from '../../src/access/principal';
import { answer, ApiClient, typedCallers } from '../support/api-client';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

type ScopeName = 'FEATURED' | 'PUBLIC' | 'PRIVATE';
type Rel = 'own' | 'same-dept' | 'other-dept';
/** see, edit, delete, disable, ->FEATURED, ->PUBLIC, ->PRIVATE: HTTP status expected */
type Row = [Role, ScopeName, Rel, number, number, number, number, number, number, number];

const R = Role;
const ALL_OK: number[] = [200, 200, 204, 409, 200, 200, 200];
const HIDDEN: number[] = [404, 404, 404, 404, 404, 404, 404];
const row = (role: Role, scope: ScopeName, rel: Rel, e: number[]) => [role, scope, rel, ...e] as Row;

const TABLE: Row[] = [
  // super admin: everything
  ...(['FEATURED', 'PUBLIC', 'PRIVATE'] as ScopeName[]).flatMap((s) =>
    (['own', 'same-dept', 'other-dept'] as Rel[]).map((r) => row(R.SuperAdmin, s, r, ALL_OK)),
  ),
  // service: sees everything, changes nothing
  ...(['FEATURED', 'PUBLIC', 'PRIVATE'] as ScopeName[]).flatMap((s) =>
    (['same-dept', 'other-dept'] as Rel[]).map((r) => row(R.Service, s, r, [200, 403, 403, 403, 403, 403, 403])),
  ),
  // admin: featured, public, and its own department's private images
  ...(['own', 'same-dept', 'other-dept'] as Rel[]).flatMap((r) => [row(R.Admin, 'FEATURED', r, ALL_OK), row(R.Admin, 'PUBLIC', r, ALL_OK)]),
  row(R.Admin, 'PRIVATE', 'own', ALL_OK),
  row(R.Admin, 'PRIVATE', 'same-dept', ALL_OK),
  row(R.Admin, 'PRIVATE', 'other-dept', HIDDEN),
  // user: uses featured, edits public, owns its private ones
  ...(['own', 'same-dept', 'other-dept'] as Rel[]).map((r) => row(R.User, 'FEATURED', r, [200, 403, 403, 403, 403, 403, 403])),
  row(R.User, 'PUBLIC', 'own', [200, 200, 204, 403, 403, 200, 200]),
  row(R.User, 'PUBLIC', 'same-dept', [200, 200, 403, 403, 403, 200, 403]),
  row(R.User, 'PUBLIC', 'other-dept', [200, 200, 403, 403, 403, 200, 403]),
  row(R.User, 'PRIVATE', 'own', [200, 200, 204, 403, 403, 200, 200]),
  row(R.User, 'PRIVATE', 'same-dept', HIDDEN),
  row(R.User, 'PRIVATE', 'other-dept', HIDDEN),
];

const CODE_FOR: Record<number, string[]> = {
  403: ['FORBIDDEN', 'SCOPE_CHANGE_FORBIDDEN'],
  404: ['IMAGE_NOT_FOUND'],
  409: ['INVALID_STATE'],
};

const callerOf = (role: Role): Caller => ({ sub: `${role}-me`, dept: 'd1', role });
const ownerOf = (role: Role, rel: Rel): Caller =>
  rel === 'own' ? callerOf(role) : rel === 'same-dept' ? { sub: 'other-d1', dept: 'd1', role: R.User } : { sub: 'other-d2', dept: 'd2', role: R.User };

describe.each(SHAPES)('access matrix over HTTP (%s)', (shape) => {
  let t: TestApp;
  /** the client typed by openapi.yaml, per caller */
  let api: (who?: Caller) => ApiClient;
  let zoneId: string;

  beforeAll(async () => {
    t = await startApp(shape, 'access');
    api = await typedCallers(t);
    zoneId = await createZone(t);
  });
  afterAll(() => t?.close());

  /** An image owned by `owner` in `scope`: the owner creates it private, the super admin moves it. */
  async function imageIn(scope: ScopeName, owner: Caller, name: string): Promise<string> {
    const img = await createImage(t, owner, zoneId, { name });
    if (scope !== 'PRIVATE') {
      const res = await answer(api(SUPER).PATCH('/images/{id}', { params: { path: { id: img.id as string } }, body: { scope } }));
      expect(res.status).toBe(200);
    }
    return img.id as string;
  }

  function expectStatus(res: { status: number; data?: unknown; error?: { code?: string } }, want: number, what: string): void {
    if (res.status !== want) throw new Error(`${what}: expected ${want}, got ${res.status} ${JSON.stringify(res.error ?? res.data)}`);
    if (CODE_FOR[want]) expect(CODE_FOR[want]).toContain(res.error?.code);
  }
  const path = (id: string) => ({ params: { path: { id } } });

  it.each(TABLE)('%s on a %s image (%s)', async (role, scope, rel, see, edit, del, disable, toF, toPub, toPriv) => {
    const me = callerOf(role);
    const owner = ownerOf(role, rel);
    const as = api(me);
    const tag = `${role}-${scope}-${rel}`.toLowerCase().replace(/_/g, '-');
    const name = `matrix ${tag} ${Math.random().toString(36).slice(2, 8)}`;
    const id = await imageIn(scope, owner, name);

    // see: get, list (All view), counts and quick search agree
    expectStatus(await answer(as.GET('/images/{id}', path(id))), see, 'get');
    const listed = await answer(as.GET('/images', { params: { query: { view: 'all', q: name, pageSize: 200 } } }));
    expect(listed.status).toBe(200);
    expect(listed.data!.items.map((i) => i.id).includes(id)).toBe(see === 200);
    expect(listed.data!.total).toBe(see === 200 ? 1 : 0);
    const counts = await answer(as.GET('/images/counts', { params: { query: { q: name } } }));
    expect(counts.status).toBe(200);
    expect(counts.data!.all).toBe(see === 200 ? 1 : 0);
    // the view named after the image's scope lists it exactly when the caller may see it
    const view = scope.toLowerCase() as Lowercase<ScopeName>;
    const inView = await answer(as.GET('/images', { params: { query: { view, name } } }));
    expect(inView.data!.total).toBe(see === 200 ? 1 : 0);

    // edit a descriptive field
    expectStatus(await answer(as.PATCH('/images/{id}', { ...path(id), body: { description: 'edited' } })), edit, 'edit');

    // disable (the image has no bytes yet)
    expectStatus(await answer(as.POST('/images/{id}/disable', { ...path(id), body: {} })), disable, 'disable');

    // scope changes, each on a fresh image in the same starting scope
    for (const [target, want] of [
      ['FEATURED', toF],
      ['PUBLIC', toPub],
      ['PRIVATE', toPriv],
    ] as Array<[ScopeName, number]>) {
      const fresh = await imageIn(scope, owner, `${name} to ${target}`);
      const res = await answer(as.PATCH('/images/{id}', { ...path(fresh), body: { scope: target } }));
      expectStatus(res, want, `scope ${scope}->${target}`);
      if (want === 200) expect(res.data!.scope).toBe(target);
      const after = await api(SUPER).GET('/images/{id}', path(fresh));
      expect(after.data!.scope).toBe(want === 200 ? target : scope);
    }

    // delete last
    expectStatus(await answer(as.DELETE('/images/{id}', path(id))), del, 'delete');
    const gone = await answer(api(SUPER).GET('/images/{id}', path(id)));
    expect(gone.status).toBe(del === 204 ? 404 : 200);
  });

  it.each([
    [R.SuperAdmin, 'FEATURED', 201, null],
    [R.SuperAdmin, 'PUBLIC', 201, null],
    [R.SuperAdmin, 'PRIVATE', 201, null],
    [R.Admin, 'FEATURED', 403, 'SCOPE_CHANGE_FORBIDDEN'],
    [R.Admin, 'PUBLIC', 403, 'SCOPE_CHANGE_FORBIDDEN'],
    [R.Admin, 'PRIVATE', 201, null],
    [R.User, 'FEATURED', 403, 'SCOPE_CHANGE_FORBIDDEN'],
    [R.User, 'PUBLIC', 403, 'SCOPE_CHANGE_FORBIDDEN'],
    [R.User, 'PRIVATE', 201, null],
    // a service creates nothing: the refusal is about its role, not the scope it asked for
    [R.Service, 'PRIVATE', 403, 'FORBIDDEN'],
    [R.Service, 'PUBLIC', 403, 'FORBIDDEN'],
    [R.Service, 'FEATURED', 403, 'FORBIDDEN'],
  ] as Array<[Role, ScopeName, number, string | null]>)('%s creating a %s image answers %i %s (R9)', async (role, scope, want, code) => {
    const res = await answer(
      api(callerOf(role)).POST('/images', {
        body: { kind: 'ISO', name: `create ${role} ${scope}`, osCategory: 'UBUNTU', isoUsage: 'OS', zoneId, scope, source: { type: 'UPLOAD' } },
      }),
    );
    expect(res.status).toBe(want);
    if (want === 201) {
      expect(res.data).toMatchObject({ scope, ownerId: `${role}-me`, departmentId: 'd1', status: 'INACTIVE', phase: 'QUEUED' });
    } else {
      expect(res.error?.code).toBe(code);
      if (code === 'FORBIDDEN') expect(res.error).toMatchObject({ message: expect.stringMatching(/service may not create/), details: { role: 'service' } });
    }
  });

  it('defaults to the All view for a super admin and Featured for everyone else (R11)', async () => {
    for (const [role, view] of [
      [R.SuperAdmin, 'all'],
      [R.Admin, 'featured'],
      [R.User, 'featured'],
      [R.Service, 'featured'],
    ] as Array<[Role, string]>) {
      const res = await answer(api(callerOf(role)).GET('/images'));
      expect(res.status).toBe(200);
      expect(res.data!.view).toBe(view);
      if (view === 'featured') expect(res.data!.items.every((i) => i.scope === 'FEATURED')).toBe(true);
    }
  });
});
