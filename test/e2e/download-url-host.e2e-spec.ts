import { createHash, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { Role } from '../../src/access/principal';
import { CatalogService } from '../../src/catalog/catalog.service';
import { ImagePhase } from '../../src/catalog/image.enums';
import { objectKeys, ObjectStorage } from '../../src/storage/object-storage';
import { Caller, SHAPES, startApp, TestApp } from '../support/app';
import { createImage, createZone } from '../support/fixtures';

/**
 * A signed download URL (filesystem store) names the service by PUBLIC_BASE_URL, or in the embedded shape by the
 * address the server listens on: a forged Host header (or X-Forwarded-Host) never ends up in a URL the service signs.
 */

const COMPUTE: Caller = { sub: 'compute', dept: 'platform', role: Role.Service };
const OWNER: Caller = { sub: 'host-user', dept: 'host-dept', role: Role.User };
const BYTES = Buffer.from('signed bytes '.repeat(100));

/** POST /images/{id}/launches over a raw socket, so every header (Host included) is exactly what we say. */
function launchWithHost(port: number, imageId: string, token: string, zoneId: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const payload = JSON.stringify({ idempotencyKey: `k-${randomUUID()}`, owner: { userId: OWNER.sub, departmentId: OWNER.dept }, zoneId, count: 1 });
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/images/${imageId}/launches`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A zone and an ACTIVE upload image in it, its bytes stored as an import leaves them. */
async function activeImage(t: TestApp): Promise<{ zoneId: string; imageId: string }> {
  const zoneId = await createZone(t);
  const img = await createImage(t, OWNER, zoneId, { source: { type: 'UPLOAD' } });
  const catalog = t.app.get(CatalogService);
  await t.app.get(ObjectStorage).putStream(objectKeys.imageDisk(img.id), Readable.from(BYTES));
  await catalog.transition(img.id, ImagePhase.Importing);
  await catalog.transition(img.id, ImagePhase.Verifying, { sizeBytes: BYTES.length });
  await catalog.transition(img.id, ImagePhase.Ready, { sizeBytes: BYTES.length, checksum: createHash('sha256').update(BYTES).digest('hex') });
  return { zoneId, imageId: img.id };
}

const ENV = { QUOTA_SWEEP_INTERVAL_SECONDS: '0', INGEST_SWEEP_INTERVAL_SECONDS: '0' };

describe.each(SHAPES)('signed download URLs never take the request Host (%s)', (shape) => {
  it('a forged Host or X-Forwarded-Host is not in the URL; the URL names this server and reads the bytes', async () => {
    const t = await startApp(shape, 'dlhost', ENV);
    try {
      const port = await t.listen();
      const { zoneId, imageId } = await activeImage(t);
      // the platform shape runs with PUBLIC_BASE_URL (required there, test/support sets it to this replica);
      // the embedded one names the address it listens on
      expect(t.env.PUBLIC_BASE_URL).toBe(shape === 'mariadb' ? `http://127.0.0.1:${port}` : undefined);
      const expected = `http://127.0.0.1:${port}`;
      for (const headers of [
        { host: 'evil.example.com' } as Record<string, string>,
        { host: 'evil.example.com:8443' },
        { host: `127.0.0.1:${port}`, 'x-forwarded-host': 'evil.example.com', 'x-forwarded-proto': 'https' },
      ]) {
        const res = await launchWithHost(port, imageId, t.token(COMPUTE), zoneId, headers);
        expect(res.status).toBe(201);
        const url: string = res.body.download.url;
        expect(url).not.toContain('evil');
        expect(url.startsWith(`${expected}/downloads/${imageId}?expires=`)).toBe(true);
        const got = await fetch(url);
        expect(got.status).toBe(200);
        expect(Buffer.compare(Buffer.from(await got.arrayBuffer()), BYTES)).toBe(0);
      }
    } finally {
      await t.close();
    }
  });

  it('with PUBLIC_BASE_URL set, that is the base whatever the Host', async () => {
    const t = await startApp(shape, 'dlhost2', { ...ENV, PUBLIC_BASE_URL: 'https://images.hcm.test/base/' });
    try {
      const port = await t.listen();
      const { zoneId, imageId } = await activeImage(t);
      const res = await launchWithHost(port, imageId, t.token(COMPUTE), zoneId, { host: 'evil.example.com' });
      expect(res.status).toBe(201);
      expect(res.body.download.url.startsWith(`https://images.hcm.test/base/downloads/${imageId}?expires=`)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
