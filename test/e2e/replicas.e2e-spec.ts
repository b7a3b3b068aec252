import { Role } from '../../src/access/principal';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

const alice: Caller = { sub: 'alice', dept: 'd1', role: Role.User };

/**
 * Two replicas on one database: totals and counts one replica caches must follow writes made through the
 * other at once (they are keyed by the catalog version the writes bump).
 */
describe.each(SHAPES)('two replicas on one database (%s)', (shape) => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    a = await startApp(shape, 'replica_a');
    b = await startApp(shape, 'replica_b', {}, { shareDatabaseWith: a });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('sees creates, scope changes and deletes made by the other replica in totals and counts', async () => {
    const zone = await createZone(a);
    const total = async () => (await b.http().get('/images').query({ view: 'all', zoneId: zone }).set('Authorization', b.auth(alice))).body.total;
    const counts = async () => (await b.http().get('/images/counts').query({ zoneId: zone }).set('Authorization', b.auth(alice))).body;
    expect(await total()).toBe(0);
    expect(await counts()).toEqual({ all: 0, featured: 0, public: 0, private: 0 });

    const img = await createImage(a, alice, zone);
    expect(await total()).toBe(1);
    expect(await counts()).toEqual({ all: 1, featured: 0, public: 0, private: 1 });

    await a.http().patch(`/images/${img.id}`).set('Authorization', a.auth(SUPER)).send({ scope: 'FEATURED' });
    expect(await counts()).toEqual({ all: 1, featured: 1, public: 0, private: 0 });
    await a
      .http()
      .patch(`/images/${img.id}`)
      .set('Authorization', a.auth(SUPER))
      .send({ tags: ['x'] });
    expect((await b.http().get('/images/counts').query({ zoneId: zone, tags: 'x' }).set('Authorization', b.auth(alice))).body.all).toBe(1);

    expect((await a.http().delete(`/images/${img.id}`).set('Authorization', a.auth(SUPER))).status).toBe(204);
    expect(await total()).toBe(0);
    expect(await counts()).toEqual({ all: 0, featured: 0, public: 0, private: 0 });
  });
});
