import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Schemas = components['schemas'];
export type Image = Schemas['ImageResponse'] & { virtualSizeBytes?: number | null };
export type Zone = Schemas['ZoneResponse'];
export type Counts = Schemas['ImageCountsResponse'];
export type FileEntry = Schemas['FileEntryResponse'];
export type FileSource = Schemas['FileSourceResponse'];
export type Quota = Schemas['DepartmentQuotaResponse'];
export type ImageVm = Schemas['ImageVmResponse'];
export type ApiError = Schemas['ErrorBody'];
export type Role = 'super_admin' | 'admin' | 'user' | 'service';

const KEY = 'hcm.console.token';

export interface Me {
  sub: string;
  dept: string;
  role: Role;
  name: string;
  exp?: number;
}

/** Reads the token's claims for display and for what the page offers; the service decides every call. */
export function decodeToken(token: string): Me | null {
  try {
    const part = token.split('.')[1];
    const json = decodeURIComponent(
      atob(part.replace(/-/g, '+').replace(/_/g, '/'))
        .split('')
        .map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
        .join(''),
    );
    const c = JSON.parse(json) as Partial<Me>;
    if (!c.sub || !c.dept || !c.role) return null;
    return { sub: c.sub, dept: c.dept, role: c.role, name: c.name ?? c.sub, exp: c.exp };
  } catch {
    return null;
  }
}

export const session = {
  get token(): string | null {
    return localStorage.getItem(KEY);
  },
  set(token: string) {
    localStorage.setItem(KEY, token);
  },
  clear() {
    localStorage.removeItem(KEY);
  },
};

const auth: Middleware = {
  onRequest({ request }) {
    // no HTTP cache: the page shows the service's state now (and a 304 would be an answer the API does not declare)
    const r = new Request(request, { cache: 'no-store' });
    const t = session.token;
    if (t) r.headers.set('Authorization', `Bearer ${t}`);
    return r;
  },
};

/** The typed client of the public API (types generated from openapi.yaml), with the caller's token. */
export const api = createClient<paths>({ baseUrl: location.origin });
api.use(auth);

export function fieldErrors(e: unknown): Array<{ field: string; messages: string[] }> {
  const d = (e as ApiError | undefined)?.details as { fields?: Array<{ field: string; messages: string[] }> } | undefined;
  return Array.isArray(d?.fields) ? d.fields : [];
}

export function errorText(e: unknown): string {
  const b = e as ApiError | undefined;
  return b?.code ? `${b.code}: ${b.message}` : String(e);
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** What the caller may do with an image: the service's rules (README "Who sees what"), to show only those buttons. */
export function may(me: Me, img: Image) {
  const own = img.ownerId === me.sub;
  const dept = img.departmentId === me.dept;
  const sa = me.role === 'super_admin';
  const admin = me.role === 'admin';
  return {
    edit: sa || (admin && (img.scope !== 'PRIVATE' || dept || own)) || (me.role === 'user' && (img.scope === 'PUBLIC' || (img.scope === 'PRIVATE' && own))),
    delete: sa || admin || (me.role === 'user' && img.scope !== 'FEATURED' && own),
    enableDisable: sa || admin,
    use: sa || me.role === 'service' || img.scope !== 'PRIVATE' || own,
  };
}

export const BUSY_PHASES = ['QUEUED', 'IMPORTING', 'CONVERTING', 'VERIFYING'];
