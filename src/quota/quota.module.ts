import { Module, OnModuleInit } from '@nestjs/common';
import { CatalogModule } from '../catalog/catalog.module';
import { ImageLifecycle } from '../catalog/image-lifecycle';
import { AppConfig } from '../config/app-config';
import { EventsModule } from '../events/events.module';
import { loadQuotaConfig, QuotaConfig } from './quota.config';
import { QuotaReservationsController, QuotasController } from './quota.controller';
import { QuotaImageListener } from './quota.image-listener';
import { QuotaRepository } from './quota.repository';
import { QuotaService } from './quota.service';

/** Department quotas: the ledger, reservations, reconcile, and the catalog's create/delete hooks. */
@Module({
  imports: [CatalogModule, EventsModule],
  controllers: [QuotasController, QuotaReservationsController],
  providers: [
    // QUOTA_* are this module's own settings (checked at boot with the rest: src/feature-configs.ts)
    { provide: QuotaConfig, useFactory: (cfg: AppConfig) => loadQuotaConfig(cfg.env), inject: [AppConfig] },
    QuotaRepository,
    QuotaService,
    QuotaImageListener,
  ],
  exports: [QuotaService],
})
export class QuotaModule implements OnModuleInit {
  constructor(
    private readonly lifecycle: ImageLifecycle,
    private readonly listener: QuotaImageListener,
  ) {}

  onModuleInit(): void {
    this.lifecycle.register('quota', this.listener);
  }
}
