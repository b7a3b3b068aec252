import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiPropertyOptional, ApiTags } from '@nestjs/swagger';
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
  @IsString()
  @Matches(ID)
  @ApiProperty({ description: 'The user id (`sub`).', example: 'u-alice', pattern: ID.source })
  sub: string;

  /** The department id (`dept`). */
  @IsString()
  @Matches(ID)
  @ApiProperty({ description: 'The department id (`dept`).', example: 'dept-rd', pattern: ID.source })
  dept: string;

  @IsEnum(Role)
  @ApiProperty({ description: 'The role the token carries.', enum: Role, enumName: 'Role', example: Role.User })
  role: Role;

  /** Display name (default: the user id). */
  @Optional()
  @IsString()
  @MaxLength(100)
  @ApiPropertyOptional({ description: 'Display name (default: the user id).', maxLength: 100, example: 'Alice' })
  name?: string;
}

export class DevTokenResponse {
  /** A bearer token signed with the development secret. */
  @ApiProperty({
    example: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LWFsaWNlIiwiZGVwdCI6ImRlcHQtcmQiLCJyb2xlIjoidXNlciJ9.3q9Wc7vJ0m8rN1dXyZkPp2oT4fLhGsEaBu6iVnKcQwY',
    description: 'A bearer token signed with the development secret.',
  })
  token: string;
  /** When it expires (12 hours). */
  @ApiProperty({ example: '2026-11-20T20:15:00.000Z', format: 'date-time', description: 'When it expires (12 hours).' })
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

  @Post('tokens')
  @HttpCode(201)
  @PublicRoute()
  @ApiNoDependency()
  @ApiErrors('ROUTE_NOT_FOUND')
  @ApiOperation({
    summary: 'Mint a development token',
    description:
      'A bearer token for a development user (12 hours), for the console and for trying things out. Only in the embedded default, where the service generated its own development secret; with a configured secret or keys (every platform deployment) it answers 404 ROUTE_NOT_FOUND like a route that does not exist. No token needed.',
  })
  mint(@Body() dto: DevTokenDto): DevTokenResponse {
    if (!this.cfg.auth.generatedSecret || !this.cfg.auth.secret) throw new AppError('ROUTE_NOT_FOUND', 'Cannot POST /dev/tokens');
    const token = signToken({ sub: dto.sub, dept: dto.dept, role: dto.role, name: dto.name ?? dto.sub }, this.cfg.auth.secret, DEV_TOKEN_TTL_SECONDS);
    return { token, expiresAt: new Date(Date.now() + DEV_TOKEN_TTL_SECONDS * 1000).toISOString() };
  }
}
