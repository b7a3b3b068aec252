import { createServer } from 'node:net';
import { AppConfig, loadConfig } from '../config/app-config';
import { MetricsService } from '../observability/metrics.service';
import { RateLimiter } from './rate-limit';

/** A port nothing listens on: a Redis that is down. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const config = (env: Record<string, string>): AppConfig => loadConfig({ DATA_DIR: '/tmp/hcm-rl-unit', AUTH_JWT_SECRET: 'x'.repeat(32), ...env });

describe('RateLimiter', () => {
  it('counts per caller and bucket in memory in the embedded shape; 0 turns a bucket off', async () => {
    const rl = new RateLimiter(config({ RATE_LIMIT_CREATE_PER_MIN: '2', RATE_LIMIT_UPLOAD_PER_MIN: '0' }), new MetricsService());
    expect(await rl.consume('create', 'a')).toEqual({ allowed: true });
    expect(await rl.consume('create', 'a')).toEqual({ allowed: true });
    const third = await rl.consume('create', 'a');
    expect(third.allowed).toBe(false);
    expect(third.allowed === false && third.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(await rl.consume('create', 'b')).toEqual({ allowed: true });
    for (let i = 0; i < 50; i++) expect(await rl.consume('upload', 'a')).toEqual({ allowed: true });
    await rl.onModuleDestroy();
  });

  it('with Redis down, counts in this replica (still limited), warns and counts the store errors', async () => {
    const metrics = new MetricsService();
    const rl = new RateLimiter(
      config({ RATE_LIMIT_CREATE_PER_MIN: '3', QUEUE_DRIVER: 'redis', REDIS_URL: `redis://127.0.0.1:${await deadPort()}`, DB_TYPE: 'sqlite' }),
      metrics,
    );
    const warn = jest.spyOn((rl as unknown as { log: { warn: (m: unknown) => void } }).log, 'warn').mockImplementation(() => undefined);
    const verdicts = [];
    for (let i = 0; i < 4; i++) verdicts.push((await rl.consume('create', 'a')).allowed);
    expect(verdicts).toEqual([true, true, true, false]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatchObject({ msg: 'rate limits counted per replica: Redis is unavailable' });
    expect(await metrics.render()).toMatch(/hcm_rate_limit_store_errors_total 4/);
    await rl.onModuleDestroy();
  });

  it('waits for Redis at start, so the first request is counted in Redis, not per replica', async () => {
    const metrics = new MetricsService();
    const prefix = `hcmrlunit${process.pid}`;
    const rl = new RateLimiter(
      config({
        RATE_LIMIT_CREATE_PER_MIN: '1',
        QUEUE_DRIVER: 'redis',
        REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
        QUEUE_PREFIX: prefix,
        DB_TYPE: 'sqlite',
      }),
      metrics,
    );
    await rl.onModuleInit();
    const caller = `c${Date.now()}`;
    expect(await rl.consume('create', caller)).toEqual({ allowed: true });
    expect((await rl.consume('create', caller)).allowed).toBe(false);
    expect(await metrics.render()).toMatch(/hcm_rate_limit_store_errors_total 0/);
    const redis = (rl as unknown as { redis: { del: (k: string) => Promise<number> } }).redis;
    expect(await redis.del(`${prefix}:rl:create:${caller}`)).toBe(1);
    await rl.onModuleDestroy();
  });
});
