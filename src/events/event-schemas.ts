import { Scope } from '../access/access.policy';
import { ALL_EVENT_TYPES, EVENT_TYPES, EventEnvelope, EventPayloads, EventType } from './event-catalogue';

/**
 * JSON Schemas and examples of every event type, next to the typed catalogue: the examples are typed by
 * EventPayloads (so they cannot drift from the code), the AsyncAPI document (npm run asyncapi) is generated
 * from these, and the tests validate the examples and every event the suites produce against the schemas.
 */

type Schema = Record<string, unknown>;

const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) });
const int = (description?: string): Schema => ({ type: 'integer', minimum: 0, ...(description ? { description } : {}) });
const nullable = (s: Schema): Schema => ({ ...s, type: [s.type as string, 'null'] });
const obj = (properties: Record<string, Schema>, optional: string[] = []): Schema => ({
  type: 'object',
  additionalProperties: false,
  required: Object.keys(properties).filter((k) => !optional.includes(k)),
  properties,
});
const scope: Schema = { type: 'string', enum: Object.values(Scope) };
const vmRef = { vmId: str("the compute side's VM id"), vmName: str(), ownerId: str('the VM owner'), departmentId: str("the VM owner's department") };

export const PAYLOAD_SCHEMAS: { readonly [K in EventType]: Schema } = {
  'image.created': obj({
    name: str(),
    kind: { type: 'string', enum: ['IMAGE', 'ISO'] },
    format: str(),
    scope,
    zoneId: str(),
    sourceType: { type: 'string', enum: ['URL', 'UPLOAD', 'FILE'] },
    ownerId: str(),
    departmentId: str(),
  }),
  'image.updated': obj({
    fields: { type: 'array', items: { type: 'string' }, minItems: 1 },
    values: { type: 'object', additionalProperties: true, description: 'the new value of each field named' },
  }),
  'image.scope_changed': obj({ from: scope, to: scope }),
  'image.enabled': obj({}),
  'image.disabled': obj({ reason: nullable(str()) }),
  'image.import.started': obj({ sourceType: str(), bytesTotal: nullable(int('the size when the source told it')) }),
  'image.import.progressed': obj({
    bytesDone: int(),
    bytesTotal: nullable(int()),
    percent: nullable({ type: 'integer', minimum: 0, maximum: 100 }),
    bytesPerSecond: nullable(int()),
  }),
  'image.activated': obj(
    {
      sizeBytes: int(),
      checksum: { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'sha256' },
      virtualSizeBytes: int('the disk size a VM sees, when known'),
    },
    ['virtualSizeBytes'],
  ),
  'image.import.failed': obj({ reason: str('a sentence a person understands') }),
  'image.deleted': obj({
    name: str(),
    kind: { type: 'string', enum: ['IMAGE', 'ISO'] },
    linkedVms: { type: 'array', items: obj({ vmId: str(), relation: { type: 'string', enum: ['CREATED_FROM', 'ISO_MOUNTED'] } }) },
  }),
  'vm.linked': obj(vmRef),
  'vm.unlinked': obj({ vmId: str(), reason: { type: 'string', enum: ['VM_DELETED', 'QUOTA_EXCEEDED'] } }),
  'iso.mounted': obj(vmRef),
  'iso.unmounted': obj({ vmId: str(), reason: { type: 'string', enum: ['UNMOUNTED', 'VM_DELETED'] } }),
  'quota.limit_changed': obj({
    departmentId: str(),
    limits: { type: 'object', additionalProperties: nullable({ type: 'integer', minimum: 0 }), description: 'the limits set, by resource; null = unlimited' },
  }),
  'quota.refused': obj({
    departmentId: str(),
    resource: str(),
    requested: int(),
    limit: nullable(int()),
    used: int(),
    reserved: int(),
    callerId: nullable(str("'#catalog' for an image create, else the calling service's id")),
    reservationId: nullable(str()),
  }),
};

export const ENVELOPE_SCHEMA: Schema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type', 'version', 'position', 'time', 'imageId', 'sequence', 'actor', 'correlationId', 'payload'],
  properties: {
    id: { type: 'string', format: 'uuid', description: 'unique; the AMQP message-id: drop duplicates by it (delivery is at least once)' },
    type: { type: 'string', enum: ALL_EVENT_TYPES, description: 'the routing key' },
    version: { type: 'integer', minimum: 1, description: 'version of the payload of this type' },
    position: { type: 'integer', minimum: 1, description: 'the cursor of GET /events and the stream: increases in commit order' },
    time: { type: 'integer', description: 'ms since the epoch' },
    imageId: { type: ['string', 'null'], description: 'null for quota events' },
    sequence: { type: 'integer', minimum: 1, description: 'order of the events of one image (of one department for quota events), without gaps' },
    actor: {
      oneOf: [
        obj({ type: { const: 'caller' }, user: str(), department: str(), role: { type: 'string', enum: ['super_admin', 'admin', 'user', 'service'] } }),
        obj({ type: { const: 'system' } }),
      ],
    },
    correlationId: { type: ['string', 'null'], description: 'X-Correlation-Id of the request (or job) that caused it' },
    payload: { type: 'object' },
  },
};

