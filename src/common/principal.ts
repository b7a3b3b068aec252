/** Roles carried in the token's `role` claim. */
export enum Role {
  SuperAdmin = 'super_admin',
  Admin = 'admin',
  User = 'user',
  Service = 'service',
}

/** The authenticated caller, from the verified token. */
export interface Principal {
  /** `sub` claim: the user (or service) id */
  userId: string;
  /** `name` claim */
  name: string;
  /** `dept` claim: the caller's department id */
  departmentId: string;
  role: Role;
}
