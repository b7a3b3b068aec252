import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentPrincipal, Roles } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { Role } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
import { uuidPipe } from '../common/uuid.pipe';
import { QuotaResource } from '../quota/quota.enums';
import { Launch, LaunchService } from './launch.service';
import {
  ImageVmPage,
  LaunchRequestDto,
  LaunchResponse,
  ListImageVmsQuery,
  RegisterMountDto,
  RegisterOriginDto,
  VM_ID,
  VmImagesResponse,
  vmIdPipe,
  VmLinkResponse,
} from './vm-links.dto';
import { toImageVmResponse, toLaunchImageResponse, toVmLinkResponse } from './vm-links.mapper';
import { VM_LINK_ERRORS } from './vm-links.errors';
import { Registered, VmLinksService } from './vm-links.service';
import { QUOTA_ERRORS } from '../quota/quota.errors';

const ApiVmIdParam = () => ApiParam({ name: 'vmId', type: String, schema: { type: 'string', pattern: VM_ID.source, maxLength: 64, example: 'vm-0001' }, description: "The compute side's VM id." });

function toLaunchResponse(l: Launch): LaunchResponse {
  const vms = l.reservation.items.find((i) => i.resource === QuotaResource.VmCount);
  return {
    reservationId: l.reservation.id,
    reservationStatus: l.reservation.status,
    count: l.count,
    pendingVms: vms?.pending ? vms.reserved : 0,
    diskBytesPerVm: l.diskBytesPerVm,
    expiresAt: l.reservation.expiresAt.toISOString(),
    image: toLaunchImageResponse(l.image),
    download: { url: l.download.url, method: l.download.method, expiresAt: l.download.expiresAt.toISOString() },
  };
}

const registered = (r: Registered, res: Response): VmLinkResponse => {
  res.status(r.created ? 201 : 200);
  return toVmLinkResponse(r.link, r.quota);
};

/** Launching VMs from an image or ISO (R19), for the compute side. */
@ApiTags('vm-links')
@ApiBearerAuth()
@Roles(Role.Service)
@Controller('images')
export class LaunchesController {
  constructor(private readonly launches: LaunchService) {}

  /**
   * The launch check (`service` callers): may `count` VMs with `dataDisks` data disks each be created from this
   * image or ISO for this owner in this zone? Refused, each with its own code and in this order, unless the owner
   * may use it by scope (403 IMAGE_NOT_USABLE; the compute side sees every image, so this tells it nothing
   * hidden), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE: a tool ISO never
   * creates a VM), the zone is the image's (422 ZONE_MISMATCH), a Windows-IDE image or ISO gets at most one
   * data disk (422 TOO_MANY_DATA_DISKS), a disk image's virtual size fits on `rootDiskBytes` when given (422
   * ROOT_DISK_TOO_SMALL), and the owner's department has VM_COUNT and DISK_BYTES quota for all of them (409
   * QUOTA_EXCEEDED; DISK_BYTES per VM is `rootDiskBytes`, else a disk image's virtual size, plus `dataDiskBytes`). On success the VMs are reserved (LAUNCH_RESERVATION_TTL_SECONDS) and the answer carries
   * what compute needs: format, hypervisor, OS category and bits, size, checksum, and a URL to read the bytes
   * without a token until `download.expiresAt` (presigned for MinIO, a signed `/downloads/{id}` URL for the
   * filesystem store). Register each VM made with `PUT /vms/{vmId}/origin` and the `reservationId`.
   * Idempotent by `idempotencyKey`: 201 when reserved, 200 with the same reservation (in its current state) and
   * a fresh URL when the key was seen with the same request.
   */
  @ApiUuidParam()
  @Post(':id/launches')
  @ApiCreatedResponse({ type: LaunchResponse, description: 'Allowed: the VMs are reserved.' })
  @ApiOkResponse({ type: LaunchResponse, description: 'The key was used before with the same request: that launch.' })
  @ApiErrors(VM_LINK_ERRORS.launch, QUOTA_ERRORS.reserve)
  async launch(
    @CurrentPrincipal() p: Principal,
    @Param('id', uuidPipe) id: string,
    @Body() dto: LaunchRequestDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<LaunchResponse> {
    const l = await this.launches.launch(p, id, dto);
    res.status(l.created ? 201 : 200);
    return toLaunchResponse(l);
  }
}

/** The VMs linked to an image (R20). */
@ApiTags('vm-links')
@ApiBearerAuth()
@Controller('images')
export class ImageVmsController {
  constructor(private readonly links: VmLinksService) {}

