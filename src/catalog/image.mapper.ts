import { isoTime as iso } from '../common/iso-time';
import { ImageWithTags } from './image.record';
import { ImageResponse } from './image.dto';

export function toImageResponse(i: ImageWithTags): ImageResponse {
  const percent = i.bytesTotal ? Math.min(100, Math.floor((i.bytesDone / i.bytesTotal) * 1000) / 10) : null;
  return {
    id: i.id,
    kind: i.kind,
    name: i.name,
    description: i.description,
    osCategory: i.osCategory,
    osName: i.osName,
    osVersion: i.osVersion,
    osBits: i.osBits,
    hypervisor: i.hypervisor,
    format: i.format,
    isoUsage: i.isoUsage,
    scope: i.scope,
    status: i.status,
    phase: i.phase,
    statusReason: i.statusReason,
    tags: i.tags,
    ownerId: i.ownerId,
    departmentId: i.departmentId,
    zoneId: i.zoneId,
    sizeBytes: i.sizeBytes,
    virtualSizeBytes: i.virtualSizeBytes ?? null,
    actualSizeBytes: i.actualSizeBytes ?? null,
    checksum: i.checksum,
    checksumMd5: i.checksumMd5,
    expectedChecksum: i.expectedChecksum,
    sourceSha256: i.sourceSha256 ?? null,
    convertedFrom: i.convertedFrom ?? null,
    source: {
      type: i.sourceType,
      url: i.sourceUrl,
      path: i.sourcePath,
      fileSource: i.sourceName,
    },
    progress: { bytesDone: i.bytesDone, bytesTotal: i.bytesTotal, percent, bytesPerSecond: i.bytesPerSecond },
    createdAt: iso(i.createdAt),
    updatedAt: iso(i.updatedAt),
  };
}
