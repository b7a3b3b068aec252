import { once } from 'node:events';
import { connect, Socket } from 'node:net';
import { Role } from '../../src/access/principal';
import { MAX_DRAIN_BYTES } from '../../src/ingestion/upload-body';
import { apiClient, reply } from '../support/api-client';
import { Caller, SHAPES, startApp, SUPER, TestApp } from '../support/app';
import { rawBytes } from '../support/disk-images';
import { createImage, createZone } from '../support/fixtures';

/**
 * A refused upload reaches the client: with `Expect: 100-continue` before the body is sent, and otherwise after
 * the service read the body away, so a client that writes the whole body before reading sees the 409, not EPIPE.
 * Raw sockets, so nothing in between hides what happens on the wire.
 */

const MiB = 1024 * 1024;
let seq = 0;
const newUser = (): Caller => ({ sub: `up-user-${++seq}`, dept: `up-dept-${seq}-${Math.random().toString(36).slice(2, 6)}`, role: Role.User });

interface RawAnswer {
  /** everything the server sent, as text (headers and JSON bodies) */
  text: string;
  /** how the connection ended: 'end' (clean FIN) or the socket error code */
  ended: string;
  /** whether every byte we meant to send was written without an error */
  wroteAll: boolean;
}

/** Parses the final (non-1xx) response out of what the server sent. */
function finalResponse(text: string): { status: number; headers: string; body: any } {
  const parts = text.split('\r\n\r\n');
  let i = 0;
  while (/^HTTP\/1\.1 1\d\d /.test(parts[i] ?? '')) i++;
  const head = parts[i];
  const body = parts.slice(i + 1).join('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head, body: body ? JSON.parse(body) : undefined };
}

function collect(socket: Socket): { done: Promise<void>; text: () => string; ended: () => string } {
  let text = '';
  let ended = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (text += d));
  const done = new Promise<void>((resolve) => {
    socket.on('end', () => {
      ended ||= 'end';
      resolve();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      ended ||= e.code ?? e.message;
      resolve();
    });
    socket.on('close', () => resolve());
  });
  return { done, text: () => text, ended: () => ended };
}

/** Writes the request head and the whole body, waits until all of it was written, and only then reads the answer. */
async function writeAllThenRead(port: number, head: string, body: Buffer): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.pause(); // read nothing until everything is written
  const c = collect(socket);
  const wroteAll = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.write(head);
    socket.write(body, (err) => resolve(!err));
  });
  socket.resume();
  await c.done;
  return { text: c.text(), ended: c.ended(), wroteAll };
}

/** Sends the head with Expect: 100-continue and waits for the server: the body only goes out after "100 Continue". */
async function expectContinue(port: number, head: string, body: Buffer): Promise<RawAnswer & { sentBody: boolean }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const c = collect(socket);
  let sentBody = false;
  let wroteAll = true;
  socket.on('data', () => {
    if (!sentBody && /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(c.text())) {
      sentBody = true;
      socket.write(body, (err) => (wroteAll = !err));
    }
  });
  socket.write(head);
  await c.done;
  return { text: c.text(), ended: c.ended(), wroteAll, sentBody };
}

const putHead = (t: TestApp, port: number, id: string, caller: Caller, length: number, extra = '') =>
  `PUT /images/${id}/file HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${t.auth(caller)}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n${extra}\r\n`;

