import { Role } from '../../src/access/principal';
import { ApiClient, typedCallers } from '../support/api-client';
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
  /** the clients typed by openapi.yaml, per caller, on each replica */
  let onA: (who?: Caller) => ApiClient;
  let onB: (who?: Caller) => ApiClient;
  beforeAll(async () => {
    a = await startApp(shape, 'replica_a');
    b = await startApp(shape, 'replica_b', {}, { shareDatabaseWith: a });
    onA = await typedCallers(a);
    onB = await typedCallers(b);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('sees creates, scope changes and deletes made by the other replica in totals and counts', async () => {
    const zone = await createZone(a);
    const total = async () => (await onB(alice).GET('/images', { params: { query: { view: 'all', zoneId: zone } } })).data!.total;
    const counts = async () => (await onB(alice).GET('/images/counts', { params: { query: { zoneId: zone } } })).data;
    const path = (id: string) => ({ params: { path: { id } } });
    expect(await total()).toBe(0);
    expect(await counts()).toEqual({ all: 0, featured: 0, public: 0, private: 0 });

    const img = await createImage(a, alice, zone);
    expect(await total()).toBe(1);
    expect(await counts()).toEqual({ all: 1, featured: 0, public: 0, private: 1 });

    await onA(SUPER).PATCH('/images/{id}', { ...path(img.id as string), body: { scope: 'FEATURED' } });
    expect(await counts()).toEqual({ all: 1, featured: 1, public: 0, private: 0 });
    await onA(SUPER).PATCH('/images/{id}', { ...path(img.id as string), body: { tags: ['x'] } });
    expect((await onB(alice).GET('/images/counts', { params: { query: { zoneId: zone, tags: ['x'] } } })).data!.all).toBe(1);

    expect((await onA(SUPER).DELETE('/images/{id}', path(img.id as string))).response.status).toBe(204);
    expect(await total()).toBe(0);
    expect(await counts()).toEqual({ all: 0, featured: 0, public: 0, private: 0 });
  });
});
