import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { HealthRegistry } from '../health/health.registry';
import { dataSourceOptions } from './database.options';
import { installSqliteTransactionGate } from './sqlite-gate';
import { StatementPipeline } from '../common/statement-pipeline';

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (cfg: AppConfig) => {
        if (cfg.db.type === 'sqlite' && cfg.db.path !== ':memory:') mkdirSync(dirname(cfg.db.path), { recursive: true });
        return { ...dataSourceOptions(cfg.db), retryAttempts: 3, retryDelay: 1000 };
      },
    }),
  ],
})
export class DatabaseModule implements OnModuleInit {
  constructor(
    @InjectDataSource() private readonly ds: DataSource,
    private readonly health: HealthRegistry,
  ) {}

  onModuleInit(): void {
    installSqliteTransactionGate(this.ds);
    // no statement queued in a transaction's pipeline may reach its connection after the COMMIT or ROLLBACK
    this.ds.subscribers.push({
      beforeTransactionCommit: (ev) => StatementPipeline.beforeEnd(ev.queryRunner, 'commit'),
      beforeTransactionRollback: (ev) => StatementPipeline.beforeEnd(ev.queryRunner, 'rollback'),
    });
    // the database's readiness check: the module that owns the connection registers it, as storage and jobs do
    this.health.register('database', async () => {
      await this.ds.query('SELECT 1');
    });
  }
}