describe.each(SHAPES)('a refused upload reaches the client (%s)', (shape) => {
  let t: TestApp;
  let port: number;
  let zoneId: string;

  beforeAll(async () => {
    t = await startApp(shape, 'uprefuse', { QUOTA_SWEEP_INTERVAL_SECONDS: '0', INGEST_SWEEP_INTERVAL_SECONDS: '0', URL_IDLE_TIMEOUT_MS: '5000' });
    port = await t.listen();
    zoneId = await createZone(t);
  });
  afterAll(() => t?.close());

  const limitBytes = async (dept: string, bytes: number) => {
    const res = await reply(
      (await apiClient(t, SUPER)).PATCH('/quotas/{departmentId}', { params: { path: { departmentId: dept } }, body: { limits: { IMAGE_BYTES: bytes } } }),
    );
    expect(res.status).toBe(200);
  };
  const record = async (id: string) => (await reply((await apiClient(t, SUPER)).GET('/images/{id}', { params: { path: { id } } }))).body;

  it('a client that writes the whole body first reads the 409 QUOTA_EXCEEDED, and the connection closes cleanly', async () => {
    const u = newUser();
    await limitBytes(u.dept, MiB);
    const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, format: 'raw' });
    // far more than the socket buffers of both ends hold, so the server must read it for the write to finish
    const body = Buffer.alloc(24 * MiB, 1);
    const a = await writeAllThenRead(port, putHead(t, port, img.id, u, body.length), body);
    expect({ wroteAll: a.wroteAll, ended: a.ended }).toEqual({ wroteAll: true, ended: 'end' });
    const r = finalResponse(a.text);
    expect(r.status).toBe(409);
    expect(r.headers).toMatch(/\r\nConnection: close/i);
    expect(r.body).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { resource: 'IMAGE_BYTES' } });
    // nothing changed: still waiting for its file, nothing stored or reserved
    expect(await record(img.id)).toMatchObject({ phase: 'QUEUED', sizeBytes: null });
  });

  it('the same for a refusal the upload makes itself after auth: another source type (409 SOURCE_MISMATCH)', async () => {
    const u = newUser();
    const img = await createImage(t, u, zoneId); // a URL image
    const body = Buffer.alloc(16 * MiB, 2);
    const a = await writeAllThenRead(port, putHead(t, port, img.id, u, body.length), body);
    expect({ wroteAll: a.wroteAll, ended: a.ended }).toEqual({ wroteAll: true, ended: 'end' });
    expect(finalResponse(a.text)).toMatchObject({ status: 409, body: { code: 'SOURCE_MISMATCH' } });
  });

  it(`drains at most ${MAX_DRAIN_BYTES / MiB} MiB: a larger refused body is cut off, not read to its end`, async () => {
    const u = newUser();
    await limitBytes(u.dept, MiB);
    const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, format: 'raw' });
    const declared = 4 * MAX_DRAIN_BYTES;
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const c = collect(socket);
    socket.write(putHead(t, port, img.id, u, declared));
    // write until the server stops reading (it closes): never the whole declared body
    const chunk = Buffer.alloc(MiB, 7);
    let written = 0;
    while (!socket.destroyed && written < declared) {
      if (!socket.write(chunk)) await Promise.race([once(socket, 'drain'), c.done]);
      written += chunk.length;
    }
    await c.done;
    expect(written).toBeLessThan(declared);
    expect(c.ended()).not.toBe('');
  });

  it('with Expect: 100-continue the 409 comes before the body is sent, and no "100 Continue" precedes it', async () => {
    const u = newUser();
    await limitBytes(u.dept, MiB);
    const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, format: 'raw' });
    const body = Buffer.alloc(8 * MiB, 3);
    const a = await expectContinue(port, putHead(t, port, img.id, u, body.length, 'Expect: 100-continue\r\n'), body);
    expect(a.sentBody).toBe(false);
    expect(a.text).not.toMatch(/HTTP\/1\.1 100 Continue/);
    expect(a.ended).toBe('end');
    expect(finalResponse(a.text)).toMatchObject({ status: 409, body: { code: 'QUOTA_EXCEEDED' } });
    expect(await record(img.id)).toMatchObject({ phase: 'QUEUED' });
  });

  it('with Expect: 100-continue an unauthenticated upload gets its 401 before the body is sent', async () => {
    const u = newUser();
    const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, format: 'raw' });
    const body = rawBytes(MiB);
    const head = `PUT /images/${img.id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const a = await expectContinue(port, head, body);
    expect(a.sentBody).toBe(false);
    expect(finalResponse(a.text)).toMatchObject({ status: 401, body: { code: 'AUTH_TOKEN_MISSING' } });
  });

  it('with Expect: 100-continue an accepted upload gets "100 Continue", sends the body, and the image is ACTIVE', async () => {
    const u = newUser();
    const img = await createImage(t, u, zoneId, { source: { type: 'UPLOAD' }, format: 'raw' });
    const body = rawBytes(3 * MiB);
    const a = await expectContinue(port, putHead(t, port, img.id, u, body.length, 'Expect: 100-continue\r\nConnection: close\r\n'), body);
    expect(a.sentBody).toBe(true);
    expect(a.wroteAll).toBe(true);
    expect(finalResponse(a.text)).toMatchObject({ status: 200, body: { id: img.id, status: 'ACTIVE', sizeBytes: body.length } });
  });

  it('a JSON route answers "100 Continue" at once, as before', async () => {
    const json = Buffer.from(JSON.stringify({ name: `z-${Math.random().toString(36).slice(2, 8)}`, hypervisor: 'KVM' }));
    const head = `POST /zones HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${t.auth(SUPER)}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const a = await expectContinue(port, head, json);
    expect(a.sentBody).toBe(true);
    expect(finalResponse(a.text)).toMatchObject({ status: 201, body: { hypervisor: 'KVM' } });
  });
});
