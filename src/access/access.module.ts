import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AppConfig } from '../config/app-config';
import { AccessPolicy } from './access.policy';
import { AuthGuard } from './auth.guard';
import { JwtVerifier } from './jwt';

@Global()
@Module({
  providers: [
    AccessPolicy,
    { provide: JwtVerifier, useFactory: (cfg: AppConfig) => new JwtVerifier(cfg.auth), inject: [AppConfig] },
    { provide: APP_GUARD, useClass: AuthGuard },
  ],
  exports: [AccessPolicy, JwtVerifier],
})
export class AccessModule {}
