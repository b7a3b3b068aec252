import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

export const MAX_PAGE_SIZE = 200;

/** Page-number pagination, shared by every list. */
export class PageQuery {
  /** 1-based page number. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  @ApiProperty({ example: 1, type: 'integer', required: false, minimum: 1, maximum: 1_000_000, default: 1 })
  page?: number = 1;

  /** Items per page. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_PAGE_SIZE)
  @ApiProperty({ example: 20, type: 'integer', required: false, minimum: 1, maximum: MAX_PAGE_SIZE, default: 20 })
  pageSize?: number = 20;
}

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  pageSize: number;
}

export function pageOf<T>(items: T[], total: number, q: { page?: number; pageSize?: number }): Page<T> {
  return { items, total, page: q.page ?? 1, pageSize: q.pageSize ?? 20 };
}
