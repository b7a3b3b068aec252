import type { Scope } from '../access/access.policy';

/**
 * The typed catalogue of every event this service emits: type -> payload, and its version. One file, so the
 * code that writes events, the readers and the AsyncAPI document all come from the same definitions.
 *
 * Versioning: a payload's version changes only when a field is removed or changes meaning; adding an
 * optional field keeps the version. Consumers must ignore fields they do not know.
 */

export interface LinkedVm {
  vmId: string;
  relation: 'CREATED_FROM' | 'ISO_MOUNTED';
}

export interface EventPayloads {
  'image.created': {
    name: string;
    kind: string;
    format: string;
    scope: Scope;
    zoneId: string;
    sourceType: string;
    ownerId: string;
    departmentId: string;
  };
  /** descriptive fields or tags edited: the names of the fields that changed and their new values */
  'image.updated': { fields: string[]; values: Record<string, unknown> };
  'image.scope_changed': { from: Scope; to: Scope };
  'image.enabled': Record<string, never>;
  'image.disabled': { reason: string | null };
  'image.import.started': { sourceType: string; bytesTotal: number | null };
  /** throttled: at most one per image every IMPORT_PROGRESS_EVENT_SECONDS */
  'image.import.progressed': { bytesDone: number; bytesTotal: number | null; percent: number | null; bytesPerSecond: number | null };
  /** the import succeeded: the image is ACTIVE */
  'image.activated': { sizeBytes: number; checksum: string; virtualSizeBytes?: number };
  'image.import.failed': { reason: string };
  'image.deleted': { name: string; kind: string; linkedVms: LinkedVm[] };
  'vm.linked': { vmId: string; vmName: string; ownerId: string; departmentId: string };
  'vm.unlinked': { vmId: string; reason: 'VM_DELETED' | 'QUOTA_EXCEEDED' };
  'iso.mounted': { vmId: string; vmName: string; ownerId: string; departmentId: string };
  'iso.unmounted': { vmId: string; reason: 'UNMOUNTED' | 'VM_DELETED' };
  'quota.limit_changed': { departmentId: string; limits: Record<string, number | null> };
  'quota.refused': {
    departmentId: string;
    resource: string;
    requested: number;
    limit: number | null;
    used: number;
    reserved: number;
    /** who asked: the catalog (an image create), or another service's caller id */
    callerId: string | null;
    reservationId: string | null;
  };
}

export type EventType = keyof EventPayloads;

export interface EventTypeInfo {
  version: number;
  /** what the subject of the event is: an image (imageId set) or a department (quota) */
  subject: 'image' | 'department';
  summary: string;
}

export const EVENT_TYPES: { readonly [K in EventType]: EventTypeInfo } = {
  'image.created': { version: 1, subject: 'image', summary: 'An image or ISO record was created (INACTIVE/QUEUED).' },
  'image.updated': { version: 1, subject: 'image', summary: 'Descriptive fields or tags of an image changed.' },
  'image.scope_changed': { version: 1, subject: 'image', summary: 'The scope (featured, public, private) of an image changed.' },
  'image.enabled': { version: 1, subject: 'image', summary: 'An administrator enabled a disabled image: it is ACTIVE again.' },
  'image.disabled': { version: 1, subject: 'image', summary: 'An administrator disabled an ACTIVE image.' },
  'image.import.started': { version: 1, subject: 'image', summary: 'The bytes of an image started to arrive (download, file copy or upload).' },
  'image.import.progressed': { version: 1, subject: 'image', summary: 'An import is progressing (throttled per image).' },
  'image.activated': { version: 1, subject: 'image', summary: 'The import succeeded and the image is ACTIVE (size, checksum).' },
  'image.import.failed': { version: 1, subject: 'image', summary: 'The import failed for good (the reason is a sentence a person understands).' },
  'image.deleted': { version: 1, subject: 'image', summary: 'An image was deleted, with the VMs that were linked to it (they are untouched).' },
  'vm.linked': { version: 1, subject: 'image', summary: 'A VM was registered as created from an image.' },
  'vm.unlinked': {
    version: 1,
    subject: 'image',
    summary:
      'A VM created from an image was deleted (VM_DELETED), or its registration was taken back because the department had no VM quota left (QUOTA_EXCEEDED).',
  },
  'iso.mounted': { version: 1, subject: 'image', summary: 'A VM mounted an ISO.' },
  'iso.unmounted': { version: 1, subject: 'image', summary: 'A VM unmounted an ISO (or was deleted).' },
  'quota.limit_changed': { version: 1, subject: 'department', summary: 'A super admin changed limits of a department quota.' },
  'quota.refused': { version: 1, subject: 'department', summary: 'A request was refused because the department quota had no room left.' },
};

export const ALL_EVENT_TYPES = Object.keys(EVENT_TYPES) as EventType[];

/** Who caused an event: a caller of the API (from its token), or the service itself (workers, sweeps). */
export type EventActor = { type: 'caller'; user: string; department: string; role: string } | { type: 'system' };

/** Who may see the event, frozen when it was written (see the README, "Events": filtering). */
export interface EventVisibility {
  scope: Scope | null;
  ownerId: string | null;
  departmentId: string | null;
}

/** One event as it is stored, read and published. */
export interface EventEnvelope<T extends EventType = EventType> {
  id: string;
  type: T;
  version: number;
  /** the cursor: increases with every event, in commit order */
  position: number;
  /** ms since the epoch */
  time: number;
  imageId: string | null;
  /** the order of events of one subject (image, or department for quota events), from 1 */
  sequence: number;
  actor: EventActor;
  correlationId: string | null;
  payload: EventPayloads[T];
}

/** What a module hands to EventsService.record: the rest of the envelope is filled in. */
export interface EventDraft<T extends EventType = EventType> {
  type: T;
  imageId?: string | null;
  /** the department of a quota event */
  departmentId?: string | null;
  visibility: EventVisibility;
  payload: EventPayloads[T];
}
