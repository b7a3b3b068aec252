import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { Hypervisor, RequiredFormat } from './zone.enums';

export { Hypervisor, RequiredFormat };

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

  /** The storage format every disk image of the zone is kept in (converted on import); null keeps what was brought. */
  @Column({ type: 'varchar', length: 16, nullable: true })
  requiredFormat: RequiredFormat | null;

  @CreateDateColumn()
  createdAt: Date;

  @UpdateDateColumn()
  updatedAt: Date;
}
