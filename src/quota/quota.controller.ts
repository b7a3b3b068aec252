import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentPrincipal, Roles } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { Role } from '../access/principal';
import { ApiErrors } from '../common/api-errors.decorator';
import { AppError } from '../common/errors';
import { uuidPipe } from '../common/uuid.pipe';
import {
  CommitReservationDto,
  CreateReservationDto,
  DepartmentIdPipe,
  DepartmentQuotaPage,
  DepartmentQuotaResponse,
  GrowReservationDto,
  ListQuotasQuery,
  ReconcileDto,
  ReconcileResponse,
  ReservationResponse,
  SetQuotaLimitsDto,
} from './quota.dto';
import { toDepartmentQuotaResponse, toReconcileResponse, toReservationResponse } from './quota.mapper';
import { QUOTA_ERRORS } from './quota.errors';
import { QuotaService } from './quota.service';

const departmentIdPipe = new DepartmentIdPipe();

/** Department limits and usage (R16, R19). */
@ApiTags('quotas')
@ApiBearerAuth()
@Controller('quotas')
export class QuotasController {
  constructor(private readonly quota: QuotaService) {}

  /** Every department that has a ledger, with limits and usage, by department id (super admins and admins). */
  @Get()
  @Roles(Role.SuperAdmin, Role.Admin)
  @ApiOkResponse({ type: DepartmentQuotaPage })
  async list(@Query() q: ListQuotasQuery): Promise<DepartmentQuotaPage> {
    const page = await this.quota.departments(q.page, q.pageSize);
    return { ...page, items: page.items.map(toDepartmentQuotaResponse) };
  }

  /**
   * Recompute usage from the catalog and the reservations, report drift and repair it (unless `dryRun`).
   * The same check runs at startup (QUOTA_RECONCILE_ON_START). Super admins and admins.
   */
  @Post('reconcile')
  @HttpCode(200)
  @Roles(Role.SuperAdmin, Role.Admin)
  @ApiOkResponse({ type: ReconcileResponse })
  async reconcile(@Body() dto: ReconcileDto): Promise<ReconcileResponse> {
    return toReconcileResponse(await this.quota.reconcile({ departmentId: dto.departmentId, dryRun: dto.dryRun }));
  }

  /**
   * A department's limits, usage, reservations and what is left, per resource. Members of the department,
   * admins, super admins and services. A department never seen has the default limits and no usage.
   */
  @Get(':departmentId')
  @ApiOkResponse({ type: DepartmentQuotaResponse })
  @ApiErrors(QUOTA_ERRORS.read)
  async get(@CurrentPrincipal() p: Principal, @Param('departmentId', departmentIdPipe) departmentId: string): Promise<DepartmentQuotaResponse> {
    return toDepartmentQuotaResponse(await this.quota.department(p, departmentId));
  }

  /**
   * Set limits (super admins): an integer, or "unlimited", per resource; resources left out keep theirs.
   * A limit below current usage is accepted: nothing more fits until usage drops.
   */
  @Patch(':departmentId')
  @Roles(Role.SuperAdmin)
  @ApiOkResponse({ type: DepartmentQuotaResponse })
  @ApiErrors(QUOTA_ERRORS.setLimits)
  async setLimits(@Param('departmentId', departmentIdPipe) departmentId: string, @Body() dto: SetQuotaLimitsDto): Promise<DepartmentQuotaResponse> {
    return toDepartmentQuotaResponse(await this.quota.setLimits(departmentId, { ...dto.limits }));
  }
}

/**
 * Reservations for other platform services (`service` callers): reserve, then commit (with the real
 * amounts) or release; refund when what was paid for is gone. Race-free across replicas.
 */
@ApiTags('quota-reservations')
@ApiBearerAuth()
@Roles(Role.Service)
@Controller('quota-reservations')
export class QuotaReservationsController {
  constructor(private readonly quota: QuotaService) {}

  /**
   * Reserve amounts for a department, all or nothing. Idempotent by `key` (per caller): 201 when created,
   * 200 with the same reservation when the key was seen with the same request.
   */
  @Post()
  @ApiCreatedResponse({ type: ReservationResponse, description: 'Reserved.' })
  @ApiOkResponse({ type: ReservationResponse, description: 'The key was used before with the same request: that reservation, in its current state.' })
  @ApiErrors(QUOTA_ERRORS.reserve)
  async reserve(@CurrentPrincipal() p: Principal, @Body() dto: CreateReservationDto, @Res({ passthrough: true }) res: Response): Promise<ReservationResponse> {
    const r = await this.quota.reserve({ key: dto.key, callerId: p.userId, departmentId: dto.departmentId, amounts: { ...dto.amounts }, ttlSeconds: dto.ttlSeconds });
    res.status(r.created ? 201 : 200);
    return toReservationResponse(r.reservation);
  }

  /** One reservation. */
  @Get(':id')
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.get)
  async get(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.getReservation(id));
  }

  /**
   * Grow the pending amount of one resource (by `delta`, or to at least `total`), e.g. while streaming a file
   * of unknown size; renews the expiry. Reopens a COMMITTED reservation.
   */
  @Post(':id/grow')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.grow)
  async grow(@Param('id', uuidPipe) id: string, @Body() dto: GrowReservationDto): Promise<ReservationResponse> {
    if ((dto.delta === undefined) === (dto.total === undefined)) {
      const msg = 'give exactly one of delta and total';
      throw new AppError('VALIDATION_FAILED', msg, { fields: [{ field: 'delta', messages: [msg] }] });
    }
    const r = dto.delta !== undefined ? await this.quota.grow(id, dto.resource, dto.delta) : await this.quota.growTo(id, dto.resource, dto.total!);
    return toReservationResponse(r);
  }

  /** Commit the pending amounts (optionally only some resources, optionally with the real amounts). Idempotent. */
  @Post(':id/commit')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.commit)
  async commit(@Param('id', uuidPipe) id: string, @Body() dto: CommitReservationDto): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.commit(id, dto?.amounts ? { ...dto.amounts } : undefined, dto?.resources));
  }

  /** Give back what is still pending. Idempotent. */
  @Post(':id/release')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.release)
  async release(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.release(id));
  }

  /** Give back everything the reservation holds, committed and pending (what it paid for is gone). Idempotent. */
  @Post(':id/refund')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.refund)
  async refund(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.refund(id));
  }
}
