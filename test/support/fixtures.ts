import { TestApp, SUPER, Caller } from './app';

/** Creates a zone as the super admin and returns its id. */
export async function createZone(t: TestApp, name = `zone-${Math.random().toString(36).slice(2, 8)}`, hypervisor = 'KVM'): Promise<string> {
  const res = await t.http().post('/zones').set('Authorization', t.auth(SUPER)).send({ name, hypervisor });
  if (res.status !== 201) throw new Error(`zone create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

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

/** Creates an image as `caller` and returns the response body; fails the test on a non-201. */
export async function createImage(t: TestApp, caller: Caller, zoneId: string, over: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const res = await t.http().post('/images').set('Authorization', t.auth(caller)).send(imageBody(zoneId, over));
  if (res.status !== 201) throw new Error(`image create: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}
