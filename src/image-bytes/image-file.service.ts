import { applyDecorators, Injectable } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiProduces, ApiResponse } from '@nestjs/swagger';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { Action } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { CatalogService } from '../catalog/catalog.service';
import { ImagePhase } from '../catalog/image.enums';
import { AppError, ErrorSet } from '../common/errors';
import { objectKeys, ObjectStorage } from '../storage/object-storage';
import { parseRange } from './http-range';

export interface FileAnswer {
  status: 200 | 206 | 304 | 416;
  headers: Record<string, string>;
  /** the bytes to send (none for HEAD, 304 and 416) */
  open?: () => Promise<Readable>;
}

export interface FileRequest {
  method: 'GET' | 'HEAD';
  range?: string;
  ifRange?: string;
  ifNoneMatch?: string;
}

/** Who reads the bytes through a signed URL: the signature is the permission, so no scope rule applies. */
export const SIGNED_URL_READER: Principal = { userId: '#signed-url', name: 'signed download URL', departmentId: '#', role: Role.Service };

const FILE_EXT: Record<string, string> = { qcow2: 'qcow2', raw: 'img', vmdk: 'vmdk', vhd: 'vhd', vhdx: 'vhdx', iso: 'iso' };

/** `attachment; filename="CentOS_7.9.qcow2"; filename*=UTF-8''CentOS%207.9.qcow2` */
function disposition(name: string, format: string): string {
  const file = `${name}.${FILE_EXT[format] ?? format}`;
  const ascii = file.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 200) || 'image';
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(file)}`;
}

const etagMatches = (header: string | undefined, etag: string) =>
  header !== undefined && header.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag);

/**
 * Reading an ACTIVE image's bytes back (`GET /images/{id}/file`) for callers who may use it: one byte range at
 * a time (Range, If-Range), the sha256 as a strong ETag (If-None-Match answers 304), streamed from the store.
 */
@Injectable()
export class ImageFileService {
  constructor(
    private readonly catalog: CatalogService,
    private readonly storage: ObjectStorage,
  ) {}

  async answer(p: Principal, id: string, req: FileRequest): Promise<FileAnswer> {
    const image = await this.catalog.getFor(p, id, Action.Use);
    if (image.phase !== ImagePhase.Ready) {
      throw new AppError('IMAGE_NOT_ACTIVE', `Image ${id} is ${image.status} (${image.phase}); only an ACTIVE image's file can be read`, {
        status: image.status,
        phase: image.phase,
      });
    }
    const key = objectKeys.imageDisk(id);
    const { size } = await this.storage.stat(key);
    const etag = `"${image.checksum ?? `${size}-${new Date(image.updatedAt).getTime()}`}"`;
    const headers: Record<string, string> = {
      'Accept-Ranges': 'bytes',
      ETag: etag,
      'Cache-Control': 'private, no-transform',
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': disposition(image.name, image.format),
      'Last-Modified': new Date(image.updatedAt).toUTCString(),
    };
    if (etagMatches(req.ifNoneMatch, etag)) return { status: 304, headers };
    // If-Range with another validator: the file changed since the client's partial copy, send it whole
    const honour = req.ifRange === undefined || req.ifRange.trim() === etag;
    const range = honour ? parseRange(req.range, size) : ({ kind: 'none' } as const);
    switch (range.kind) {
      case 'unsatisfiable':
        return { status: 416, headers: { ...headers, 'Content-Range': `bytes */${size}` } };
      case 'range': {
        const length = range.end - range.start + 1;
        return {
          status: 206,
          headers: { ...headers, 'Content-Range': `bytes ${range.start}-${range.end}/${size}`, 'Content-Length': String(length) },
          open: req.method === 'HEAD' ? undefined : () => this.storage.getStream(key, { start: range.start, end: range.end }),
        };
      }
      case 'none':
        return {
          status: 200,
          headers: { ...headers, 'Content-Length': String(size) },
          open: req.method === 'HEAD' || size === 0 ? undefined : () => this.storage.getStream(key),
        };
    }
  }
}

const header = (req: Request, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** The conditional and range headers of a download request. */
export function fileRequestOf(req: Request, method: FileRequest['method']): FileRequest {
  return { method, range: header(req, 'range'), ifRange: header(req, 'if-range'), ifNoneMatch: header(req, 'if-none-match') };
}

/** Writes an answer of ImageFileService to the response (every route that serves an image's bytes uses it). */
export async function sendFileAnswer(a: FileAnswer, req: Request, res: Response): Promise<void> {
  if (a.status === 416) {
    res.setHeader('Content-Range', a.headers['Content-Range']);
    throw new AppError(
      'RANGE_NOT_SATISFIABLE',
      `The file has ${a.headers['Content-Range'].split('/')[1]} bytes; the range ${header(req, 'range')} is outside it`,
    );
  }
  // open the bytes before the first header, so a store error still gets a clean error body
  const body = a.open ? await a.open() : undefined;
  res.status(a.status);
  for (const [k, v] of Object.entries(a.headers)) res.setHeader(k, v);
  if (!body) {
    res.end();
    return;
  }
  // a client that goes away or a store that fails mid-file ends the response early (the length tells)
  await pipeline(body, res).catch(() => undefined);
}

/** The contract of every route that serves an image's bytes (ranges, conditional requests, 206/304). */
export const ApiFileDownload = () =>
  applyDecorators(
    ApiProduces('application/octet-stream'),
    ApiHeader({
      name: 'Range',
      required: false,
      description: 'One byte range, e.g. `bytes=0-1048575`.',
      schema: { type: 'string', example: 'bytes=0-1048575' },
    }),
    ApiHeader({
      name: 'If-Range',
      required: false,
      description: 'The ETag of the partial copy; another one sends the whole file.',
      schema: { type: 'string', example: '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"' },
    }),
    ApiHeader({
      name: 'If-None-Match',
      required: false,
      description: 'An ETag the caller holds: 304 when it is still current.',
      schema: { type: 'string', example: '"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"' },
    }),
    ApiOkResponse({ description: 'The whole file.', schema: { type: 'string', format: 'binary' } }),
    ApiResponse({ status: 206, description: 'The requested range (Content-Range says which).', schema: { type: 'string', format: 'binary' } }),
    ApiResponse({ status: 304, description: 'Not modified (If-None-Match matched the ETag).' }),
  );

/** What `ImageFileService.answer` and `sendFileAnswer` raise besides the access check of the caller. */
export const FILE_ANSWER_ERRORS: ErrorSet = ['IMAGE_NOT_FOUND', 'IMAGE_NOT_ACTIVE', 'RANGE_NOT_SATISFIABLE'];
