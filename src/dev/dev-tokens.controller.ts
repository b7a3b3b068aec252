import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
import { IsEnum, IsString, Matches, MaxLength } from 'class-validator';
import { PublicRoute } from '../access/auth.guard';
import { signToken } from '../access/jwt';
import { Role } from '../access/principal';
import { ApiErrors, ApiNoDependency } from '../common/api-errors.decorator';
import { AppError } from '../common/errors';
import { Optional } from '../common/validation';
import { AppConfig } from '../config/app-config';

const ID = /^[A-Za-z0-9._:@-]{1,64}$/;
export const DEV_TOKEN_TTL_SECONDS = 12 * 3600;

export class DevTokenDto {
  /** The user id (`sub`). */
  @IsString() @Matches(ID)
  @ApiProperty({ example: 'u-alice', pattern: ID.source })
  sub: string;

  /** The department id (`dept`). */
  @IsString() @Matches(ID)
  @ApiProperty({ example: 'dept-rd', pattern: ID.source })
  dept: string;

  @IsEnum(Role)
  @ApiProperty({ enum: Role, enumName: 'Role', example: Role.User })
  role: Role;

  /** Display name (default: the user id). */
  @Optional() @IsString() @MaxLength(100)
  @ApiPropertyOptional({ maxLength: 100, example: 'Alice' })
  name?: string;
}

export class DevTokenResponse {
  /** A bearer token signed with the development secret. */
  @ApiProperty({ description: 'A bearer token signed with the development secret.' })
  token: string;
  /** When it expires (12 hours). */
  @ApiProperty({ format: 'date-time', description: 'When it expires (12 hours).' })
  expiresAt: string;
}

/**
 * Development sign-in for the console. Only in the embedded default, where the service generated its own
 * development secret under DATA_DIR (the same one `npm run token` uses): there, anyone who can reach the
 * service could read that file anyway. With a configured secret or keys (every platform deployment) the route
 * answers 404 ROUTE_NOT_FOUND like any route that does not exist.
 */
@ApiTags('development')
@Controller('dev')
export class DevTokensController {
  constructor(private readonly cfg: AppConfig) {}

  /** A token for a development user (embedded default only; 404 everywhere else). */
  @Post('tokens')
  @HttpCode(201)
  @PublicRoute()
  @ApiNoDependency()
  @ApiErrors('ROUTE_NOT_FOUND')
  mint(@Body() dto: DevTokenDto): DevTokenResponse {
    if (!this.cfg.auth.generatedSecret || !this.cfg.auth.secret) throw new AppError('ROUTE_NOT_FOUND', 'Cannot POST /dev/tokens');
    const token = signToken({ sub: dto.sub, dept: dto.dept, role: dto.role, name: dto.name ?? dto.sub }, this.cfg.auth.secret, DEV_TOKEN_TTL_SECONDS);
    return { token, expiresAt: new Date(Date.now() + DEV_TOKEN_TTL_SECONDS * 1000).toISOString() };
  }
}
