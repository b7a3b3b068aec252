import createClient, { type Client } from 'openapi-fetch';
import type { paths } from './api-schema';
import type { Caller, TestApp } from './app';

export type ApiClient = Client<paths>;

/**
 * A client typed by openapi.yaml (test/support/api-schema.d.ts, `npm run openapi`) on a listening test app:
 * paths, parameters, bodies and answers are the document's, so a suite that sends or reads what the contract
 * does not declare fails tsc. `as` signs its calls with that caller's token; without it, none is sent.
 * The answers go through the real HTTP server, so the contract recorder sees them too.
 */
export async function apiClient(t: TestApp, as?: Caller): Promise<ApiClient> {
  const port = await listening(t);
  return createClient<paths>({ baseUrl: `http://127.0.0.1:${port}`, headers: as ? { Authorization: t.auth(as) } : {} });
}

/** The same client with another caller's token (or a raw bearer token). */
export async function apiClientWithToken(t: TestApp, token: string): Promise<ApiClient> {
  const port = await listening(t);
  return createClient<paths>({ baseUrl: `http://127.0.0.1:${port}`, headers: { Authorization: `Bearer ${token}` } });
}

const ports = new WeakMap<TestApp, Promise<number>>();
function listening(t: TestApp): Promise<number> {
  let p = ports.get(t);
  if (!p) {
    p = t.listen();
    ports.set(t, p);
  }
  return p;
}
