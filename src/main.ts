import 'reflect-metadata';
import { setFlagsFromString } from 'node:v8';
import { Logger } from '@nestjs/common';
import { createApp, mountDocs } from './app.factory';
import { ConfigError } from './config/app-config';
import { loadAppConfig } from './feature-configs';

/**
 * Image bytes flow through Buffers whose memory is outside V8's heap (every socket read allocates one, 64 KiB). By
 * default V8 starts a full mark-compact of the whole heap each time some tens of MiB of such memory were allocated
 * ("GC in old space requested"): on the service's heap (Nest, TypeORM, the contract's metadata) that was 50-60
 * full collections per GiB imported, 9 of the 44 CPU seconds of a 1 GiB import-and-convert, and the import slowed to
 * tens of MB/s on a busy machine. Counted in V8's global limit instead (heap and external memory together), they
 * are collected by the ordinary scavenges: 2 full collections per GiB, CPU per GiB 6x lower, peak RSS the same
 * (bench:convert, README Benchmarks). Set before anything is allocated.
 */
setFlagsFromString('--external-memory-accounted-in-global-limit');

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