const IMG = '5b0e5f8e-2f4a-4b8e-9a55-0d6b1f3c2a10';
const caller = { type: 'caller' as const, user: 'u-1001', department: 'd-17', role: 'user' };
const system = { type: 'system' as const };

export const EXAMPLES: { readonly [K in EventType]: { payload: EventPayloads[K]; actor: EventEnvelope['actor']; imageId: string | null } } = {
  'image.created': {
    actor: caller,
    imageId: IMG,
    payload: {
      name: 'CentOS 7.9',
      kind: 'IMAGE',
      format: 'qcow2',
      scope: Scope.Private,
      zoneId: '0c9a4e1e-6d1e-4a44-9f51-3b7f2d8c9e01',
      sourceType: 'URL',
      ownerId: 'u-1001',
      departmentId: 'd-17',
    },
  },
  'image.updated': { actor: caller, imageId: IMG, payload: { fields: ['name', 'tags'], values: { name: 'CentOS 7.9 (zabbix)', tags: ['centos', 'zabbix'] } } },
  'image.scope_changed': { actor: caller, imageId: IMG, payload: { from: Scope.Private, to: Scope.Public } },
  'image.enabled': { actor: { type: 'caller', user: 'a-7', department: 'd-17', role: 'admin' }, imageId: IMG, payload: {} },
  'image.disabled': { actor: { type: 'caller', user: 'a-7', department: 'd-17', role: 'admin' }, imageId: IMG, payload: { reason: 'virtio driver broken' } },
  'image.import.started': { actor: system, imageId: IMG, payload: { sourceType: 'URL', bytesTotal: 1073741824 } },
  'image.import.progressed': { actor: system, imageId: IMG, payload: { bytesDone: 536870912, bytesTotal: 1073741824, percent: 50, bytesPerSecond: 104857600 } },
  'image.activated': {
    actor: system,
    imageId: IMG,
    payload: { sizeBytes: 1073741824, checksum: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' },
  },
  'image.import.failed': { actor: system, imageId: IMG, payload: { reason: 'The server answered 404 Not Found for http://10.1.2.3/images/centos.qcow2' } },
  'image.deleted': { actor: caller, imageId: IMG, payload: { name: 'CentOS 7.9', kind: 'IMAGE', linkedVms: [{ vmId: 'vm-0001', relation: 'CREATED_FROM' }] } },
  'vm.linked': {
    actor: { type: 'caller', user: 'compute', department: 'platform', role: 'service' },
    imageId: IMG,
    payload: { vmId: 'vm-0001', vmName: 'web-1', ownerId: 'u-1001', departmentId: 'd-17' },
  },
  'vm.unlinked': {
    actor: { type: 'caller', user: 'compute', department: 'platform', role: 'service' },
    imageId: IMG,
    payload: { vmId: 'vm-0001', reason: 'VM_DELETED' },
  },
  'iso.mounted': {
    actor: { type: 'caller', user: 'compute', department: 'platform', role: 'service' },
    imageId: IMG,
    payload: { vmId: 'vm-0001', vmName: 'web-1', ownerId: 'u-1001', departmentId: 'd-17' },
  },
  'iso.unmounted': {
    actor: { type: 'caller', user: 'compute', department: 'platform', role: 'service' },
    imageId: IMG,
    payload: { vmId: 'vm-0001', reason: 'UNMOUNTED' },
  },
  'quota.limit_changed': {
    actor: { type: 'caller', user: 'root', department: 'ops', role: 'super_admin' },
    imageId: null,
    payload: { departmentId: 'd-17', limits: { IMAGE_COUNT: 100, IMAGE_BYTES: null } },
  },
  'quota.refused': {
    actor: caller,
    imageId: null,
    payload: { departmentId: 'd-17', resource: 'IMAGE_COUNT', requested: 1, limit: 100, used: 100, reserved: 0, callerId: '#catalog', reservationId: null },
  },
};

/** A whole example event of `type`, as GET /events and the bus carry it. */
export function exampleEvent(type: EventType, n: number): EventEnvelope {
  const ex = EXAMPLES[type];
  return {
    id: `3f2b8c4e-1d6a-4f0b-9c7e-${String(100000000000 + n).slice(-12)}`,
    type,
    version: EVENT_TYPES[type].version,
    position: 1000 + n,
    time: 1796200000000 + n * 1000,
    imageId: ex.imageId,
    sequence: ex.imageId ? n + 1 : 3,
    actor: ex.actor,
    correlationId: 'req-7f3a9c',
    payload: ex.payload as never,
  };
}
