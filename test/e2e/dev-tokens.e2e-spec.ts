import { apiClient, apiClientWithToken } from '../support/api-client';
import { SHAPES, startApp, TestApp } from '../support/app';

/**
 * POST /dev/tokens exists only where the service generated its own development secret (the embedded default).
 * Through the client typed by openapi.yaml: a body or an answer the contract does not declare fails tsc.
 */
describe.each(SHAPES)('development tokens (%s)', (shape) => {
  let t: TestApp;
  afterEach(async () => t?.close());

  it('with a configured secret (every platform deployment) the route is not there: 404 ROUTE_NOT_FOUND', async () => {
    t = await startApp(shape, 'devtok-off');
    const api = await apiClient(t);
    const res = await api.POST('/dev/tokens', { body: { sub: 'u1', dept: 'd1', role: 'super_admin' } });
    expect(res.response.status).toBe(404);
    expect(res.error?.code).toBe('ROUTE_NOT_FOUND');
  });

  if (shape === 'sqlite') {
    it('with the generated development secret it signs a token the service accepts, for the role asked', async () => {
      t = await startApp(shape, 'devtok-on', { AUTH_JWT_SECRET: '' });
      const api = await apiClient(t);
      const res = await api.POST('/dev/tokens', { body: { sub: 'alice', dept: 'd1', role: 'user' } });
      expect(res.response.status).toBe(201);
      expect(Date.parse(res.data!.expiresAt)).toBeGreaterThan(Date.now() + 11 * 3600_000);
      const asAlice = await apiClientWithToken(t, res.data!.token);
      const counts = await asAlice.GET('/images/counts');
      expect(counts.response.status).toBe(200);
      const zone = await asAlice.POST('/zones', { body: { name: 'z', hypervisor: 'KVM' } });
      expect(zone.response.status).toBe(403); // a user token: the role is the one asked for
      // a role the contract does not know: only a cast gets it past the compiler, and the service refuses it
      const bad = await api.POST('/dev/tokens', { body: { sub: 'alice', dept: 'd1', role: 'root' as 'user' } });
      expect(bad.response.status).toBe(400);
      expect(bad.error?.code).toBe('VALIDATION_FAILED');
    });
  }
});
