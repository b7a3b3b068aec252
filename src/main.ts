import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp, mountDocs } from './app.factory';
import { tuneGcForStreaming } from './common/young-gc';
import { ConfigError } from './config/app-config';
import { loadAppConfig } from './feature-configs';

// before anything large is allocated: see young-gc.ts
tuneGcForStreaming();

async function bootstrap(): Promise<void> {
  let config;
  try {
    config = loadAppConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const app = await createApp(config);
  mountDocs(app);
  await app.listen(config.port, config.host);
  const log = new Logger('Main');
  log.log(`HCM Image Service listening on http://${config.host}:${config.port} (database ${config.db.type}); Swagger UI at /docs`);
  if (config.auth.generatedSecret)
    log.log(`Development JWT secret kept in ${config.dataDir}; get a token with: npm run token -- --sub u1 --dept d1 --role super_admin`);
}

bootstrap().catch((e: unknown) => {
  process.stderr.write(`Failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
