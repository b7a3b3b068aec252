import { HttpStatus } from '@nestjs/common';
import { MAX_JSON_DEPTH } from './json-depth';

/**
 * Every error the API can answer with. The code is the stable contract; the HTTP status follows from it.
 * Add a code here, and the filter, the OpenAPI document and the README table follow.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: HttpStatus.BAD_REQUEST,
  MALFORMED_JSON: HttpStatus.BAD_REQUEST,
  IMMUTABLE_FIELD: HttpStatus.BAD_REQUEST,
  AUTH_TOKEN_MISSING: HttpStatus.UNAUTHORIZED,
  AUTH_TOKEN_INVALID: HttpStatus.UNAUTHORIZED,
  AUTH_TOKEN_EXPIRED: HttpStatus.UNAUTHORIZED,
  FORBIDDEN: HttpStatus.FORBIDDEN,
  SCOPE_CHANGE_FORBIDDEN: HttpStatus.FORBIDDEN,
  ROUTE_NOT_FOUND: HttpStatus.NOT_FOUND,
  IMAGE_NOT_FOUND: HttpStatus.NOT_FOUND,
  ZONE_NOT_FOUND: HttpStatus.NOT_FOUND,
  METHOD_NOT_ALLOWED: HttpStatus.METHOD_NOT_ALLOWED,
  INVALID_STATE: HttpStatus.CONFLICT,
  ZONE_NAME_TAKEN: HttpStatus.CONFLICT,
  ZONE_IN_USE: HttpStatus.CONFLICT,
  CONFLICT: HttpStatus.CONFLICT,
  // quota (src/quota)
  QUOTA_EXCEEDED: HttpStatus.CONFLICT,
  QUOTA_LIMIT_INVALID: HttpStatus.BAD_REQUEST,
  RESERVATION_NOT_FOUND: HttpStatus.NOT_FOUND,
  RESERVATION_NOT_PENDING: HttpStatus.CONFLICT,
  IDEMPOTENCY_KEY_REUSED: HttpStatus.UNPROCESSABLE_ENTITY,
  // ingestion (src/ingestion)
  URL_NOT_ALLOWED: HttpStatus.BAD_REQUEST,
  SOURCE_MISMATCH: HttpStatus.CONFLICT,
  IMAGE_NOT_ACTIVE: HttpStatus.CONFLICT,
  CONVERSION_NOT_APPLICABLE: HttpStatus.UNPROCESSABLE_ENTITY,
  CONTENT_REJECTED: HttpStatus.UNPROCESSABLE_ENTITY,
  UPLOAD_INCOMPLETE: HttpStatus.BAD_REQUEST,
  RANGE_NOT_SATISFIABLE: HttpStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
  // the platform's file directory (src/file-sources)
  FILE_SOURCE_NOT_FOUND: HttpStatus.NOT_FOUND,
  FILE_PATH_INVALID: HttpStatus.BAD_REQUEST,
  FILE_NOT_FOUND: HttpStatus.NOT_FOUND,
  FILE_SOURCE_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
  // vm links (src/vm-links): 409 when the image would have to change, 422 when the request would
  IMAGE_NOT_USABLE: HttpStatus.FORBIDDEN,
  ISO_NOT_BOOTABLE: HttpStatus.CONFLICT,
  ZONE_MISMATCH: HttpStatus.UNPROCESSABLE_ENTITY,
  TOO_MANY_DATA_DISKS: HttpStatus.UNPROCESSABLE_ENTITY,
  ROOT_DISK_TOO_SMALL: HttpStatus.UNPROCESSABLE_ENTITY,
  NOT_AN_ISO: HttpStatus.UNPROCESSABLE_ENTITY,
  IMAGE_IN_USE: HttpStatus.CONFLICT,
  VM_LINK_CONFLICT: HttpStatus.CONFLICT,
  RESERVATION_MISMATCH: HttpStatus.UNPROCESSABLE_ENTITY,
  DOWNLOAD_URL_INVALID: HttpStatus.FORBIDDEN,
  DOWNLOAD_URL_EXPIRED: HttpStatus.FORBIDDEN,
  PAYLOAD_TOO_LARGE: HttpStatus.PAYLOAD_TOO_LARGE,
  RATE_LIMITED: HttpStatus.TOO_MANY_REQUESTS,
  UNSUPPORTED_MEDIA_TYPE: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  INTERNAL_ERROR: HttpStatus.INTERNAL_SERVER_ERROR,
  DEPENDENCY_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
} as const satisfies Record<string, HttpStatus>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** What each code means, for the OpenAPI document and the README. */
export const ERROR_DESCRIPTIONS: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'A field, query parameter or path parameter is invalid; details lists each one.',
  MALFORMED_JSON: `The request body is not valid JSON, or is nested deeper than ${MAX_JSON_DEPTH} levels (details.maxDepth).`,
  IMMUTABLE_FIELD: 'The request tries to change a field that can never be edited (source URL, hypervisor, format, kind, zone).',
  AUTH_TOKEN_MISSING: 'No `Authorization: Bearer {token}` header.',
  AUTH_TOKEN_INVALID: 'The token is malformed, wrongly signed, or its claims are invalid.',
  AUTH_TOKEN_EXPIRED: 'The token has expired.',
  FORBIDDEN: 'The caller may see the resource but not perform this action.',
  SCOPE_CHANGE_FORBIDDEN: 'The caller may not move the image to the requested scope.',
  ROUTE_NOT_FOUND: 'No such route.',
  IMAGE_NOT_FOUND: 'No image with this id that the caller may see.',
  ZONE_NOT_FOUND: 'No zone with this id.',
  METHOD_NOT_ALLOWED: 'The route exists but not with this method.',
  INVALID_STATE: 'The image is not in a state that allows this action; details.status/phase say which.',
  ZONE_NAME_TAKEN: 'Another zone already has this name.',
  ZONE_IN_USE: 'The zone still holds images.',
  CONFLICT: 'The request conflicts with the current state of the resource.',
  QUOTA_EXCEEDED:
    "The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.",
  QUOTA_LIMIT_INVALID: 'A quota limit is not "unlimited" or an integer from 0 to the resource\'s maximum; details give the resource, the value and why.',
  RESERVATION_NOT_FOUND: 'No quota reservation with this id.',
  RESERVATION_NOT_PENDING: 'The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.',
  IDEMPOTENCY_KEY_REUSED: 'This idempotency key was already used for a different reservation (another department or other amounts).',
  URL_NOT_ALLOWED:
    'The source URL is refused (not http/https, credentials in it, or a host or address the URL policy denies: loopback, link-local, metadata, URL_DENY_*); details.reason says which.',
  SOURCE_MISMATCH: "The action does not fit the image's source type (e.g. uploading bytes to an image whose source is a URL); details.sourceType says which.",
  CONVERSION_NOT_APPLICABLE:
    'The image cannot be converted to that format: it is an ISO (never converted) or already in it; details.reason says which (ISO, SAME_FORMAT).',
  IMAGE_NOT_ACTIVE:
    'The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.',
  CONTENT_REJECTED:
    'The uploaded bytes were refused: they do not match the declared format, the image is unsafe (backing file, external data file, differencing disk), the checksum differs, or qemu-img refused the stored image (IMAGE_CORRUPT, INSPECTION_FAILED, INSPECTION_LIMIT_EXCEEDED, VIRTUAL_SIZE_TOO_LARGE). The image is FAILED with the reason; details.reason and details.ingestCode say why.',
  UPLOAD_INCOMPLETE:
    'The upload ended before the whole file arrived (the client disconnected, or sent nothing for URL_IDLE_TIMEOUT_MS); the image is FAILED and takes a new upload.',
  RANGE_NOT_SATISFIABLE: 'The requested byte range starts at or past the end of the file; the Content-Range header gives the size.',
  FILE_SOURCE_NOT_FOUND: 'No file source with this name is configured (GET /file-sources lists them), or none is configured at all.',
  FILE_PATH_INVALID:
    'The path is refused: absolute, `..` or `.` segments, a backslash, a control character, one of `" * : < > ? |`, a name starting or ending with a space or ending with a dot, a name over 255 or a path over 1024 bytes, a symbolic link leading outside the source, or a folder where a file is needed (and the reverse). details.reason says which.',
  FILE_NOT_FOUND: 'No file or folder at this path in the file source.',
  FILE_SOURCE_UNAVAILABLE:
    "The file source could not be read: the server is unreachable or did not answer in time, refused the service's credentials, has no such share, or denied access. details.reason gives the file-source code (FILE_SOURCE_UNREACHABLE, FILE_SOURCE_TIMEOUT, FILE_SOURCE_AUTH_FAILED, FILE_SOURCE_SHARE_NOT_FOUND, FILE_ACCESS_DENIED, FILE_BUSY, FILE_SOURCE_FAILED).",
  IMAGE_NOT_USABLE: "The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.",
  ISO_NOT_BOOTABLE: 'The ISO is a tool kit (usage TOOL): it can be mounted but never create a VM.',
  ZONE_MISMATCH: "The image or ISO belongs to another zone than the VM's; details give both zone ids.",
  TOO_MANY_DATA_DISKS: 'A VM made from a Windows-IDE image or ISO mounts at most one data disk; details give the limit and what was asked.',
  ROOT_DISK_TOO_SMALL: "The VMs' root disk (rootDiskBytes) is smaller than the image's virtual size, so the image would not fit on it; details give both.",
  NOT_AN_ISO: 'Only an ISO can be mounted; this is a disk image.',
  IMAGE_IN_USE:
    'VMs were created from this image or mount this ISO: details.vms lists them (at most 100; details.total counts them all). Delete again with `?confirm=true` to delete it anyway; the VMs are untouched and keep their links, marked "image deleted".',
  VM_LINK_CONFLICT: 'The VM is already recorded as created from another image; details give both image ids.',
  RESERVATION_MISMATCH: 'The launch reservation belongs to another image or department than the VM being registered; details say which.',
  DOWNLOAD_URL_INVALID: 'The signed download URL is malformed or its signature does not match (it was altered or is for another image).',
  DOWNLOAD_URL_EXPIRED: 'The signed download URL has expired; ask for a new launch (the same idempotency key answers a fresh URL).',
  PAYLOAD_TOO_LARGE: 'The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known.',
  RATE_LIMITED: 'Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again.',
  UNSUPPORTED_MEDIA_TYPE: 'The request body has a content type this route does not accept.',
  INTERNAL_ERROR: 'An unexpected error; it is logged with the correlation id.',
  DEPENDENCY_UNAVAILABLE:
    'A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.',
};

