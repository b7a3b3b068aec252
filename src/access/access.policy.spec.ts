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
