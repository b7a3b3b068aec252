import { apiClient, reply } from '../support/api-client';
import { SHAPES, startApp, SUPER, TestApp } from '../support/app';

describe.each(SHAPES)('health and docs (%s)', (shape) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp(shape, 'health');
  });
  afterAll(() => t?.close());

  it('answers liveness and readiness without a token (through the client typed by openapi.yaml)', async () => {
    const api = await apiClient(t);
    const live = await api.GET('/health/live');
    expect(live.response.status).toBe(200);
    expect(live.data).toEqual({ status: 'ok' });
    expect(live.response.headers.get('x-correlation-id')).toMatch(/^[0-9a-f-]{36}$/);
    const ready = await api.GET('/health/ready');
    expect(ready.response.status).toBe(200);
    expect(ready.data!.checks!.database).toEqual({ status: 'up' });
  });

  it('reports not ready with 503 when the database is gone', async () => {
    const { DataSource } = await import('typeorm');
    const ds = t.app.get(DataSource);
    await ds.destroy();
    try {
      const ready = await reply((await apiClient(t)).GET('/health/ready'));
      expect(ready.status).toBe(503);
      expect(ready.body.status).toBe('unavailable');
      expect(ready.body.checks.database.status).toBe('down');
    } finally {
      await ds.initialize();
    }
  });

  it('serves Swagger UI and the JSON document with bearer auth declared', async () => {
    // supertest: the docs pages are not operations of the contract
    const ui = await t.http().get('/docs');
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
    const json = await t.http().get('/docs-json');
    expect(json.status).toBe(200);
    expect(json.body.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('echoes a well-formed correlation id and makes one otherwise', async () => {
    const given = await reply((await apiClient(t)).GET('/health/live', { headers: { 'X-Correlation-Id': 'abc-123' } }));
    expect(given.headers['x-correlation-id']).toBe('abc-123');
    // untyped on purpose: a route the contract does not have
    const made = await t.http().get('/nope').set('X-Correlation-Id', 'bad id with spaces');
    expect(made.headers['x-correlation-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(made.status).toBe(404);
    expect(made.body).toEqual({ code: 'ROUTE_NOT_FOUND', message: expect.any(String), correlationId: made.headers['x-correlation-id'] });
  });

  it('serves Prometheus metrics without a token: request durations by route and status, queue depth', async () => {
    expect((await reply((await apiClient(t, SUPER)).GET('/images'))).status).toBe(200);
    // untyped on purpose: an id the contract forbids
    await t.http().get('/images/not-a-uuid').set('Authorization', t.auth(SUPER)).expect(400);
    const metrics = await (await apiClient(t)).GET('/metrics', { parseAs: 'text' });
    const res = { status: metrics.response.status, headers: { 'content-type': metrics.response.headers.get('content-type') ?? '' }, text: metrics.data ?? '' };
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.text).toMatch(/hcm_http_request_duration_seconds_count\{method="GET",route="\/images",status="200"\} [1-9]/);
    expect(res.text).toMatch(/hcm_http_request_duration_seconds_count\{method="GET",route="\/images\/:id",status="400"\} [1-9]/);
    expect(res.text).toMatch(/hcm_queue_jobs\{state="waiting"\} 0/);
    expect(res.text).toContain('hcm_process_resident_memory_bytes');
  });
});
