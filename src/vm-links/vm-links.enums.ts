/** How a VM uses an image. */
export enum LinkRelation {
  /** the VM was created from this image, or installed from this OS ISO; at most one per VM */
  CreatedFrom = 'CREATED_FROM',
  /** the VM has this ISO mounted (an OS ISO or a tool kit) */
  IsoMounted = 'ISO_MOUNTED',
}

/** Where the VM quota of a registered VM came from. */
export enum QuotaSource {
  /** one VM of the launch's reservation */
  LaunchReservation = 'LAUNCH_RESERVATION',
  /** no launch reservation held one (none given, expired, or used up): counted directly, within the department's limit */
  Direct = 'DIRECT',
  /** ISO mounts use no VM quota */
  None = 'NONE',
}

/** Where a launch's download URL points. */
export enum DownloadMethod {
  /** a presigned URL of the object store (MinIO/S3) */
  Presigned = 'PRESIGNED',
  /** a signed URL of this service (`GET /downloads/{id}`), for the filesystem store */
  Service = 'SERVICE',
}
