import { AppError } from '../common/errors';
import { AccessPolicy, Action, Scope, View } from './access.policy';
import { Principal, Role } from './principal';

const p = (role: Role, userId = 'me', departmentId = 'd1'): Principal => ({ role, userId, departmentId, name: userId });
const img = (scope: Scope, ownerId: string, departmentId: string) => ({ id: 'i', scope, ownerId, departmentId });

describe('AccessPolicy: using an image (R8, R19)', () => {
  const policy = new AccessPolicy();
  it.each([
    [Role.User, Scope.Featured, 'other', 'd2', 'allow'],
    [Role.User, Scope.Public, 'other', 'd2', 'allow'],
    [Role.User, Scope.Private, 'me', 'd1', 'allow'],
    [Role.User, Scope.Private, 'other', 'd1', 'hidden'],
    [Role.Admin, Scope.Private, 'other', 'd1', 'forbidden'],
    [Role.Admin, Scope.Private, 'other', 'd2', 'hidden'],
    [Role.Admin, Scope.Private, 'me', 'd1', 'allow'],
    [Role.Service, Scope.Private, 'other', 'd2', 'allow'],
    [Role.SuperAdmin, Scope.Private, 'other', 'd2', 'allow'],
  ] as const)('%s using a %s image of %s/%s: %s', (role, scope, owner, dept, want) => {
    expect(policy.decide(p(role), Action.Use, img(scope, owner, dept))).toBe(want);
  });

  it('makes each view the scope intersected with what the caller sees', () => {
    expect(policy.viewFilter(p(Role.User), View.Private)).toEqual([{ scopes: [Scope.Private], ownerId: 'me' }]);
    expect(policy.viewFilter(p(Role.User), View.Featured)).toEqual([{ scopes: [Scope.Featured] }]);
    expect(policy.viewFilter(p(Role.SuperAdmin), View.All)).toBeNull();
    expect(policy.viewFilter(p(Role.Admin), View.Private)).toEqual([
      { scopes: [Scope.Private], departmentId: 'd1' },
      { scopes: [Scope.Private], ownerId: 'me' },
    ]);
  });
});

describe('AccessPolicy: quotas and VM links (the decisions quota and vm-links ask it for)', () => {
  const policy = new AccessPolicy();
  it.each([
    [Role.User, 'd1', true],
    [Role.User, 'd2', false],
    [Role.Admin, 'd2', true],
    [Role.Service, 'd2', true],
    [Role.SuperAdmin, 'd2', true],
  ] as const)("%s reading department %s's quota: %s", (role, dept, want) => {
    expect(policy.canReadDepartmentQuota(p(role), dept)).toBe(want);
    if (want) expect(() => policy.assertCanReadDepartmentQuota(p(role), dept)).not.toThrow();
    else
      expect(() => policy.assertCanReadDepartmentQuota(p(role), dept)).toThrow(expect.objectContaining({ code: 'FORBIDDEN', details: { departmentId: dept } }));
  });

  it.each([
    [Role.User, 'me', 'd2', true],
    [Role.User, 'other', 'd1', false],
    [Role.Admin, 'other', 'd1', true],
    [Role.Admin, 'me', 'd2', true],
    [Role.Admin, 'other', 'd2', false],
    [Role.Service, 'other', 'd2', true],
    [Role.SuperAdmin, 'other', 'd2', true],
  ] as const)('%s reading a VM link of %s/%s: %s', (role, owner, dept, want) => {
    expect(policy.canReadVmLink(p(role), { ownerId: owner, departmentId: dept })).toBe(want);
  });

  it("lists an image's VMs for whoever may delete it and for services; a deleted image's for super admins and services", () => {
    const other = img(Scope.Private, 'other', 'd2');
    expect(() => policy.assertCanListImageVms(p(Role.Service), other, 'i')).not.toThrow();
    expect(() => policy.assertCanListImageVms(p(Role.SuperAdmin), other, 'i')).not.toThrow();
    expect(() => policy.assertCanListImageVms(p(Role.User), other, 'i')).toThrow(expect.objectContaining({ code: 'IMAGE_NOT_FOUND' }));
    expect(() => policy.assertCanListImageVms(p(Role.User), img(Scope.Public, 'other', 'd2'), 'i')).toThrow(expect.objectContaining({ code: 'FORBIDDEN' }));
    expect([Role.Service, Role.SuperAdmin, Role.Admin, Role.User].map((r) => policy.canListVmsOfDeletedImage(p(r)))).toEqual([true, true, false, false]);
  });
});

