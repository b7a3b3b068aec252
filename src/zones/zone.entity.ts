import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** Virtualization technologies a zone (and so an image) can run on (R5). */
export enum Hypervisor {
  KVM = 'KVM',
  VMware = 'VMWARE',
  Xen = 'XEN',
  HyperV = 'HYPERV',
}

@Entity({ name: 'zones' })
export class ZoneEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Index('UQ_zones_name', { unique: true })
  @Column({ type: 'varchar', length: 64 })
  name: string;

  @Column({ type: 'simple-enum', enum: Hypervisor, enumName: 'hypervisor' })
  hypervisor: Hypervisor;

  @Column({ type: 'varchar', length: 500, default: '' })
  description: string;

  @CreateDateColumn()
  createdAt: Date;

  @UpdateDateColumn()
  updatedAt: Date;
}
