import { request as httpRequest, IncomingMessage } from 'node:http';
import { AddressInfo } from 'node:net';
import { Role } from '../../src/access/principal';
import { MetricsService } from '../../src/observability/metrics.service';
import { apiClient, reply } from '../support/api-client';
import { Caller, SHAPES, Shape, startApp, SUPER, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

/**
 * The live feed GET /events/stream (Server-Sent Events): events as they commit, resumable with
 * Last-Event-ID without losing or repeating one, filtered by what the caller may see, token as a header or
 * (for EventSource) ?access_token=, heartbeat comments when idle.
 */

type Json = Record<string, any>;

interface SseEvent {
  id: string;
  event: string;
  data: Json;
}

/** A minimal EventSource over node:http: collects events and comments; waits on conditions. */
class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  status = 0;
  private buffer = '';
  private waiters: Array<() => void> = [];
  private res?: IncomingMessage;
  private readonly req;
  readonly ready: Promise<void>;

  constructor(port: number, path: string, headers: Record<string, string>) {
    this.req = httpRequest({ host: '127.0.0.1', port, path, headers: { accept: 'text/event-stream', ...headers } });
    this.ready = new Promise<void>((resolve, reject) => {
      this.req.on('response', (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => this.feed(chunk));
        res.on('end', () => this.notify());
        resolve();
      });
      this.req.on('error', reject);
    });
    this.req.end();
  }

  get body(): string {
    return this.buffer;
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let i: number;
    while ((i = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else {
          const at = line.indexOf(':');
          fields[line.slice(0, at)] = line.slice(at + 1).replace(/^ /, '');
        }
      }
      if (fields.data !== undefined) this.events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
    }
    this.notify();
  }

  private notify(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `cond` holds on what arrived (the suite's timeout bounds it). */
  async until(cond: (c: SseClient) => boolean): Promise<void> {
    while (!cond(this)) await new Promise<void>((r) => this.waiters.push(r));
  }

  close(): void {
    this.req.destroy();
    this.res?.destroy();
  }
}

let seq = 0;
const newUser = (role: Role = Role.User): Caller => {
  seq++;
  return { sub: `sse-user-${seq}`, dept: `sse-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role };
};

describe.each(SHAPES)('event stream (%s)', (shape: Shape) => {
  let t: TestApp;
  let zoneId: string;
  let port: number;
  const open: SseClient[] = [];
  const stream = (as: Caller | null, query = '', headers: Record<string, string> = {}) => {
    const c = new SseClient(port, `/events/stream${query}`, { ...(as ? { authorization: t.auth(as) } : {}), ...headers });
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await startApp(shape, `events-sse-${shape}`, { EVENTS_SSE_POLL_MS: '50', EVENTS_SSE_HEARTBEAT_SECONDS: '1', QUOTA_SWEEP_INTERVAL_SECONDS: '0' });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as AddressInfo).port;
    zoneId = await createZone(t);
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.close();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('delivers what happens from now on, in position order, with id = position and event = type', async () => {
    const u = newUser();
    const before = await createImage(t, u, zoneId);
    const s = stream(u);
    await s.ready;
    expect(s.status).toBe(200);
    const img = await createImage(t, u, zoneId);
    expect((await reply((await apiClient(t, u)).PATCH('/images/{id}', { params: { path: { id: img.id } }, body: { name: 'live' } }))).status).toBe(200);
    await s.until((c) => c.events.some((e) => e.event === 'image.updated' && e.data.imageId === img.id));
    expect(s.events.map((e) => [e.event, e.data.imageId])).toEqual([
      ['image.created', img.id],
      ['image.updated', img.id],
    ]);
    expect(s.events.every((e) => e.id === String(e.data.position))).toBe(true);
    expect(Number(s.events[1].id)).toBeGreaterThan(Number(s.events[0].id));
    expect(s.events.some((e) => e.data.imageId === before.id)).toBe(false);
  });

  it('resumes with Last-Event-ID: nothing lost, nothing repeated', async () => {
    const u = newUser();
    const first = stream(u, '?after=0');
    const imgs = [await createImage(t, u, zoneId), await createImage(t, u, zoneId)];
    await first.until((c) => imgs.every((i) => c.events.some((e) => e.data.imageId === i.id)));
    const lastSeen = first.events[first.events.length - 1].id;
    first.close();
    // while disconnected
    const missed = [await createImage(t, u, zoneId), await createImage(t, u, zoneId), await createImage(t, u, zoneId)];
    const resumed = stream(u, '?after=0', { 'last-event-id': lastSeen });
    await resumed.until((c) => c.events.some((e) => e.data.imageId === missed[2].id));
    const after = (await reply((await apiClient(t, u)).GET('/events', { params: { query: { after: Number(lastSeen), limit: 500 } } }))).body.items as Json[];
    expect(resumed.events.map((e) => e.data.id)).toEqual(after.map((e) => e.id));
    expect(resumed.events.filter((e) => missed.some((m) => m.id === e.data.imageId)).map((e) => e.event)).toEqual([
      'image.created',
      'image.created',
      'image.created',
    ]);
    const ids = [...first.events, ...resumed.events].map((e) => e.data.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("never carries another user's private image; the department's admin and services get it; filters by image and type", async () => {
    const a = newUser();
    const b = newUser();
    const admin: Caller = { sub: `sse-admin-${seq}`, dept: a.dept, role: Role.Admin };
    const compute: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
    const bStream = stream(b);
    const adminStream = stream(admin);
    const serviceStream = stream(compute, '?type=image.created');
    await Promise.all([bStream.ready, adminStream.ready, serviceStream.ready]);
    const secret = await createImage(t, a, zoneId);
    expect(
      (await reply((await apiClient(t, a)).PATCH('/images/{id}', { params: { path: { id: secret.id } }, body: { description: 'private notes' } }))).status,
    ).toBe(200);
    const shared = await createImage(t, SUPER, zoneId, { scope: 'PUBLIC' });
    // positions are delivered in order: once the later public event arrived, an earlier private one would have too
    await bStream.until((c) => c.events.some((e) => e.data.imageId === shared.id));
    expect(bStream.events.filter((e) => e.data.imageId === secret.id)).toEqual([]);
    await adminStream.until((c) => c.events.some((e) => e.data.imageId === shared.id));
    expect(adminStream.events.filter((e) => e.data.imageId === secret.id).map((e) => e.event)).toEqual(['image.created', 'image.updated']);
    await serviceStream.until((c) => c.events.some((e) => e.data.imageId === shared.id));
    expect(serviceStream.events.filter((e) => [secret.id, shared.id].includes(e.data.imageId)).map((e) => [e.event, e.data.imageId])).toEqual([
      ['image.created', secret.id],
      ['image.created', shared.id],
    ]);
    const one = stream(a, `?after=0&imageId=${secret.id}`);
    await one.until((c) => c.events.length === 2);
    expect(one.events.map((e) => e.data.imageId)).toEqual([secret.id, secret.id]);
  });

  it('takes the token as ?access_token= (EventSource), sends keep-alive comments, counts open streams', async () => {
    const u = newUser();
    const s = stream(null, `?access_token=${encodeURIComponent(t.token(u))}`);
    await s.ready;
    expect(s.status).toBe(200);
    await s.until((c) => c.comments.includes('keep-alive'));
    const metrics = await t.app.get(MetricsService).render();
    expect(Number(/^hcm_events_sse_clients (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    // the query token is only for the stream (untyped on purpose: the contract has no access_token on GET /events)
    expect(
      (
        await t
          .http()
          .get('/events')
          .query({ access_token: t.token(u) })
      ).status,
    ).toBe(401);
  });

  it('refuses a missing token (401), a bad Last-Event-ID or filter (400) before streaming', async () => {
    // supertest: GET /events/stream is an SSE stream (read by node:http above), and these send what the contract forbids
    expect((await t.http().get('/events/stream')).status).toBe(401);
    expect((await t.http().get('/events/stream').query({ access_token: 'nope' })).status).toBe(401);
    const bad = await t.http().get('/events/stream').set('Authorization', t.auth(SUPER)).set('Last-Event-ID', 'abc');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('VALIDATION_FAILED');
    expect((await t.http().get('/events/stream').query({ type: 'nope' }).set('Authorization', t.auth(SUPER))).status).toBe(400);
  });
});
