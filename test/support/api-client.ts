import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from '../../console/src/api/schema';
import type { Caller, TestApp } from './app';

export type ApiClient = Client<paths>;

/**
 * One connection per request, as supertest had: fetch reuses idle keep-alive connections, and on a loaded machine
 * (the app and the test share one event loop) the server's keep-alive timer closed one that fetch was reusing
 * (ECONNRESET, "fetch failed", once in the conversion suite).
 */
const ONE_CONNECTION = { Connection: 'close' };

/**
 * A client typed by openapi.yaml (console/src/api/schema.d.ts, the one generated copy the console uses too; `npm run openapi`) on a listening test app:
 * paths, parameters, bodies and answers are the document's, so a suite that sends or reads what the contract
 * does not declare fails tsc. `as` signs its calls with that caller's token; without it, none is sent.
 * The answers go through the real HTTP server, so the contract recorder sees them too.
 */
export async function apiClient(t: TestApp, as?: Caller): Promise<ApiClient> {
  const port = await listening(t);
  return createClient<paths>({ baseUrl: `http://127.0.0.1:${port}`, headers: { ...ONE_CONNECTION, ...(as ? { Authorization: t.auth(as) } : {}) } });
}

/** The same client with another caller's token (or a raw bearer token). */
export async function apiClientWithToken(t: TestApp, token: string): Promise<ApiClient> {
  const port = await listening(t);
  return createClient<paths>({ baseUrl: `http://127.0.0.1:${port}`, headers: { ...ONE_CONNECTION, Authorization: `Bearer ${token}` } });
}

const ports = new WeakMap<TestApp, Promise<number>>();
/** The test app's port: it listens once; a server the suite already started (`t.listen()`) is used as it is. */
function listening(t: TestApp): Promise<number> {
  let p = ports.get(t);
  if (!p) {
    const server: Server = t.app.getHttpServer();
    p = server.listening ? Promise.resolve((server.address() as AddressInfo).port) : t.listen();
    ports.set(t, p);
  }
  return p;
}

export type Schemas = components['schemas'];

/**
 * Clients per caller on a listening test app, made once: `const as = await typedCallers(t)` in a beforeAll, then
 * `as(alice).GET('/images', { params: { query: { view: 'all' } } })`; `as()` sends no token. Each answer is
 * openapi-fetch's: `response.status`, `response.headers`, `data` (the declared 2xx body) or `error` (ErrorBody).
 */
export async function typedCallers(t: TestApp): Promise<(who?: Caller) => ApiClient> {
  const port = await listening(t);
  const clients = new Map<string, ApiClient>();
  return (who?: Caller) => {
    const authorization = who ? t.auth(who) : '';
    let c = clients.get(authorization);
    if (!c) {
      c = createClient<paths>({ baseUrl: `http://127.0.0.1:${port}`, headers: { ...ONE_CONNECTION, ...(who ? { Authorization: authorization } : {}) } });
      clients.set(authorization, c);
    }
    return c;
  };
}

/** A create-image body the contract accepts (the typed twin of fixtures' imageBody): a URL-sourced CentOS qcow2. */
export function typedImageBody(zoneId: string, over: Partial<Schemas['CreateImageDto']> = {}): Schemas['CreateImageDto'] {
  return {
    kind: 'IMAGE',
    name: `img-${Math.random().toString(36).slice(2, 10)}`,
    osCategory: 'CENTOS',
    format: 'qcow2',
    zoneId,
    source: { type: 'URL', url: 'http://10.1.2.3/images/centos.qcow2' },
    ...over,
  };
}

/** The field names of a VALIDATION_FAILED / IMMUTABLE_FIELD answer's details.fields. */
export function fieldsOf(error: Schemas['ErrorBody'] | undefined): string[] {
  const fields = error?.details?.fields;
  return Array.isArray(fields) ? fields.map((f: { field: string }) => f.field) : [];
}

/**
 * An openapi-fetch answer in the shape the suites assert on: `status`, `headers`, and the body as the contract
 * declares it for that operation, `data` on a 2xx and `error` (ErrorBody and the operation's codes) otherwise.
 */
export async function answer<R extends { response: Response; data?: unknown; error?: unknown }>(
  call: Promise<R>,
): Promise<{ status: number; headers: Headers; data: R['data']; error: R['error'] }> {
  const r = await call;
  return { status: r.response.status, headers: r.response.headers, data: r.data, error: r.error };
}

/**
 * An openapi-fetch answer in supertest's shape: `status`, `headers` (lower-case names), `body` (the declared 2xx
 * body, the error body otherwise, `{}` when there is none). The suites moved from supertest read it as they read
 * supertest's, so their assertions stay as they were; what they send is typed by the contract.
 */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  /** read as supertest's body was: the suites moved from supertest index into it freely */
  body: any;
}
export async function reply(call: Promise<{ response: Response; data?: unknown; error?: unknown }>): Promise<Reply> {
  const r = await call;
  const headers: Record<string, string> = {};
  r.response.headers.forEach((v, k) => (headers[k] = v));
  return { status: r.response.status, headers, body: (r.response.ok ? r.data : r.error) ?? {} };
}
