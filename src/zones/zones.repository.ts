import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ZoneEntity } from './zone.entity';

@Injectable()
export class ZonesRepository {
  constructor(@InjectRepository(ZoneEntity) private readonly repo: Repository<ZoneEntity>) {}

  findById(id: string): Promise<ZoneEntity | null> {
    return this.repo.findOneBy({ id });
  }

  findByName(name: string): Promise<ZoneEntity | null> {
    return this.repo.findOneBy({ name });
  }

  list(skip: number, take: number): Promise<[ZoneEntity[], number]> {
    return this.repo.findAndCount({ order: { name: 'ASC', id: 'ASC' }, skip, take });
  }

  count(): Promise<number> {
    return this.repo.count();
  }

  async insert(zone: ZoneEntity): Promise<ZoneEntity> {
    await this.repo.insert(zone);
    return (await this.findById(zone.id))!;
  }

  async update(id: string, patch: Partial<Pick<ZoneEntity, 'name' | 'description' | 'hypervisor' | 'requiredFormat'>>): Promise<void> {
    await this.repo.update({ id }, patch);
  }

  async delete(id: string): Promise<void> {
    await this.repo.delete({ id });
  }
}
