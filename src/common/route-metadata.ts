/**
 * The metadata keys route decorators write and the error contract reads (src/common/error-contract.ts). They live
 * here, below the modules that set them (access's @PublicRoute/@Roles, rate-limit's @RateLimited), so common/ needs
 * no feature module to read a route's traits.
 */
export const PUBLIC_ROUTE = 'hcm:public';
export const ROLES_KEY = 'hcm:roles';
export const RATE_LIMIT_KEY = 'hcm:rate-limit';
