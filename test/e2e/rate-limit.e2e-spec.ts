import Redis from 'ioredis';
import { Role } from '../../src/access/principal';
import { ApiClient, reply, typedCallers, typedImageBody } from '../support/api-client';
import { Caller, startApp, TestApp } from '../support/app';
import { createZone } from '../support/fixtures';

const alice: Caller = { sub: 'alice', dept: 'd1', role: Role.User };
const bob: Caller = { sub: 'bob', dept: 'd1', role: Role.User };

describe('rate limits on expensive endpoints', () => {
  let t: TestApp;
  let api: (who?: Caller) => ApiClient;
  let zone: string;
  beforeAll(async () => {
    t = await startApp('sqlite', 'ratelimit', { RATE_LIMIT_CREATE_PER_MIN: '3' });
    api = await typedCallers(t);
    zone = await createZone(t);
  });
  afterAll(() => t?.close());

  it('answers 429 RATE_LIMITED with Retry-After past the budget, per caller, and stores nothing', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await reply(api(alice).POST('/images', { body: typedImageBody(zone) }))).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    const res = await reply(api(alice).POST('/images', { body: typedImageBody(zone, { name: 'over the limit' }) }));
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ code: 'RATE_LIMITED', details: { bucket: 'create', limitPerMinute: 3 } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await reply(api(alice).GET('/images', { params: { query: { view: 'private', q: 'over the limit' } } }))).body.total).toBe(0);
    // another caller has its own budget; reads are not limited
    expect((await reply(api(bob).POST('/images', { body: typedImageBody(zone) }))).status).toBe(201);
    expect((await reply(api(alice).GET('/images'))).status).toBe(200);
    const metrics = await api().GET('/metrics', { parseAs: 'text' });
    expect(metrics.data).toMatch(/hcm_rate_limited_total\{route="create"\} 2/);
  });
});

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The platform shape: two replicas on one MariaDB database and one Redis prefix draw on one budget per caller. */
describe('rate limits shared by two replicas (mariadb + Redis)', () => {
  const prefix = `hcmrl${process.pid}${Date.now().toString(36)}`;
  let a: TestApp;
  let b: TestApp;
  const callers = new Map<TestApp, (who?: Caller) => ApiClient>();
  let zone: string;
  beforeAll(async () => {
    const env = { RATE_LIMIT_CREATE_PER_MIN: '4', QUEUE_DRIVER: 'redis', REDIS_URL: REDIS, QUEUE_PREFIX: prefix };
    a = await startApp('mariadb', 'rl_replica_a', env);
    b = await startApp('mariadb', 'rl_replica_b', env, { shareDatabaseWith: a });
    zone = await createZone(a);
    for (const t of [a, b]) callers.set(t, await typedCallers(t));
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    const r = new Redis(REDIS);
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length) await r.del(...keys);
    await r.quit();
  });

  it('holds the budget across both replicas: the fifth create of a minute is refused on either', async () => {
    const create = (t: TestApp, who: Caller) => reply(callers.get(t)!(who).POST('/images', { body: typedImageBody(zone) }));
    const statuses: number[] = [];
    for (const t of [a, b, a, b, a, b]) statuses.push((await create(t, alice)).status);
    // per-replica budgets (the old behaviour) would have allowed all six: 4 on a, 4 on b
    expect(statuses).toEqual([201, 201, 201, 201, 429, 429]);
    const res = await create(b, alice);
    expect(res.body).toMatchObject({ code: 'RATE_LIMITED', details: { bucket: 'create', limitPerMinute: 4 } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(60);
    // exactly the four allowed creates were stored
    expect((await reply(callers.get(a)!(alice).GET('/images', { params: { query: { view: 'private', zoneId: zone } } }))).body.total).toBe(4);
    // concurrent requests on both replicas cannot overdraw bob's budget either
    const burst = await Promise.all(Array.from({ length: 10 }, (_, i) => create(i % 2 ? a : b, bob)));
    expect(burst.filter((r) => r.status === 201)).toHaveLength(4);
    expect(burst.filter((r) => r.status === 429)).toHaveLength(6);
  });
});