/** Images seen from a caller 'me' of department d1 (the spec's p() default). */
const MINE_PRIVATE = img(Scope.Private, 'me', 'd1');
const DEPT_PRIVATE = img(Scope.Private, 'other', 'd1');
const FOREIGN_PRIVATE = img(Scope.Private, 'other', 'd2');
const MINE_PUBLIC = img(Scope.Public, 'me', 'd1');
const OTHER_PUBLIC = img(Scope.Public, 'other', 'd2');
const FEATURED = img(Scope.Featured, 'other', 'd2');
const MINE_FEATURED = img(Scope.Featured, 'me', 'd1');
const IMAGES = { MINE_PRIVATE, DEPT_PRIVATE, FOREIGN_PRIVATE, MINE_PUBLIC, OTHER_PUBLIC, FEATURED, MINE_FEATURED };
type Name = keyof typeof IMAGES;
const NAMES = Object.keys(IMAGES) as Name[];

/** The expected decision of `action` for every image, by role; 'hidden' where the caller may not see it. */
function table(want: Record<Role, Partial<Record<Name, string>>>, fallback: Record<Role, string>) {
  return (Object.values(Role) as Role[]).flatMap((role) => NAMES.map((name) => [role, name, want[role][name] ?? fallback[role]] as const));
}
const HIDDEN_FOR: Record<Role, Name[]> = {
  [Role.SuperAdmin]: [],
  [Role.Service]: [],
  [Role.Admin]: ['FOREIGN_PRIVATE'],
  [Role.User]: ['DEPT_PRIVATE', 'FOREIGN_PRIVATE'],
};
const hidden = (role: Role) => Object.fromEntries(HIDDEN_FOR[role].map((n) => [n, 'hidden']));

