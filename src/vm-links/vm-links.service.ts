import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { AccessPolicy, Scope } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { CatalogService } from '../catalog/catalog.service';
import { ImageRecord } from '../catalog/image.record';
import { ImageKind } from '../catalog/image.enums';
import { DeleteOptions, ImageLifecycleListener } from '../catalog/image-lifecycle';
import { AppError, notFound } from '../common/errors';
import { EventVisibility } from '../events/event-catalogue';
import { EventsService, imageVisibility } from '../events/events.service';
import { Page, pageOf } from '../common/pagination.dto';
import { QuotaResource, ReservationStatus } from '../quota/quota.enums';
import { QuotaService } from '../quota/quota.service';
import { ListImageVmsQuery, RegisterMountDto, RegisterOriginDto, VmImagesResponse, VmOwnerDto } from './vm-links.dto';
import { reservationMismatch, vmLinkConflict } from './vm-links.errors';
import { assertUsable, ImageUse } from './vm-links.rules';
import { toImageVmResponse, toVmImageResponse } from './vm-links.mapper';
import { VmLinkEntity } from './vm-link.entity';
import { VmLinksRepository } from './vm-links.repository';
import { LinkRelation, QuotaSource } from './vm-links.enums';

/** The quota caller id of launches and VMs: '#' never occurs in a token's `sub`, so no HTTP caller can use its keys. */
export const VM_LINKS_CALLER = '#vm-links';
/** The key of a VM's own quota reservation: one per CREATED_FROM link row (a new row after a VM id's deletion is a new key). */
export const vmQuotaKey = (linkId: string) => `vm:${linkId}`;
/** Most VMs an IMAGE_IN_USE answer lists (details.total counts them all). */
export const IN_USE_LIST_LIMIT = 100;

/** Events about an image that is gone: private to nobody, so only super admins and services see them. */
const DELETED_IMAGE_VISIBILITY: EventVisibility = { scope: Scope.Private, ownerId: null, departmentId: null };

/** The VM owner as a principal, so the scope rules (R8) are asked of the one policy. */
export const ownerPrincipal = (o: VmOwnerDto): Principal => ({ userId: o.userId, name: o.userId, departmentId: o.departmentId, role: o.role ?? Role.User });

export interface Registered {
  link: VmLinkEntity;
  created: boolean;
  quota: QuotaSource;
}

/**
 * Which VMs came from which image and which mount which ISO (R19, R20), as the compute side registers them,
 * and what an image's deletion must show first.
 *
 * Quota: a launch reserves VM_COUNT and DISK_BYTES for its owner's department (LaunchService). Registering a VM
 * created from an image charges it as a COMMITTED reservation of its own (key `vm:<linkId>`) holding one VM and
 * its disk bytes, each taken from the launch's reservation while that holds it, else through the conditional
 * ledger increase (refused at the limit); deleting the VM refunds exactly that. So the department's VM usage is the
 * number of its registered VMs, whatever order things happen in, and every step is idempotent.
 *
 * Catalog hooks: `checkDelete` refuses a plain delete of an image VMs use (409 IMAGE_IN_USE listing them);
 * `afterDelete` keeps the links as history marked "image deleted". The VMs themselves are never touched.
 */
@Injectable()
export class VmLinksService implements ImageLifecycleListener {
  private readonly log = new Logger('VmLinks');

  constructor(
    private readonly repo: VmLinksRepository,
    private readonly events: EventsService,
    private readonly catalog: CatalogService,
    private readonly access: AccessPolicy,
    private readonly quota: QuotaService,
  ) {}

  // ------------------------------------------------------------------ registering

