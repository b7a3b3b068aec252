import { CanActivate, createParamDecorator, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AppError } from '../common/errors';
import { requestContext } from '../common/request-context';
import { PUBLIC_ROUTE, ROLES_KEY } from '../common/route-metadata';
import { JwtVerifier } from './jwt';
import { Principal, Role } from './principal';

export { PUBLIC_ROUTE, ROLES_KEY };

export const QUERY_TOKEN_ROUTE = 'hcm:query-token';

/**
 * Marks a route that also takes the token as `?access_token=` when no Authorization header is sent: for the
 * browser's EventSource, which cannot set headers (the access log drops query strings, so it is not logged).
 */
export const QueryTokenAllowed = () => SetMetadata(QUERY_TOKEN_ROUTE, true);

/** Marks a route that needs no token (health, docs). */
export const PublicRoute = () => SetMetadata(PUBLIC_ROUTE, true);
/** Restricts a route to some roles; others get 403 FORBIDDEN. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

type AuthedRequest = { headers: Record<string, string | string[] | undefined>; query?: Record<string, unknown>; principal?: Principal };

/** The global guard: every route but the public ones needs a valid bearer token. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly verifier: JwtVerifier,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    let header = req.headers.authorization;
    const queryToken = req.query?.access_token;
    if (!header && typeof queryToken === 'string' && this.reflector.getAllAndOverride<boolean>(QUERY_TOKEN_ROUTE, targets)) header = `Bearer ${queryToken}`;
    if (!header || Array.isArray(header)) throw new AppError('AUTH_TOKEN_MISSING', 'Send "Authorization: Bearer <JWT>"');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new AppError('AUTH_TOKEN_INVALID', 'The Authorization header must be "Bearer <JWT>"');
    req.principal = await this.verifier.verify(m[1]);
    const store = requestContext.getStore();
    if (store) store.principal = req.principal;
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);
    if (roles && !roles.includes(req.principal.role)) {
      throw new AppError('FORBIDDEN', `This operation is for ${roles.join(', ')} callers only`, { roles });
    }
    return true;
  }
}

/** The verified caller of the current request. */
export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const p = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!p) throw new AppError('AUTH_TOKEN_MISSING', 'Send "Authorization: Bearer <JWT>"');
  return p;
});
