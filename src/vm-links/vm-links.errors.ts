import { Principal } from '../access/principal';
import { ImageRecord } from '../catalog/image.record';
import { AppError, ErrorSet } from '../common/errors';

export const imageNotUsable = (image: ImageRecord, owner: Principal) =>
  new AppError('IMAGE_NOT_USABLE', `User ${owner.userId} may not use ${image.kind === 'ISO' ? 'ISO' : 'image'} ${image.id} (${image.scope})`, {
    imageId: image.id,
    scope: image.scope,
    owner: { userId: owner.userId, departmentId: owner.departmentId, role: owner.role },
  });

export const imageNotActive = (image: ImageRecord) =>
  new AppError('IMAGE_NOT_ACTIVE', `Image ${image.id} is ${image.status} (${image.phase}); only an ACTIVE image can be used`, {
    status: image.status,
    phase: image.phase,
  });

export const isoNotBootable = (image: ImageRecord) =>
  new AppError('ISO_NOT_BOOTABLE', `ISO ${image.id} is a ${image.isoUsage} ISO: only an OS ISO can create a VM`, {
    imageId: image.id,
    isoUsage: image.isoUsage,
  });

export const zoneMismatch = (image: ImageRecord, zoneId: string) =>
  new AppError('ZONE_MISMATCH', `Image ${image.id} belongs to zone ${image.zoneId}, not ${zoneId}`, { imageZoneId: image.zoneId, zoneId });

export const tooManyDataDisks = (image: ImageRecord, max: number, dataDisks: number) =>
  new AppError('TOO_MANY_DATA_DISKS', `A VM made from a ${image.osCategory} image mounts at most ${max} data disk; ${dataDisks} asked`, {
    osCategory: image.osCategory,
    maxDataDisks: max,
    dataDisks,
  });

export const rootDiskTooSmall = (image: ImageRecord, rootDiskBytes: number, virtualSizeBytes: number) =>
  new AppError('ROOT_DISK_TOO_SMALL', `Image ${image.id} needs a root disk of at least ${virtualSizeBytes} bytes (its virtual size); ${rootDiskBytes} asked`, {
    rootDiskBytes,
    virtualSizeBytes,
  });

export const notAnIso = (image: ImageRecord) =>
  new AppError('NOT_AN_ISO', `Image ${image.id} is a disk image, not an ISO: it cannot be mounted`, { imageId: image.id, kind: image.kind });

export const vmLinkConflict = (vmId: string, imageId: string, createdFrom: string) =>
  new AppError('VM_LINK_CONFLICT', `VM ${vmId} is recorded as created from image ${createdFrom}, not ${imageId}`, { vmId, imageId, createdFrom });

export const reservationMismatch = (reservationId: string, reason: 'image' | 'department', message: string) =>
  new AppError('RESERVATION_MISMATCH', message, { reservationId, reason });

/** What each VM-link call can raise (launch.service.ts, vm-links.service.ts, download-url.ts). */
export const VM_LINK_ERRORS = {
  launch: ['IMAGE_NOT_FOUND', 'IMAGE_NOT_USABLE', 'IMAGE_NOT_ACTIVE', 'ISO_NOT_BOOTABLE', 'ZONE_MISMATCH', 'TOO_MANY_DATA_DISKS', 'ROOT_DISK_TOO_SMALL'],
  registerOrigin: [
    'IMAGE_NOT_FOUND',
    'IMAGE_NOT_USABLE',
    'IMAGE_NOT_ACTIVE',
    'ISO_NOT_BOOTABLE',
    'ZONE_MISMATCH',
    'RESERVATION_NOT_FOUND',
    'RESERVATION_MISMATCH',
    'VM_LINK_CONFLICT',
    'CONFLICT',
  ],
  mountIso: ['IMAGE_NOT_FOUND', 'NOT_AN_ISO', 'IMAGE_NOT_USABLE', 'IMAGE_NOT_ACTIVE', 'ZONE_MISMATCH', 'CONFLICT'],
  listForImage: ['IMAGE_NOT_FOUND', 'FORBIDDEN'],
  signedUrl: ['DOWNLOAD_URL_INVALID', 'DOWNLOAD_URL_EXPIRED'],
} as const satisfies Record<string, ErrorSet>;
