import { Injectable } from '@nestjs/common';
import { Principal } from '../access/principal';
import type { LinkedVm } from '../events/event-catalogue';
import { ImageRecord } from './image.record';
import { ContributorName, LIFECYCLE_CONTRIBUTIONS } from './image-lifecycle.steps';

/**
 * The create's one transaction, as the catalog's repository opened it. Opaque outside repositories (it is the
 * transaction's TypeORM CreateTransaction): a listener hands it to its own repository, which writes its own tables
 * on it.
 */
export type CreateTransaction = object;

export interface DeleteOptions {
  /** the caller confirmed after seeing what the delete touches (R20) */
  confirm: boolean;
}

/**
 * What other modules (quota, ingestion, vm-links) plug into the catalog's create and delete flows,
 * so the catalog needs none of them. Each hook is one named step (image-lifecycle.steps.ts); listeners run
 * by their contribution's `order` there, whatever order the modules registered in. A `before*` that throws
 * stops the operation, and the catalog calls `createAborted` on the listeners that already ran.
 * Every `prepareCreate` (check) runs before any `beforeCreate` (reserve); every `checkDelete` before any `beforeDelete`.
 * A contribution may take its reserve step inside the create's transaction instead (`reserveInTransaction`,
 * declared in its `inCreateTransaction`), which runs in `persist` right before the row is written.
 */
export interface ImageLifecycleListener {
  /**
   * before any listener's beforeCreate: checks the image's source and may fill in what it says (a picked
   * file's size into bytesTotal, so the quota reserves it); may refuse, and must change nothing elsewhere
   */
  prepareCreate?(image: ImageRecord, principal: Principal): Promise<void>;
  /** before the row is written, in a transaction of its own; may refuse (createAborted undoes it) */
  beforeCreate?(image: ImageRecord, principal: Principal): Promise<void>;
  /**
   * the reserve step INSIDE the create's transaction (`m`), before the row is written: what it writes commits
   * or rolls back with the row, so a refused or failed create leaves nothing behind and needs no createAborted
   * (the quota's reservation, issue 16). A listener writes only its own tables, through its own repository,
   * on `m`. May refuse by throwing; createFailed then decides whether the create runs again.
   */
  reserveInTransaction?(image: ImageRecord, m: CreateTransaction): Promise<void>;
  /**
   * the create's transaction rolled back with `error` (thrown by any reserveInTransaction, or by the write):
   * true when this listener settled its cause and the whole create should run again (reserveInTransaction runs
   * again too); false when the error is not its business; or it throws the error the create answers instead
   */
  createFailed?(image: ImageRecord, error: unknown): Promise<boolean>;
  /** compensation when a later step of create failed */
  createAborted?(image: ImageRecord): Promise<void>;
  /** after the row is committed (jobs are enqueued here) */
  afterCreate?(image: ImageRecord): Promise<void>;
  /**
   * before any listener's beforeDelete: a check that may refuse and changes nothing (VMs linked, R20), so a
   * refused delete leaves no listener half-done
   */
  checkDelete?(image: ImageRecord, principal: Principal, opts: DeleteOptions): Promise<void>;
  /** before the row is removed; may refuse */
  beforeDelete?(image: ImageRecord, principal: Principal, opts: DeleteOptions): Promise<void>;
  /** after the row is removed (release quota, remove bytes, keep link history) */
  afterDelete?(image: ImageRecord): Promise<void>;
  /** facts the image.deleted event reports (the VMs linked), read just before the delete */
  describeDelete?(image: ImageRecord): Promise<Partial<DeleteFacts>>;
}

/** What the image.deleted event carries beside the image. */
export interface DeleteFacts {
  linkedVms: LinkedVm[];
}

/** How many times persist runs a create's transaction whose failure a listener settled. */
export const CREATE_ATTEMPTS = 20;

@Injectable()
export class ImageLifecycle {
  private readonly listeners: ImageLifecycleListener[] = [];

  private readonly orders = new Map<ImageLifecycleListener, number>();

  /** A module's listener, under its name in LIFECYCLE_CONTRIBUTIONS (which gives its order). */
  register(name: ContributorName, listener: ImageLifecycleListener): void {
    this.orders.set(listener, LIFECYCLE_CONTRIBUTIONS[name].order);
    this.listeners.push(listener);
    this.listeners.sort((a, b) => (this.orders.get(a) ?? 0) - (this.orders.get(b) ?? 0));
  }

  async beforeCreate(image: ImageRecord, principal: Principal): Promise<void> {
    for (const l of this.listeners) await l.prepareCreate?.(image, principal);
    const done: ImageLifecycleListener[] = [];
    try {
      for (const l of this.listeners) {
        await l.beforeCreate?.(image, principal);
        done.push(l);
      }
    } catch (e) {
      await this.abort(done, image);
      throw e;
    }
  }

  /**
   * The persist step: runs `write` (the catalog's transaction), giving it the reserve hooks to run inside that
   * transaction before the row is written; when the transaction fails, asks the listeners (createFailed)
   * whether to run it again, at most CREATE_ATTEMPTS times.
   */
  async persist<T>(image: ImageRecord, write: (reserve: (m: CreateTransaction) => Promise<void>) => Promise<T>): Promise<T> {
    // the first reserve step starts synchronously, so its statements are issued before the row's: the create's
    // statements go in one round trip, the quota's first (a listener's ledger row is locked before the
    // catalog's version row and the outbox's position row, which every writer waits on)
    const reserving = this.listeners.filter((l) => l.reserveInTransaction);
    const reserve = async (m: CreateTransaction) => {
      for (const l of reserving) await l.reserveInTransaction!(image, m);
    };
    for (let attempt = 1; ; attempt++) {
      try {
        return await write(reserve);
      } catch (e) {
        let again = false;
        for (const l of this.listeners) if (await l.createFailed?.(image, e)) again = true;
        if (!again || attempt >= CREATE_ATTEMPTS) throw e;
      }
    }
  }

  createAborted(image: ImageRecord): Promise<void> {
    return this.abort(this.listeners, image);
  }

  async afterCreate(image: ImageRecord): Promise<void> {
    for (const l of this.listeners) await l.afterCreate?.(image);
  }

  async beforeDelete(image: ImageRecord, principal: Principal, opts: DeleteOptions): Promise<void> {
    for (const l of this.listeners) await l.checkDelete?.(image, principal, opts);
    for (const l of this.listeners) await l.beforeDelete?.(image, principal, opts);
  }

  async afterDelete(image: ImageRecord): Promise<void> {
    for (const l of this.listeners) await l.afterDelete?.(image);
  }

  async describeDelete(image: ImageRecord): Promise<DeleteFacts> {
    const facts: DeleteFacts = { linkedVms: [] };
    for (const l of this.listeners) Object.assign(facts, await l.describeDelete?.(image));
    return facts;
  }

  private async abort(listeners: ImageLifecycleListener[], image: ImageRecord): Promise<void> {
    for (const l of [...listeners].reverse()) await l.createAborted?.(image).catch(() => undefined);
  }
}
