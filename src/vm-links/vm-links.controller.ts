import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
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

const ApiVmIdParam = () =>
  ApiParam({
    name: 'vmId',
    type: String,
    schema: { type: 'string', pattern: VM_ID.source, maxLength: 64, example: 'vm-0001' },
    description: "The compute side's VM id.",
  });

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

/** Launching VMs from an image or ISO, for the compute side. */
@ApiTags('vm-links')
@ApiBearerAuth()
@Roles(Role.Service)
@Controller('images')
export class LaunchesController {
  constructor(private readonly launches: LaunchService) {}

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Post(':id/launches')
  @ApiCreatedResponse({ type: LaunchResponse, description: 'Allowed: the VMs are reserved.' })
  @ApiOkResponse({ type: LaunchResponse, description: 'The key was used before with the same request: that launch.' })
  @ApiErrors(VM_LINK_ERRORS.launch, QUOTA_ERRORS.reserve)
  @ApiOperation({
    summary: 'Check and reserve a VM launch',
    description:
      "The launch check for the compute side: may `count` VMs with `dataDisks` data disks each be created from this image or ISO for this owner in this zone? Refused, in this order, unless the owner may use it by scope (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE), the zone is the image's (422 ZONE_MISMATCH), a Windows-IDE image gets at most one data disk (422 TOO_MANY_DATA_DISKS), a disk image's virtual size fits on `rootDiskBytes` (422 ROOT_DISK_TOO_SMALL), and the department has VM_COUNT and DISK_BYTES quota for all of them (409 QUOTA_EXCEEDED).\n\nOn success the VMs are reserved for a while and the answer carries what compute needs: format, hypervisor, OS, size, checksum, and a URL to read the bytes without a token until `download.expiresAt`. Register each VM made with `PUT /vms/{vmId}/origin` and the `reservationId`. Idempotent by `idempotencyKey`: 201 when reserved, 200 with the same reservation and a fresh URL when the key was seen with the same request. `service` callers only.",
  })
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

/** The VMs linked to an image. */
@ApiTags('vm-links')
@ApiBearerAuth()
@Controller('images')
export class ImageVmsController {
  constructor(private readonly links: VmLinksService) {}

  @ApiUuidParam('id', 'The image or ISO id (UUID).')
  @Get(':id/vms')
  @ApiOkResponse({ type: ImageVmPage })
  @ApiErrors(VM_LINK_ERRORS.listForImage)
  @ApiOperation({
    summary: 'List the VMs using an image',
    description:
      'The VMs created from this image or mounting this ISO (id, name, relation, owner, since), oldest first, paged: what a delete would show. For whoever may delete the image, and services (others: 403 FORBIDDEN, or 404 for an image they may not see). After a confirmed delete, super admins and services still read them with `imageDeleted: true`.',
  })
  async list(@CurrentPrincipal() p: Principal, @Param('id', uuidPipe) id: string, @Query() q: ListImageVmsQuery): Promise<ImageVmPage> {
    const page = await this.links.listForImage(p, id, q);
    return {
      imageId: id,
      imageDeleted: page.imageDeleted,
      items: page.items.map(toImageVmResponse),
      total: page.total,
      page: page.page,
      pageSize: page.pageSize,
    };
  }
}

/** What the compute side tells this service about its VMs, and where a VM came from. */
@ApiTags('vm-links')
@ApiBearerAuth()
@Controller('vms')
export class VmsController {
  constructor(private readonly links: VmLinksService) {}

  @ApiVmIdParam()
  @Get(':vmId/images')
  @ApiOkResponse({ type: VmImagesResponse })
  @ApiOperation({
    summary: 'Get the images a VM uses',
    description:
      "Where a VM came from (`createdFrom`) and which ISOs it mounts now. A link whose image was deleted still answers, with `imageDeleted: true` and the image's last name. Services and super admins see every VM, an admin its department's, a user their own; a VM with nothing recorded (or nothing the caller may see) answers empty.",
  })
  images(@CurrentPrincipal() p: Principal, @Param('vmId', vmIdPipe) vmId: string): Promise<VmImagesResponse> {
    return this.links.imagesOfVm(p, vmId);
  }

