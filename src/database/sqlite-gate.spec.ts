import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ZoneEntity, Hypervisor } from '../zones/zone.entity';
import { installSqliteTransactionGate } from './sqlite-gate';

const zone = (name: string) => Object.assign(new ZoneEntity(), { id: randomUUID(), name, hypervisor: Hypervisor.KVM, description: '' });
const tick = () => new Promise((r) => setTimeout(r, 5));

async function scenario(gate: boolean): Promise<string[]> {
  const ds = new DataSource({ type: 'better-sqlite3', database: ':memory:', entities: [ZoneEntity], synchronize: true });
  await ds.initialize();
  if (gate) installSqliteTransactionGate(ds);
  try {
    const a = ds.transaction(async (m) => {
      await m.insert(ZoneEntity, zone('a'));
      await tick();
      await tick();
      throw new Error('a fails');
    });
    const b = ds.transaction(async (m) => {
      await tick();
      await m.insert(ZoneEntity, zone('b'));
    });
    const c = (async () => {
      await tick();
      await ds.getRepository(ZoneEntity).insert(zone('c')); // outside any transaction
    })();
    await Promise.allSettled([a, b, c]);
    return (await ds.getRepository(ZoneEntity).find()).map((z) => z.name).sort();
  } finally {
    await ds.destroy();
  }
}

describe('SQLite transaction gate', () => {
  it('keeps a rollback in one request from undoing the writes of others', async () => {
    expect(await scenario(true)).toEqual(['b', 'c']);
  });

  it('is needed: without it the failing transaction takes the others down with it', async () => {
    expect(await scenario(false)).not.toEqual(['b', 'c']);
  });
});
