import { Role } from '../../src/access/principal';
import { Caller, startApp, TestApp } from '../support/app';
import { createZone, imageBody } from '../support/fixtures';

const alice: Caller = { sub: 'alice', dept: 'd1', role: Role.User };
const bob: Caller = { sub: 'bob', dept: 'd1', role: Role.User };

describe('rate limits on expensive endpoints', () => {
  let t: TestApp;
  let zone: string;
  beforeAll(async () => {
    t = await startApp('sqlite', 'ratelimit', { RATE_LIMIT_CREATE_PER_MIN: '3' });
    zone = await createZone(t);
  });
  afterAll(() => t?.close());

  it('answers 429 RATE_LIMITED with Retry-After past the budget, per caller, and stores nothing', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await t.http().post('/images').set('Authorization', t.auth(alice)).send(imageBody(zone))).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    const res = await t.http().post('/images').set('Authorization', t.auth(alice)).send(imageBody(zone, { name: 'over the limit' }));
    expect(res.status).toBe(429);
    expect(res.body).toMatchObject({ code: 'RATE_LIMITED', details: { bucket: 'create', limitPerMinute: 3 } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await t.http().get('/images').query({ view: 'private', q: 'over the limit' }).set('Authorization', t.auth(alice))).body.total).toBe(0);
    // another caller has its own budget; reads are not limited
    expect((await t.http().post('/images').set('Authorization', t.auth(bob)).send(imageBody(zone))).status).toBe(201);
    expect((await t.http().get('/images').set('Authorization', t.auth(alice))).status).toBe(200);
    const metrics = await t.http().get('/metrics');
    expect(metrics.text).toMatch(/hcm_rate_limited_total\{route="create"\} 2/);
  });
});
