import { Injectable } from '@nestjs/common';
import { AppError, ErrorSet, notFound } from '../common/errors';
import { Principal, Role } from './principal';

/** Image scopes. Defined here because the scope rules are access rules. */
export enum Scope {
  Featured = 'FEATURED',
  Public = 'PUBLIC',
  Private = 'PRIVATE',
}

/** List views. */
export enum View {
  All = 'all',
  Featured = 'featured',
  Public = 'public',
  Private = 'private',
}

export enum Action {
  See = 'see',
  Use = 'use',
  Edit = 'edit',
  Delete = 'delete',
  ChangeScope = 'changeScope',
  EnableDisable = 'enableDisable',
}

/** What the policy needs to know of an image. */
export interface Guarded {
  id: string;
  scope: Scope;
  ownerId: string;
  departmentId: string;
}

export type Decision = 'allow' | 'forbidden' | 'hidden';

/**
 * One OR-ed clause of a visibility filter: images of one of `scopes`, optionally narrowed to an owner or
 * department. An empty list of clauses matches nothing; `null` matches everything.
 */
export interface ScopeClause {
  scopes: Scope[];
  ownerId?: string;
  departmentId?: string;
}
export type VisibilityFilter = ScopeClause[] | null;

const isOwner = (p: Principal, i: Guarded) => i.ownerId === p.userId;
const sameDept = (p: Principal, i: Guarded) => i.departmentId === p.departmentId;

/**
 * The scope rules in one place. Every service asks here before it acts:
 *
 * | role        | sees                                             | uses                | edits                                       |
 * |-------------|--------------------------------------------------|---------------------|---------------------------------------------|
 * | super_admin | everything                                       | everything          | everything                                  |
 * | service     | everything                                       | everything          | nothing                                     |
 * | admin       | featured, public, private of own department       | featured, public, own | featured, public, private of own department |
 * | user        | featured, public, own private                     | same as sees        | public, own private                         |
 *
 * Deleting: super admins anything; admins featured, public and private of their department; users their own.
 * Enable/disable: admins and super admins, on what they see. Scope changes: see `scopeChange`.
 * What a caller may not see is "not found", never "forbidden", so private images never leak.
 */
@Injectable()
export class AccessPolicy {
  canSee(p: Principal, i: Guarded): boolean {
    switch (p.role) {
      case Role.SuperAdmin:
      case Role.Service:
        return true;
      case Role.Admin:
        return i.scope !== Scope.Private || sameDept(p, i) || isOwner(p, i);
      case Role.User:
        return i.scope !== Scope.Private || isOwner(p, i);
    }
  }

  decide(p: Principal, action: Action, i: Guarded, targetScope?: Scope): Decision {
    if (!this.canSee(p, i)) return 'hidden';
    return this.allowed(p, action, i, targetScope) ? 'allow' : 'forbidden';
  }

  private allowed(p: Principal, action: Action, i: Guarded, targetScope?: Scope): boolean {
    const role = p.role;
    switch (action) {
      case Action.See:
        return true;
      case Action.Use:
        if (role === Role.SuperAdmin || role === Role.Service) return true;
        return i.scope !== Scope.Private || isOwner(p, i);
      case Action.Edit:
        return this.canEdit(p, i);
      case Action.Delete:
        switch (role) {
          case Role.SuperAdmin:
            return true;
          case Role.Admin:
            return true; // everything an admin sees: featured, public, own department's private
          case Role.User:
            return i.scope !== Scope.Featured && isOwner(p, i);
          case Role.Service:
            return false;
        }
        return false;
      case Action.EnableDisable:
        return role === Role.SuperAdmin || role === Role.Admin;
      case Action.ChangeScope:
        return targetScope !== undefined && this.scopeChange(p, i, targetScope);
    }
  }

  private canEdit(p: Principal, i: Guarded): boolean {
    switch (p.role) {
      case Role.SuperAdmin:
        return true;
      case Role.Service:
        return false;
      case Role.Admin:
        return true; // featured, public, and own department's private (the only private it sees)
      case Role.User:
        return i.scope === Scope.Public || (i.scope === Scope.Private && isOwner(p, i));
    }
  }

  /**
   * A super admin may set any scope; an admin may feature what it may edit and move it between
   * scopes; a user may make their own private image public and take their own public image back to private.
   */
  private scopeChange(p: Principal, i: Guarded, to: Scope): boolean {
    if (to === i.scope) return this.canEdit(p, i);
    switch (p.role) {
      case Role.SuperAdmin:
        return true;
      case Role.Admin:
        return this.canEdit(p, i);
      case Role.User:
        return isOwner(p, i) && i.scope !== Scope.Featured && to !== Scope.Featured;
      case Role.Service:
        return false;
    }
  }

