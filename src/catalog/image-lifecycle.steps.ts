import { ErrorSet, errorSet } from '../common/errors';
import { FILE_SOURCE_ERRORS } from '../file-sources/file-sources.service';

/**
 * The steps of the catalog's create and delete, in the order they run, and who contributes to which (README
 * "Lifecycle steps"). The catalog declares them here; a module registers its listener under its name, and the
 * listeners of a step run by `order` (lowest first), never by the order Nest happened to initialise modules.
 *
 * create: check (prepareCreate: may refuse, changes nothing) -> reserve (beforeCreate; createAborted undoes it)
 *         -> persist (the catalog writes the row) -> after-commit (afterCreate)
 *         A contribution that lists `reserve` in `inCreateTransaction` takes it inside persist's transaction
 *         instead (reserveInTransaction, right before the row is written): it commits or rolls back with the
 *         row, and createFailed settles a refusal (run the create again, or answer it).
 * delete: check (checkDelete: may refuse, changes nothing) -> release-hold (beforeDelete) -> remove (the catalog
 *         deletes the row) -> after-commit (afterDelete)
 */
export const CREATE_STEPS = ['check', 'reserve', 'persist', 'after-commit'] as const;
export const DELETE_STEPS = ['check', 'release-hold', 'remove', 'after-commit'] as const;
export type CreateStep = (typeof CREATE_STEPS)[number];
export type DeleteStep = (typeof DELETE_STEPS)[number];

export interface StepContribution {
  /** the module (folder of src/) that contributes */
  module: string;
  /** lower runs first within every step the module takes part in */
  order: number;
  create: readonly CreateStep[];
  /** those of its create steps it takes inside the create's one transaction (issue 16) */
  inCreateTransaction: readonly CreateStep[];
  delete: readonly DeleteStep[];
  /** what its create and delete steps can raise (documented on POST /images and DELETE /images/{id}) */
  createErrors: ErrorSet;
  deleteErrors: ErrorSet;
}

/** Every contribution, by module name. */
export const LIFECYCLE_CONTRIBUTIONS = {
  ingestion: {
    module: 'ingestion',
    order: 10,
    // check: a picked file's source and size, a URL the policy refuses (before any quota is reserved);
    // after-commit: enqueue the import; release-hold: cancel the import job / an upload; after-commit: remove the bytes
    create: ['check', 'after-commit'],
    inCreateTransaction: [],
    delete: ['release-hold', 'after-commit'],
    createErrors: errorSet(FILE_SOURCE_ERRORS, 'URL_NOT_ALLOWED', 'VALIDATION_FAILED'),
    deleteErrors: [],
  },
  quota: {
    module: 'quota',
    order: 20,
    // reserve, inside the create's transaction: 1 image (committed with the row) + the expected bytes (pending
    // for ingestion); nothing to release or commit after it; release-hold: mark the reservation deleting;
    // after-commit: refund
    create: ['reserve'],
    inCreateTransaction: ['reserve'],
    delete: ['release-hold', 'after-commit'],
    createErrors: ['QUOTA_EXCEEDED', 'CONFLICT'],
    deleteErrors: [],
  },
  'vm-links': {
    module: 'vm-links',
    order: 30,
    // check: VMs still use the image (IMAGE_IN_USE unless confirmed); after-commit: keep the link history
    create: [],
    inCreateTransaction: [],
    delete: ['check', 'after-commit'],
    createErrors: [],
    deleteErrors: ['IMAGE_IN_USE'],
  },
} as const satisfies Record<string, StepContribution>;

export type ContributorName = keyof typeof LIFECYCLE_CONTRIBUTIONS;

/** What the contributions to create (or delete) can raise: the catalog's create/delete routes document these. */
export const lifecycleErrors = (op: 'create' | 'delete'): ErrorSet =>
  errorSet(...Object.values(LIFECYCLE_CONTRIBUTIONS).map((c: StepContribution) => (op === 'create' ? c.createErrors : c.deleteErrors)));
