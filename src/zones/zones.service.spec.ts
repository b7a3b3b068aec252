import { AppConfig } from '../config/app-config';
import { Hypervisor, ZoneEntity } from './zone.entity';
import { ZonesRepository } from './zones.repository';
import { ZONE_CACHE_TTL_MS, ZonesService } from './zones.service';

/** An in-memory zones table that counts its reads (the port the service reads zones through). */
function zonesTable() {
  const rows = new Map<string, ZoneEntity>();
  let reads = 0;
  const repo = {
    findById: async (id: string) => {
      reads++;
      const z = rows.get(id);
      return z ? Object.assign(new ZoneEntity(), z) : null;
    },
    findByName: async (name: string) => [...rows.values()].find((z) => z.name === name) ?? null,
    insert: async (z: ZoneEntity) => (rows.set(z.id, Object.assign(new ZoneEntity(), z)), Object.assign(new ZoneEntity(), z)),
    update: async (id: string, patch: Partial<ZoneEntity>) => void rows.set(id, Object.assign(new ZoneEntity(), rows.get(id), patch)),
    delete: async (id: string) => void rows.delete(id),
  } as unknown as ZonesRepository;
  return { repo, rows, reads: () => reads };
}

describe('zones: the cache a create reads zones through (issue 16)', () => {
  const make = () => {
    const table = zonesTable();
    return { ...table, zones: new ZonesService(table.repo, { seedDefaultZone: false } as AppConfig) };
  };

  it('reads a zone once per TTL, and again after it', async () => {
    const { zones, reads } = make();
    const z = await zones.create({ name: 'a', hypervisor: Hypervisor.KVM });
    const before = reads();
    const t0 = 1_000_000;
    expect((await zones.getCached(z.id, t0)).hypervisor).toBe(Hypervisor.KVM);
    expect((await zones.getCached(z.id, t0 + ZONE_CACHE_TTL_MS - 1)).id).toBe(z.id);
    expect(reads() - before).toBe(1);
    await zones.getCached(z.id, t0 + ZONE_CACHE_TTL_MS);
    expect(reads() - before).toBe(2);
  });

  it('drops the entry when this replica changes or deletes the zone', async () => {
    const { zones } = make();
    const z = await zones.create({ name: 'b', hypervisor: Hypervisor.KVM });
    const now = Date.now();
    await zones.getCached(z.id, now);
    await zones.update(z.id, { hypervisor: Hypervisor.VMware } as never);
    expect((await zones.getCached(z.id, now)).hypervisor).toBe(Hypervisor.VMware);
    await zones.delete(z.id);
    await expect(zones.getCached(z.id, now)).rejects.toMatchObject({ code: 'ZONE_NOT_FOUND' });
  });

  it('never caches an unknown zone, and answers copies callers cannot change the cache through', async () => {
    const { zones, rows } = make();
    await expect(zones.getCached('00000000-0000-4000-8000-000000000001')).rejects.toMatchObject({ code: 'ZONE_NOT_FOUND' });
    rows.set(
      '00000000-0000-4000-8000-000000000001',
      Object.assign(new ZoneEntity(), {
        id: '00000000-0000-4000-8000-000000000001',
        name: 'late',
        hypervisor: Hypervisor.KVM,
        description: '',
        requiredFormat: null,
      }),
    );
    const z = await zones.getCached('00000000-0000-4000-8000-000000000001');
    z.hypervisor = Hypervisor.VMware;
    expect((await zones.getCached('00000000-0000-4000-8000-000000000001')).hypervisor).toBe(Hypervisor.KVM);
  });
});