/** Example `details` of the codes whose details a client acts on, for the OpenAPI document. */
export const ERROR_DETAILS_EXAMPLES: Partial<Record<ErrorCode, Record<string, unknown>>> = {
  QUOTA_EXCEEDED: { departmentId: 'dept-rd', resource: 'VM_COUNT', requested: 3, remaining: 1, limit: 20, used: 18, reserved: 1 },
  IMAGE_NOT_ACTIVE: { status: 'INACTIVE', phase: 'DISABLED' },
  CONVERSION_NOT_APPLICABLE: { reason: 'SAME_FORMAT', format: 'qcow2' },
  FILE_PATH_INVALID: { source: 'share', path: 'isos/../etc/passwd', reason: 'DOT_SEGMENT' },
  FILE_NOT_FOUND: { source: 'share', path: 'isos/CentOS-7-x86_64-Minimal.iso' },
  FILE_SOURCE_UNAVAILABLE: { source: 'share', reason: 'FILE_SOURCE_AUTH_FAILED', status: 'NT_STATUS_LOGON_FAILURE' },
  IMAGE_NOT_USABLE: { imageId: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23', scope: 'PRIVATE', owner: { userId: 'u-bob', departmentId: 'dept-rd', role: 'user' } },
  ISO_NOT_BOOTABLE: { imageId: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23', isoUsage: 'TOOL' },
  ZONE_MISMATCH: { imageZoneId: '5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11', zoneId: '9a1d2c3b-4e5f-4a6b-8c7d-0e1f2a3b4c5d' },
  TOO_MANY_DATA_DISKS: { osCategory: 'WINDOWS_IDE', maxDataDisks: 1, dataDisks: 2 },
  ROOT_DISK_TOO_SMALL: { rootDiskBytes: 10737418240, virtualSizeBytes: 21474836480 },
  IMAGE_IN_USE: {
    imageId: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23',
    total: 2,
    vms: [
      { vmId: 'vm-0001', vmName: 'web-01', relation: 'CREATED_FROM', ownerId: 'u-alice', departmentId: 'dept-rd', since: '2026-11-20T08:15:00.000Z' },
      { vmId: 'vm-0042', vmName: 'db-02', relation: 'ISO_MOUNTED', ownerId: 'u-bob', departmentId: 'dept-ops', since: '2026-11-21T10:02:00.000Z' },
    ],
  },
  VM_LINK_CONFLICT: { vmId: 'vm-0001', imageId: '0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23', createdFrom: '7d9e8f1a-3b2c-4d5e-8f6a-1b2c3d4e5f60' },
  RESERVATION_MISMATCH: { reservationId: '3f2e1d0c-9b8a-4765-8432-10fedcba9876', reason: 'image' },
  DOWNLOAD_URL_EXPIRED: { expiredAt: '2026-11-20T09:15:00.000Z' },
};

/** An error with a stable code. Services throw these; the global filter renders them. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'AppError';
    this.status = ERROR_CODES[code];
  }
}

export const notFound = (what: 'IMAGE' | 'ZONE', id: string) =>
  new AppError(`${what}_NOT_FOUND`, `${what === 'IMAGE' ? 'Image' : 'Zone'} ${id} not found`, { id });

/**
 * A named set of codes one piece of code can raise, exported next to it. Routes declare the sets of what they
 * call (`@ApiErrors(...)`), so the OpenAPI document follows the code; src/common/error-contract.ts adds what a
 * route's traits imply (token, roles, JSON body, parameters, rate limit, dependencies).
 */
export type ErrorSet = readonly ErrorCode[];

/** The union of error sets and codes. */
export const errorSet = (...parts: Array<ErrorSet | ErrorCode>): ErrorSet => [...new Set(parts.flat())];
