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
    else expect(() => policy.assertCanReadDepartmentQuota(p(role), dept)).toThrow(expect.objectContaining({ code: 'FORBIDDEN', details: { departmentId: dept } }));
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
