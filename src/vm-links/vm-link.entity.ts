import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { ImageKind } from '../catalog/image.enums';
import { LinkRelation } from './vm-links.enums';

/**
 * One fact "VM `vmId` was created from / mounts image `imageId`" (R19, R20). Rows are current facts: an unmount
 * or the VM's deletion removes them. The image's deletion does not: it sets `imageDeletedAt` and keeps the
 * image's name and kind here, so a VM's links still answer after its image is gone.
 */
@Entity({ name: 'vm_links' })
@Index('UQ_vm_links_vm_image_relation', ['vmId', 'imageId', 'relation'], { unique: true })
@Index('UQ_vm_links_origin', ['originVmId'], { unique: true })
@Index('IDX_vm_links_image_since', ['imageId', 'since', 'id'])
export class VmLinkEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  /** The compute side's VM id. */
  @Column({ type: 'varchar', length: 64 })
  vmId: string;

  @Column({ type: 'varchar', length: 36 })
  imageId: string;

  @Column({ type: 'simple-enum', enum: LinkRelation })
  relation: LinkRelation;

  /** = vmId for CREATED_FROM, else NULL: the unique index makes one origin per VM. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  originVmId: string | null;

  @Column({ type: 'varchar', length: 255 })
  vmName: string;

  /** The VM's owner and department (who pays its VM quota). */
  @Column({ type: 'varchar', length: 64 })
  ownerId: string;

  @Column({ type: 'varchar', length: 64 })
  departmentId: string;

  /** The launch reservation the VM was registered with (CREATED_FROM), if any. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  reservationId: string | null;

  /** The image's name and kind when linked, refreshed when it is deleted. */
  @Column({ type: 'varchar', length: 255 })
  imageName: string;

  @Column({ type: 'simple-enum', enum: ImageKind })
  imageKind: ImageKind;

  @Column({ type: 'datetime', precision: 3 })
  since: Date;

  /** When the image was deleted (the VM is untouched and keeps the link as history). */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  imageDeletedAt: Date | null;
}
