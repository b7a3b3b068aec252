import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { PageQuery } from '../common/pagination.dto';
import type { FileSort } from './file-source';
import { FileEntry, FileEntryType, FilePage, FileSource, FileSourceKind } from './file-source';

const trim = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class FileSourceResponse {
  /** What `source.fileSource` names when an image is created from one of its files. */
  @ApiProperty({ example: 'share' })
  name: string;
  @ApiProperty({
    description: "SMB (a share), DIR (a directory on the service's host) or BUCKET (an object-store prefix).",
    enum: FileSourceKind,
    enumName: 'FileSourceKind',
    example: FileSourceKind.Smb,
  })
  kind: FileSourceKind;
  /**
   * Where users copy files to, for the console to show: the UNC path of an SMB share on port 445
   * (`\\10.0.0.5\files`; `smb://host:port/share` on another port, which UNC cannot name), `s3://bucket/prefix/`
   * of a bucket; null for a directory on the service's host.
   */
  @ApiProperty({ type: String, nullable: true, example: '\\\\10.0.0.5\\files' })
  location: string | null;
  /** The first source is the one a create that names none uses. */
  @ApiProperty({ example: true })
  default: boolean;
}

export class FileSourceList {
  @ApiProperty({ description: 'The configured file sources; the first one is the default.', type: [FileSourceResponse] })
  items: FileSourceResponse[];
}

export const FILE_SORTS: FileSort[] = ['name', 'size', 'modifiedAt'];

export class ListFileEntriesQuery extends PageQuery {
  /** The folder to list, relative to the source's root, `/`-separated; empty or absent: the root. */
  @IsOptional()
  @IsString()
  @MaxLength(1024)
  @ApiPropertyOptional({ example: 'isos/centos', maxLength: 1024, default: '' })
  path?: string;

  /** Folders always come first; within each, this key. */
  @IsOptional()
  @IsIn(FILE_SORTS)
  @ApiPropertyOptional({ example: 'name', enum: FILE_SORTS, enumName: 'FileSort', default: 'name' })
  sort?: FileSort;

  @IsOptional()
  @IsIn(['asc', 'desc'])
  @ApiPropertyOptional({ description: 'asc (the default) or desc.', example: 'asc', enum: ['asc', 'desc'], default: 'asc' })
  order?: 'asc' | 'desc';

  /** Only entries whose name contains this (case-insensitive). */
  @IsOptional()
  @Transform(trim)
  @IsString()
  @MaxLength(255)
  @ApiPropertyOptional({ maxLength: 255, example: 'centos' })
  name?: string;
}

export class FileEntryResponse {
  /** The file or folder name. */
  @ApiProperty({ example: 'CentOS-7-x86_64-Minimal-2009.iso' })
  name: string;
  /** Its path from the source's root: what `source.path` names to create an image from it, or `path=` to list a folder. */
  @ApiProperty({ example: 'isos/centos/CentOS-7-x86_64-Minimal-2009.iso' })
  path: string;
  @ApiProperty({ description: 'FILE or DIR (a folder: open it with `path`).', enum: FileEntryType, enumName: 'FileEntryType', example: FileEntryType.File })
  type: FileEntryType;
  /** Bytes; 0 for a folder. */
  @ApiProperty({ type: 'integer', format: 'int64', example: 1020264448 })
  size: number;
  /** Last modification (second resolution on SMB; the epoch for folders of a bucket). */
  @ApiProperty({ type: String, format: 'date-time', example: '2026-11-20T08:15:00.000Z' })
  modifiedAt: string;
}

export class FileEntryPage {
  @ApiProperty({ description: 'The file source listed (its name in GET /file-sources).', example: 'share' })
  source: string;
  /** The folder listed (normalised). */
  @ApiProperty({ example: 'isos/centos' })
  path: string;
  @ApiProperty({ description: 'The entries on this page: folders first, then by `sort`.', type: [FileEntryResponse] })
  items: FileEntryResponse[];
  /** Matching entries across all pages. @example 2 */
  @ApiProperty({ type: 'integer' })
  total: number;
  /** The 1-based page number. @example 1 */
  @ApiProperty({ type: 'integer' })
  page: number;
  /** Items per page. @example 20 */
  @ApiProperty({ type: 'integer' })
  pageSize: number;
  /** The folder holds more entries than a listing reads (FILE_SOURCE_MAX_ENTRIES): only the first ones are here. @example false */
  truncated: boolean;
}

export const toFileEntryResponse = (e: FileEntry): FileEntryResponse => ({
  name: e.name,
  path: e.path,
  type: e.type,
  size: e.size,
  modifiedAt: e.modifiedAt.toISOString(),
});

export const toFileEntryPage = (p: FilePage & { source: string; path: string }): FileEntryPage => ({
  source: p.source,
  path: p.path,
  items: p.items.map(toFileEntryResponse),
  total: p.total,
  page: p.page,
  pageSize: p.pageSize,
  truncated: p.truncated,
});

export const toFileSourceResponse = (s: FileSource, i: number): FileSourceResponse => ({ name: s.name, kind: s.kind, location: s.location, default: i === 0 });
