import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, IsNull, Not, Repository } from 'typeorm';
import { ImageKind } from '../catalog/image.enums';
import { VmLinkEntity } from './vm-link.entity';
import { LinkRelation } from './vm-links.enums';

const DUPLICATE_CODES = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const isDuplicate = (e: unknown): boolean => {
  const x = e as { code?: string; driverError?: { code?: string } };
  const code = x?.driverError?.code ?? x?.code;
  return !!code && DUPLICATE_CODES.has(code);
};

/** The only place that touches the vm_links table. */
@Injectable()
export class VmLinksRepository {
  constructor(@InjectRepository(VmLinkEntity) private readonly repo: Repository<VmLinkEntity>) {}

  /** Inserts a link; false when (vmId, imageId, relation) or the VM's origin exists already. */
  async insert(link: VmLinkEntity, inTx?: (m: EntityManager) => Promise<unknown>): Promise<boolean> {
    try {
      if (!inTx) await this.repo.insert(link);
      else {
        await this.repo.manager.transaction(async (m) => {
          await m.insert(VmLinkEntity, link);
          await inTx(m);
        });
      }
      return true;
    } catch (e) {
      if (isDuplicate(e)) return false;
      throw e;
    }
  }

  find(vmId: string, imageId: string, relation: LinkRelation): Promise<VmLinkEntity | null> {
    return this.repo.findOneBy({ vmId, imageId, relation });
  }

  findOrigin(vmId: string): Promise<VmLinkEntity | null> {
    return this.repo.findOneBy({ originVmId: vmId });
  }

  /** Every link of a VM: its origin first, then mounts in the order they were made. */
  findByVm(vmId: string): Promise<VmLinkEntity[]> {
    return this.repo.find({ where: { vmId }, order: { relation: 'ASC', since: 'ASC', id: 'ASC' } });
  }

  /** A page of an image's links, oldest first, and how many there are. */
  listByImage(imageId: string, relation: LinkRelation | undefined, skip: number, take: number): Promise<[VmLinkEntity[], number]> {
    return this.repo.findAndCount({ where: { imageId, ...(relation ? { relation } : {}) }, order: { since: 'ASC', id: 'ASC' }, skip, take });
  }

  /** An image's links to VMs that still count (the image is not marked deleted), oldest first. */
  listLive(imageId: string, take: number): Promise<[VmLinkEntity[], number]> {
    return this.repo.findAndCount({ where: { imageId, imageDeletedAt: IsNull() }, order: { since: 'ASC', id: 'ASC' }, take });
  }

  hasLinks(imageId: string): Promise<boolean> {
    return this.repo.exists({ where: { imageId } });
  }

  /** Gives every link of a VM this name (one UPDATE; rows that have it already are left alone). */
  async renameVm(vmId: string, vmName: string): Promise<void> {
    await this.repo.update({ vmId, vmName: Not(vmName) }, { vmName });
  }

  /** `inTx` runs in the delete's transaction when a link was removed. */
  async deleteOne(
    vmId: string,
    imageId: string,
    relation: LinkRelation,
    inTx?: (m: EntityManager, removed: VmLinkEntity) => Promise<unknown>,
  ): Promise<boolean> {
    if (!inTx) return ((await this.repo.delete({ vmId, imageId, relation })).affected ?? 0) > 0;
    return this.repo.manager.transaction(async (m) => {
      const row = await m.findOneBy(VmLinkEntity, { vmId, imageId, relation });
      if (!row || !((await m.delete(VmLinkEntity, { id: row.id })).affected ?? 0)) return false;
      await inTx(m, row);
      return true;
    });
  }

  /** `inTx` runs in the delete's transaction, only when the link was there to remove. */
  async deleteById(id: string, inTx?: (m: EntityManager) => Promise<unknown>): Promise<void> {
    if (!inTx) {
      await this.repo.delete({ id });
      return;
    }
    await this.repo.manager.transaction(async (m) => {
      if ((await m.delete(VmLinkEntity, { id })).affected ?? 0) await inTx(m);
    });
  }

  /** `inTx` runs in the delete's transaction with the links removed. */
  async deleteByVm(vmId: string, inTx?: (m: EntityManager, removed: VmLinkEntity[]) => Promise<unknown>): Promise<number> {
    if (!inTx) return (await this.repo.delete({ vmId })).affected ?? 0;
    return this.repo.manager.transaction(async (m) => {
      const rows = await m.find(VmLinkEntity, { where: { vmId }, order: { relation: 'ASC', since: 'ASC', id: 'ASC' } });
      if (!rows.length) return 0;
      const affected = (await m.delete(VmLinkEntity, { vmId })).affected ?? 0;
      await inTx(m, rows);
      return affected;
    });
  }

  /** The image is gone: its links stay as history, with its last name and kind. */
  async markImageDeleted(imageId: string, name: string, kind: ImageKind, at: Date): Promise<number> {
    const res = await this.repo.update({ imageId, imageDeletedAt: IsNull() }, { imageDeletedAt: at, imageName: name, imageKind: kind });
    return res.affected ?? 0;
  }
}
