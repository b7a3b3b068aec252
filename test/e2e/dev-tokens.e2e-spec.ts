import { SHAPES, startApp, TestApp } from '../support/app';

/** POST /dev/tokens exists only where the service generated its own development secret (the embedded default). */
describe.each(SHAPES)('development tokens (%s)', (shape) => {
  let t: TestApp;
  afterEach(async () => t?.close());

  it('with a configured secret (every platform deployment) the route is not there: 404 ROUTE_NOT_FOUND', async () => {
    t = await startApp(shape, 'devtok-off');
    const res = await t.http().post('/dev/tokens').send({ sub: 'u1', dept: 'd1', role: 'super_admin' });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('ROUTE_NOT_FOUND');
  });

  if (shape === 'sqlite') {
    it('with the generated development secret it signs a token the service accepts, for the role asked', async () => {
      t = await startApp(shape, 'devtok-on', { AUTH_JWT_SECRET: '' });
      const res = await t.http().post('/dev/tokens').send({ sub: 'alice', dept: 'd1', role: 'user' });
      expect(res.status).toBe(201);
      expect(Date.parse(res.body.expiresAt)).toBeGreaterThan(Date.now() + 11 * 3600_000);
      const counts = await t.http().get('/images/counts').set('Authorization', `Bearer ${res.body.token}`);
      expect(counts.status).toBe(200);
      const zone = await t.http().post('/zones').set('Authorization', `Bearer ${res.body.token}`).send({ name: 'z', hypervisor: 'KVM' });
      expect(zone.status).toBe(403); // a user token: the role is the one asked for
      const bad = await t.http().post('/dev/tokens').send({ sub: 'alice', dept: 'd1', role: 'root' });
      expect(bad.status).toBe(400);
      expect(bad.body.code).toBe('VALIDATION_FAILED');
    });
  }
});