  /**
   * The VMs created from this image or mounting this ISO (id, name, relation, owner, since), oldest first, paged:
   * what a delete would show (R20). For whoever may delete the image, and services (others: 403 FORBIDDEN, or
   * 404 for an image they may not see). After a confirmed delete, super admins and services still read them
   * with `imageDeleted: true`.
   */
  @ApiUuidParam()
  @Get(':id/vms')
  @ApiOkResponse({ type: ImageVmPage })
  @ApiErrors(VM_LINK_ERRORS.listForImage)
  async list(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Query() q: ListImageVmsQuery): Promise<ImageVmPage> {
    const page = await this.links.listForImage(p, id, q);
    return { imageId: id, imageDeleted: page.imageDeleted, items: page.items.map(toImageVmResponse), total: page.total, page: page.page, pageSize: page.pageSize };
  }
}

/** What the compute side tells this service about its VMs, and where a VM came from. */
@ApiTags('vm-links')
@ApiBearerAuth()
@Controller('vms')
export class VmsController {
  constructor(private readonly links: VmLinksService) {}

  /**
   * Where a VM came from (`createdFrom`) and which ISOs it mounts now. A link whose image was deleted still
   * answers, with `imageDeleted: true` and the image's last name. Services and super admins see every VM, an
   * admin its department's, a user their own; a VM with nothing recorded (or nothing the caller may see)
   * answers empty.
   */
  @ApiVmIdParam()
  @Get(':vmId/images')
  @ApiOkResponse({ type: VmImagesResponse })
  images(@CurrentPrincipal() p: Principal, @Param('vmId', vmIdPipe) vmId: string): Promise<VmImagesResponse> {
    return this.links.imagesOfVm(p, vmId);
  }

  /**
   * Register that the VM was created from an image or OS ISO (`service` callers). Checked by the launch's rule,
   * with or without a reservation (the image may have changed since): the owner may use it (403
   * IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE: a tool
   * ISO never creates a VM, R6), and `zoneId` is the image's (422 ZONE_MISMATCH). With the launch's
   * `reservationId`, one of its VMs is committed for this VM (`quota: LAUNCH_RESERVATION`); without it, or when
   * the reservation no longer holds a VM (expired, all registered), the VM is counted directly (`quota:
   * DIRECT`) only if the department's VM_COUNT limit has room (409 QUOTA_EXCEEDED, nothing recorded).
   * Idempotent by VM: the same image again answers 200 and charges nothing more; another image is 409
   * VM_LINK_CONFLICT. A new `vmName` renames the VM.
   */
  @ApiVmIdParam()
  @Put(':vmId/origin')
  @Roles(Role.Service)
  @ApiCreatedResponse({ type: VmLinkResponse, description: 'Registered.' })
  @ApiOkResponse({ type: VmLinkResponse, description: 'Already registered: the link as it is.' })
  @ApiErrors(VM_LINK_ERRORS.registerOrigin, QUOTA_ERRORS.get, QUOTA_ERRORS.charge)
  async origin(@Param('vmId', vmIdPipe) vmId: string, @Body() dto: RegisterOriginDto, @Res({ passthrough: true }) res: Response): Promise<VmLinkResponse> {
    return registered(await this.links.registerOrigin(vmId, dto), res);
  }

  /**
   * Register that the VM mounted an ISO (`service` callers), checked like a use of it: it must be an ISO
   * (422 NOT_AN_ISO), the owner may use it (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE) and in
   * the VM's zone (422 ZONE_MISMATCH). Tool ISOs mount like OS ISOs. Idempotent: mounted again answers 200.
   */
  @ApiVmIdParam()
  @ApiUuidParam('isoId', 'The ISO id (UUID).')
  @Put(':vmId/iso-mounts/:isoId')
  @Roles(Role.Service)
  @ApiCreatedResponse({ type: VmLinkResponse, description: 'Registered.' })
  @ApiOkResponse({ type: VmLinkResponse, description: 'Already mounted: the link as it is.' })
  @ApiErrors(VM_LINK_ERRORS.mountIso)
  async mount(
    @Param('vmId', vmIdPipe) vmId: string,
    @Param('isoId', uuidPipe) isoId: string,
    @Body() dto: RegisterMountDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<VmLinkResponse> {
    return registered(await this.links.mountIso(vmId, isoId, dto), res);
  }

  /** Register that the VM unmounted an ISO (`service` callers). Idempotent: 204 whether or not it was mounted. */
  @ApiVmIdParam()
  @ApiUuidParam('isoId', 'The ISO id (UUID).')
  @Delete(':vmId/iso-mounts/:isoId')
  @HttpCode(204)
  @Roles(Role.Service)
  @ApiNoContentResponse({ description: 'Not mounted (any more).' })
  async unmount(@Param('vmId', vmIdPipe) vmId: string, @Param('isoId', uuidPipe) isoId: string): Promise<void> {
    await this.links.unmountIso(vmId, isoId);
  }

  /**
   * Register that the VM was deleted (`service` callers): its links are removed and its VM quota goes back to
   * its department. Idempotent: 204 whether or not anything was recorded.
   */
  @ApiVmIdParam()
  @Delete(':vmId')
  @HttpCode(204)
  @Roles(Role.Service)
  @ApiNoContentResponse({ description: 'Nothing is recorded for this VM (any more).' })
  @ApiErrors(QUOTA_ERRORS.refund)
  async remove(@Param('vmId', vmIdPipe) vmId: string): Promise<void> {
    await this.links.deleteVm(vmId);
  }
}