  /** Everyone but services creates private; only a super admin creates featured or public directly. */
  canCreate(p: Principal, scope: Scope): boolean {
    if (p.role === Role.Service) return false;
    return scope === Scope.Private || p.role === Role.SuperAdmin;
  }

  /** Throws IMAGE_NOT_FOUND for what the caller may not see, FORBIDDEN (or SCOPE_CHANGE_FORBIDDEN) otherwise. */
  assert(p: Principal, action: Action, i: Guarded | null | undefined, id: string, targetScope?: Scope): asserts i is Guarded {
    if (!i) throw notFound('IMAGE', id);
    const d = this.decide(p, action, i, targetScope);
    if (d === 'hidden') throw notFound('IMAGE', id);
    if (d === 'forbidden') {
      if (action === Action.ChangeScope) {
        throw new AppError('SCOPE_CHANGE_FORBIDDEN', `A ${p.role} may not move this image from ${i.scope} to ${targetScope}`, {
          from: i.scope,
          to: targetScope,
        });
      }
      throw new AppError('FORBIDDEN', `A ${p.role} may not ${action} this image`, { action });
    }
  }

  // ------------------------------------------------------------------ beyond images: quotas and VM links

  /** A department's quota: super admins, admins and services read any department; users only their own. */
  canReadDepartmentQuota(p: Principal, departmentId: string): boolean {
    return p.role !== Role.User || p.departmentId === departmentId;
  }

  /** Throws FORBIDDEN where `canReadDepartmentQuota` says no. */
  assertCanReadDepartmentQuota(p: Principal, departmentId: string): void {
    if (!this.canReadDepartmentQuota(p, departmentId)) {
      throw new AppError('FORBIDDEN', 'Users may read their own department quota only', { departmentId });
    }
  }

  /**
   * The VMs linked to an image that exists: a service reads them for any image; anyone else where they may delete
   * the image (they are shown before a delete). Throws like `assert(p, Action.Delete, ...)`.
   */
  assertCanListImageVms(p: Principal, image: Guarded, imageId: string): void {
    if (p.role !== Role.Service) this.assert(p, Action.Delete, image, imageId);
  }

  /** After a confirmed delete the image is gone, the VMs are not: super admins and services still read its links. */
  canListVmsOfDeletedImage(p: Principal): boolean {
    return p.role === Role.Service || p.role === Role.SuperAdmin;
  }

  /** One VM link: services and super admins read every one; an admin its department's and its own; a user their own. */
  canReadVmLink(p: Principal, link: { departmentId: string; ownerId: string }): boolean {
    switch (p.role) {
      case Role.Service:
      case Role.SuperAdmin:
        return true;
      case Role.Admin:
        return link.departmentId === p.departmentId || link.ownerId === p.userId;
      case Role.User:
        return link.ownerId === p.userId;
    }
  }

  /** The default view is All for a super admin, Featured for everyone else. */
  defaultView(p: Principal): View {
    return p.role === Role.SuperAdmin ? View.All : View.Featured;
  }

  /** Everything the caller may see (the All view). `null` means no restriction. */
  visibility(p: Principal): VisibilityFilter {
    switch (p.role) {
      case Role.SuperAdmin:
      case Role.Service:
        return null;
      case Role.Admin:
        return [
          { scopes: [Scope.Featured, Scope.Public] },
          { scopes: [Scope.Private], departmentId: p.departmentId },
          { scopes: [Scope.Private], ownerId: p.userId },
        ];
      case Role.User:
        return [{ scopes: [Scope.Featured, Scope.Public] }, { scopes: [Scope.Private], ownerId: p.userId }];
    }
  }

  /** A view is its scope intersected with what the caller may see (so Private is the caller's own private images). */
  viewFilter(p: Principal, view: View): VisibilityFilter {
    const visible = this.visibility(p);
    const scope = view === View.Featured ? Scope.Featured : view === View.Public ? Scope.Public : view === View.Private ? Scope.Private : null;
    if (scope === null) return visible;
    if (visible === null) return [{ scopes: [scope] }];
    return visible.filter((c) => c.scopes.includes(scope)).map((c) => ({ ...c, scopes: [scope] }));
  }
}

/** `assert` for seeing an image: another user's private image is hidden, never forbidden. */
export const SEE_ERRORS: ErrorSet = ['IMAGE_NOT_FOUND'];
/** `assert` for any other action on an image. */
export const ACT_ERRORS: ErrorSet = ['IMAGE_NOT_FOUND', 'FORBIDDEN'];
/** `assert` for a scope change, and `canCreate` refused by the create. */
export const SCOPE_ERRORS: ErrorSet = ['SCOPE_CHANGE_FORBIDDEN'];
