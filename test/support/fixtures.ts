import { TestApp, SUPER, Caller } from './app';
import { apiClient, typedImageBody, type Schemas } from './api-client';

/** Creates a zone as the super admin (through the client typed by openapi.yaml) and returns its id. */
export async function createZone(
  t: TestApp,
  name = `zone-${Math.random().toString(36).slice(2, 8)}`,
  hypervisor: Schemas['CreateZoneDto']['hypervisor'] = 'KVM',
): Promise<string> {
  const { data, error, response } = await (await apiClient(t, SUPER)).POST('/zones', { body: { name, hypervisor } });
  if (response.status !== 201 || !data) throw new Error(`zone create: ${response.status} ${JSON.stringify(error)}`);
  return data.id;
}

/**
 * A create-image body as a plain object, for the calls that stay on supertest (bad-input and other requests the
 * contract forbids); the typed fixtures below use typedImageBody (api-client.ts), the same body typed.
 */
export function imageBody(zoneId: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'IMAGE',
    name: `img-${Math.random().toString(36).slice(2, 10)}`,
    osCategory: 'CENTOS',
    format: 'qcow2',
    zoneId,
    source: { type: 'URL', url: 'http://10.1.2.3/images/centos.qcow2' },
    ...over,
  };
}

/**
 * Creates an image as `caller` through the typed client (`over` must be what CreateImageDto allows) and returns
 * the response body; fails the test on a non-201.
 */
export async function createImage(t: TestApp, caller: Caller, zoneId: string, over: Partial<Schemas['CreateImageDto']> = {}): Promise<Record<string, any>> {
  const { data, error, response } = await (await apiClient(t, caller)).POST('/images', { body: typedImageBody(zoneId, over) });
  if (response.status !== 201 || !data) throw new Error(`image create: ${response.status} ${JSON.stringify(error)}`);
  return data;
}
