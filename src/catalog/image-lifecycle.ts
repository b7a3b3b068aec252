import { Injectable } from '@nestjs/common';
import { Principal } from '../access/principal';
import type { LinkedVm } from '../events/event-catalogue';
import { ImageEntity } from './image.entity';
import { ContributorName, LIFECYCLE_CONTRIBUTIONS } from './image-lifecycle.steps';

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
 */
export interface ImageLifecycleListener {
  /**
   * before any listener's beforeCreate: checks the image's source and may fill in what it says (a picked
   * file's size into bytesTotal, so the quota reserves it); may refuse, and must change nothing elsewhere
   */
  prepareCreate?(image: ImageEntity, principal: Principal): Promise<void>;
  /** before the row is written; may refuse (quota) */
  beforeCreate?(image: ImageEntity, principal: Principal): Promise<void>;
  /** compensation when a later step of create failed */
  createAborted?(image: ImageEntity): Promise<void>;
  /** after the row is committed (jobs are enqueued here) */
  afterCreate?(image: ImageEntity): Promise<void>;
  /**
   * before any listener's beforeDelete: a check that may refuse and changes nothing (VMs linked, R20), so a
   * refused delete leaves no listener half-done
   */
  checkDelete?(image: ImageEntity, principal: Principal, opts: DeleteOptions): Promise<void>;
  /** before the row is removed; may refuse */
  beforeDelete?(image: ImageEntity, principal: Principal, opts: DeleteOptions): Promise<void>;
  /** after the row is removed (release quota, remove bytes, keep link history) */
  afterDelete?(image: ImageEntity): Promise<void>;
  /** facts the image.deleted event reports (the VMs linked), read just before the delete */
  describeDelete?(image: ImageEntity): Promise<Partial<DeleteFacts>>;
}

/** What the image.deleted event carries beside the image. */
export interface DeleteFacts {
  linkedVms: LinkedVm[];
}

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

  async beforeCreate(image: ImageEntity, principal: Principal): Promise<void> {
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

  createAborted(image: ImageEntity): Promise<void> {
    return this.abort(this.listeners, image);
  }

  async afterCreate(image: ImageEntity): Promise<void> {
    for (const l of this.listeners) await l.afterCreate?.(image);
  }

  async beforeDelete(image: ImageEntity, principal: Principal, opts: DeleteOptions): Promise<void> {
    for (const l of this.listeners) await l.checkDelete?.(image, principal, opts);
    for (const l of this.listeners) await l.beforeDelete?.(image, principal, opts);
  }

  async afterDelete(image: ImageEntity): Promise<void> {
    for (const l of this.listeners) await l.afterDelete?.(image);
  }

  async describeDelete(image: ImageEntity): Promise<DeleteFacts> {
    const facts: DeleteFacts = { linkedVms: [] };
    for (const l of this.listeners) Object.assign(facts, await l.describeDelete?.(image));
    return facts;
  }

  private async abort(listeners: ImageLifecycleListener[], image: ImageEntity): Promise<void> {
    for (const l of [...listeners].reverse()) await l.createAborted?.(image).catch(() => undefined);
  }
}
