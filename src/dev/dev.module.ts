import { Module } from '@nestjs/common';
import { DevTokensController } from './dev-tokens.controller';

@Module({ controllers: [DevTokensController] })
export class DevModule {}
