import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { dataSourceOptions } from './database.options';
import { installSqliteTransactionGate } from './sqlite-gate';

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
  constructor(@InjectDataSource() private readonly ds: DataSource) {}

  onModuleInit(): void {
    installSqliteTransactionGate(this.ds);
  }
}
