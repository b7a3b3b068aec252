import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { Roles } from '../access/auth.guard';
import { Role } from '../access/principal';
import { ApiErrors, ApiNoDependency } from '../common/api-errors.decorator';
import { FileEntryPage, FileSourceList, ListFileEntriesQuery, toFileEntryPage, toFileSourceResponse } from './file-sources.dto';
import { FILE_SOURCE_ERRORS, FileSourcesService } from './file-sources.service';

/**
 * The platform's file directory: users copy large images to an SMB share, then pick one when they
 * create an image or ISO (`POST /images` with `source: { type: 'FILE', fileSource, path }`). For the callers
 * who may create images: every role but `service`.
 */
@ApiTags('file-sources')
@ApiBearerAuth()
@Roles(Role.SuperAdmin, Role.Admin, Role.User)
@Controller('file-sources')
export class FileSourcesController {
  constructor(private readonly sources: FileSourcesService) {}

  @Get()
  @ApiNoDependency()
  @ApiOkResponse({
    type: FileSourceList,
    description: 'The configured sources.',
    example: {
      items: [
        { name: 'share', kind: 'SMB', location: '\\\\10.0.0.5\\files', default: true },
        { name: 'drop', kind: 'BUCKET', location: 's3://hcm-drop/incoming/', default: false },
      ],
    },
  })
  @ApiOperation({
    summary: 'List the file sources',
    description:
      "The configured file sources, for the create dialog: name, kind (SMB share, directory on the service's host, bucket) and where users copy files to (the UNC path of a share). The first one is the default; an empty list when none is configured. Every role that may create images (not `service`: 403 FORBIDDEN).",
  })
  list(): FileSourceList {
    return { items: this.sources.all().map(toFileSourceResponse) };
  }

  @Get(':source/entries')
  @ApiParam({ name: 'source', description: 'The file source (its name in GET /file-sources).', example: 'share' })
  @ApiOkResponse({
    type: FileEntryPage,
    description: 'A page of the folder.',
    example: {
      source: 'share',
      path: 'isos',
      items: [
        { name: 'centos', path: 'isos/centos', type: 'DIR', size: 0, modifiedAt: '2026-11-20T08:15:00.000Z' },
        {
          name: 'CentOS-7-x86_64-Minimal-2009.iso',
          path: 'isos/CentOS-7-x86_64-Minimal-2009.iso',
          type: 'FILE',
          size: 1020264448,
          modifiedAt: '2026-11-20T08:15:00.000Z',
        },
      ],
      total: 2,
      page: 1,
      pageSize: 20,
      truncated: false,
    },
  })
  @ApiErrors(FILE_SOURCE_ERRORS)
  @ApiOperation({
    summary: 'List a folder of a file source',
    description:
      "One page of a folder of a file source: name, path, type (FILE or DIR), size and modification time of each entry. Folders come first, then `sort` (name, size or modifiedAt) in `order`; `name` keeps the entries whose name contains it (case-insensitive); `path` opens a subfolder (an entry's `path`). Entries whose names could not be picked and symbolic links leading outside a directory source are left out. An unknown source or folder is 404 (FILE_SOURCE_NOT_FOUND, FILE_NOT_FOUND); an unreachable share 503 FILE_SOURCE_UNAVAILABLE.",
  })
  async entries(@Param('source') source: string, @Query() q: ListFileEntriesQuery): Promise<FileEntryPage> {
    const page = await this.sources.list(source, q.path, {
      page: q.page ?? 1,
      pageSize: q.pageSize ?? 20,
      sort: q.sort ?? 'name',
      order: q.order ?? 'asc',
      name: q.name || undefined,
    });
    return toFileEntryPage(page);
  }
}