  @ApiVmIdParam()
  @Put(':vmId/origin')
  @Roles(Role.Service)
  @ApiCreatedResponse({ type: VmLinkResponse, description: 'Registered.' })
  @ApiOkResponse({ type: VmLinkResponse, description: 'Already registered: the link as it is.' })
  @ApiErrors(VM_LINK_ERRORS.registerOrigin, QUOTA_ERRORS.get, QUOTA_ERRORS.charge)
  @ApiOperation({
    summary: 'Register the image a VM was created from',
    description:
      "Registers that the VM was created from an image or OS ISO (`service` callers), checked by the launch's rule: the owner may use it (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE), and `zoneId` is the image's (422 ZONE_MISMATCH). With the launch's `reservationId` one of its VMs is committed for this VM (`quota: LAUNCH_RESERVATION`); without it, or when the reservation no longer holds a VM, the VM is counted directly (`quota: DIRECT`) if the department's VM_COUNT limit has room (409 QUOTA_EXCEEDED). Idempotent by VM: the same image again answers 200; another image is 409 VM_LINK_CONFLICT. A new `vmName` renames the VM.",
  })
  async origin(@Param('vmId', vmIdPipe) vmId: string, @Body() dto: RegisterOriginDto, @Res({ passthrough: true }) res: Response): Promise<VmLinkResponse> {
    return registered(await this.links.registerOrigin(vmId, dto), res);
  }

  @ApiVmIdParam()
  @ApiUuidParam('isoId', 'The ISO id (UUID).', '8a3e5c71-0d2b-4f9e-a6c4-1b7d9e2f5a30')
  @Put(':vmId/iso-mounts/:isoId')
  @Roles(Role.Service)
  @ApiCreatedResponse({ type: VmLinkResponse, description: 'Registered.' })
  @ApiOkResponse({ type: VmLinkResponse, description: 'Already mounted: the link as it is.' })
  @ApiErrors(VM_LINK_ERRORS.mountIso)
  @ApiOperation({
    summary: 'Register an ISO mount',
    description:
      "Registers that the VM mounted an ISO (`service` callers), checked like a use of it: it must be an ISO (422 NOT_AN_ISO), the owner may use it (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE) and in the VM's zone (422 ZONE_MISMATCH). Tool ISOs mount like OS ISOs. Idempotent: 201 when registered, 200 when it was mounted already.",
  })
  async mount(
    @Param('vmId', vmIdPipe) vmId: string,
    @Param('isoId', uuidPipe) isoId: string,
    @Body() dto: RegisterMountDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<VmLinkResponse> {
    return registered(await this.links.mountIso(vmId, isoId, dto), res);
  }

  @ApiVmIdParam()
  @ApiUuidParam('isoId', 'The ISO id (UUID).', '8a3e5c71-0d2b-4f9e-a6c4-1b7d9e2f5a30')
  @Delete(':vmId/iso-mounts/:isoId')
  @HttpCode(204)
  @Roles(Role.Service)
  @ApiNoContentResponse({ description: 'Not mounted (any more).' })
  @ApiOperation({
    summary: 'Register an ISO unmount',
    description: 'Registers that the VM unmounted an ISO (`service` callers). Idempotent: 204 whether or not it was mounted.',
  })
  async unmount(@Param('vmId', vmIdPipe) vmId: string, @Param('isoId', uuidPipe) isoId: string): Promise<void> {
    await this.links.unmountIso(vmId, isoId);
  }

  @ApiVmIdParam()
  @Delete(':vmId')
  @HttpCode(204)
  @Roles(Role.Service)
  @ApiNoContentResponse({ description: 'Nothing is recorded for this VM (any more).' })
  @ApiErrors(QUOTA_ERRORS.refund)
  @ApiOperation({
    summary: 'Register a VM deletion',
    description:
      'Registers that the VM was deleted (`service` callers): its links are removed and its VM quota goes back to its department. Idempotent: 204 whether or not anything was recorded.',
  })
  async remove(@Param('vmId', vmIdPipe) vmId: string): Promise<void> {
    await this.links.deleteVm(vmId);
  }
}
