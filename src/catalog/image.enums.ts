export { Scope } from '../access/access.policy';
export { Hypervisor } from '../zones/zone.enums';

/** One catalog, two kinds. */
export enum ImageKind {
  Image = 'IMAGE',
  Iso = 'ISO',
}

/** OS categories. Windows is either VIRTIO or IDE (an IDE VM mounts at most one data disk). */
export enum OsCategory {
  CentOS = 'CENTOS',
  Ubuntu = 'UBUNTU',
  Debian = 'DEBIAN',
  RedHat = 'REDHAT',
  Rocky = 'ROCKY',
  SUSE = 'SUSE',
  OpenEuler = 'OPENEULER',
  Kylin = 'KYLIN',
  UOS = 'UOS',
  OtherLinux = 'OTHER_LINUX',
  WindowsVirtio = 'WINDOWS_VIRTIO',
  WindowsIde = 'WINDOWS_IDE',
  Other = 'OTHER',
}

/** The file's format (its suffix). An ISO's format is always `iso`. */
export enum ImageFormat {
  Qcow2 = 'qcow2',
  Raw = 'raw',
  Vmdk = 'vmdk',
  Vhd = 'vhd',
  Vhdx = 'vhdx',
  Iso = 'iso',
}

/** What an ISO is for. A TOOL ISO never creates a VM. */
export enum IsoUsage {
  OS = 'OS',
  Tool = 'TOOL',
}

/** The two statuses the console shows. */
export enum ImageStatus {
  Active = 'ACTIVE',
  Inactive = 'INACTIVE',
}

/** The finer state behind the status, saying why an image is (in)active. */
export enum ImagePhase {
  /** waiting for its bytes (a job, or a direct upload) */
  Queued = 'QUEUED',
  /** bytes are streaming into storage */
  Importing = 'IMPORTING',
  /** bytes stored; checksum and format being verified */
  Verifying = 'VERIFYING',
  /** usable */
  Ready = 'READY',
  /** the import failed; `statusReason` says why; it can be retried */
  Failed = 'FAILED',
  /** disabled by an admin; enabling makes it READY again */
  Disabled = 'DISABLED',
  /** the judged source is being converted (qemu-img convert) to the zone's or the caller's format */
  Converting = 'CONVERTING',
}

/** Where the bytes come from. */
export enum SourceType {
  Url = 'URL',
  File = 'FILE',
  Upload = 'UPLOAD',
  /** a converted copy of another image (POST /images/{id}/conversions; `convertedFrom`); never given at creation */
  Conversion = 'CONVERSION',
}

export const OS_BITS = [32, 64] as const;
