// Generated from openapi.yaml by scripts/api-schema.mjs (openapi-typescript): do not edit.
export interface paths {
    "/dev/tokens": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mint a development token
         * @description A bearer token for a development user (12 hours), for the console and for trying things out. Only in the embedded default, where the service generated its own development secret; with a configured secret or keys (every platform deployment) it answers 404 ROUTE_NOT_FOUND like a route that does not exist. No token needed.
         */
        post: operations["createDevToken"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/downloads/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download an image file with a signed URL
         * @description Streams an image's bytes with the signed URL a launch answered (`download.url`), without a bearer token: the signature is the permission, until `expires`. A tampered URL is 403 DOWNLOAD_URL_INVALID, an expired one 403 DOWNLOAD_URL_EXPIRED. Answers like `GET /images/{id}/file`: ACTIVE images only, one byte range per request (206 with `Content-Range`), `If-Range`, and the sha256 as a strong `ETag` (`If-None-Match` answers 304).
         */
        get: operations["downloadSignedFile"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        /**
         * Get the headers of a signed download
         * @description The headers the signed `GET /downloads/{id}` would answer with (size, ETag, range support), without the bytes. No token needed: the signature is the permission. Errors have no body, only their status.
         */
        head: operations["headSignedFile"];
        patch?: never;
        trace?: never;
    };
    "/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List events after a cursor
         * @description The events the caller may see after the cursor `after`, oldest first: image, import, VM-link and quota changes from the transactional outbox (the same events the message bus carries). Page on with `after=next`; an empty page means the caller is up to date. Image events follow the image's scope rules as they were when the event was written; quota events are for the department's own callers; super admins and services see everything.
         */
        get: operations["listEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/events/stream": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Stream events live (Server-Sent Events)
         * @description The live feed as Server-Sent Events: one `id: {position}`, `event: {type}`, `data: {event JSON}` per event the caller may see, in position order, and a `: keep-alive` comment when idle. Resumable: a reconnect with `Last-Event-ID` (EventSource sends it by itself) gets everything after that event. EventSource cannot send headers: pass the token as the `access_token` query parameter. A bad `Last-Event-ID` is 400 VALIDATION_FAILED.
         */
        get: operations["streamEvents"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/file-sources": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List the file sources
         * @description The configured file sources, for the create dialog: name, kind (SMB share, directory on the service's host, bucket) and where users copy files to (the UNC path of a share). The first one is the default; an empty list when none is configured. Every role that may create images (not `service`: 403 FORBIDDEN).
         */
        get: operations["listFileSources"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/file-sources/{source}/entries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List a folder of a file source
         * @description One page of a folder of a file source: name, path, type (FILE or DIR), size and modification time of each entry. Folders come first, then `sort` (name, size or modifiedAt) in `order`; `name` keeps the entries whose name contains it (case-insensitive); `path` opens a subfolder (an entry's `path`). Entries whose names could not be picked and symbolic links leading outside a directory source are left out. An unknown source or folder is 404 (FILE_SOURCE_NOT_FOUND, FILE_NOT_FOUND); an unreachable share 503 FILE_SOURCE_UNAVAILABLE.
         */
        get: operations["listFileEntries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/live": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Check liveness
         * @description Answers 200 while the process runs; checks no dependency. No token needed.
         */
        get: operations["getLiveness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Check readiness
         * @description Answers 200 when every dependency answers (the database; the queue and the object store where configured), else 503 with the state of each and a `Retry-After` header. No token needed.
         */
        get: operations["getReadiness"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List images and ISOs
         * @description Lists the images and ISOs the caller may see, in a `view` (all, featured, public or private), filtered by kind, OS, hypervisor, status, phase, format, zone, tags and a name search, sorted and paged. Another user's private images never appear. Every authenticated caller.
         */
        get: operations["listImages"];
        put?: never;
        /**
         * Create an image or ISO record
         * @description Creates the record of a VM image or an ISO in a zone. It starts INACTIVE/QUEUED; its bytes then arrive from its `source`: the service downloads a URL, copies a file picked from a file source (`GET /file-sources`), or waits for `PUT /images/{id}/file`.
         *
         *     Super admins, admins and users may create images; only super admins create PUBLIC or FEATURED images directly, everyone else PRIVATE ones (403 SCOPE_CHANGE_FORBIDDEN otherwise), and a `service` caller creates nothing (403 FORBIDDEN). The owner's department quota must have room for one more image and for `expectedSizeBytes` (409 QUOTA_EXCEEDED). A URL outside the allowed hosts is 400 URL_NOT_ALLOWED, an unknown zone 404 ZONE_NOT_FOUND, a missing file 404 FILE_NOT_FOUND. The answer carries a `Location` header with the new image's URL.
         */
        post: operations["createImage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/counts": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Count images per view
         * @description How many images and ISOs each view (all, featured, public, private) holds for the caller, with the same filters as `GET /images`: the numbers on the console's tabs. Every authenticated caller.
         */
        get: operations["countImages"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get an image or ISO
         * @description One image or ISO: its metadata, status, phase, import progress and, when it failed or was disabled, the reason. An image the caller may not see answers 404 IMAGE_NOT_FOUND, as if it did not exist.
         */
        get: operations["getImage"];
        put?: never;
        post?: never;
        /**
         * Delete an image or ISO
         * @description Deletes an image or ISO for good: its record, tags and stored bytes; its quota goes back to the department. When VMs were created from it or mount it, a plain delete answers 409 IMAGE_IN_USE listing them and changes nothing; `?confirm=true` deletes it anyway. The VMs are untouched: their links stay, marked "image deleted" (`GET /vms/{vmId}/images`). The owner, admins of the department and super admins.
         */
        delete: operations["deleteImage"];
        options?: never;
        head?: never;
        /**
         * Update an image's descriptive fields, tags or scope
         * @description Edits the name, description, OS fields, tags, ISO usage and scope of an image. The source, hypervisor, format, kind and zone never change (400 IMMUTABLE_FIELD). For a caller who may edit the image (its owner, admins, super admins). A super admin may set any scope, an admin may move what it may edit between scopes (featuring included), a user may make their own private image public and take it back (403 SCOPE_CHANGE_FORBIDDEN otherwise).
         */
        patch: operations["updateImage"];
        trace?: never;
    };
    "/images/{id}/conversions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Convert an image to another disk format
         * @description Asks for a copy of an ACTIVE disk image converted to `format` (raw or qcow2, with qemu-img). The copy is a new image in the same zone, owned by the caller, with `convertedFrom` naming the source and `sourceSha256` its checksum; it answers QUEUED at once and is CONVERTING while qemu-img runs. The quota is reserved by the source's virtual size before anything starts (409 QUOTA_EXCEEDED). An ISO, or an image already in that format, is 422 CONVERSION_NOT_APPLICABLE; an image that is not ACTIVE 409 IMAGE_NOT_ACTIVE. Delete the copy to cancel; the `Location` header names it. Any caller who may see the source image and create images.
         */
        post: operations["createConversion"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}/disable": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Disable an active image
         * @description Takes an ACTIVE image out of use: it becomes INACTIVE/DISABLED, with an optional reason, and no new VM can be created from it (existing VMs are untouched). Admins of the owner's department and super admins; an image that is not ACTIVE answers 409 INVALID_STATE.
         */
        post: operations["disableImage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}/enable": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Enable a disabled image
         * @description Makes a DISABLED image ACTIVE again, so it can create VMs. Admins of the owner's department and super admins; an image that is not disabled answers 409 INVALID_STATE.
         */
        post: operations["enableImage"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}/file": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Download the file of an image
         * @description Streams the bytes of an ACTIVE image or ISO to a caller who may use it (409 IMAGE_NOT_ACTIVE otherwise). One byte range per request (`Range: bytes=start-end`, `bytes=start-`, `bytes=-suffix`; 206 with `Content-Range`; an unsatisfiable range is 416), `If-Range` with the ETag, and the sha256 as a strong `ETag` (`If-None-Match` answers 304). Several ranges in one header are answered with the whole file.
         */
        get: operations["downloadImageFile"];
        /**
         * Upload the file of an image
         * @description Uploads the bytes of an image created with source type UPLOAD, as the raw request body (`Content-Type: application/octet-stream`, or none). The bytes stream into storage as they arrive; the sha256 (and md5 where configured) is computed on the way, the first bytes are checked against the declared format (a qcow2 with a backing file is refused), and the `expectedChecksum` given at creation is verified. Allowed while the image is QUEUED or FAILED, for a caller who may edit it; of two concurrent uploads one wins, the other gets 409 INVALID_STATE.
         *
         *     A `Content-Length` is checked against the size limit (413 PAYLOAD_TOO_LARGE) and the department's storage quota (409 QUOTA_EXCEEDED) before a byte is read; without one the quota is reserved as the bytes arrive. Send `Expect: 100-continue` to hear a refusal before sending the body. On success the image is ACTIVE (200, the record); refused content leaves it FAILED with the reason (422 CONTENT_REJECTED); a client that disconnects leaves it FAILED. Progress shows on `GET /images/{id}` while it runs.
         */
        put: operations["uploadImageFile"];
        post?: never;
        delete?: never;
        options?: never;
        /**
         * Get the headers of an image file
         * @description The headers `GET /images/{id}/file` would answer with (size, ETag, range support, file name), without the bytes: to learn the size or check the checksum before downloading. Errors have no body, only their status.
         */
        head: operations["headImageFile"];
        patch?: never;
        trace?: never;
    };
    "/images/{id}/launches": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Check and reserve a VM launch
         * @description The launch check for the compute side: may `count` VMs with `dataDisks` data disks each be created from this image or ISO for this owner in this zone? Refused, in this order, unless the owner may use it by scope (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE), the zone is the image's (422 ZONE_MISMATCH), a Windows-IDE image gets at most one data disk (422 TOO_MANY_DATA_DISKS), a disk image's virtual size fits on `rootDiskBytes` (422 ROOT_DISK_TOO_SMALL), and the department has VM_COUNT and DISK_BYTES quota for all of them (409 QUOTA_EXCEEDED).
         *
         *     On success the VMs are reserved for a while and the answer carries what compute needs: format, hypervisor, OS, size, checksum, and a URL to read the bytes without a token until `download.expiresAt`. Register each VM made with `PUT /vms/{vmId}/origin` and the `reservationId`. Idempotent by `idempotencyKey`: 201 when reserved, 200 with the same reservation and a fresh URL when the key was seen with the same request. `service` callers only.
         */
        post: operations["createLaunch"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Retry a failed import
         * @description Puts a FAILED image back to QUEUED with its reason cleared: a URL image is downloaded again, an UPLOAD image waits for a new `PUT /images/{id}/file`. For a caller who may edit the image; an image that is not FAILED answers 409 INVALID_STATE.
         */
        post: operations["retryImport"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/images/{id}/vms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List the VMs using an image
         * @description The VMs created from this image or mounting this ISO (id, name, relation, owner, since), oldest first, paged: what a delete would show. For whoever may delete the image, and services (others: 403 FORBIDDEN, or 404 for an image they may not see). After a confirmed delete, super admins and services still read them with `imageDeleted: true`.
         */
        get: operations["listImageVms"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get Prometheus metrics
         * @description Prometheus metrics of this replica in the text exposition format: request durations by route and status, import bytes, durations and failures, queue depth, quota rejections, rate-limit refusals. No token needed; expose it on the internal network only.
         */
        get: operations["getMetrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Reserve quota
         * @description Reserves amounts for a department, all or nothing (409 QUOTA_EXCEEDED when one resource has no room). Idempotent by `key` per caller: 201 when created, 200 with the same reservation when the key was seen with the same request, 422 IDEMPOTENCY_KEY_REUSED when it was seen with another. `service` callers only.
         */
        post: operations["createReservation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a reservation
         * @description One quota reservation: its department, status, expiry and, per resource, what is reserved and committed. `service` callers only; an unknown id is 404 RESERVATION_NOT_FOUND.
         */
        get: operations["getReservation"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations/{id}/commit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Commit a reservation
         * @description Turns the pending amounts into usage, optionally only for some `resources` and optionally with the real `amounts` (never more than reserved). Idempotent. `service` callers only.
         */
        post: operations["commitReservation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations/{id}/grow": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Grow a reservation
         * @description Grows the pending amount of one resource (by `delta`, or to at least `total`; exactly one of them), e.g. while streaming a file of unknown size; renews the expiry and reopens a COMMITTED reservation. 409 QUOTA_EXCEEDED when there is no room. `service` callers only.
         */
        post: operations["growReservation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations/{id}/refund": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Refund a reservation
         * @description Gives back everything the reservation holds, committed and pending, when what it paid for is gone. Idempotent. `service` callers only.
         */
        post: operations["refundReservation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quota-reservations/{id}/release": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Release a reservation
         * @description Gives back what is still pending; what was committed stays used. Idempotent. `service` callers only.
         */
        post: operations["releaseReservation"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quotas": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List departments' quotas
         * @description Every department that has a quota ledger, with limits and usage per resource, by department id, paged. Super admins and admins (403 FORBIDDEN otherwise).
         */
        get: operations["listQuotas"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quotas/reconcile": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Reconcile quota usage with the catalog
         * @description Recomputes usage from the catalog and the open reservations, reports drift per department and resource, and repairs it unless `dryRun`. The same check runs at startup where configured. Super admins and admins.
         */
        post: operations["reconcileQuotas"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/quotas/{departmentId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a department's quota
         * @description A department's limits, usage, reservations and what is left, per resource. Members of the department, admins, super admins and services (403 FORBIDDEN for a user of another department). A department never seen has the default limits and no usage.
         */
        get: operations["getQuota"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /**
         * Set a department's quota limits
         * @description Sets limits per resource: an integer, or "unlimited"; resources left out keep theirs. A limit below current usage is accepted: nothing more fits until usage drops. Super admins only.
         */
        patch: operations["setQuotaLimits"];
        trace?: never;
    };
    "/vms/{vmId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /**
         * Register a VM deletion
         * @description Registers that the VM was deleted (`service` callers): its links are removed and its VM quota goes back to its department. Idempotent: 204 whether or not anything was recorded.
         */
        delete: operations["deleteVm"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/vms/{vmId}/images": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get the images a VM uses
         * @description Where a VM came from (`createdFrom`) and which ISOs it mounts now. A link whose image was deleted still answers, with `imageDeleted: true` and the image's last name. Services and super admins see every VM, an admin its department's, a user their own; a VM with nothing recorded (or nothing the caller may see) answers empty.
         */
        get: operations["listVmImages"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/vms/{vmId}/iso-mounts/{isoId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Register an ISO mount
         * @description Registers that the VM mounted an ISO (`service` callers), checked like a use of it: it must be an ISO (422 NOT_AN_ISO), the owner may use it (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE) and in the VM's zone (422 ZONE_MISMATCH). Tool ISOs mount like OS ISOs. Idempotent: 201 when registered, 200 when it was mounted already.
         */
        put: operations["mountIso"];
        post?: never;
        /**
         * Register an ISO unmount
         * @description Registers that the VM unmounted an ISO (`service` callers). Idempotent: 204 whether or not it was mounted.
         */
        delete: operations["unmountIso"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/vms/{vmId}/origin": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Register the image a VM was created from
         * @description Registers that the VM was created from an image or OS ISO (`service` callers), checked by the launch's rule: the owner may use it (403 IMAGE_NOT_USABLE), it is ACTIVE (409 IMAGE_NOT_ACTIVE), an ISO is an OS ISO (409 ISO_NOT_BOOTABLE), and `zoneId` is the image's (422 ZONE_MISMATCH). With the launch's `reservationId` one of its VMs is committed for this VM (`quota: LAUNCH_RESERVATION`); without it, or when the reservation no longer holds a VM, the VM is counted directly (`quota: DIRECT`) if the department's VM_COUNT limit has room (409 QUOTA_EXCEEDED). Idempotent by VM: the same image again answers 200; another image is 409 VM_LINK_CONFLICT. A new `vmName` renames the VM.
         */
        put: operations["registerVmOrigin"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/zones": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List zones
         * @description The zones images are created in, with their default hypervisor and required disk format, paged and sorted by name. Every authenticated caller.
         */
        get: operations["listZones"];
        put?: never;
        /**
         * Create a zone
         * @description Creates a zone with a unique name (409 ZONE_NAME_TAKEN), its default hypervisor and, optionally, the disk format its images must have. Super admins only.
         */
        post: operations["createZone"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/zones/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Get a zone
         * @description One zone. An unknown id is 404 ZONE_NOT_FOUND. Every authenticated caller.
         */
        get: operations["getZone"];
        put?: never;
        post?: never;
        /**
         * Delete an empty zone
         * @description Deletes a zone that holds no image (409 ZONE_IN_USE otherwise). Super admins only.
         */
        delete: operations["deleteZone"];
        options?: never;
        head?: never;
        /**
         * Update a zone
         * @description Renames a zone or changes its description, default hypervisor or required format. Super admins only; a name in use is 409 ZONE_NAME_TAKEN.
         */
        patch: operations["updateZone"];
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        CommitReservationDto: {
            /** @description The real amounts where they differ from what was reserved (less gives the rest back; more needs room). */
            amounts?: components["schemas"]["QuotaAmountsDto"];
            /**
             * @description Commit only these resources and leave the others pending (default: every pending one).
             * @example [
             *       "IMAGE_BYTES"
             *     ]
             */
            resources?: components["schemas"]["QuotaResource"][];
        };
        CreateConversionDto: {
            /**
             * @description The format of the copy: raw or qcow2 (what qemu-img convert writes).
             * @example raw
             */
            format: components["schemas"]["RequiredFormat"];
        };
        CreateImageDto: {
            /**
             * @description Free text, up to 2000 characters.
             * @example Minimal CentOS 7.9, zabbix-agent and filebeat installed
             */
            description?: string;
            /**
             * @description The file's checksum when the owner knows it: `sha256:<64 hex>`, `md5:<32 hex>`, or bare hex (64 digits: sha256,
             *     32: md5). The bytes are checked against it while they stream in, whatever the source; a mismatch fails the
             *     import (CHECKSUM_MISMATCH in the reason) and nothing is stored.
             * @example sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
             */
            expectedChecksum?: string;
            /**
             * Format: int64
             * @description The file's size when known: the department's storage quota is reserved for it at create.
             *     Without it the import reserves storage as the bytes arrive and stops when the quota runs out.
             * @example 2147483648
             */
            expectedSizeBytes?: number;
            /**
             * @description File format. Required for an IMAGE; an ISO's format is `iso` (the default for ISOs).
             * @example qcow2
             */
            format?: components["schemas"]["ImageFormat"];
            /**
             * @description Virtualization technology; default: the zone's.
             * @example KVM
             */
            hypervisor?: components["schemas"]["Hypervisor"];
            /**
             * @description ISO only, and required there: OS (bootable install media) or TOOL (a tool kit; never creates a VM).
             * @example OS
             */
            isoUsage?: components["schemas"]["IsoUsage"];
            /**
             * @description IMAGE (a disk with an OS) or ISO (installation media or a tool kit).
             * @example IMAGE
             */
            kind: components["schemas"]["ImageKind"];
            /**
             * @description Display name, 1-255 characters.
             * @example CentOS 7.9 with zabbix agent
             */
            name: string;
            /**
             * @description OS architecture bits.
             * @default 64
             * @example 64
             * @enum {integer}
             */
            osBits?: 32 | 64;
            /**
             * @description OS category. A WINDOWS_IDE image gives VMs with at most one data disk.
             * @example CENTOS
             */
            osCategory: components["schemas"]["OsCategory"];
            /**
             * @description OS name, e.g. "CentOS".
             * @example CentOS
             */
            osName?: string;
            /**
             * @description OS version, e.g. "7.9".
             * @example 7.9
             */
            osVersion?: string;
            /**
             * @description Scope: PRIVATE by default; only a super admin may create FEATURED or PUBLIC.
             * @default PRIVATE
             * @example PRIVATE
             */
            scope?: components["schemas"]["Scope"];
            /** @description Where the bytes come from. */
            source: components["schemas"]["ImageSourceDto"];
            /**
             * @description Up to 20 tags, each 1-64 letters, digits, spaces or `._:/+-`, starting with a letter or digit.
             * @example [
             *       "centos",
             *       "zabbix"
             *     ]
             */
            tags?: string[];
            /**
             * Format: uuid
             * @description The zone the image is created in.
             * @example 2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21
             */
            zoneId: string;
        };
        CreateReservationDto: {
            /**
             * @description What to hold, all or nothing. An amount of 0 opens an item that grow fills later (it needs one unit of room).
             * @example {
             *       "MEMORY_BYTES": 17179869184,
             *       "VCPU": 8,
             *       "VM_COUNT": 2
             *     }
             */
            amounts: components["schemas"]["QuotaAmountsDto"];
            /**
             * @description The department that pays.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * @description Idempotency key chosen by the caller (1-128 characters `[A-Za-z0-9._:@/+=-]`): the same key and request
             *     answer the same reservation (200); the same key with another department or other amounts is refused.
             * @example vm-launch-7f3a:quota
             */
            key: string;
            /**
             * @description Seconds until an uncommitted reservation expires and its amounts return (default QUOTA_RESERVATION_TTL_SECONDS).
             * @example 900
             */
            ttlSeconds?: number;
        };
        CreateZoneDto: {
            /**
             * @description Free text.
             * @example Rack A, Ceph-backed KVM hosts
             */
            description?: string;
            /**
             * @description The zone's virtualization technology; images created in the zone default to it.
             * @example KVM
             */
            hypervisor: components["schemas"]["Hypervisor"];
            /**
             * @description Unique zone name.
             * @example zone-beijing-1
             */
            name: string;
            /**
             * @description The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought.
             * @example raw
             */
            requiredFormat?: components["schemas"]["RequiredFormat"] | (never | null);
        };
        DepartmentQuotaPage: {
            /** @description The departments on this page, by department id. */
            items: components["schemas"]["DepartmentQuotaResponse"][];
            /**
             * @description The 1-based page number.
             * @example 1
             */
            page: number;
            /**
             * @description Items per page.
             * @example 20
             */
            pageSize: number;
            /**
             * @description Departments with a ledger, across all pages.
             * @example 3
             */
            total: number;
        };
        DepartmentQuotaResponse: {
            /**
             * @description The department id (the `dept` claim of its members' tokens).
             * @example dept-rd
             */
            departmentId: string;
            /** @description Every resource, in a fixed order. */
            resources: components["schemas"]["ResourceUsageResponse"][];
        };
        DependencyHealth: {
            /**
             * @description Why the dependency is down.
             * @example connect ECONNREFUSED 127.0.0.1:3306
             */
            error?: string;
            /**
             * @description up when the dependency answered the check, down when it did not.
             * @example up
             * @enum {string}
             */
            status: "up" | "down";
        };
        DevTokenDto: {
            /**
             * @description The department id (`dept`).
             * @example dept-rd
             */
            dept: string;
            /**
             * @description Display name (default: the user id).
             * @example Alice
             */
            name?: string;
            /**
             * @description The role the token carries.
             * @example user
             */
            role: components["schemas"]["Role"];
            /**
             * @description The user id (`sub`).
             * @example u-alice
             */
            sub: string;
        };
        DevTokenResponse: {
            /**
             * Format: date-time
             * @description When it expires (12 hours).
             * @example 2026-11-20T20:15:00.000Z
             */
            expiresAt: string;
            /**
             * @description A bearer token signed with the development secret.
             * @example eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LWFsaWNlIiwiZGVwdCI6ImRlcHQtcmQiLCJyb2xlIjoidXNlciJ9.3q9Wc7vJ0m8rN1dXyZkPp2oT4fLhGsEaBu6iVnKcQwY
             */
            token: string;
        };
        DisableImageDto: {
            /**
             * @description Why the image is disabled; shown as its statusReason.
             * @example Superseded by CentOS 7.9.2009
             */
            reason?: string;
        };
        /**
         * @description PRESIGNED (a presigned URL of the object store) or SERVICE (a signed `/downloads/{id}` URL of this service); either is read with an HTTP GET, ranges allowed.
         * @enum {string}
         */
        DownloadMethod: "PRESIGNED" | "SERVICE";
        DriftResponse: {
            /**
             * Format: int64
             * @description What the catalog and the reservations say.
             * @example 5368709120
             */
            actual: number;
            /**
             * @description The department whose ledger drifted.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * @description Which figure of the ledger drifted: `used` or `reserved`.
             * @example used
             * @enum {string}
             */
            field: "used" | "reserved";
            /**
             * Format: int64
             * @description What the ledger said.
             * @example 6442450944
             */
            recorded: number;
            /**
             * @description True when the ledger now says `actual`.
             * @example true
             */
            repaired: boolean;
            /**
             * @description The resource whose figure drifted.
             * @example IMAGE_BYTES
             */
            resource: components["schemas"]["QuotaResource"];
        };
        ErrorBody: {
            /**
             * @description Stable, machine-readable error code:
             *
             *     - `VALIDATION_FAILED` (400): A field, query parameter or path parameter is invalid; details lists each one.
             *     - `MALFORMED_JSON` (400): The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             *     - `IMMUTABLE_FIELD` (400): The request tries to change a field that can never be edited (source URL, hypervisor, format, kind, zone).
             *     - `AUTH_TOKEN_MISSING` (401): No `Authorization: Bearer {token}` header.
             *     - `AUTH_TOKEN_INVALID` (401): The token is malformed, wrongly signed, or its claims are invalid.
             *     - `AUTH_TOKEN_EXPIRED` (401): The token has expired.
             *     - `FORBIDDEN` (403): The caller may see the resource but not perform this action.
             *     - `SCOPE_CHANGE_FORBIDDEN` (403): The caller may not move the image to the requested scope.
             *     - `ROUTE_NOT_FOUND` (404): No such route.
             *     - `IMAGE_NOT_FOUND` (404): No image with this id that the caller may see.
             *     - `ZONE_NOT_FOUND` (404): No zone with this id.
             *     - `METHOD_NOT_ALLOWED` (405): The route exists but not with this method.
             *     - `INVALID_STATE` (409): The image is not in a state that allows this action; details.status/phase say which.
             *     - `ZONE_NAME_TAKEN` (409): Another zone already has this name.
             *     - `ZONE_IN_USE` (409): The zone still holds images.
             *     - `CONFLICT` (409): The request conflicts with the current state of the resource.
             *     - `QUOTA_EXCEEDED` (409): The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *     - `QUOTA_LIMIT_INVALID` (400): A quota limit is not "unlimited" or an integer from 0 to the resource's maximum; details give the resource, the value and why.
             *     - `RESERVATION_NOT_FOUND` (404): No quota reservation with this id.
             *     - `RESERVATION_NOT_PENDING` (409): The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
             *     - `IDEMPOTENCY_KEY_REUSED` (422): This idempotency key was already used for a different reservation (another department or other amounts).
             *     - `URL_NOT_ALLOWED` (400): The source URL is refused (not http/https, credentials in it, or a host or address the URL policy denies: loopback, link-local, metadata, URL_DENY_*); details.reason says which.
             *     - `SOURCE_MISMATCH` (409): The action does not fit the image's source type (e.g. uploading bytes to an image whose source is a URL); details.sourceType says which.
             *     - `IMAGE_NOT_ACTIVE` (409): The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             *     - `CONVERSION_NOT_APPLICABLE` (422): The image cannot be converted to that format: it is an ISO (never converted) or already in it; details.reason says which (ISO, SAME_FORMAT).
             *     - `CONTENT_REJECTED` (422): The uploaded bytes were refused: they do not match the declared format, the image is unsafe (backing file, external data file, differencing disk), the checksum differs, or qemu-img refused the stored image (IMAGE_CORRUPT, INSPECTION_FAILED, INSPECTION_LIMIT_EXCEEDED, VIRTUAL_SIZE_TOO_LARGE). The image is FAILED with the reason; details.reason and details.ingestCode say why.
             *     - `UPLOAD_INCOMPLETE` (400): The upload ended before the whole file arrived (the client disconnected, or sent nothing for URL_IDLE_TIMEOUT_MS); the image is FAILED and takes a new upload.
             *     - `RANGE_NOT_SATISFIABLE` (416): The requested byte range starts at or past the end of the file; the Content-Range header gives the size.
             *     - `FILE_SOURCE_NOT_FOUND` (404): No file source with this name is configured (GET /file-sources lists them), or none is configured at all.
             *     - `FILE_PATH_INVALID` (400): The path is refused: absolute, `..` or `.` segments, a backslash, a control character, one of `" * : < > ? |`, a name starting or ending with a space or ending with a dot, a name over 255 or a path over 1024 bytes, a symbolic link leading outside the source, or a folder where a file is needed (and the reverse). details.reason says which.
             *     - `FILE_NOT_FOUND` (404): No file or folder at this path in the file source.
             *     - `FILE_SOURCE_UNAVAILABLE` (503): The file source could not be read: the server is unreachable or did not answer in time, refused the service's credentials, has no such share, or denied access. details.reason gives the file-source code (FILE_SOURCE_UNREACHABLE, FILE_SOURCE_TIMEOUT, FILE_SOURCE_AUTH_FAILED, FILE_SOURCE_SHARE_NOT_FOUND, FILE_ACCESS_DENIED, FILE_BUSY, FILE_SOURCE_FAILED).
             *     - `IMAGE_NOT_USABLE` (403): The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.
             *     - `ISO_NOT_BOOTABLE` (409): The ISO is a tool kit (usage TOOL): it can be mounted but never create a VM.
             *     - `ZONE_MISMATCH` (422): The image or ISO belongs to another zone than the VM's; details give both zone ids.
             *     - `TOO_MANY_DATA_DISKS` (422): A VM made from a Windows-IDE image or ISO mounts at most one data disk; details give the limit and what was asked.
             *     - `ROOT_DISK_TOO_SMALL` (422): The VMs' root disk (rootDiskBytes) is smaller than the image's virtual size, so the image would not fit on it; details give both.
             *     - `NOT_AN_ISO` (422): Only an ISO can be mounted; this is a disk image.
             *     - `IMAGE_IN_USE` (409): VMs were created from this image or mount this ISO: details.vms lists them (at most 100; details.total counts them all). Delete again with `?confirm=true` to delete it anyway; the VMs are untouched and keep their links, marked "image deleted".
             *     - `VM_LINK_CONFLICT` (409): The VM is already recorded as created from another image; details give both image ids.
             *     - `RESERVATION_MISMATCH` (422): The launch reservation belongs to another image or department than the VM being registered; details say which.
             *     - `DOWNLOAD_URL_INVALID` (403): The signed download URL is malformed or its signature does not match (it was altered or is for another image).
             *     - `DOWNLOAD_URL_EXPIRED` (403): The signed download URL has expired; ask for a new launch (the same idempotency key answers a fresh URL).
             *     - `PAYLOAD_TOO_LARGE` (413): The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known.
             *     - `RATE_LIMITED` (429): Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again.
             *     - `UNSUPPORTED_MEDIA_TYPE` (415): The request body has a content type this route does not accept.
             *     - `INTERNAL_ERROR` (500): An unexpected error; it is logged with the correlation id.
             *     - `DEPENDENCY_UNAVAILABLE` (503): A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
             * @example VALIDATION_FAILED
             */
            code: components["schemas"]["ErrorCode"];
            /**
             * @description The request's correlation id (also in the X-Correlation-Id response header and the logs).
             * @example 4f1c2a0e-9a59-4b8e-9d0c-2d0c8b5d7c11
             */
            correlationId: string;
            /**
             * @description Code-specific facts, e.g. the invalid fields for VALIDATION_FAILED.
             * @example {
             *       "fields": [
             *         {
             *           "field": "name",
             *           "messages": [
             *             "name must be shorter than or equal to 255 characters"
             *           ]
             *         }
             *       ]
             *     }
             */
            details?: {
                [key: string]: unknown;
            };
            /**
             * @description A sentence a person can read.
             * @example Request validation failed
             */
            message: string;
        };
        /**
         * @description Stable, machine-readable error code:
         *
         *     - `VALIDATION_FAILED` (400): A field, query parameter or path parameter is invalid; details lists each one.
         *     - `MALFORMED_JSON` (400): The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
         *     - `IMMUTABLE_FIELD` (400): The request tries to change a field that can never be edited (source URL, hypervisor, format, kind, zone).
         *     - `AUTH_TOKEN_MISSING` (401): No `Authorization: Bearer {token}` header.
         *     - `AUTH_TOKEN_INVALID` (401): The token is malformed, wrongly signed, or its claims are invalid.
         *     - `AUTH_TOKEN_EXPIRED` (401): The token has expired.
         *     - `FORBIDDEN` (403): The caller may see the resource but not perform this action.
         *     - `SCOPE_CHANGE_FORBIDDEN` (403): The caller may not move the image to the requested scope.
         *     - `ROUTE_NOT_FOUND` (404): No such route.
         *     - `IMAGE_NOT_FOUND` (404): No image with this id that the caller may see.
         *     - `ZONE_NOT_FOUND` (404): No zone with this id.
         *     - `METHOD_NOT_ALLOWED` (405): The route exists but not with this method.
         *     - `INVALID_STATE` (409): The image is not in a state that allows this action; details.status/phase say which.
         *     - `ZONE_NAME_TAKEN` (409): Another zone already has this name.
         *     - `ZONE_IN_USE` (409): The zone still holds images.
         *     - `CONFLICT` (409): The request conflicts with the current state of the resource.
         *     - `QUOTA_EXCEEDED` (409): The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
         *     - `QUOTA_LIMIT_INVALID` (400): A quota limit is not "unlimited" or an integer from 0 to the resource's maximum; details give the resource, the value and why.
         *     - `RESERVATION_NOT_FOUND` (404): No quota reservation with this id.
         *     - `RESERVATION_NOT_PENDING` (409): The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
         *     - `IDEMPOTENCY_KEY_REUSED` (422): This idempotency key was already used for a different reservation (another department or other amounts).
         *     - `URL_NOT_ALLOWED` (400): The source URL is refused (not http/https, credentials in it, or a host or address the URL policy denies: loopback, link-local, metadata, URL_DENY_*); details.reason says which.
         *     - `SOURCE_MISMATCH` (409): The action does not fit the image's source type (e.g. uploading bytes to an image whose source is a URL); details.sourceType says which.
         *     - `IMAGE_NOT_ACTIVE` (409): The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
         *     - `CONVERSION_NOT_APPLICABLE` (422): The image cannot be converted to that format: it is an ISO (never converted) or already in it; details.reason says which (ISO, SAME_FORMAT).
         *     - `CONTENT_REJECTED` (422): The uploaded bytes were refused: they do not match the declared format, the image is unsafe (backing file, external data file, differencing disk), the checksum differs, or qemu-img refused the stored image (IMAGE_CORRUPT, INSPECTION_FAILED, INSPECTION_LIMIT_EXCEEDED, VIRTUAL_SIZE_TOO_LARGE). The image is FAILED with the reason; details.reason and details.ingestCode say why.
         *     - `UPLOAD_INCOMPLETE` (400): The upload ended before the whole file arrived (the client disconnected, or sent nothing for URL_IDLE_TIMEOUT_MS); the image is FAILED and takes a new upload.
         *     - `RANGE_NOT_SATISFIABLE` (416): The requested byte range starts at or past the end of the file; the Content-Range header gives the size.
         *     - `FILE_SOURCE_NOT_FOUND` (404): No file source with this name is configured (GET /file-sources lists them), or none is configured at all.
         *     - `FILE_PATH_INVALID` (400): The path is refused: absolute, `..` or `.` segments, a backslash, a control character, one of `" * : < > ? |`, a name starting or ending with a space or ending with a dot, a name over 255 or a path over 1024 bytes, a symbolic link leading outside the source, or a folder where a file is needed (and the reverse). details.reason says which.
         *     - `FILE_NOT_FOUND` (404): No file or folder at this path in the file source.
         *     - `FILE_SOURCE_UNAVAILABLE` (503): The file source could not be read: the server is unreachable or did not answer in time, refused the service's credentials, has no such share, or denied access. details.reason gives the file-source code (FILE_SOURCE_UNREACHABLE, FILE_SOURCE_TIMEOUT, FILE_SOURCE_AUTH_FAILED, FILE_SOURCE_SHARE_NOT_FOUND, FILE_ACCESS_DENIED, FILE_BUSY, FILE_SOURCE_FAILED).
         *     - `IMAGE_NOT_USABLE` (403): The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.
         *     - `ISO_NOT_BOOTABLE` (409): The ISO is a tool kit (usage TOOL): it can be mounted but never create a VM.
         *     - `ZONE_MISMATCH` (422): The image or ISO belongs to another zone than the VM's; details give both zone ids.
         *     - `TOO_MANY_DATA_DISKS` (422): A VM made from a Windows-IDE image or ISO mounts at most one data disk; details give the limit and what was asked.
         *     - `ROOT_DISK_TOO_SMALL` (422): The VMs' root disk (rootDiskBytes) is smaller than the image's virtual size, so the image would not fit on it; details give both.
         *     - `NOT_AN_ISO` (422): Only an ISO can be mounted; this is a disk image.
         *     - `IMAGE_IN_USE` (409): VMs were created from this image or mount this ISO: details.vms lists them (at most 100; details.total counts them all). Delete again with `?confirm=true` to delete it anyway; the VMs are untouched and keep their links, marked "image deleted".
         *     - `VM_LINK_CONFLICT` (409): The VM is already recorded as created from another image; details give both image ids.
         *     - `RESERVATION_MISMATCH` (422): The launch reservation belongs to another image or department than the VM being registered; details say which.
         *     - `DOWNLOAD_URL_INVALID` (403): The signed download URL is malformed or its signature does not match (it was altered or is for another image).
         *     - `DOWNLOAD_URL_EXPIRED` (403): The signed download URL has expired; ask for a new launch (the same idempotency key answers a fresh URL).
         *     - `PAYLOAD_TOO_LARGE` (413): The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known.
         *     - `RATE_LIMITED` (429): Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again.
         *     - `UNSUPPORTED_MEDIA_TYPE` (415): The request body has a content type this route does not accept.
         *     - `INTERNAL_ERROR` (500): An unexpected error; it is logged with the correlation id.
         *     - `DEPENDENCY_UNAVAILABLE` (503): A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
         * @enum {string}
         */
        ErrorCode: "VALIDATION_FAILED" | "MALFORMED_JSON" | "IMMUTABLE_FIELD" | "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED" | "FORBIDDEN" | "SCOPE_CHANGE_FORBIDDEN" | "ROUTE_NOT_FOUND" | "IMAGE_NOT_FOUND" | "ZONE_NOT_FOUND" | "METHOD_NOT_ALLOWED" | "INVALID_STATE" | "ZONE_NAME_TAKEN" | "ZONE_IN_USE" | "CONFLICT" | "QUOTA_EXCEEDED" | "QUOTA_LIMIT_INVALID" | "RESERVATION_NOT_FOUND" | "RESERVATION_NOT_PENDING" | "IDEMPOTENCY_KEY_REUSED" | "URL_NOT_ALLOWED" | "SOURCE_MISMATCH" | "IMAGE_NOT_ACTIVE" | "CONVERSION_NOT_APPLICABLE" | "CONTENT_REJECTED" | "UPLOAD_INCOMPLETE" | "RANGE_NOT_SATISFIABLE" | "FILE_SOURCE_NOT_FOUND" | "FILE_PATH_INVALID" | "FILE_NOT_FOUND" | "FILE_SOURCE_UNAVAILABLE" | "IMAGE_NOT_USABLE" | "ISO_NOT_BOOTABLE" | "ZONE_MISMATCH" | "TOO_MANY_DATA_DISKS" | "ROOT_DISK_TOO_SMALL" | "NOT_AN_ISO" | "IMAGE_IN_USE" | "VM_LINK_CONFLICT" | "RESERVATION_MISMATCH" | "DOWNLOAD_URL_INVALID" | "DOWNLOAD_URL_EXPIRED" | "PAYLOAD_TOO_LARGE" | "RATE_LIMITED" | "UNSUPPORTED_MEDIA_TYPE" | "INTERNAL_ERROR" | "DEPENDENCY_UNAVAILABLE";
        EventActorResponse: {
            /**
             * @description The caller's department (type caller).
             * @example dept-rd
             */
            department?: string;
            /**
             * @description The caller's role (type caller).
             * @example user
             */
            role?: string;
            /**
             * @description `caller`: an API caller (user, department, role from its token); `system`: the service itself.
             * @example caller
             * @enum {string}
             */
            type: "caller" | "system";
            /**
             * @description The caller's user id (type caller).
             * @example u-alice
             */
            user?: string;
        };
        EventPage: {
            /** @description The events after the cursor, oldest first (at most `limit`). */
            items: components["schemas"]["EventResponse"][];
            /**
             * @description The cursor to ask with next (`after=next`): the last position on this page, or `after` when it is empty.
             * @example 1042
             */
            next: number;
        };
        EventResponse: {
            /** @description Who caused the event: an API caller or the system (imports, sweeps). */
            actor: components["schemas"]["EventActorResponse"];
            /**
             * @description X-Correlation-Id of the request (or job) that caused it.
             * @example 9b2f4c1e-6a0d-4e8b-b7c3-2d5e8f1a0c47
             */
            correlationId: string | null;
            /**
             * Format: uuid
             * @description Unique: consumers drop duplicates by it (delivery is at least once).
             * @example 0e7d3c2b-5a41-4f86-9b1e-7c2d4a6f8e90
             */
            id: string;
            /**
             * Format: uuid
             * @description The image the event is about; null for quota events.
             * @example 6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13
             */
            imageId: string | null;
            /**
             * @description What changed, in the shape of `type` at `version` (asyncapi.yaml documents each).
             * @example {
             *       "phase": "READY",
             *       "status": "ACTIVE"
             *     }
             */
            payload: {
                [key: string]: unknown;
            };
            /**
             * @description The cursor: increases with every event, in commit order.
             * @example 1042
             */
            position: number;
            /**
             * @description Order of the events of one image (or of one department for quota events), from 1.
             * @example 7
             */
            sequence: number;
            /**
             * @description ms since the epoch
             * @example 1763626500000
             */
            time: number;
            /**
             * @description The event type, e.g. `image.created`, `image.import.progressed`, `quota.changed`.
             * @example image.created
             * @enum {string}
             */
            type: "image.created" | "image.updated" | "image.scope_changed" | "image.enabled" | "image.disabled" | "image.import.started" | "image.import.progressed" | "image.activated" | "image.import.failed" | "image.deleted" | "vm.linked" | "vm.unlinked" | "iso.mounted" | "iso.unmounted" | "quota.limit_changed" | "quota.refused";
            /**
             * @description The version of the payload of this type.
             * @example 1
             */
            version: number;
        };
        FileEntryPage: {
            /** @description The entries on this page: folders first, then by `sort`. */
            items: components["schemas"]["FileEntryResponse"][];
            /**
             * @description The 1-based page number.
             * @example 1
             */
            page: number;
            /**
             * @description Items per page.
             * @example 20
             */
            pageSize: number;
            /**
             * @description The folder listed (normalised).
             * @example isos/centos
             */
            path: string;
            /**
             * @description The file source listed (its name in GET /file-sources).
             * @example share
             */
            source: string;
            /**
             * @description Matching entries across all pages.
             * @example 2
             */
            total: number;
            /**
             * @description The folder holds more entries than a listing reads (FILE_SOURCE_MAX_ENTRIES): only the first ones are here.
             * @example false
             */
            truncated: boolean;
        };
        FileEntryResponse: {
            /**
             * Format: date-time
             * @description Last modification (second resolution on SMB; the epoch for folders of a bucket).
             * @example 2026-11-20T08:15:00.000Z
             */
            modifiedAt: string;
            /**
             * @description The file or folder name.
             * @example CentOS-7-x86_64-Minimal-2009.iso
             */
            name: string;
            /**
             * @description Its path from the source's root: what `source.path` names to create an image from it, or `path=` to list a folder.
             * @example isos/centos/CentOS-7-x86_64-Minimal-2009.iso
             */
            path: string;
            /**
             * Format: int64
             * @description Bytes; 0 for a folder.
             * @example 1020264448
             */
            size: number;
            /**
             * @description FILE or DIR (a folder: open it with `path`).
             * @example FILE
             */
            type: components["schemas"]["FileEntryType"];
        };
        /**
         * @description FILE or DIR (a folder: open it with `path`).
         * @enum {string}
         */
        FileEntryType: "FILE" | "DIR";
        /** @enum {string} */
        FileSort: "name" | "size" | "modifiedAt";
        /**
         * @description SMB (a share), DIR (a directory on the service's host) or BUCKET (an object-store prefix).
         * @enum {string}
         */
        FileSourceKind: "SMB" | "DIR" | "BUCKET";
        FileSourceList: {
            /** @description The configured file sources; the first one is the default. */
            items: components["schemas"]["FileSourceResponse"][];
        };
        FileSourceResponse: {
            /**
             * @description The first source is the one a create that names none uses.
             * @example true
             */
            default: boolean;
            /**
             * @description SMB (a share), DIR (a directory on the service's host) or BUCKET (an object-store prefix).
             * @example SMB
             */
            kind: components["schemas"]["FileSourceKind"];
            /**
             * @description Where users copy files to, for the console to show: the UNC path of an SMB share on port 445
             *     (`\\10.0.0.5\files`; `smb://host:port/share` on another port, which UNC cannot name), `s3://bucket/prefix/`
             *     of a bucket; null for a directory on the service's host.
             * @example \\10.0.0.5\files
             */
            location: string | null;
            /**
             * @description What `source.fileSource` names when an image is created from one of its files.
             * @example share
             */
            name: string;
        };
        GrowReservationDto: {
            /**
             * Format: int64
             * @description Add this much to the pending amount (0 renews the expiry). Give `delta` or `total`.
             * @example 1073741824
             */
            delta?: number;
            /**
             * @description The resource to grow.
             * @example IMAGE_BYTES
             */
            resource: components["schemas"]["QuotaResource"];
            /**
             * Format: int64
             * @description Make the pending amount at least this much (idempotent). Give `delta` or `total`.
             * @example 4294967296
             */
            total?: number;
        };
        HealthResponse: {
            /**
             * @description One entry per dependency: database, and queue and storage where configured (readiness only: liveness checks none).
             * @example {
             *       "database": {
             *         "status": "up"
             *       }
             *     }
             */
            checks?: {
                [key: string]: components["schemas"]["DependencyHealth"];
            };
            /**
             * @description ok when the process (liveness) or every dependency (readiness) answers, else unavailable.
             * @example ok
             * @enum {string}
             */
            status: "ok" | "unavailable";
        };
        /**
         * @description The default virtualization technology of images created in it.
         * @enum {string}
         */
        Hypervisor: "KVM" | "VMWARE" | "XEN" | "HYPERV";
        ImageCountsResponse: {
            /**
             * @description Images the caller may see in the all view.
             * @example 42
             */
            all: number;
            /**
             * @description Featured images.
             * @example 5
             */
            featured: number;
            /**
             * @description The caller's own private images (an admin: the department's).
             * @example 12
             */
            private: number;
            /**
             * @description Public images.
             * @example 25
             */
            public: number;
        };
        /**
         * @description File format. Required for an IMAGE; an ISO's format is `iso` (the default for ISOs).
         * @enum {string}
         */
        ImageFormat: "qcow2" | "raw" | "vmdk" | "vhd" | "vhdx" | "iso";
        /**
         * @description IMAGE (a disk with an OS) or ISO (installation media or a tool kit).
         * @enum {string}
         */
        ImageKind: "IMAGE" | "ISO";
        ImagePage: {
            /** @description The images on this page. */
            items: components["schemas"]["ImageResponse"][];
            /**
             * @description The 1-based page number.
             * @example 1
             */
            page: number;
            /**
             * @description Items per page.
             * @example 20
             */
            pageSize: number;
            /**
             * @description Matching images across all pages.
             * @example 42
             */
            total: number;
            /**
             * @description The view that was applied (the role's default when none was asked).
             * @example all
             */
            view: components["schemas"]["View"];
        };
        /**
         * @description Where the image is in its life: QUEUED, IMPORTING, CONVERTING, VERIFYING, READY, FAILED or DISABLED.
         * @enum {string}
         */
        ImagePhase: "QUEUED" | "IMPORTING" | "VERIFYING" | "READY" | "FAILED" | "DISABLED" | "CONVERTING";
        ImageProgressResponse: {
            /**
             * Format: int64
             * @description Bytes stored so far.
             * @example 536870912
             */
            bytesDone: number;
            /**
             * Format: int64
             * @description Current transfer rate while bytes stream in (bytes per second, smoothed), else null.
             * @example 104857600
             */
            bytesPerSecond: number | null;
            /**
             * Format: int64
             * @description Total bytes when known.
             * @example 1073741824
             */
            bytesTotal: number | null;
            /**
             * @description 0-100 when the total is known, else null.
             * @example 50
             */
            percent: number | null;
        };
        ImageResponse: {
            /**
             * Format: int64
             * @description What the image occupies on its store as qemu-img counts it (allocated blocks), once READY; null when unknown (S3).
             * @example 1073741824
             */
            actualSizeBytes: number | null;
            /**
             * @description sha256 of the stored bytes (hex), once known.
             * @example e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
             */
            checksum: string | null;
            /**
             * @description md5 of the stored bytes (hex), when the service computes it (INGEST_COMPUTE_MD5) or an md5 was expected.
             * @example d41d8cd98f00b204e9800998ecf8427e
             */
            checksumMd5: string | null;
            /**
             * Format: uuid
             * @description The image this one is a converted copy of.
             * @example 3d9a1b6e-2c4f-4e7a-8b05-9f1e6c3a7d24
             */
            convertedFrom: string | null;
            /**
             * Format: date-time
             * @description When the record was created.
             * @example 2026-11-20T08:15:00.000Z
             */
            createdAt: string;
            /**
             * @description The owner's department, whose quota the image counts in.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * @description Free text, up to 2000 characters; empty when none was given.
             * @example CentOS 7.9 minimal, cloud-init enabled
             */
            description: string;
            /**
             * @description The checksum given at creation (`sha256:<hex>` or `md5:<hex>`), which the stored bytes were checked against.
             * @example sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
             */
            expectedChecksum: string | null;
            /**
             * @description The file format: qcow2, raw, vmdk, vhd, vhdx or iso.
             * @example qcow2
             */
            format: components["schemas"]["ImageFormat"];
            /**
             * @description The virtualization technology the image runs on.
             * @example KVM
             */
            hypervisor: components["schemas"]["Hypervisor"];
            /**
             * Format: uuid
             * @description The image id.
             * @example 6f1c7a52-3b9e-4d2a-8c41-0e5b7d9f2a13
             */
            id: string;
            /**
             * @description ISO only: OS or TOOL; null for images.
             * @example OS
             */
            isoUsage: components["schemas"]["IsoUsage"] | (never | null);
            /**
             * @description IMAGE (a disk with an OS) or ISO (installation media or a tool kit).
             * @example IMAGE
             */
            kind: components["schemas"]["ImageKind"];
            /**
             * @description Display name.
             * @example centos7-base
             */
            name: string;
            /**
             * @description OS architecture: 32 or 64 bits.
             * @example 64
             * @enum {integer}
             */
            osBits: 32 | 64;
            /**
             * @description The OS family.
             * @example CENTOS
             */
            osCategory: components["schemas"]["OsCategory"];
            /**
             * @description The OS name.
             * @example CentOS
             */
            osName: string;
            /**
             * @description The OS version.
             * @example 7.9
             */
            osVersion: string;
            /**
             * @description The user who created the image.
             * @example u-alice
             */
            ownerId: string;
            /**
             * @description Where the image is in its life: QUEUED, IMPORTING, CONVERTING, VERIFYING, READY, FAILED or DISABLED.
             * @example READY
             */
            phase: components["schemas"]["ImagePhase"];
            /** @description Import progress (bytes stored, total, percent, rate). */
            progress: components["schemas"]["ImageProgressResponse"];
            /**
             * @description Who may see and use it: PRIVATE (owner, and the department's admins), PUBLIC or FEATURED (everyone).
             * @example PRIVATE
             */
            scope: components["schemas"]["Scope"];
            /**
             * Format: int64
             * @description Stored size in bytes, once known.
             * @example 1073741824
             */
            sizeBytes: number | null;
            /** @description Where the bytes came from (URL, UPLOAD, FILE or CONVERSION). */
            source: components["schemas"]["ImageSourceResponse"];
            /**
             * @description sha256 of the file as it came when the stored image is a conversion of it (the zone requires another format); `checksum` is then the stored image's.
             * @example 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
             */
            sourceSha256: string | null;
            /**
             * @description ACTIVE: usable to create VMs; INACTIVE: uploading, failed or disabled (see phase and statusReason).
             * @example ACTIVE
             */
            status: components["schemas"]["ImageStatus"];
            /**
             * @description Why the image is inactive, in words a person understands (failed imports, disabling).
             * @example The checksum does not match the expected one: upload the file again
             */
            statusReason: string | null;
            /**
             * @description Tags, lower-cased.
             * @example [
             *       "centos",
             *       "base"
             *     ]
             */
            tags: string[];
            /**
             * Format: date-time
             * @description When the record last changed.
             * @example 2026-11-20T08:17:42.000Z
             */
            updatedAt: string;
            /**
             * Format: int64
             * @description The disk's size once expanded, as qemu-img reports it (what a VM's root disk must hold), once READY; an ISO's is its size.
             * @example 10737418240
             */
            virtualSizeBytes: number | null;
            /**
             * Format: uuid
             * @description The zone the image belongs to.
             * @example 2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21
             */
            zoneId: string;
        };
        /** @enum {string} */
        ImageSort: "name" | "createdAt" | "sizeBytes" | "virtualSizeBytes";
        ImageSourceDto: {
            /**
             * @description Name of the configured file source, for type FILE (default: the first one configured).
             * @example share
             */
            fileSource?: string;
            /**
             * @description Path inside the file source, for type FILE, e.g. `isos/CentOS-7.iso`.
             * @example isos/CentOS-7-x86_64-Minimal.iso
             */
            path?: string;
            /**
             * @description URL: the service downloads `url`; UPLOAD: the bytes are PUT to /images/{id}/file; FILE: a file picked from the platform's file directory.
             * @example URL
             */
            type: components["schemas"]["SourceType"];
            /**
             * Format: uri
             * @description http(s) URL of the file, for type URL, e.g. `http://10.0.0.5/centos7.qcow2`.
             * @example http://10.0.0.5/images/centos7.qcow2
             */
            url?: string;
        };
        ImageSourceResponse: {
            /**
             * @description The file source the path belongs to (type FILE).
             * @example share
             */
            fileSource?: string | null;
            /**
             * @description The picked path (type FILE).
             * @example isos/CentOS-7-x86_64-Minimal-2009.iso
             */
            path?: string | null;
            /**
             * @description URL, UPLOAD, FILE or CONVERSION.
             * @example URL
             */
            type: components["schemas"]["SourceType"];
            /**
             * @description The URL the bytes were downloaded from (type URL).
             * @example http://10.0.0.5/images/centos7.qcow2
             */
            url?: string | null;
        };
        /**
         * @description ACTIVE: usable to create VMs; INACTIVE: uploading, failed or disabled (see phase and statusReason).
         * @enum {string}
         */
        ImageStatus: "ACTIVE" | "INACTIVE";
        ImageVmPage: {
            /**
             * @description The image was deleted (confirmed); these VMs still exist and keep their links.
             * @example false
             */
            imageDeleted: boolean;
            /**
             * Format: uuid
             * @description The image asked about.
             * @example 0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23
             */
            imageId: string;
            /** @description The VMs on this page, oldest link first. */
            items: components["schemas"]["ImageVmResponse"][];
            /**
             * @description The 1-based page number.
             * @example 1
             */
            page: number;
            /**
             * @description Items per page.
             * @example 20
             */
            pageSize: number;
            /**
             * @description VMs linked to the image, across all pages.
             * @example 2
             */
            total: number;
        };
        ImageVmResponse: {
            /**
             * @description The VM owner's department.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * @description The VM's owner.
             * @example u-alice
             */
            ownerId: string;
            /**
             * @description CREATED_FROM (the VM was created from the image) or ISO_MOUNTED (the VM mounts the ISO).
             * @example CREATED_FROM
             */
            relation: components["schemas"]["LinkRelation"];
            /**
             * Format: date-time
             * @description When the link was registered.
             * @example 2026-11-20T08:15:00.000Z
             */
            since: string;
            /**
             * @description The compute side's VM id.
             * @example vm-0001
             */
            vmId: string;
            /**
             * @description The VM's name.
             * @example web-01
             */
            vmName: string;
        };
        /**
         * @description ISO only, and required there: OS (bootable install media) or TOOL (a tool kit; never creates a VM).
         * @enum {string}
         */
        IsoUsage: "OS" | "TOOL";
        LaunchDownloadResponse: {
            /**
             * Format: date-time
             * @description Until when `url` works.
             * @example 2026-11-20T09:15:00.000Z
             */
            expiresAt: string;
            /**
             * @description PRESIGNED (a presigned URL of the object store) or SERVICE (a signed `/downloads/{id}` URL of this service); either is read with an HTTP GET, ranges allowed.
             * @example SERVICE
             */
            method: components["schemas"]["DownloadMethod"];
            /**
             * @description A presigned object-store URL (MinIO) or a signed URL of this service (filesystem store); GET it, Range works.
             * @example https://images.hcm.internal/downloads/0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23?expires=1795719600&signature=9c1f...
             */
            url: string;
        };
        LaunchImageResponse: {
            /**
             * @description sha256 of the stored file (hex): check the download against it.
             * @example e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
             */
            checksum: string | null;
            /**
             * @description md5 of the stored file (hex), when the service computed it.
             * @example null
             */
            checksumMd5: string | null;
            /**
             * @description The file format compute must expect.
             * @example qcow2
             */
            format: components["schemas"]["ImageFormat"];
            /**
             * @description The hypervisor the VMs must run on.
             * @example KVM
             */
            hypervisor: components["schemas"]["Hypervisor"];
            /**
             * Format: uuid
             * @description The image id.
             * @example 0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23
             */
            id: string;
            /**
             * @description An ISO's usage (always OS for a launch), null for a disk image.
             * @example null
             */
            isoUsage: components["schemas"]["IsoUsage"] | (never | null);
            /**
             * @description IMAGE or ISO.
             * @example IMAGE
             */
            kind: components["schemas"]["ImageKind"];
            /**
             * @description Display name.
             * @example CentOS 7.9 base
             */
            name: string;
            /**
             * @description OS architecture: 32 or 64 bits.
             * @example 64
             * @enum {integer}
             */
            osBits: 32 | 64;
            /**
             * @description The OS family (WINDOWS_IDE limits data disks to one).
             * @example CENTOS
             */
            osCategory: components["schemas"]["OsCategory"];
            /**
             * @description The OS name.
             * @example CentOS
             */
            osName: string;
            /**
             * @description The OS version.
             * @example 7.9
             */
            osVersion: string;
            /**
             * Format: int64
             * @description Size of the stored file in bytes.
             * @example 2147483648
             */
            sizeBytes: number | null;
            /**
             * Format: int64
             * @description The disk's size once expanded (qemu-img): the smallest root disk the image fits on.
             * @example 21474836480
             */
            virtualSizeBytes: number | null;
            /**
             * Format: uuid
             * @description The image's zone.
             * @example 5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11
             */
            zoneId: string;
        };
        LaunchRequestDto: {
            /**
             * @description How many VMs (one or more).
             * @example 3
             */
            count: number;
            /**
             * @description Sizes in bytes of each VM's data disks, when the compute side knows them: they are reserved as DISK_BYTES
             *     with the root disk. When `dataDisks` is given too it must be their number; without it, it is.
             * @example [
             *       107374182400
             *     ]
             */
            dataDiskBytes?: number[];
            /**
             * @description Data disks each VM will have (besides its system disk); a Windows-IDE image or ISO allows at most 1.
             * @default 0
             * @example 1
             */
            dataDisks?: number;
            /**
             * @description Chosen by the compute side for this launch (1-128 characters `[A-Za-z0-9._:@/+=-]`): the same key and
             *     request again answer the same reservation (200, with a fresh download URL) instead of reserving twice;
             *     the same key with another owner department, count or disk sizes is refused (422 IDEMPOTENCY_KEY_REUSED).
             * @example launch-2026-11-20-7f3a
             */
            idempotencyKey: string;
            /** @description Who will own the VMs: the scope rules are checked for this user, and quota is charged to their department. */
            owner: components["schemas"]["VmOwnerDto"];
            /**
             * Format: int64
             * @description Size of each VM's root (system) disk in bytes, when the compute side knows it: a disk image whose virtual size is
             *     larger is refused (422 ROOT_DISK_TOO_SMALL). An ISO has no such rule.
             * @example 21474836480
             */
            rootDiskBytes?: number;
            /**
             * Format: uuid
             * @description The zone the VMs are created in; it must be the image's.
             * @example 5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11
             */
            zoneId: string;
        };
        LaunchResponse: {
            /**
             * @description VMs reserved (the launch's count).
             * @example 3
             */
            count: number;
            /**
             * Format: int64
             * @description DISK_BYTES reserved for each VM: its root disk (`rootDiskBytes`, else a disk image's virtual size; an ISO's
             *     root disk counts only when given) plus its data disks (`dataDiskBytes`). 0 when nothing is known.
             * @example 21474836480
             */
            diskBytesPerVm: number;
            /** @description Where compute reads the bytes without a token. */
            download: components["schemas"]["LaunchDownloadResponse"];
            /**
             * Format: date-time
             * @description When the reservation gives its unregistered VMs back (LAUNCH_RESERVATION_TTL_SECONDS).
             * @example 2026-11-20T09:15:00.000Z
             */
            expiresAt: string;
            /** @description What compute needs to know about the image. */
            image: components["schemas"]["LaunchImageResponse"];
            /**
             * @description VMs of the reservation not registered yet.
             * @example 3
             */
            pendingVms: number;
            /**
             * Format: uuid
             * @description The VM quota reservation: pass it when registering each VM (`PUT /vms/{vmId}/origin`).
             * @example 3f2e1d0c-9b8a-4765-8432-10fedcba9876
             */
            reservationId: string;
            /**
             * @description PENDING while VMs are left to register; COMMITTED once all were; EXPIRED or RELEASED when its time ran out.
             * @example PENDING
             */
            reservationStatus: components["schemas"]["ReservationStatus"];
        };
        /** @enum {string} */
        LinkRelation: "CREATED_FROM" | "ISO_MOUNTED";
        /**
         * @description OS category. A WINDOWS_IDE image gives VMs with at most one data disk.
         * @enum {string}
         */
        OsCategory: "CENTOS" | "UBUNTU" | "DEBIAN" | "REDHAT" | "ROCKY" | "SUSE" | "OPENEULER" | "KYLIN" | "UOS" | "OTHER_LINUX" | "WINDOWS_VIRTIO" | "WINDOWS_IDE" | "OTHER";
        QuotaAmountsDto: {
            /**
             * Format: int64
             * @description VM disk (bytes).
             * @example 107374182400
             */
            DISK_BYTES?: number;
            /**
             * Format: int64
             * @description Image storage (bytes).
             * @example 10737418240
             */
            IMAGE_BYTES?: number;
            /**
             * Format: int64
             * @description Images (count).
             * @example 1
             */
            IMAGE_COUNT?: number;
            /**
             * Format: int64
             * @description VM memory (bytes).
             * @example 8589934592
             */
            MEMORY_BYTES?: number;
            /**
             * Format: int64
             * @description Virtual CPUs (count).
             * @example 4
             */
            VCPU?: number;
            /**
             * Format: int64
             * @description Virtual machines (count).
             * @example 2
             */
            VM_COUNT?: number;
        };
        QuotaLimitsDto: {
            /**
             * @description VM disk (bytes): an integer from 0 to 1125899906842624, or "unlimited".
             * @example 1099511627776
             */
            DISK_BYTES?: number | "unlimited";
            /**
             * @description Image storage (bytes): an integer from 0 to 1125899906842624, or "unlimited".
             * @example 1099511627776
             */
            IMAGE_BYTES?: number | "unlimited";
            /**
             * @description Images (count): an integer from 0 to 1000000, or "unlimited".
             * @example 50
             */
            IMAGE_COUNT?: number | "unlimited";
            /**
             * @description VM memory (bytes): an integer from 0 to 1125899906842624, or "unlimited".
             * @example 1099511627776
             */
            MEMORY_BYTES?: number | "unlimited";
            /**
             * @description Virtual CPUs (count): an integer from 0 to 10000000, or "unlimited".
             * @example 50
             */
            VCPU?: number | "unlimited";
            /**
             * @description Virtual machines (count): an integer from 0 to 1000000, or "unlimited".
             * @example 50
             */
            VM_COUNT?: number | "unlimited";
        };
        /**
         * @description The resource.
         * @enum {string}
         */
        QuotaResource: "IMAGE_COUNT" | "IMAGE_BYTES" | "VM_COUNT" | "VCPU" | "MEMORY_BYTES" | "DISK_BYTES";
        ReconcileDto: {
            /**
             * @description Only this department (default: every department with images or ledger rows).
             * @example dept-rd
             */
            departmentId?: string;
            /**
             * @description Report drift without repairing it.
             * @default false
             * @example false
             */
            dryRun?: boolean;
        };
        ReconcileResponse: {
            /**
             * @description How many departments were checked.
             * @example 3
             */
            departments: number;
            /** @description What differed, per department, resource and figure (empty when nothing drifted). */
            drift: components["schemas"]["DriftResponse"][];
            /**
             * @description True when drift was only reported, not repaired.
             * @example false
             */
            dryRun: boolean;
            /** @description Departments whose ledger kept changing while checked; run again. */
            skipped: components["schemas"]["ReconcileSkipped"][];
        };
        ReconcileSkipped: {
            /**
             * @description The department that was not checked.
             * @example dept-ops
             */
            departmentId: string;
            /**
             * @description Why it was not checked, e.g. its ledger kept changing while it was being checked.
             * @example the ledger kept changing; run again
             */
            reason: string;
        };
        RegisterMountDto: {
            /** @description The VM's owner: the scope rules are checked for this user. */
            owner: components["schemas"]["VmOwnerDto"];
            /**
             * @description The VM's name as the console shows it.
             * @example web-01
             */
            vmName: string;
            /**
             * Format: uuid
             * @description The VM's zone; it must be the ISO's.
             * @example 5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11
             */
            zoneId: string;
        };
        RegisterOriginDto: {
            /**
             * Format: int64
             * @description The VM's disks in bytes (root and data), charged as DISK_BYTES with the VM and refunded with it. Default: its
             *     share of the launch's DISK_BYTES while the reservation holds VMs, else a disk image's virtual size (an ISO:
             *     nothing). Taken from the launch's reservation while that holds it, else only if the department has room
             *     under its DISK_BYTES limit (409 QUOTA_EXCEEDED otherwise).
             * @example 21474836480
             */
            diskBytes?: number;
            /**
             * Format: uuid
             * @description The image or OS ISO the VM was created from.
             * @example 0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23
             */
            imageId: string;
            /** @description The VM's owner: the scope rules are checked for this user, and VM quota is charged to their department. */
            owner: components["schemas"]["VmOwnerDto"];
            /**
             * Format: uuid
             * @description The launch's reservation (`POST /images/{id}/launches`): one of its VMs is committed for this VM. Without
             *     it, or when it no longer holds a VM (expired, all registered), the VM is counted in the department's usage
             *     directly, only if the department has room under its VM_COUNT limit (409 QUOTA_EXCEEDED otherwise).
             * @example 3f2e1d0c-9b8a-4765-8432-10fedcba9876
             */
            reservationId?: string;
            /**
             * @description The VM's name as the console shows it (a later PUT with another name renames it here).
             * @example web-01
             */
            vmName: string;
            /**
             * Format: uuid
             * @description The VM's zone; it must be the image's, as at the launch.
             * @example 5c0f6a53-8a4e-4a57-b8a2-2b9f0e3f6d11
             */
            zoneId: string;
        };
        /**
         * @description The storage format disk images are converted to on import; null when the zone keeps what is brought.
         * @enum {string}
         */
        RequiredFormat: "raw" | "qcow2";
        ReservationItemResponse: {
            /**
             * Format: int64
             * @description Committed (counted in the department's `used`).
             * @example 0
             */
            committed: number;
            /**
             * @description True while the amount is reserved and not yet committed or released.
             * @example true
             */
            pending: boolean;
            /**
             * Format: int64
             * @description Held pending (counted in the department's `reserved`).
             * @example 10737418240
             */
            reserved: number;
            /**
             * @description The resource.
             * @example IMAGE_BYTES
             */
            resource: components["schemas"]["QuotaResource"];
        };
        ReservationResponse: {
            /**
             * Format: date-time
             * @description When it was reserved.
             * @example 2026-11-20T08:15:00.000Z
             */
            createdAt: string;
            /**
             * @description The department the amounts are held for.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * Format: date-time
             * @description When a PENDING reservation expires (renewed by each grow).
             * @example 2026-11-20T08:30:00.000Z
             */
            expiresAt: string;
            /**
             * Format: uuid
             * @description The reservation id.
             * @example c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18
             */
            id: string;
            /** @description One entry per resource reserved. */
            items: components["schemas"]["ReservationItemResponse"][];
            /**
             * @description The caller's idempotency key.
             * @example launch-7f3a-0001
             */
            key: string;
            /**
             * @description PENDING while something is held, COMMITTED, RELEASED, REFUNDED or EXPIRED.
             * @example PENDING
             */
            status: components["schemas"]["ReservationStatus"];
            /**
             * Format: date-time
             * @description When it last changed.
             * @example 2026-11-20T08:16:10.000Z
             */
            updatedAt: string;
        };
        /**
         * @description PENDING while something is held, COMMITTED, RELEASED, REFUNDED or EXPIRED.
         * @enum {string}
         */
        ReservationStatus: "PENDING" | "COMMITTED" | "RELEASED" | "EXPIRED" | "REFUNDED";
        ResourceUsageResponse: {
            /**
             * Format: int64
             * @description The limit; null when unlimited.
             * @example 107374182400
             */
            limit: number | null;
            /**
             * Format: int64
             * @description limit - used - reserved, never below 0; null when unlimited.
             * @example 64424509440
             */
            remaining: number | null;
            /**
             * Format: int64
             * @description Held by pending reservations.
             * @example 10737418240
             */
            reserved: number;
            /**
             * @description The resource.
             * @example IMAGE_BYTES
             */
            resource: components["schemas"]["QuotaResource"];
            /**
             * @description True when there is no limit.
             * @example false
             */
            unlimited: boolean;
            /**
             * Format: int64
             * @description Held by what exists (committed reservations).
             * @example 32212254720
             */
            used: number;
        };
        /**
         * @description The role the token carries.
         * @enum {string}
         */
        Role: "super_admin" | "admin" | "user" | "service";
        /**
         * @description Scope: PRIVATE by default; only a super admin may create FEATURED or PUBLIC.
         * @enum {string}
         */
        Scope: "FEATURED" | "PUBLIC" | "PRIVATE";
        SetQuotaLimitsDto: {
            /**
             * @description New limits by resource; resources left out keep theirs.
             * @example {
             *       "IMAGE_BYTES": "unlimited",
             *       "IMAGE_COUNT": 50
             *     }
             */
            limits: components["schemas"]["QuotaLimitsDto"];
        };
        /**
         * @description URL: the service downloads `url`; UPLOAD: the bytes are PUT to /images/{id}/file; FILE: a file picked from the platform's file directory.
         * @enum {string}
         */
        SourceType: "URL" | "FILE" | "UPLOAD" | "CONVERSION";
        UpdateImageDto: {
            /**
             * @description New free text, up to 2000 characters.
             * @example CentOS 7.9 minimal, patched 2026-11
             */
            description?: string;
            /**
             * @description ISO only.
             * @example TOOL
             */
            isoUsage?: components["schemas"]["IsoUsage"];
            /**
             * @description New display name, 1-255 characters.
             * @example centos7-base-v2
             */
            name?: string;
            /**
             * @description New OS architecture: 32 or 64.
             * @example 64
             * @enum {integer}
             */
            osBits?: 32 | 64;
            /**
             * @description New OS family.
             * @example CENTOS
             */
            osCategory?: components["schemas"]["OsCategory"];
            /**
             * @description New OS name.
             * @example CentOS
             */
            osName?: string;
            /**
             * @description New OS version.
             * @example 7.9.2009
             */
            osVersion?: string;
            /**
             * @description New scope (403 SCOPE_CHANGE_FORBIDDEN otherwise).
             * @example PUBLIC
             */
            scope?: components["schemas"]["Scope"];
            /**
             * @description Replaces all tags.
             * @example [
             *       "centos",
             *       "base"
             *     ]
             */
            tags?: string[];
        };
        UpdateZoneDto: {
            /**
             * @description Free text.
             * @example Rack B, local SSD
             */
            description?: string;
            /**
             * @description New virtualization technology (existing images keep theirs).
             * @example KVM
             */
            hypervisor?: components["schemas"]["Hypervisor"];
            /**
             * @description New unique name.
             * @example zone-b
             */
            name?: string;
            /**
             * @description The storage format the zone keeps disk images in (raw for a Ceph-backed zone, qcow2 for local KVM): an image imported in another disk format is converted on import; ISOs never are. null (the default) keeps the format brought.
             * @example qcow2
             */
            requiredFormat?: components["schemas"]["RequiredFormat"] | (never | null);
        };
        /** @enum {string} */
        View: "all" | "featured" | "public" | "private";
        VmImageResponse: {
            /**
             * @description The image was deleted after the VM was linked to it ("image deleted").
             * @example false
             */
            imageDeleted: boolean;
            /**
             * Format: date-time
             * @description When the image was deleted; null while it exists.
             * @example null
             */
            imageDeletedAt: string | null;
            /**
             * Format: uuid
             * @description The image or ISO id.
             * @example 0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23
             */
            imageId: string;
            /**
             * @description IMAGE or ISO.
             * @example IMAGE
             */
            kind: components["schemas"]["ImageKind"];
            /**
             * @description The image's name now, or its last name when it was deleted.
             * @example CentOS 7.9 base
             */
            name: string;
            /**
             * @description CREATED_FROM or ISO_MOUNTED.
             * @example CREATED_FROM
             */
            relation: components["schemas"]["LinkRelation"];
            /**
             * Format: date-time
             * @description When the link was registered.
             * @example 2026-11-20T08:15:00.000Z
             */
            since: string;
        };
        VmImagesResponse: {
            /** @description The image or OS ISO the VM was created from; null when none is recorded (a VM that only mounts ISOs). */
            createdFrom: components["schemas"]["VmImageResponse"] | (never | null);
            /**
             * @description The VM owner's department; null when nothing is recorded.
             * @example dept-rd
             */
            departmentId: string | null;
            /** @description The ISOs mounted now. */
            isoMounts: components["schemas"]["VmImageResponse"][];
            /**
             * @description The VM's owner; null when nothing is recorded.
             * @example u-alice
             */
            ownerId: string | null;
            /**
             * @description The VM asked about.
             * @example vm-0001
             */
            vmId: string;
            /**
             * @description null when nothing is recorded for this VM (or nothing the caller may see).
             * @example web-01
             */
            vmName: string | null;
        };
        VmLinkResponse: {
            /**
             * @description The VM owner's department.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * Format: uuid
             * @description The image or ISO id.
             * @example 0b7e4c1e-2f7a-4d8e-9c61-5d2f0e9a1b23
             */
            imageId: string;
            /**
             * @description The VM's owner.
             * @example u-alice
             */
            ownerId: string;
            /**
             * @description Where the VM's quota came from (NONE for an ISO mount).
             * @example LAUNCH_RESERVATION
             */
            quota: components["schemas"]["VmQuotaSource"];
            /**
             * @description CREATED_FROM or ISO_MOUNTED.
             * @example CREATED_FROM
             */
            relation: components["schemas"]["LinkRelation"];
            /**
             * Format: uuid
             * @description The launch reservation the VM was registered with, if any.
             * @example 3f2e1d0c-9b8a-4765-8432-10fedcba9876
             */
            reservationId: string | null;
            /**
             * Format: date-time
             * @description When the link was registered.
             * @example 2026-11-20T08:15:00.000Z
             */
            since: string;
            /**
             * @description The compute side's VM id.
             * @example vm-0001
             */
            vmId: string;
            /**
             * @description The VM's name.
             * @example web-01
             */
            vmName: string;
        };
        VmOwnerDto: {
            /**
             * @description The owner's department, whose quota pays for the VMs.
             * @example dept-rd
             */
            departmentId: string;
            /**
             * @description The owner's role (default `user`): a super admin may use every image, others featured, public and their own.
             * @default user
             * @example user
             */
            role?: components["schemas"]["VmOwnerRole"];
            /**
             * @description The owner's user id (the `sub` of their tokens).
             * @example u-alice
             */
            userId: string;
        };
        /**
         * @description The owner's role (default `user`): a super admin may use every image, others featured, public and their own.
         * @enum {string}
         */
        VmOwnerRole: "user" | "admin" | "super_admin";
        /**
         * @description Where the VM's quota came from (NONE for an ISO mount).
         * @enum {string}
         */
        VmQuotaSource: "LAUNCH_RESERVATION" | "DIRECT" | "NONE";
        ZonePage: {
            /** @description The zones on this page, by name. */
            items: components["schemas"]["ZoneResponse"][];
            /**
             * @description The 1-based page number.
             * @example 1
             */
            page: number;
            /**
             * @description Items per page.
             * @example 20
             */
            pageSize: number;
            /**
             * @description Number of zones in all pages.
             * @example 2
             */
            total: number;
        };
        ZoneResponse: {
            /**
             * Format: date-time
             * @description When the zone was created.
             * @example 2026-10-01T09:00:00.000Z
             */
            createdAt: string;
            /**
             * @description Free text.
             * @example Rack A, Ceph-backed KVM hosts
             */
            description: string;
            /**
             * @description The default virtualization technology of images created in it.
             * @example KVM
             */
            hypervisor: components["schemas"]["Hypervisor"];
            /**
             * Format: uuid
             * @description The zone id.
             * @example 2b8e4f10-7c3d-4a91-b5e6-0d9f8a7c6e21
             */
            id: string;
            /**
             * @description Unique name.
             * @example zone-a
             */
            name: string;
            /**
             * @description The storage format disk images are converted to on import; null when the zone keeps what is brought.
             * @example raw
             */
            requiredFormat: components["schemas"]["RequiredFormat"] | (never | null);
            /**
             * Format: date-time
             * @description When the zone last changed.
             * @example 2026-10-01T09:00:00.000Z
             */
            updatedAt: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: {
        /** @description Byte ranges are supported (`Range: bytes=...`). */
        AcceptRanges: "bytes";
        /** @description An attachment named after the image and its format (an ASCII `filename` and the exact UTF-8 `filename*`). */
        ContentDisposition: string;
        /** @description The number of bytes in the body: the whole file, or the range. */
        ContentLength: number;
        /** @description Which bytes of the file the body holds (206), or the file size (416: `bytes *\/{size}`). */
        ContentRange: string;
        /** @description A strong validator: the file's sha256 in quotes (size and time when no checksum is known yet). */
        ETag: string;
        /** @description When the image record last changed. */
        LastModified: string;
        /** @description The URL of the image just created. */
        Location: string;
        /** @description Seconds to wait before trying again (rate limited, or a dependency is unavailable). */
        RetryAfter: number;
        /** @description The request's correlation id: the caller's own `X-Correlation-Id` when it sent a well-formed one, else a new UUID. Also in every error body and in the logs. */
        XCorrelationId: string;
    };
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    createDevToken: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DevTokenDto"];
            };
        };
        responses: {
            /** @description Created. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DevTokenResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /** @description `ROUTE_NOT_FOUND`: No such route. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
        };
    };
    downloadSignedFile: {
        parameters: {
            query: {
                /** @description Unix time (seconds) the URL expires at, as the launch gave it. */
                expires: string;
                /** @description HMAC-SHA256 signature (hex), as the launch gave it. */
                signature: string;
            };
            header?: {
                /** @description One byte range, e.g. `bytes=0-1048575`. */
                Range?: string;
                /** @description The ETag of the partial copy; another one sends the whole file. */
                "If-Range"?: string;
                /** @description An ETag the caller holds: 304 when it is still current. */
                "If-None-Match"?: string;
            };
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The whole file. */
            200: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description The requested range (Content-Range says which). */
            206: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    "Content-Range": components["headers"]["ContentRange"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description Not modified (If-None-Match matched the ETag). */
            304: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `DOWNLOAD_URL_INVALID`: The signed download URL is malformed or its signature does not match (it was altered or is for another image).
             *
             *     `DOWNLOAD_URL_EXPIRED`: The signed download URL has expired; ask for a new launch (the same idempotency key answers a fresh URL).
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DOWNLOAD_URL_INVALID" | "DOWNLOAD_URL_EXPIRED";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_ACTIVE";
                    };
                };
            };
            /** @description `RANGE_NOT_SATISFIABLE`: The requested byte range starts at or past the end of the file; the Content-Range header gives the size. */
            416: {
                headers: {
                    "Content-Range": components["headers"]["ContentRange"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RANGE_NOT_SATISFIABLE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    headSignedFile: {
        parameters: {
            query: {
                /** @description Unix time (seconds) the URL expires at, as the launch gave it. */
                expires: string;
                /** @description HMAC-SHA256 signature (hex), as the launch gave it. */
                signature: string;
            };
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The headers of the whole file. */
            200: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The headers of the requested range. */
            206: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    "Content-Range": components["headers"]["ContentRange"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     A HEAD answer has no body: the status says which.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `DOWNLOAD_URL_INVALID`: The signed download URL is malformed or its signature does not match (it was altered or is for another image).
             *
             *     `DOWNLOAD_URL_EXPIRED`: The signed download URL has expired; ask for a new launch (the same idempotency key answers a fresh URL).
             *
             *     A HEAD answer has no body: the status says which.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see.
             *
             *     A HEAD answer has no body: the status says which.
             */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             *
             *     A HEAD answer has no body: the status says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `RANGE_NOT_SATISFIABLE`: The requested byte range starts at or past the end of the file; the Content-Range header gives the size.
             *
             *     A HEAD answer has no body: the status says which.
             */
            416: {
                headers: {
                    "Content-Range": components["headers"]["ContentRange"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
             *
             *     A HEAD answer has no body: the status says which.
             */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    listEvents: {
        parameters: {
            query?: {
                /** @description The cursor: events after this position (0 = from the oldest kept). Take `next` of the previous page. */
                after?: number;
                /** @description Only these event types: `type=a&type=b` or `type=a,b`. */
                type?: ("image.created" | "image.updated" | "image.scope_changed" | "image.enabled" | "image.disabled" | "image.import.started" | "image.import.progressed" | "image.activated" | "image.import.failed" | "image.deleted" | "vm.linked" | "vm.unlinked" | "iso.mounted" | "iso.unmounted" | "quota.limit_changed" | "quota.refused")[];
                /** @description Only the events of this image. */
                imageId?: string;
                /** @description Events per page. */
                limit?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["EventPage"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    streamEvents: {
        parameters: {
            query?: {
                /**
                 * @description Start after this position; without it (and without a Last-Event-ID header) the stream starts with what
                 *     happens from now on. Last-Event-ID (sent by EventSource when it reconnects) wins over it.
                 */
                after?: number;
                /** @description Only these event types: `type=a&type=b` or `type=a,b`. */
                type?: ("image.created" | "image.updated" | "image.scope_changed" | "image.enabled" | "image.disabled" | "image.import.started" | "image.import.progressed" | "image.activated" | "image.import.failed" | "image.deleted" | "vm.linked" | "vm.unlinked" | "iso.mounted" | "iso.unmounted" | "quota.limit_changed" | "quota.refused")[];
                /** @description Only the events of this image (a console following one import). */
                imageId?: string;
                /**
                 * @description The bearer token, for EventSource (which cannot send headers); ignored when an Authorization header is
                 *     sent. Prefer a short-lived token: a URL can end up in browser history and proxy logs.
                 */
                access_token?: string;
            };
            header?: {
                /** @description Resume after this position (the `id` of the last event received). */
                "Last-Event-ID"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description An endless text/event-stream. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": string;
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listFileSources: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The configured sources. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "items": [
                     *         {
                     *           "default": true,
                     *           "kind": "SMB",
                     *           "location": "\\\\10.0.0.5\\files",
                     *           "name": "share"
                     *         },
                     *         {
                     *           "default": false,
                     *           "kind": "BUCKET",
                     *           "location": "s3://hcm-drop/incoming/",
                     *           "name": "drop"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["FileSourceList"];
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
        };
    };
    listFileEntries: {
        parameters: {
            query?: {
                /** @description 1-based page number. */
                page?: number;
                /** @description Items per page. */
                pageSize?: number;
                /** @description The folder to list, relative to the source's root, `/`-separated; empty or absent: the root. */
                path?: string;
                /**
                 * @description Folders always come first; within each, this key.
                 * @example name
                 */
                sort?: components["schemas"]["FileSort"];
                /** @description asc (the default) or desc. */
                order?: "asc" | "desc";
                /** @description Only entries whose name contains this (case-insensitive). */
                name?: string;
            };
            header?: never;
            path: {
                /** @description The file source (its name in GET /file-sources). */
                source: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of the folder. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "items": [
                     *         {
                     *           "modifiedAt": "2026-11-20T08:15:00.000Z",
                     *           "name": "centos",
                     *           "path": "isos/centos",
                     *           "size": 0,
                     *           "type": "DIR"
                     *         },
                     *         {
                     *           "modifiedAt": "2026-11-20T08:15:00.000Z",
                     *           "name": "CentOS-7-x86_64-Minimal-2009.iso",
                     *           "path": "isos/CentOS-7-x86_64-Minimal-2009.iso",
                     *           "size": 1020264448,
                     *           "type": "FILE"
                     *         }
                     *       ],
                     *       "page": 1,
                     *       "pageSize": 20,
                     *       "path": "isos",
                     *       "source": "share",
                     *       "total": 2,
                     *       "truncated": false
                     *     }
                     */
                    "application/json": components["schemas"]["FileEntryPage"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `FILE_PATH_INVALID`: The path is refused: absolute, `..` or `.` segments, a backslash, a control character, one of `" * : < > ? |`, a name starting or ending with a space or ending with a dot, a name over 255 or a path over 1024 bytes, a symbolic link leading outside the source, or a folder where a file is needed (and the reverse). details.reason says which.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "FILE_PATH_INVALID";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /**
             * @description `FILE_SOURCE_NOT_FOUND`: No file source with this name is configured (GET /file-sources lists them), or none is configured at all.
             *
             *     `FILE_NOT_FOUND`: No file or folder at this path in the file source.
             */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FILE_SOURCE_NOT_FOUND" | "FILE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `FILE_SOURCE_UNAVAILABLE`: The file source could not be read: the server is unreachable or did not answer in time, refused the service's credentials, has no such share, or denied access. details.reason gives the file-source code (FILE_SOURCE_UNREACHABLE, FILE_SOURCE_TIMEOUT, FILE_SOURCE_AUTH_FAILED, FILE_SOURCE_SHARE_NOT_FOUND, FILE_ACCESS_DENIED, FILE_BUSY, FILE_SOURCE_FAILED).
             *
             *     `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
             */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FILE_SOURCE_UNAVAILABLE" | "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getLiveness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HealthResponse"];
                };
            };
        };
    };
    getReadiness: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HealthResponse"];
                };
            };
            /** @description A dependency is down. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HealthResponse"];
                };
            };
        };
    };
    listImages: {
        parameters: {
            query?: {
                /** @description 1-based page number. */
                page?: number;
                /** @description Items per page. */
                pageSize?: number;
                /** @description Only images carrying every one of these tags: `tags=a&tags=b` or `tags=a,b`; a tag matches however it is typed (`Prod` finds `prod`), accents count. */
                tags?: string[];
                /**
                 * @description Only images of this kind (IMAGE or ISO).
                 * @example IMAGE
                 */
                kind?: components["schemas"]["ImageKind"];
                /** @description Quick search: a case-insensitive, accent-sensitive substring of the name or description (`%`, `_` and backslashes literal), or a status (ACTIVE/INACTIVE). */
                q?: string;
                /** @description Name contains (case-insensitive, accent-sensitive, `%`, `_` and backslashes literal). */
                name?: string;
                /**
                 * @description Only images of this OS family.
                 * @example CENTOS
                 */
                osCategory?: components["schemas"]["OsCategory"];
                /**
                 * @description Only images for this hypervisor.
                 * @example KVM
                 */
                hypervisor?: components["schemas"]["Hypervisor"];
                /**
                 * @description Only ACTIVE, or only INACTIVE, images.
                 * @example ACTIVE
                 */
                status?: components["schemas"]["ImageStatus"];
                /**
                 * @description Only images in this phase.
                 * @example QUEUED
                 */
                phase?: components["schemas"]["ImagePhase"];
                /**
                 * @description Only images in this file format.
                 * @example qcow2
                 */
                format?: components["schemas"]["ImageFormat"];
                /** @description Only images of this zone. */
                zoneId?: string;
                /** @description Owner user id, exactly (case-sensitive). */
                ownerId?: string;
                /** @description Owner's department id, exactly (case-sensitive). */
                departmentId?: string;
                /** @description Only images whose virtual size is at least this many bytes (images without one yet never match). */
                minVirtualSize?: number;
                /** @description Only images whose virtual size is at most this many bytes (images without one yet never match). */
                maxVirtualSize?: number;
                /**
                 * @description The view; default `all` for a super admin, `featured` for everyone else.
                 * @example all
                 */
                view?: components["schemas"]["View"];
                /**
                 * @description The sort key: name, createdAt (the default), sizeBytes or virtualSizeBytes.
                 * @example name
                 */
                sort?: components["schemas"]["ImageSort"];
                /** @description asc or desc (the default). */
                order?: "asc" | "desc";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImagePage"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    createImage: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateImageDto"];
            };
        };
        responses: {
            /** @description Created. */
            201: {
                headers: {
                    Location: components["headers"]["Location"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             *
             *     `URL_NOT_ALLOWED`: The source URL is refused (not http/https, credentials in it, or a host or address the URL policy denies: loopback, link-local, metadata, URL_DENY_*); details.reason says which.
             *
             *     `FILE_PATH_INVALID`: The path is refused: absolute, `..` or `.` segments, a backslash, a control character, one of `" * : < > ? |`, a name starting or ending with a space or ending with a dot, a name over 255 or a path over 1024 bytes, a symbolic link leading outside the source, or a folder where a file is needed (and the reverse). details.reason says which.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON" | "URL_NOT_ALLOWED" | "FILE_PATH_INVALID";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `SCOPE_CHANGE_FORBIDDEN`: The caller may not move the image to the requested scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "SCOPE_CHANGE_FORBIDDEN";
                    };
                };
            };
            /**
             * @description `ZONE_NOT_FOUND`: No zone with this id.
             *
             *     `FILE_SOURCE_NOT_FOUND`: No file source with this name is configured (GET /file-sources lists them), or none is configured at all.
             *
             *     `FILE_NOT_FOUND`: No file or folder at this path in the file source.
             */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NOT_FOUND" | "FILE_SOURCE_NOT_FOUND" | "FILE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `RATE_LIMITED`: Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again. */
            429: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED";
                    };
                };
            };
            /**
             * @description `FILE_SOURCE_UNAVAILABLE`: The file source could not be read: the server is unreachable or did not answer in time, refused the service's credentials, has no such share, or denied access. details.reason gives the file-source code (FILE_SOURCE_UNREACHABLE, FILE_SOURCE_TIMEOUT, FILE_SOURCE_AUTH_FAILED, FILE_SOURCE_SHARE_NOT_FOUND, FILE_ACCESS_DENIED, FILE_BUSY, FILE_SOURCE_FAILED).
             *
             *     `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
             */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FILE_SOURCE_UNAVAILABLE" | "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    countImages: {
        parameters: {
            query?: {
                /** @description Only images carrying every one of these tags: `tags=a&tags=b` or `tags=a,b`; a tag matches however it is typed (`Prod` finds `prod`), accents count. */
                tags?: string[];
                /**
                 * @description Only images of this kind (IMAGE or ISO).
                 * @example IMAGE
                 */
                kind?: components["schemas"]["ImageKind"];
                /** @description Quick search: a case-insensitive, accent-sensitive substring of the name or description (`%`, `_` and backslashes literal), or a status (ACTIVE/INACTIVE). */
                q?: string;
                /** @description Name contains (case-insensitive, accent-sensitive, `%`, `_` and backslashes literal). */
                name?: string;
                /**
                 * @description Only images of this OS family.
                 * @example CENTOS
                 */
                osCategory?: components["schemas"]["OsCategory"];
                /**
                 * @description Only images for this hypervisor.
                 * @example KVM
                 */
                hypervisor?: components["schemas"]["Hypervisor"];
                /**
                 * @description Only ACTIVE, or only INACTIVE, images.
                 * @example ACTIVE
                 */
                status?: components["schemas"]["ImageStatus"];
                /**
                 * @description Only images in this phase.
                 * @example QUEUED
                 */
                phase?: components["schemas"]["ImagePhase"];
                /**
                 * @description Only images in this file format.
                 * @example qcow2
                 */
                format?: components["schemas"]["ImageFormat"];
                /** @description Only images of this zone. */
                zoneId?: string;
                /** @description Owner user id, exactly (case-sensitive). */
                ownerId?: string;
                /** @description Owner's department id, exactly (case-sensitive). */
                departmentId?: string;
                /** @description Only images whose virtual size is at least this many bytes (images without one yet never match). */
                minVirtualSize?: number;
                /** @description Only images whose virtual size is at most this many bytes (images without one yet never match). */
                maxVirtualSize?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageCountsResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getImage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteImage: {
        parameters: {
            query?: {
                /**
                 * @description `true` deletes even when VMs were created from the image or mount the ISO (their links stay, marked
                 *     "image deleted"); without it such a delete answers 409 IMAGE_IN_USE listing those VMs and changes nothing.
                 */
                confirm?: boolean;
            };
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted. */
            204: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `IMAGE_IN_USE`: VMs were created from this image or mount this ISO: details.vms lists them (at most 100; details.total counts them all). Delete again with `?confirm=true` to delete it anyway; the VMs are untouched and keep their links, marked "image deleted". */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_IN_USE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    updateImage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UpdateImageDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             *
             *     `IMMUTABLE_FIELD`: The request tries to change a field that can never be edited (source URL, hypervisor, format, kind, zone).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON" | "IMMUTABLE_FIELD";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `SCOPE_CHANGE_FORBIDDEN`: The caller may not move the image to the requested scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "SCOPE_CHANGE_FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    createConversion: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateConversionDto"];
            };
        };
        responses: {
            /** @description The new image, QUEUED for conversion. */
            202: {
                headers: {
                    Location: components["headers"]["Location"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `SCOPE_CHANGE_FORBIDDEN`: The caller may not move the image to the requested scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "SCOPE_CHANGE_FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "QUOTA_EXCEEDED" | "IMAGE_NOT_ACTIVE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `CONVERSION_NOT_APPLICABLE`: The image cannot be converted to that format: it is an ISO (never converted) or already in it; details.reason says which (ISO, SAME_FORMAT). */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONVERSION_NOT_APPLICABLE";
                    };
                };
            };
            /** @description `RATE_LIMITED`: Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again. */
            429: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    disableImage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DisableImageDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `INVALID_STATE`: The image is not in a state that allows this action; details.status/phase say which. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "INVALID_STATE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    enableImage: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `INVALID_STATE`: The image is not in a state that allows this action; details.status/phase say which. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "INVALID_STATE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    downloadImageFile: {
        parameters: {
            query?: never;
            header?: {
                /** @description One byte range, e.g. `bytes=0-1048575`. */
                Range?: string;
                /** @description The ETag of the partial copy; another one sends the whole file. */
                "If-Range"?: string;
                /** @description An ETag the caller holds: 304 when it is still current. */
                "If-None-Match"?: string;
            };
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The whole file. */
            200: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description The requested range (Content-Range says which). */
            206: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    "Content-Range": components["headers"]["ContentRange"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": string;
                };
            };
            /** @description Not modified (If-None-Match matched the ETag). */
            304: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_ACTIVE";
                    };
                };
            };
            /** @description `RANGE_NOT_SATISFIABLE`: The requested byte range starts at or past the end of the file; the Content-Range header gives the size. */
            416: {
                headers: {
                    "Content-Range": components["headers"]["ContentRange"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RANGE_NOT_SATISFIABLE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    uploadImageFile: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        /** @description The file's bytes. */
        requestBody: {
            content: {
                "application/octet-stream": string;
            };
        };
        responses: {
            /** @description Stored and verified: the image is ACTIVE. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             *
             *     `UPLOAD_INCOMPLETE`: The upload ended before the whole file arrived (the client disconnected, or sent nothing for URL_IDLE_TIMEOUT_MS); the image is FAILED and takes a new upload.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON" | "UPLOAD_INCOMPLETE";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `INVALID_STATE`: The image is not in a state that allows this action; details.status/phase say which.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `SOURCE_MISMATCH`: The action does not fit the image's source type (e.g. uploading bytes to an image whose source is a URL); details.sourceType says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "INVALID_STATE" | "QUOTA_EXCEEDED" | "SOURCE_MISMATCH";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `CONTENT_REJECTED`: The uploaded bytes were refused: they do not match the declared format, the image is unsafe (backing file, external data file, differencing disk), the checksum differs, or qemu-img refused the stored image (IMAGE_CORRUPT, INSPECTION_FAILED, INSPECTION_LIMIT_EXCEEDED, VIRTUAL_SIZE_TOO_LARGE). The image is FAILED with the reason; details.reason and details.ingestCode say why. */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONTENT_REJECTED";
                    };
                };
            };
            /** @description `RATE_LIMITED`: Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again. */
            429: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    headImageFile: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The headers of the whole file. */
            200: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The headers of the requested range. */
            206: {
                headers: {
                    "Accept-Ranges": components["headers"]["AcceptRanges"];
                    "Content-Disposition": components["headers"]["ContentDisposition"];
                    "Content-Length": components["headers"]["ContentLength"];
                    "Content-Range": components["headers"]["ContentRange"];
                    ETag: components["headers"]["ETag"];
                    "Last-Modified": components["headers"]["LastModified"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     A HEAD answer has no body: the status says which.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             *
             *     A HEAD answer has no body: the status says which.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     A HEAD answer has no body: the status says which.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see.
             *
             *     A HEAD answer has no body: the status says which.
             */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             *
             *     A HEAD answer has no body: the status says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `RANGE_NOT_SATISFIABLE`: The requested byte range starts at or past the end of the file; the Content-Range header gives the size.
             *
             *     A HEAD answer has no body: the status says which.
             */
            416: {
                headers: {
                    "Content-Range": components["headers"]["ContentRange"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again.
             *
             *     A HEAD answer has no body: the status says which.
             */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
        };
    };
    createLaunch: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LaunchRequestDto"];
            };
        };
        responses: {
            /** @description The key was used before with the same request: that launch. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LaunchResponse"];
                };
            };
            /** @description Allowed: the VMs are reserved. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["LaunchResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `IMAGE_NOT_USABLE`: The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "IMAGE_NOT_USABLE";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             *
             *     `ISO_NOT_BOOTABLE`: The ISO is a tool kit (usage TOOL): it can be mounted but never create a VM.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED" | "IMAGE_NOT_ACTIVE" | "ISO_NOT_BOOTABLE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /**
             * @description `IDEMPOTENCY_KEY_REUSED`: This idempotency key was already used for a different reservation (another department or other amounts).
             *
             *     `ZONE_MISMATCH`: The image or ISO belongs to another zone than the VM's; details give both zone ids.
             *
             *     `TOO_MANY_DATA_DISKS`: A VM made from a Windows-IDE image or ISO mounts at most one data disk; details give the limit and what was asked.
             *
             *     `ROOT_DISK_TOO_SMALL`: The VMs' root disk (rootDiskBytes) is smaller than the image's virtual size, so the image would not fit on it; details give both.
             */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IDEMPOTENCY_KEY_REUSED" | "ZONE_MISMATCH" | "TOO_MANY_DATA_DISKS" | "ROOT_DISK_TOO_SMALL";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    retryImport: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Queued again. */
            202: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `INVALID_STATE`: The image is not in a state that allows this action; details.status/phase say which. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "INVALID_STATE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `RATE_LIMITED`: Too many expensive requests (create, upload, import) from this caller; the Retry-After header says when to try again. */
            429: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listImageVms: {
        parameters: {
            query?: {
                /** @description 1-based page number. */
                page?: number;
                /** @description Items per page. */
                pageSize?: number;
                /**
                 * @description Only this relation.
                 * @example CREATED_FROM
                 */
                relation?: components["schemas"]["LinkRelation"];
            };
            header?: never;
            path: {
                /** @description The image or ISO id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ImageVmPage"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getMetrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text format. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
        };
    };
    createReservation: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateReservationDto"];
            };
        };
        responses: {
            /** @description The key was used before with the same request: that reservation, in its current state. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /** @description Reserved. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `IDEMPOTENCY_KEY_REUSED`: This idempotency key was already used for a different reservation (another department or other amounts). */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IDEMPOTENCY_KEY_REUSED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The reservation id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    commitReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The reservation id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CommitReservationDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `RESERVATION_NOT_PENDING`: The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED" | "RESERVATION_NOT_PENDING";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    growReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The reservation id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["GrowReservationDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `RESERVATION_NOT_PENDING`: The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED" | "RESERVATION_NOT_PENDING";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    refundReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The reservation id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /** @description `CONFLICT`: The request conflicts with the current state of the resource. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    releaseReservation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The reservation id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReservationResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `RESERVATION_NOT_PENDING`: The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "RESERVATION_NOT_PENDING";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listQuotas: {
        parameters: {
            query?: {
                /** @description 1-based page number. */
                page?: number;
                /** @description Items per page. */
                pageSize?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DepartmentQuotaPage"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    reconcileQuotas: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ReconcileDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ReconcileResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getQuota: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The department id (the `dept` claim of its members' tokens). */
                departmentId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DepartmentQuotaResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    setQuotaLimits: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The department id (the `dept` claim of its members' tokens). */
                departmentId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SetQuotaLimitsDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DepartmentQuotaResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             *
             *     `QUOTA_LIMIT_INVALID`: A quota limit is not "unlimited" or an integer from 0 to the resource's maximum; details give the resource, the value and why.
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON" | "QUOTA_LIMIT_INVALID";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteVm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The compute side's VM id. */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Nothing is recorded for this VM (any more). */
            204: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `RESERVATION_NOT_FOUND`: No quota reservation with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /** @description `CONFLICT`: The request conflicts with the current state of the resource. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listVmImages: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The compute side's VM id. */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmImagesResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    mountIso: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The compute side's VM id. */
                vmId: string;
                /** @description The ISO id (UUID). */
                isoId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RegisterMountDto"];
            };
        };
        responses: {
            /** @description Already mounted: the link as it is. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmLinkResponse"];
                };
            };
            /** @description Registered. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmLinkResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `IMAGE_NOT_USABLE`: The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "IMAGE_NOT_USABLE";
                    };
                };
            };
            /** @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "IMAGE_NOT_ACTIVE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /**
             * @description `ZONE_MISMATCH`: The image or ISO belongs to another zone than the VM's; details give both zone ids.
             *
             *     `NOT_AN_ISO`: Only an ISO can be mounted; this is a disk image.
             */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_MISMATCH" | "NOT_AN_ISO";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    unmountIso: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The compute side's VM id. */
                vmId: string;
                /** @description The ISO id (UUID). */
                isoId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Not mounted (any more). */
            204: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    registerVmOrigin: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The compute side's VM id. */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RegisterOriginDto"];
            };
        };
        responses: {
            /** @description Already registered: the link as it is. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmLinkResponse"];
                };
            };
            /** @description Registered. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmLinkResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /**
             * @description `FORBIDDEN`: The caller may see the resource but not perform this action.
             *
             *     `IMAGE_NOT_USABLE`: The VM owner may not use this image or ISO (another user's private one); details give the owner and the image's scope.
             */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN" | "IMAGE_NOT_USABLE";
                    };
                };
            };
            /**
             * @description `IMAGE_NOT_FOUND`: No image with this id that the caller may see.
             *
             *     `RESERVATION_NOT_FOUND`: No quota reservation with this id.
             */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "IMAGE_NOT_FOUND" | "RESERVATION_NOT_FOUND";
                    };
                };
            };
            /**
             * @description `CONFLICT`: The request conflicts with the current state of the resource.
             *
             *     `QUOTA_EXCEEDED`: The department's quota has no room for this: details give the departmentId, the resource, what was asked (requested), what is left (remaining), the limit, used and reserved.
             *
             *     `RESERVATION_NOT_PENDING`: The reservation is not in a state that allows this (committed, released, expired or refunded); details.status says which.
             *
             *     `IMAGE_NOT_ACTIVE`: The image is not ACTIVE (its bytes are not stored and verified yet, its import failed, or it is disabled); details.status/phase say which.
             *
             *     `ISO_NOT_BOOTABLE`: The ISO is a tool kit (usage TOOL): it can be mounted but never create a VM.
             *
             *     `VM_LINK_CONFLICT`: The VM is already recorded as created from another image; details give both image ids.
             */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "CONFLICT" | "QUOTA_EXCEEDED" | "RESERVATION_NOT_PENDING" | "IMAGE_NOT_ACTIVE" | "ISO_NOT_BOOTABLE" | "VM_LINK_CONFLICT";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /**
             * @description `ZONE_MISMATCH`: The image or ISO belongs to another zone than the VM's; details give both zone ids.
             *
             *     `RESERVATION_MISMATCH`: The launch reservation belongs to another image or department than the VM being registered; details say which.
             */
            422: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_MISMATCH" | "RESERVATION_MISMATCH";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listZones: {
        parameters: {
            query?: {
                /** @description 1-based page number. */
                page?: number;
                /** @description Items per page. */
                pageSize?: number;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ZonePage"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    createZone: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateZoneDto"];
            };
        };
        responses: {
            /** @description Created. */
            201: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ZoneResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `ZONE_NAME_TAKEN`: Another zone already has this name. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NAME_TAKEN";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getZone: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The zone id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ZoneResponse"];
                };
            };
            /** @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one. */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `ZONE_NOT_FOUND`: No zone with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NOT_FOUND";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteZone: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The zone id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted. */
            204: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content?: never;
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `ZONE_NOT_FOUND`: No zone with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NOT_FOUND";
                    };
                };
            };
            /** @description `ZONE_IN_USE`: The zone still holds images. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_IN_USE";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
    updateZone: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The zone id (UUID). */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UpdateZoneDto"];
            };
        };
        responses: {
            /** @description OK. */
            200: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ZoneResponse"];
                };
            };
            /**
             * @description `VALIDATION_FAILED`: A field, query parameter or path parameter is invalid; details lists each one.
             *
             *     `MALFORMED_JSON`: The request body is not valid JSON, or is nested deeper than 64 levels (details.maxDepth).
             */
            400: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "VALIDATION_FAILED" | "MALFORMED_JSON";
                    };
                };
            };
            /**
             * @description `AUTH_TOKEN_MISSING`: No `Authorization: Bearer {token}` header.
             *
             *     `AUTH_TOKEN_INVALID`: The token is malformed, wrongly signed, or its claims are invalid.
             *
             *     `AUTH_TOKEN_EXPIRED`: The token has expired.
             */
            401: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "AUTH_TOKEN_MISSING" | "AUTH_TOKEN_INVALID" | "AUTH_TOKEN_EXPIRED";
                    };
                };
            };
            /** @description `FORBIDDEN`: The caller may see the resource but not perform this action. */
            403: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description `ZONE_NOT_FOUND`: No zone with this id. */
            404: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NOT_FOUND";
                    };
                };
            };
            /** @description `ZONE_NAME_TAKEN`: Another zone already has this name. */
            409: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "ZONE_NAME_TAKEN";
                    };
                };
            };
            /** @description `PAYLOAD_TOO_LARGE`: The request body exceeds the configured limit (for uploads of image bytes: INGEST_MAX_SIZE_BYTES); details.maxSize gives it where known. */
            413: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "PAYLOAD_TOO_LARGE";
                    };
                };
            };
            /** @description `UNSUPPORTED_MEDIA_TYPE`: The request body has a content type this route does not accept. */
            415: {
                headers: {
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description `DEPENDENCY_UNAVAILABLE`: A dependency (database, queue, object store) is unreachable: stopped, refusing, resetting or timing out. Nothing was changed; the Retry-After header says when to try again. */
            503: {
                headers: {
                    "Retry-After": components["headers"]["RetryAfter"];
                    "X-Correlation-Id": components["headers"]["XCorrelationId"];
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorBody"] & {
                        /** @enum {string} */
                        code?: "DEPENDENCY_UNAVAILABLE";
                    };
                };
            };
        };
    };
}
