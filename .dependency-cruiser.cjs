/**
 * The module map (README "Design decisions", "Module map"), checked by `npm run lint:deps` (part of `npm run lint`).
 * A folder under src/ is a module; these rules say which module may import which.
 */
/** Folders that hold no feature: every module may use them; they use no feature. */
const FOUNDATION = '^src/(common|config)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      // an error since s3-bytes: the catalog<->quota/ingestion/vm-links cycles went with the lifecycle steps
      // (catalog/image-lifecycle.steps.ts declares what the listeners raise; the catalog imports none of them).
      severity: 'error',
      comment: 'No two modules (folders of src/) depend on each other, directly or through others.',
      scope: 'folder',
      from: { path: '^src/[^/]+' },
      to: { circular: true },
    },
    {
      name: 'no-module-cycles',
      severity: 'error',
      comment: 'No file cycles either.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'foundation-imports-no-feature',
      severity: 'error',
      comment: 'common/ and config/ are imported by features and import none; common/ does not import config/ either.',
      from: { path: FOUNDATION },
      to: { path: '^src/', pathNot: [FOUNDATION] },
    },
    {
      name: 'common-imports-no-config',
      severity: 'error',
      comment: 'common/ is the lowest layer: config/ may use it, not the other way round.',
      from: { path: '^src/common/' },
      to: { path: '^src/config/' },
    },
    {
      name: 'image-bytes-only-reads',
      severity: 'error',
      comment:
        'image-bytes/ reads an ACTIVE image back (file routes, signed download URLs): it needs the catalog and the object store, ' +
        'never how the bytes got in (ingestion), quota, or the VM side that hands its URLs out (vm-links).',
      from: { path: '^src/image-bytes/' },
      to: { path: '^src/(ingestion|vm-links|quota|file-sources|jobs)/' },
    },
    {
      name: 'vm-links-not-ingestion',
      severity: 'error',
      comment: 'vm-links reads bytes through image-bytes/ (the signer, ImageFileService); it never imports ingestion/.',
      from: { path: '^src/vm-links/' },
      to: { path: '^src/ingestion/' },
    },
    {
      name: 'typeorm-only-in-repositories',
      severity: 'error',
      comment:
        'TypeORM is reached only by repositories (*.repository.ts), entities (*.entity.ts), the database module and migrations; ' +
        'everything else goes through a repository or a service.',
      from: {
        path: '^src/',
        pathNot: ['\\.repository\\.ts$', '\\.entity\\.ts$', '^src/database/', '\\.spec\\.ts$'],
      },
      to: { path: '(^|/)node_modules/typeorm/' },
    },
    {
      name: 'typeorm-module-only-in-repositories-and-modules',
      severity: 'error',
      comment: '@nestjs/typeorm: repositories inject with it, a *.module.ts registers its own entities (TypeOrmModule.forFeature).',
      from: {
        path: '^src/',
        pathNot: ['\\.repository\\.ts$', '\\.module\\.ts$', '^src/database/', '\\.spec\\.ts$'],
      },
      to: { path: '(^|/)node_modules/@nestjs/typeorm/' },
    },
    {
      name: 'entities-only-through-own-repository',
      severity: 'error',
      comment:
        "A module's entity (its tables) is imported only inside its own folder; other modules use its service (a type-only import of the entity's shape is not allowed either).",
      from: { path: '^src/([^/]+)/', pathNot: ['^src/database/'] },
      to: { path: '^src/([^/]+)/.+\\.entity\\.ts$', pathNot: ['^src/$1/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '\\.spec\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
