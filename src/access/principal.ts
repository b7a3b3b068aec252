/**
 * The caller's identity is a foundation type (src/common/principal.ts): common/request-context carries it and
 * common/ imports no feature module. Access re-exports it, so features keep importing it from here.
 */
export { Role } from '../common/principal';
export type { Principal } from '../common/principal';