  /**
   * The VM was created from `imageId` (R19). Checked by the same rule as the launch (`assertUsable`: the owner
   * may use it, it is ACTIVE, an ISO is an OS ISO, it is in the VM's zone), with or without a launch
   * reservation, since the image may have changed since the launch and a VM registered without one was never
   * checked. Its VM is charged through the conditional ledger increase like every other one: from the launch's
   * reservation while that holds one, else only if the department has room (QUOTA_EXCEEDED otherwise, and
   * nothing is recorded). Idempotent by VM: the same image again answers the link (and makes sure its quota is
   * charged, should an earlier call have stopped half-way); another image is VM_LINK_CONFLICT.
   */
  async registerOrigin(vmId: string, dto: RegisterOriginDto): Promise<Registered> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.repo.findOrigin(vmId);
      if (existing) {
        if (existing.imageId !== dto.imageId) throw vmLinkConflict(vmId, dto.imageId, existing.imageId);
        const quota = await this.chargeOrForget(existing, dto.diskBytes);
        await this.rename(existing, dto.vmName);
        return { link: existing, created: false, quota };
      }
      const image = await this.catalog.findInternal(dto.imageId);
      if (!image) throw notFound('IMAGE', dto.imageId);
      assertUsable(this.access, image, ownerPrincipal(dto.owner), dto.zoneId, ImageUse.CreateVm);
      if (dto.reservationId) await this.checkReservation(dto.reservationId, image, dto.owner.departmentId);
      const link = this.newLink(vmId, image, LinkRelation.CreatedFrom, dto.vmName, dto.owner, dto.reservationId ?? null);
      const linked = await this.repo.insert(link, (m) =>
        this.events.record(m, {
          type: 'vm.linked',
          imageId: image.id,
          visibility: imageVisibility(image),
          payload: { vmId, vmName: link.vmName, ownerId: link.ownerId, departmentId: link.departmentId },
        }),
      );
      if (!linked) continue; // registered concurrently: answer that one
      const quota = await this.chargeOrForget(link, dto.diskBytes, image);
      await this.markIfGone(image);
      await this.repo.renameVm(vmId, link.vmName);
      return { link, created: true, quota };
    }
    throw new AppError('CONFLICT', `VM ${vmId} changed concurrently; try again`);
  }

  /**
   * The VM mounted ISO `isoId`. Checked like a use of it (`assertUsable`): it is an ISO, the owner may use it, it
   * is ACTIVE and in the VM's zone; tool ISOs mount like OS ISOs. Idempotent: mounting it again answers the link,
   * unchecked.
   */
  async mountIso(vmId: string, isoId: string, dto: RegisterMountDto): Promise<Registered> {
    const existing = await this.repo.find(vmId, isoId, LinkRelation.IsoMounted);
    if (existing) {
      await this.rename(existing, dto.vmName);
      return { link: existing, created: false, quota: QuotaSource.None };
    }
    const image = await this.catalog.findInternal(isoId);
    if (!image) throw notFound('IMAGE', isoId);
    assertUsable(this.access, image, ownerPrincipal(dto.owner), dto.zoneId, ImageUse.MountIso);
    const link = this.newLink(vmId, image, LinkRelation.IsoMounted, dto.vmName, dto.owner, null);
    const mounted = await this.repo.insert(link, (m) =>
      this.events.record(m, {
        type: 'iso.mounted',
        imageId: image.id,
        visibility: imageVisibility(image),
        payload: { vmId, vmName: link.vmName, ownerId: link.ownerId, departmentId: link.departmentId },
      }),
    );
    if (!mounted) {
      const now = await this.repo.find(vmId, isoId, LinkRelation.IsoMounted);
      if (now) return { link: now, created: false, quota: QuotaSource.None };
      throw new AppError('CONFLICT', `VM ${vmId} changed concurrently; try again`);
    }
    await this.markIfGone(image);
    await this.repo.renameVm(vmId, link.vmName);
    return { link, created: true, quota: QuotaSource.None };
  }

  /** The VM unmounted the ISO. Idempotent: true when a mount was removed. */
  async unmountIso(vmId: string, isoId: string): Promise<boolean> {
    const visibility = await this.visibilityOf(isoId);
    return this.repo.deleteOne(vmId, isoId, LinkRelation.IsoMounted, (m) =>
      this.events.record(m, { type: 'iso.unmounted', imageId: isoId, visibility, payload: { vmId, reason: 'UNMOUNTED' } }),
    );
  }

  /**
   * The VM was deleted: its VM quota goes back and its links are removed. Idempotent. Refunds come first, so
   * a call that stops half-way and is repeated never leaves a VM counted without a link.
   */
  async deleteVm(vmId: string): Promise<number> {
    const links = await this.repo.findByVm(vmId);
    for (const l of links) if (l.relation === LinkRelation.CreatedFrom) await this.quota.refundByKey(VM_LINKS_CALLER, vmQuotaKey(l.id));
    const visibility = new Map<string, EventVisibility>();
    for (const l of links) if (!visibility.has(l.imageId)) visibility.set(l.imageId, await this.visibilityOf(l.imageId));
    return this.repo.deleteByVm(vmId, async (m, removed) => {
      for (const l of removed) {
        const vis = visibility.get(l.imageId) ?? DELETED_IMAGE_VISIBILITY;
        if (l.relation === LinkRelation.CreatedFrom)
          await this.events.record(m, { type: 'vm.unlinked', imageId: l.imageId, visibility: vis, payload: { vmId, reason: 'VM_DELETED' } });
        else await this.events.record(m, { type: 'iso.unmounted', imageId: l.imageId, visibility: vis, payload: { vmId, reason: 'VM_DELETED' } });
      }
    });
  }

  /** Who may see an event about the image: its scope rules, or super admins and services once it is gone. */
  private async visibilityOf(imageId: string): Promise<EventVisibility> {
    const image = await this.catalog.findInternal(imageId);
    return image ? imageVisibility(image) : DELETED_IMAGE_VISIBILITY;
  }

  // ------------------------------------------------------------------ reading

  /**
   * The VMs linked to an image, for whoever may delete it (R20: they are shown before a delete) and services;
   * after a confirmed delete, super admins and services still read them (the image is gone, the VMs are not).
   */
  async listForImage(p: Principal, imageId: string, q: ListImageVmsQuery): Promise<Page<VmLinkEntity> & { imageDeleted: boolean }> {
    const image = await this.catalog.findInternal(imageId);
    if (image) {
      this.access.assertCanListImageVms(p, image, imageId);
    } else if (!this.access.canListVmsOfDeletedImage(p) || !(await this.repo.hasLinks(imageId))) {
      throw notFound('IMAGE', imageId);
    }
    const page = q.page ?? 1;
    const pageSize = q.pageSize ?? 20;
    const [items, total] = await this.repo.listByImage(imageId, q.relation, (page - 1) * pageSize, pageSize);
    return { ...pageOf(items, total, { page, pageSize }), imageDeleted: !image };
  }

  /**
   * Where a VM came from and which ISOs it mounts, with "image deleted" where the image is gone. Services and
   * super admins see every VM; an admin its department's; a user their own. Nothing known (or visible) is an
   * empty answer, not an error: this service knows VMs only through their links.
   */
  async imagesOfVm(p: Principal, vmId: string): Promise<VmImagesResponse> {
    const rows = (await this.repo.findByVm(vmId)).filter((l) => this.access.canReadVmLink(p, l));
    const current = await Promise.all(rows.map((l) => (l.imageDeletedAt ? Promise.resolve(null) : this.catalog.findInternal(l.imageId))));
    const out = rows.map((l, i) => toVmImageResponse(l, current[i]));
    const origin = rows.findIndex((l) => l.relation === LinkRelation.CreatedFrom);
    const head = rows[origin] ?? rows[0];
    return {
      vmId,
      vmName: head?.vmName ?? null,
      ownerId: head?.ownerId ?? null,
      departmentId: head?.departmentId ?? null,
      createdFrom: origin >= 0 ? out[origin] : null,
      isoMounts: out.filter((_, i) => rows[i].relation === LinkRelation.IsoMounted),
    };
  }

  // ------------------------------------------------------------------ the catalog's delete (R20)

  /** A plain delete of an image VMs use is refused, listing them; `confirm` deletes it anyway. */
  async checkDelete(image: ImageRecord, _p: Principal, opts: DeleteOptions): Promise<void> {
    if (opts.confirm) return;
    const [links, total] = await this.repo.listLive(image.id, IN_USE_LIST_LIMIT);
    if (!total) return;
    throw new AppError(
      'IMAGE_IN_USE',
      `${image.kind === ImageKind.Iso ? 'ISO' : 'Image'} ${image.id} has ${total} VM link(s); delete with ?confirm=true to delete it anyway (the VMs are not affected)`,
      { imageId: image.id, total, vms: links.map(toImageVmResponse) },
    );
  }

  /** The VMs linked to the image, for its image.deleted event. */
  async describeDelete(image: ImageRecord): Promise<{ linkedVms: Array<{ vmId: string; relation: LinkRelation }> }> {
    const [links] = await this.repo.listLive(image.id, 10_000);
    return { linkedVms: links.map((l) => ({ vmId: l.vmId, relation: l.relation })) };
  }

  /** The image is gone: its links stay as history, marked "image deleted" with its last name. Never throws. */
  async afterDelete(image: ImageRecord): Promise<void> {
    await this.repo
      .markImageDeleted(image.id, image.name, image.kind, new Date())
      .catch((e: unknown) => this.log.error(`Marking the links of deleted image ${image.id} failed: ${(e as Error)?.message ?? String(e)}`));
  }

  // ------------------------------------------------------------------ helpers

  private newLink(vmId: string, image: ImageRecord, relation: LinkRelation, vmName: string, owner: VmOwnerDto, reservationId: string | null): VmLinkEntity {
    return Object.assign(new VmLinkEntity(), {
      id: randomUUID(),
      vmId,
      imageId: image.id,
      relation,
      originVmId: relation === LinkRelation.CreatedFrom ? vmId : null,
      vmName,
      ownerId: owner.userId,
      departmentId: owner.departmentId,
      reservationId,
      imageName: image.name,
      imageKind: image.kind,
      since: new Date(),
      imageDeletedAt: null,
    } satisfies VmLinkEntity);
  }

  /** A reservation given with a VM must be a launch of this image for the owner's department. */
  private async checkReservation(reservationId: string, image: ImageRecord, departmentId: string): Promise<void> {
    const r = await this.quota.getReservation(reservationId);
    if (r.callerId !== VM_LINKS_CALLER || r.subjectId !== image.id) {
      throw reservationMismatch(reservationId, 'image', `Reservation ${reservationId} is not a launch of image ${image.id}`);
    }
    if (r.departmentId !== departmentId) {
      throw reservationMismatch(reservationId, 'department', `Reservation ${reservationId} is for department ${r.departmentId}, not ${departmentId}`);
    }
  }

  /**
   * The DISK_BYTES of a CREATED_FROM link's VM: what the registration says, else its share of the launch's
   * DISK_BYTES while that reservation holds VMs (pending DISK_BYTES / pending VMs, rounded up: every VM of a
   * launch reserved the same), else a disk image's virtual size (an ISO: nothing known, 0).
   */
  private async diskBytesOf(link: VmLinkEntity, given: number | undefined, image: ImageRecord | null): Promise<number> {
    if (given !== undefined) return given;
    const r = link.reservationId ? await this.quota.getReservation(link.reservationId).catch(() => null) : null;
    const vms = r?.status === ReservationStatus.Pending ? r.items.find((i) => i.resource === QuotaResource.VmCount && i.pending && i.reserved > 0) : undefined;
    if (r && vms) {
      const disk = r.items.find((i) => i.resource === QuotaResource.DiskBytes && i.pending);
      return disk ? Math.ceil(disk.reserved / vms.reserved) : 0;
    }
    return image?.kind === ImageKind.Image ? (image.virtualSizeBytes ?? 0) : 0;
  }

  /** Charges the VM of a CREATED_FROM link, its VM_COUNT and DISK_BYTES (idempotent by link). */
  private async chargeVm(link: VmLinkEntity, diskBytes: number): Promise<QuotaSource> {
    const r = await this.quota.charge({
      key: vmQuotaKey(link.id),
      callerId: VM_LINKS_CALLER,
      departmentId: link.departmentId,
      subjectId: link.vmId,
      amounts: { [QuotaResource.VmCount]: 1, [QuotaResource.DiskBytes]: diskBytes },
      fromReservationId: link.reservationId,
    });
    return r.fromReservation ? QuotaSource.LaunchReservation : QuotaSource.Direct;
  }

  /**
   * Charges the link's VM; when the department has no room (QUOTA_EXCEEDED) the link is removed again, so a VM
   * is recorded only when it is counted, and the refusal is answered.
   */
  private async chargeOrForget(link: VmLinkEntity, givenDiskBytes: number | undefined, image?: ImageRecord): Promise<QuotaSource> {
    try {
      const diskBytes = await this.diskBytesOf(link, givenDiskBytes, image ?? (await this.catalog.findInternal(link.imageId)));
      return await this.chargeVm(link, diskBytes);
    } catch (e) {
      if (e instanceof AppError && e.code === 'QUOTA_EXCEEDED') {
        // the link's vm.linked event is out already: its removal is told in the same transaction as the delete
        const visibility = image ? imageVisibility(image) : await this.visibilityOf(link.imageId);
        await this.repo.deleteById(link.id, (m) =>
          this.events.record(m, { type: 'vm.unlinked', imageId: link.imageId, visibility, payload: { vmId: link.vmId, reason: 'QUOTA_EXCEEDED' } }),
        );
        // a concurrent replay of this registration may have charged it meanwhile: give that back too
        await this.quota.refundByKey(VM_LINKS_CALLER, vmQuotaKey(link.id));
      }
      throw e;
    }
  }

  /** A registration with another VM name renames the VM in all its links (a VM has one name). */
  private async rename(link: VmLinkEntity, vmName: string): Promise<void> {
    await this.repo.renameVm(link.vmId, vmName);
    link.vmName = vmName;
  }

  /** The image was deleted while the link was being written (after the delete marked its links): mark this one too. */
  private async markIfGone(image: ImageRecord): Promise<void> {
    if (!(await this.catalog.findInternal(image.id))) await this.afterDelete(image);
  }
}
