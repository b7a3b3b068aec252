/**
 * Jest with NestJS 12 (ESM-only packages): swc transforms our TS and node_modules/@nestjs. Node 24.9+ could
 * require() those ES modules itself, but the transform is kept: it works the same on Node 20, 22 and 24.
 *
 * Two projects (tiers):
 * - `unit` (src/**\/*.spec.ts): the rules and pure helpers, no database, Redis, S3 or samba and no global setup,
 *   so `npm run test:unit` runs in seconds on a bare checkout.
 * - `integration` (test/**\/*.int-spec.ts and *.e2e-spec.ts): real MariaDB, Redis, RabbitMQ, smbd, S3 and HTTP
 *   servers; its global setup installs samba when missing, creates the MariaDB test user and the directory of
 *   recorded answers for the contract test. Jest runs a project's global setup only when one of its tests runs.
 * `npm test` runs both in two workers (`--maxWorkers=2`: every integration file has its own databases, queue
 * prefixes, exchanges, ports and directories); the contract test is still sorted last (the sequencer and the
 * reporters are run-wide) and waits until the reporter has counted every other file finished, so it still sees
 * all their answers (test/support/summary-reporter.js, waitForOtherFiles in test/support/contract-check.ts).
 */
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  },
];
const shared = {
  moduleFileExtensions: ['js', 'json', 'ts'],
  rootDir: '.',
  transform: { '^.+\\.(t|j)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(@nestjs|jose)/)'],
  testEnvironment: 'node',
  cacheDirectory: '<rootDir>/.jest-cache',
};
module.exports = {
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.spec.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.e2e-spec.ts', '<rootDir>/test/**/*.int-spec.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
  // the contract test last: it checks what the suites before it received against openapi.yaml
  testSequencer: '<rootDir>/test/support/contract-sequencer.js',
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
  testTimeout: 60000,
};
