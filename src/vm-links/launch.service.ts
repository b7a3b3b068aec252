import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { AccessPolicy, Action } from '../access/access.policy';
import { Principal } from '../access/principal';
import { ImageWithTags } from '../catalog/image.record';
import { CatalogService } from '../catalog/catalog.service';
import { ImageKind } from '../catalog/image.enums';
import { AppError } from '../common/errors';
import { AppConfig } from '../config/app-config';
import { QuotaResource } from '../quota/quota.enums';
import { ReservationRecord } from '../quota/quota.repository';
import { QuotaService } from '../quota/quota.service';
import { objectKeys, ObjectStorage } from '../storage/object-storage';
import { DownloadUrlSigner, listeningBaseUrl } from '../image-bytes/download-url';
import { LaunchRequestDto } from './vm-links.dto';
import { assertLaunchDisks, assertUsable, ImageUse } from './vm-links.rules';
import { DownloadMethod } from './vm-links.enums';
import { ownerPrincipal, VM_LINKS_CALLER } from './vm-links.service';

const invalidField = (field: string, message: string) => new AppError('VALIDATION_FAILED', message, { fields: [{ field, messages: [message] }] });

export interface Launch {
  image: ImageWithTags;
  reservation: ReservationRecord;
  /** false: the idempotency key was seen with the same request; this is that launch's reservation */
  created: boolean;
  count: number;
  /** DISK_BYTES reserved per VM (root disk + data disks; 0 when nothing is known) */
  diskBytesPerVm: number;
  download: { url: string; method: DownloadMethod; expiresAt: Date };
}

/** The key of a launch's reservation: per calling service, image and idempotency key (hashed to fit). */
const launchKey = (callerId: string, imageId: string, key: string) =>
  `launch:${createHash('sha256')
    .update(JSON.stringify([callerId, imageId, key]))
    .digest('hex')}`;

/**
 * The launch check (R19, flow 4): may these VMs be created from this image, and with what? On success the
 * owner's department has the VMs reserved, and the compute side gets the image's facts and a time-limited URL
 * to read its bytes: a presigned object-store URL (MinIO), or a signed URL of this service (filesystem store).
 */
@Injectable()
export class LaunchService {
  constructor(
    private readonly catalog: CatalogService,
    private readonly access: AccessPolicy,
    private readonly quota: QuotaService,
    private readonly storage: ObjectStorage,
    private readonly signer: DownloadUrlSigner,
    private readonly cfg: AppConfig,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  /**
   * Checks, in this order, each refusal with its own code: the image exists (IMAGE_NOT_FOUND), the rule every
   * route that makes a VM from an image shares (`assertUsable`: IMAGE_NOT_USABLE, IMAGE_NOT_ACTIVE,
   * ISO_NOT_BOOTABLE, ZONE_MISMATCH), a Windows-IDE one gets at most one data disk (TOO_MANY_DATA_DISKS), a disk
   * image fits on the given root disk (ROOT_DISK_TOO_SMALL), and the
   * department has VM_COUNT and DISK_BYTES quota for all of them (QUOTA_EXCEEDED); then reserves. Idempotent by the key.
   */
  async launch(p: Principal, imageId: string, dto: LaunchRequestDto): Promise<Launch> {
    const image = await this.catalog.getFor(p, imageId, Action.See);
    const owner = ownerPrincipal(dto.owner);
    assertUsable(this.access, image, owner, dto.zoneId, ImageUse.CreateVm);
    if (dto.dataDiskBytes && dto.dataDisks !== undefined && dto.dataDisks !== dto.dataDiskBytes.length) {
      throw invalidField('dataDiskBytes', `dataDiskBytes names ${dto.dataDiskBytes.length} disk(s) but dataDisks is ${dto.dataDisks}`);
    }
    const dataDisks = dto.dataDisks ?? dto.dataDiskBytes?.length ?? 0;
    assertLaunchDisks(image, { dataDisks, rootDiskBytes: dto.rootDiskBytes });
    // what the VMs will really use: the root disk (given, else a disk image's virtual size) and the data disks
    const diskBytesPerVm =
      (dto.rootDiskBytes ?? (image.kind === ImageKind.Image ? image.virtualSizeBytes : null) ?? 0) + (dto.dataDiskBytes ?? []).reduce((a, b) => a + b, 0);
    const diskBytes = diskBytesPerVm * dto.count;
    if (!Number.isSafeInteger(diskBytes))
      throw invalidField('rootDiskBytes', `the VMs' disks (${dto.count} x ${diskBytesPerVm} bytes) are larger than any quota can hold`);
    const { reservation, created } = await this.quota.reserve({
      key: launchKey(p.userId, image.id, dto.idempotencyKey),
      callerId: VM_LINKS_CALLER,
      departmentId: owner.departmentId,
      subjectId: image.id,
      // a zero amount would still need one unit of room: DISK_BYTES is reserved only when something is known
      amounts: { [QuotaResource.VmCount]: dto.count, ...(diskBytes > 0 ? { [QuotaResource.DiskBytes]: diskBytes } : {}) },
      ttlSeconds: this.cfg.vmLinks.launchReservationTtlSeconds,
    });
    return { image, reservation, created, count: dto.count, diskBytesPerVm, download: await this.downloadFor(image.id) };
  }

  /** A presigned URL where the store has them, else a signed URL of this service; both valid DOWNLOAD_URL_TTL_SECONDS. */
  private async downloadFor(imageId: string): Promise<Launch['download']> {
    const ttl = this.cfg.vmLinks.downloadUrlTtlSeconds;
    const expires = Math.floor(Date.now() / 1000) + ttl;
    const expiresAt = new Date(expires * 1000);
    const presigned = await this.storage.presignGet(objectKeys.imageDisk(imageId), ttl);
    if (presigned) return { url: presigned, method: DownloadMethod.Presigned, expiresAt };
    // PUBLIC_BASE_URL (required in the platform shape), else where this server listens: never the request's Host
    const base = this.cfg.vmLinks.publicBaseUrl ?? listeningBaseUrl(this.adapterHost.httpAdapter?.getHttpServer()?.address(), this.cfg);
    return { url: this.signer.url(base, { imageId, expires }), method: DownloadMethod.Service, expiresAt };
  }
}
