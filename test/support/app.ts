import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { signToken } from '../../src/access/jwt';
import { Role } from '../../src/access/principal';
import { createApp, mountDocs } from '../../src/app.factory';
import { isPlatformShape } from '../../src/config/app-config';
import { loadAppConfig } from '../../src/feature-configs';
import { recordServer } from './contract-recorder';
import { freePort } from './service-process';
import { createTestDatabase, dropTestDatabase, TEST_DB_HOST, TEST_DB_PASSWORD, TEST_DB_PORT, TEST_DB_USER } from './mariadb';

export type Shape = 'sqlite' | 'mariadb';
export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

/** The shapes the e2e suites run on: both unless TEST_SHAPES narrows it (e.g. TEST_SHAPES=sqlite). */
export const SHAPES: Shape[] = (process.env.TEST_SHAPES ?? 'sqlite,mariadb').split(',').map((s) => s.trim()) as Shape[];

export interface Caller {
  sub: string;
  dept: string;
  role: Role;
  name?: string;
}

export interface TestApp {
  shape: Shape;
  app: NestExpressApplication;
  /** supertest agent on the app's HTTP server */
  http: () => ReturnType<typeof request>;
  token: (c: Caller) => string;
  /** `Authorization` header value for a caller */
  auth: (c: Caller) => string;
  env: Record<string, string>;
  dataDir: string;
  /**
   * Listens for real on 127.0.0.1 (for clients other than supertest): on the port of PUBLIC_BASE_URL when the
   * shape needs one (the platform shape), else on a free one. Returns the port; a second call returns the same one.
   */
  listen: () => Promise<number>;
  close: () => Promise<void>;
}

/**
 * Starts the whole app in-process on one shape: SQLite in a temp dir, or a fresh MariaDB database
 * (hcm_test_*) owned by the dedicated test user. Everything is removed on close.
 */
export async function startApp(
  shape: Shape,
  label: string,
  extraEnv: Record<string, string> = {},
  opts: { shareDatabaseWith?: TestApp } = {},
): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), `hcm-${label}-`));
  let dbName: string | undefined;
  const shared = opts.shareDatabaseWith?.env;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    AUTH_JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'error',
    SEED_DEFAULT_ZONE: 'false',
    // suites create hundreds of images as one caller; rate-limit.e2e-spec turns the limits on
    RATE_LIMIT_CREATE_PER_MIN: '0',
    RATE_LIMIT_UPLOAD_PER_MIN: '0',
    RATE_LIMIT_IMPORT_PER_MIN: '0',
    // suites create URL images pointing at made-up servers and move their phases by hand: no import workers
    // unless a suite asks (IMPORT_CONCURRENCY in extraEnv), so nothing downloads behind their back
    IMPORT_CONCURRENCY: '0',
    ...extraEnv,
  };
  if (shared) {
    // a second replica on the same database (the first one owns and drops it)
    for (const k of ['DB_TYPE', 'DB_HOST', 'DB_PORT', 'DB_USER', 'DB_PASSWORD', 'DB_NAME', 'DB_PATH']) if (shared[k] !== undefined) env[k] = shared[k];
  } else if (shape === 'mariadb' && extraEnv.DB_NAME) {
    // a database of the suite's own (a private server): extraEnv says where, nothing to create or drop
    env.DB_TYPE = 'mariadb';
  } else if (shape === 'mariadb') {
    dbName = await createTestDatabase(label);
    Object.assign(env, {
      DB_TYPE: 'mariadb',
      DB_HOST: TEST_DB_HOST,
      DB_PORT: String(TEST_DB_PORT),
      DB_USER: TEST_DB_USER,
      DB_PASSWORD: TEST_DB_PASSWORD,
      DB_NAME: dbName,
    });
  } else {
    Object.assign(env, { DB_TYPE: 'sqlite', DB_PATH: join(dataDir, 'test.sqlite') });
  }
  Object.assign(env, extraEnv);
  // the platform shape requires PUBLIC_BASE_URL (signed URLs never take a request's Host): this replica's address
  let publicPort = 0;
  if (isPlatformShape(env) && !env.PUBLIC_BASE_URL) {
    publicPort = await freePort();
    env.PUBLIC_BASE_URL = `http://127.0.0.1:${publicPort}`;
  }
  const config = loadAppConfig(env);
  const app = await createApp(config, { logger: ['error'] });
  mountDocs(app);
  await app.init();
  recordServer(app.getHttpServer());
  const token = (c: Caller) => signToken({ sub: c.sub, dept: c.dept, role: c.role, name: c.name ?? c.sub }, TEST_SECRET);
  return {
    shape,
    app,
    env,
    dataDir,
    http: () => request(app.getHttpServer()),
    listen: async () => {
      // once: the typed client (api-client.ts, the fixtures) may have made it listen already
      if (!app.getHttpServer().listening) await app.listen(publicPort, '127.0.0.1');
      return (app.getHttpServer().address() as AddressInfo).port;
    },
    token,
    auth: (c: Caller) => `Bearer ${token(c)}`,
    close: async () => {
      await app.close();
      if (dbName) await dropTestDatabase(dbName);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const SUPER: Caller = { sub: 'root-admin', dept: 'ops', role: Role.SuperAdmin };
