import { ImageWithTags } from '../catalog/image.record';
import { ImageVmResponse, LaunchImageResponse, VmImageResponse, VmLinkResponse } from './vm-links.dto';
import { VmLinkEntity } from './vm-link.entity';
import { QuotaSource } from './vm-links.enums';

const iso = (d: Date | string) => new Date(d).toISOString();

export function toLaunchImageResponse(i: ImageWithTags): LaunchImageResponse {
  return {
    id: i.id,
    kind: i.kind,
    name: i.name,
    format: i.format,
    hypervisor: i.hypervisor,
    osCategory: i.osCategory,
    osName: i.osName,
    osVersion: i.osVersion,
    osBits: i.osBits,
    isoUsage: i.isoUsage,
    zoneId: i.zoneId,
    sizeBytes: i.sizeBytes,
    virtualSizeBytes: i.virtualSizeBytes ?? null,
    checksum: i.checksum,
    checksumMd5: i.checksumMd5,
  };
}

export function toVmLinkResponse(l: VmLinkEntity, quota: QuotaSource): VmLinkResponse {
  return {
    vmId: l.vmId,
    vmName: l.vmName,
    imageId: l.imageId,
    relation: l.relation,
    ownerId: l.ownerId,
    departmentId: l.departmentId,
    reservationId: l.reservationId,
    since: iso(l.since),
    quota,
  };
}

export function toImageVmResponse(l: VmLinkEntity): ImageVmResponse {
  return { vmId: l.vmId, vmName: l.vmName, relation: l.relation, ownerId: l.ownerId, departmentId: l.departmentId, since: iso(l.since) };
}

/** `current`: the image's live name when it still exists (null: gone, the link's snapshot answers). */
export function toVmImageResponse(l: VmLinkEntity, current: { name: string } | null): VmImageResponse {
  const deleted = current === null;
  return {
    imageId: l.imageId,
    name: current?.name ?? l.imageName,
    kind: l.imageKind,
    relation: l.relation,
    since: iso(l.since),
    imageDeleted: deleted,
    imageDeletedAt: l.imageDeletedAt ? iso(l.imageDeletedAt) : null,
  };
}
