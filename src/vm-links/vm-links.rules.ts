import { AccessPolicy, Action } from '../access/access.policy';
import { Principal } from '../access/principal';
import { ImageRecord } from '../catalog/image.record';
import { ImageKind, ImagePhase, IsoUsage, OsCategory } from '../catalog/image.enums';
import { imageNotActive, imageNotUsable, isoNotBootable, notAnIso, rootDiskTooSmall, tooManyDataDisks, zoneMismatch } from './vm-links.errors';

/** What a VM does with an image or ISO. */
export enum ImageUse {
  /** The VM is created from it (a launch, a registered origin): R19, and R6 for ISOs. */
  CreateVm = 'CREATE_VM',
  /** The VM mounts it (an ISO mount): any ACTIVE ISO, tool ISOs included. */
  MountIso = 'MOUNT_ISO',
}

/**
 * The one rule of whether `owner`'s VM in `zoneId` may use `image` for `use`, shared by the launch check, the
 * registration of a VM's origin and an ISO mount, so no route lets through what another refuses. Checked in
 * this order, each refusal with its own code:
 *   NOT_AN_ISO (a mount of a disk image), IMAGE_NOT_USABLE (the owner may not use it by scope, R8),
 *   IMAGE_NOT_ACTIVE (R7, R19: queued, importing, failed or disabled), ISO_NOT_BOOTABLE (a VM created from a
 *   tool ISO, R6), ZONE_MISMATCH (R15).
 * A refused owner hears nothing about the image's state (the scope comes before everything else about it).
 */
export function assertUsable(access: AccessPolicy, image: ImageRecord, owner: Principal, zoneId: string, use: ImageUse): void {
  if (use === ImageUse.MountIso && image.kind !== ImageKind.Iso) throw notAnIso(image);
  if (access.decide(owner, Action.Use, image) !== 'allow') throw imageNotUsable(image, owner);
  if (image.phase !== ImagePhase.Ready) throw imageNotActive(image);
  if (use === ImageUse.CreateVm && image.kind === ImageKind.Iso && image.isoUsage !== IsoUsage.OS) throw isoNotBootable(image);
  if (image.zoneId !== zoneId.toLowerCase()) throw zoneMismatch(image, zoneId);
}

/** R3: a VM made from a Windows-IDE image or ISO mounts at most this many data disks. */
export const WINDOWS_IDE_MAX_DATA_DISKS = 1;

/** What a launch asks of the VM's disks. */
export interface LaunchDisks {
  dataDisks?: number;
  rootDiskBytes?: number;
}

/**
 * The launch's disk rules, after `assertUsable`: a Windows-IDE image or ISO gets at most one data disk
 * (TOO_MANY_DATA_DISKS); a disk image must fit on the root disk asked for (ROOT_DISK_TOO_SMALL), unless its
 * virtual size is unknown. An ISO is mounted, not copied onto the root disk, so it has no size rule.
 */
export function assertLaunchDisks(image: ImageRecord, disks: LaunchDisks): void {
  const dataDisks = disks.dataDisks ?? 0;
  if (image.osCategory === OsCategory.WindowsIde && dataDisks > WINDOWS_IDE_MAX_DATA_DISKS)
    throw tooManyDataDisks(image, WINDOWS_IDE_MAX_DATA_DISKS, dataDisks);
  if (image.kind === ImageKind.Image && disks.rootDiskBytes !== undefined && image.virtualSizeBytes !== null && disks.rootDiskBytes < image.virtualSizeBytes) {
    throw rootDiskTooSmall(image, disks.rootDiskBytes, image.virtualSizeBytes);
  }
}
