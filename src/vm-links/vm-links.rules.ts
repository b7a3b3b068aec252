import { AccessPolicy, Action } from '../access/access.policy';
import { Principal } from '../access/principal';
import { ImageEntity } from '../catalog/image.entity';
import { ImageKind, ImagePhase, IsoUsage } from '../catalog/image.enums';
import { imageNotActive, imageNotUsable, isoNotBootable, notAnIso, zoneMismatch } from './vm-links.errors';

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
export function assertUsable(access: AccessPolicy, image: ImageEntity, owner: Principal, zoneId: string, use: ImageUse): void {
  if (use === ImageUse.MountIso && image.kind !== ImageKind.Iso) throw notAnIso(image);
  if (access.decide(owner, Action.Use, image) !== 'allow') throw imageNotUsable(image, owner);
  if (image.phase !== ImagePhase.Ready) throw imageNotActive(image);
  if (use === ImageUse.CreateVm && image.kind === ImageKind.Iso && image.isoUsage !== IsoUsage.OS) throw isoNotBootable(image);
  if (image.zoneId !== zoneId.toLowerCase()) throw zoneMismatch(image, zoneId);
}