describe('AccessPolicy: every action on every kind of image (R8-R10)', () => {
  const policy = new AccessPolicy();

  it.each(
    table(
      { [Role.SuperAdmin]: {}, [Role.Service]: {}, [Role.Admin]: hidden(Role.Admin), [Role.User]: hidden(Role.User) },
      { [Role.SuperAdmin]: 'allow', [Role.Service]: 'allow', [Role.Admin]: 'allow', [Role.User]: 'allow' },
    ),
  )('%s seeing %s: %s', (role, name, want) => expect(policy.decide(p(role), Action.See, IMAGES[name])).toBe(want));

  it.each(
    table(
      {
        [Role.SuperAdmin]: {},
        [Role.Service]: {},
        [Role.Admin]: hidden(Role.Admin),
        [Role.User]: { ...hidden(Role.User), MINE_PRIVATE: 'allow', MINE_PUBLIC: 'allow', OTHER_PUBLIC: 'allow' },
      },
      { [Role.SuperAdmin]: 'allow', [Role.Service]: 'forbidden', [Role.Admin]: 'allow', [Role.User]: 'forbidden' },
    ),
  )('%s editing %s: %s', (role, name, want) => expect(policy.decide(p(role), Action.Edit, IMAGES[name])).toBe(want));

  it.each(
    table(
      {
        [Role.SuperAdmin]: {},
        [Role.Service]: {},
        [Role.Admin]: hidden(Role.Admin),
        [Role.User]: { ...hidden(Role.User), MINE_PRIVATE: 'allow', MINE_PUBLIC: 'allow' },
      },
      { [Role.SuperAdmin]: 'allow', [Role.Service]: 'forbidden', [Role.Admin]: 'allow', [Role.User]: 'forbidden' },
    ),
  )('%s deleting %s: %s', (role, name, want) => expect(policy.decide(p(role), Action.Delete, IMAGES[name])).toBe(want));

  it.each(
    table(
      { [Role.SuperAdmin]: {}, [Role.Service]: {}, [Role.Admin]: hidden(Role.Admin), [Role.User]: hidden(Role.User) },
      { [Role.SuperAdmin]: 'allow', [Role.Service]: 'forbidden', [Role.Admin]: 'allow', [Role.User]: 'forbidden' },
    ),
  )('%s enabling/disabling %s: %s', (role, name, want) => expect(policy.decide(p(role), Action.EnableDisable, IMAGES[name])).toBe(want));

  it.each([
    // a super admin moves anything anywhere
    [Role.SuperAdmin, 'FOREIGN_PRIVATE', Scope.Featured, 'allow'],
    [Role.SuperAdmin, 'FEATURED', Scope.Private, 'allow'],
    // an admin moves what it may edit, featuring included; the foreign private one stays hidden
    [Role.Admin, 'DEPT_PRIVATE', Scope.Featured, 'allow'],
    [Role.Admin, 'FEATURED', Scope.Public, 'allow'],
    [Role.Admin, 'OTHER_PUBLIC', Scope.Private, 'allow'],
    [Role.Admin, 'FOREIGN_PRIVATE', Scope.Public, 'hidden'],
    // a user: own private <-> own public, never featured, never another's
    [Role.User, 'MINE_PRIVATE', Scope.Public, 'allow'],
    [Role.User, 'MINE_PUBLIC', Scope.Private, 'allow'],
    [Role.User, 'MINE_PRIVATE', Scope.Featured, 'forbidden'],
    [Role.User, 'MINE_PUBLIC', Scope.Featured, 'forbidden'],
    [Role.User, 'MINE_FEATURED', Scope.Public, 'forbidden'],
    [Role.User, 'OTHER_PUBLIC', Scope.Private, 'forbidden'],
    [Role.User, 'FEATURED', Scope.Private, 'forbidden'],
    [Role.User, 'DEPT_PRIVATE', Scope.Public, 'hidden'],
    // a service changes nothing
    [Role.Service, 'MINE_PRIVATE', Scope.Public, 'forbidden'],
    [Role.Service, 'FEATURED', Scope.Private, 'forbidden'],
    // the same scope again is an edit: allowed where editing is
    [Role.User, 'OTHER_PUBLIC', Scope.Public, 'allow'],
    [Role.User, 'FEATURED', Scope.Featured, 'forbidden'],
    [Role.Service, 'OTHER_PUBLIC', Scope.Public, 'forbidden'],
  ] as const)('%s moving %s to %s: %s', (role, name, to, want) => {
    expect(policy.decide(p(role), Action.ChangeScope, IMAGES[name], to)).toBe(want);
  });

  it('refuses a scope change with no target scope', () => {
    expect(policy.decide(p(Role.SuperAdmin), Action.ChangeScope, MINE_PRIVATE)).toBe('forbidden');
  });

  it.each([
    [Role.SuperAdmin, [Scope.Featured, Scope.Public, Scope.Private]],
    [Role.Admin, [Scope.Private]],
    [Role.User, [Scope.Private]],
    [Role.Service, []],
  ] as const)('lets a %s create images of scopes %j (R9)', (role, scopes) => {
    const creatable = [Scope.Featured, Scope.Public, Scope.Private].filter((s) => policy.canCreate(p(role), s));
    expect(creatable).toEqual(scopes);
  });

  it('answers what may not be seen with IMAGE_NOT_FOUND, a refusal with FORBIDDEN or SCOPE_CHANGE_FORBIDDEN', () => {
    const code = (fn: () => void) => {
      try {
        fn();
        return null;
      } catch (e) {
        return (e as AppError).code;
      }
    };
    expect(code(() => policy.assert(p(Role.User), Action.See, null, 'gone'))).toBe('IMAGE_NOT_FOUND');
    expect(code(() => policy.assert(p(Role.User), Action.Delete, FOREIGN_PRIVATE, 'i'))).toBe('IMAGE_NOT_FOUND');
    expect(code(() => policy.assert(p(Role.User), Action.Delete, FEATURED, 'i'))).toBe('FORBIDDEN');
    expect(code(() => policy.assert(p(Role.User), Action.ChangeScope, MINE_PRIVATE, 'i', Scope.Featured))).toBe('SCOPE_CHANGE_FORBIDDEN');
    expect(code(() => policy.assert(p(Role.User), Action.Edit, MINE_PRIVATE, 'i'))).toBeNull();
  });

  it('opens the All view for a super admin and Featured for everyone else (R11)', () => {
    expect(policy.defaultView(p(Role.SuperAdmin))).toBe(View.All);
    for (const role of [Role.Admin, Role.User, Role.Service]) expect(policy.defaultView(p(role))).toBe(View.Featured);
  });

  it('filters the All view to what each role may see', () => {
    expect(policy.visibility(p(Role.SuperAdmin))).toBeNull();
    expect(policy.visibility(p(Role.Service))).toBeNull();
    expect(policy.visibility(p(Role.User))).toEqual([{ scopes: [Scope.Featured, Scope.Public] }, { scopes: [Scope.Private], ownerId: 'me' }]);
    expect(policy.visibility(p(Role.Admin))).toEqual([
      { scopes: [Scope.Featured, Scope.Public] },
      { scopes: [Scope.Private], departmentId: 'd1' },
      { scopes: [Scope.Private], ownerId: 'me' },
    ]);
    expect(policy.viewFilter(p(Role.Service), View.Public)).toEqual([{ scopes: [Scope.Public] }]);
  });
});
