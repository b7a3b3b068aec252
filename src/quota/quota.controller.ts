import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentPrincipal, Roles } from '../access/auth.guard';
import type { Principal } from '../access/principal';
import { Role } from '../access/principal';
import { ApiErrors, ApiUuidParam } from '../common/api-errors.decorator';
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
const ApiDepartmentIdParam = () =>
  ApiParam({ name: 'departmentId', type: String, description: "The department id (the `dept` claim of its members' tokens).", example: 'dept-rd' });

/** Department limits and usage. */
@ApiTags('quotas')
@ApiBearerAuth()
@Controller('quotas')
export class QuotasController {
  constructor(private readonly quota: QuotaService) {}

  @Get()
  @Roles(Role.SuperAdmin, Role.Admin)
  @ApiOkResponse({ type: DepartmentQuotaPage })
  @ApiOperation({
    summary: "List departments' quotas",
    description:
      'Every department that has a quota ledger, with limits and usage per resource, by department id, paged. Super admins and admins (403 FORBIDDEN otherwise).',
  })
  async list(@Query() q: ListQuotasQuery): Promise<DepartmentQuotaPage> {
    const page = await this.quota.departments(q.page, q.pageSize);
    return { ...page, items: page.items.map(toDepartmentQuotaResponse) };
  }

  @Post('reconcile')
  @HttpCode(200)
  @Roles(Role.SuperAdmin, Role.Admin)
  @ApiOkResponse({ type: ReconcileResponse })
  @ApiOperation({
    summary: 'Reconcile quota usage with the catalog',
    description:
      'Recomputes usage from the catalog and the open reservations, reports drift per department and resource, and repairs it unless `dryRun`. The same check runs at startup where configured. Super admins and admins.',
  })
  async reconcile(@Body() dto: ReconcileDto): Promise<ReconcileResponse> {
    return toReconcileResponse(await this.quota.reconcile({ departmentId: dto.departmentId, dryRun: dto.dryRun }));
  }

  @ApiDepartmentIdParam()
  @Get(':departmentId')
  @ApiOkResponse({ type: DepartmentQuotaResponse })
  @ApiErrors(QUOTA_ERRORS.read)
  @ApiOperation({
    summary: "Get a department's quota",
    description:
      "A department's limits, usage, reservations and what is left, per resource. Members of the department, admins, super admins and services (403 FORBIDDEN for a user of another department). A department never seen has the default limits and no usage.",
  })
  async get(@CurrentPrincipal() p: Principal, @Param('departmentId', departmentIdPipe) departmentId: string): Promise<DepartmentQuotaResponse> {
    return toDepartmentQuotaResponse(await this.quota.department(p, departmentId));
  }

  @ApiDepartmentIdParam()
  @Patch(':departmentId')
  @Roles(Role.SuperAdmin)
  @ApiOkResponse({ type: DepartmentQuotaResponse })
  @ApiErrors(QUOTA_ERRORS.setLimits)
  @ApiOperation({
    summary: "Set a department's quota limits",
    description:
      'Sets limits per resource: an integer, or "unlimited"; resources left out keep theirs. A limit below current usage is accepted: nothing more fits until usage drops. Super admins only.',
  })
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

  @Post()
  @ApiCreatedResponse({ type: ReservationResponse, description: 'Reserved.' })
  @ApiOkResponse({ type: ReservationResponse, description: 'The key was used before with the same request: that reservation, in its current state.' })
  @ApiErrors(QUOTA_ERRORS.reserve)
  @ApiOperation({
    summary: 'Reserve quota',
    description:
      'Reserves amounts for a department, all or nothing (409 QUOTA_EXCEEDED when one resource has no room). Idempotent by `key` per caller: 201 when created, 200 with the same reservation when the key was seen with the same request, 422 IDEMPOTENCY_KEY_REUSED when it was seen with another. `service` callers only.',
  })
  async reserve(@CurrentPrincipal() p: Principal, @Body() dto: CreateReservationDto, @Res({ passthrough: true }) res: Response): Promise<ReservationResponse> {
    const r = await this.quota.reserve({
      key: dto.key,
      callerId: p.userId,
      departmentId: dto.departmentId,
      amounts: { ...dto.amounts },
      ttlSeconds: dto.ttlSeconds,
    });
    res.status(r.created ? 201 : 200);
    return toReservationResponse(r.reservation);
  }

  @ApiUuidParam('id', 'The reservation id (UUID).', 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18')
  @Get(':id')
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.get)
  @ApiOperation({
    summary: 'Get a reservation',
    description:
      'One quota reservation: its department, status, expiry and, per resource, what is reserved and committed. `service` callers only; an unknown id is 404 RESERVATION_NOT_FOUND.',
  })
  async get(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.getReservation(id));
  }

  @ApiUuidParam('id', 'The reservation id (UUID).', 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18')
  @Post(':id/grow')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.grow)
  @ApiOperation({
    summary: 'Grow a reservation',
    description:
      'Grows the pending amount of one resource (by `delta`, or to at least `total`; exactly one of them), e.g. while streaming a file of unknown size; renews the expiry and reopens a COMMITTED reservation. 409 QUOTA_EXCEEDED when there is no room. `service` callers only.',
  })
  async grow(@Param('id', uuidPipe) id: string, @Body() dto: GrowReservationDto): Promise<ReservationResponse> {
    if ((dto.delta === undefined) === (dto.total === undefined)) {
      const msg = 'give exactly one of delta and total';
      throw new AppError('VALIDATION_FAILED', msg, { fields: [{ field: 'delta', messages: [msg] }] });
    }
    const r = dto.delta !== undefined ? await this.quota.grow(id, dto.resource, dto.delta) : await this.quota.growTo(id, dto.resource, dto.total!);
    return toReservationResponse(r);
  }

  @ApiUuidParam('id', 'The reservation id (UUID).', 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18')
  @Post(':id/commit')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.commit)
  @ApiOperation({
    summary: 'Commit a reservation',
    description:
      'Turns the pending amounts into usage, optionally only for some `resources` and optionally with the real `amounts` (never more than reserved). Idempotent. `service` callers only.',
  })
  async commit(@Param('id', uuidPipe) id: string, @Body() dto: CommitReservationDto): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.commit(id, dto?.amounts ? { ...dto.amounts } : undefined, dto?.resources));
  }

  @ApiUuidParam('id', 'The reservation id (UUID).', 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18')
  @Post(':id/release')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.release)
  @ApiOperation({
    summary: 'Release a reservation',
    description: 'Gives back what is still pending; what was committed stays used. Idempotent. `service` callers only.',
  })
  async release(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.release(id));
  }

  @ApiUuidParam('id', 'The reservation id (UUID).', 'c4a7e2d9-1f3b-4e8a-9d6c-5b2a0f7e3c18')
  @Post(':id/refund')
  @HttpCode(200)
  @ApiOkResponse({ type: ReservationResponse })
  @ApiErrors(QUOTA_ERRORS.refund)
  @ApiOperation({
    summary: 'Refund a reservation',
    description: 'Gives back everything the reservation holds, committed and pending, when what it paid for is gone. Idempotent. `service` callers only.',
  })
  async refund(@Param('id', uuidPipe) id: string): Promise<ReservationResponse> {
    return toReservationResponse(await this.quota.refund(id));
  }
}
