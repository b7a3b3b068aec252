import { Global, Logger, Module, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
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
export class AccessModule implements OnModuleInit, OnModuleDestroy {
  private readonly log = new Logger('Auth');

  constructor(private readonly verifier: JwtVerifier) {}

  /** Loads the JWKS before the first request; a JWKS server that is down is logged, not fatal (it is retried). */
  async onModuleInit(): Promise<void> {
    const jwks = this.verifier.jwks;
    if (!jwks) return;
    await this.verifier.start();
    const s = jwks.status();
    if (s.lastError) this.log.warn({ msg: 'JWKS not loaded at start; tokens are refused until it loads', jwks: jwks.where, error: s.lastError });
    else this.log.log({ msg: 'JWKS loaded', jwks: jwks.where, kids: s.kids });
  }

  onModuleDestroy(): void {
    this.verifier.stop();
  }
}
