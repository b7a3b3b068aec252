import { Principal, Role } from '../access/principal';
import { AppError } from '../common/errors';
import { ImageRecord } from './image.record';
import { CREATE_ATTEMPTS, ImageLifecycle, ImageLifecycleListener } from './image-lifecycle';
import { CREATE_STEPS, DELETE_STEPS, LIFECYCLE_CONTRIBUTIONS, lifecycleErrors } from './image-lifecycle.steps';

const who: Principal = { userId: 'u1', name: 'u1', departmentId: 'd1', role: Role.User };
const image = { id: 'i1', sourceUrl: 'http://169.254.169.254/' } as unknown as ImageRecord;

/** A listener that writes down which of its steps ran, as "<module>:<hook>". */
function recorder(name: string, calls: string[], refuseCheck = false): ImageLifecycleListener {
  const note = (hook: string) => () => {
    calls.push(`${name}:${hook}`);
    return Promise.resolve();
  };
  return {
    prepareCreate: refuseCheck
      ? () => {
          calls.push(`${name}:prepareCreate`);
          return Promise.reject(new AppError('URL_NOT_ALLOWED', 'refused'));
        }
      : note('prepareCreate'),
    beforeCreate: note('beforeCreate'),
    createAborted: note('createAborted'),
    afterCreate: note('afterCreate'),
    checkDelete: note('checkDelete'),
    beforeDelete: note('beforeDelete'),
    afterDelete: note('afterDelete'),
  };
}

describe('image lifecycle steps', () => {
  it('declares the steps of create and delete in their order', () => {
    expect(CREATE_STEPS).toEqual(['check', 'reserve', 'persist', 'after-commit']);
    expect(DELETE_STEPS).toEqual(['check', 'release-hold', 'remove', 'after-commit']);
  });

  it('runs listeners by their declared order, not by the order the modules registered in', async () => {
    const calls: string[] = [];
    const lifecycle = new ImageLifecycle();
    // registered in reverse on purpose: vm-links, quota, ingestion
    lifecycle.register('vm-links', recorder('vm-links', calls));
    lifecycle.register('quota', recorder('quota', calls));
    lifecycle.register('ingestion', recorder('ingestion', calls));
    await lifecycle.beforeCreate(image, who);
    await lifecycle.afterCreate(image);
    expect(calls).toEqual([
      'ingestion:prepareCreate',
      'quota:prepareCreate',
      'vm-links:prepareCreate',
      'ingestion:beforeCreate',
      'quota:beforeCreate',
      'vm-links:beforeCreate',
      'ingestion:afterCreate',
      'quota:afterCreate',
      'vm-links:afterCreate',
    ]);
    calls.length = 0;
    await lifecycle.beforeDelete(image, who, { confirm: false });
    await lifecycle.afterDelete(image);
    expect(calls).toEqual([
      'ingestion:checkDelete',
      'quota:checkDelete',
      'vm-links:checkDelete',
      'ingestion:beforeDelete',
      'quota:beforeDelete',
      'vm-links:beforeDelete',
      'ingestion:afterDelete',
      'quota:afterDelete',
      'vm-links:afterDelete',
    ]);
  });

  it('a URL refused at the check step never reaches the reserve step (no quota call)', async () => {
    const calls: string[] = [];
    const lifecycle = new ImageLifecycle();
    lifecycle.register('quota', recorder('quota', calls));
    lifecycle.register('ingestion', recorder('ingestion', calls, true));
    await expect(lifecycle.beforeCreate(image, who)).rejects.toMatchObject({ code: 'URL_NOT_ALLOWED' });
    expect(calls).toEqual(['ingestion:prepareCreate']);
    expect(calls.filter((c) => c.startsWith('quota:'))).toEqual([]);
  });

  it('documents on create and delete exactly the codes the contributions declare', () => {
    expect(LIFECYCLE_CONTRIBUTIONS.ingestion.create).toContain('check');
    expect(lifecycleErrors('create')).toEqual(expect.arrayContaining(['URL_NOT_ALLOWED', 'VALIDATION_FAILED', 'QUOTA_EXCEEDED', 'CONFLICT']));
    expect(lifecycleErrors('delete')).toEqual(['IMAGE_IN_USE']);
  });

  it('takes the in-transaction reserve step inside persist, on the manager of the write, after every check and beforeCreate', async () => {
    const calls: string[] = [];
    const lifecycle = new ImageLifecycle();
    const manager = { name: 'the create transaction' };
    lifecycle.register('quota', {
      ...recorder('quota', calls),
      reserveInTransaction: (_i, m) => {
        calls.push(`quota:reserveInTransaction(${(m as unknown as typeof manager).name})`);
        return Promise.resolve();
      },
    });
    lifecycle.register('ingestion', recorder('ingestion', calls));
    await lifecycle.beforeCreate(image, who);
    const answer = await lifecycle.persist(image, async (reserve) => {
      calls.push('catalog:begin');
      await reserve(manager as never);
      calls.push('catalog:insert');
      return 'row';
    });
    expect(answer).toBe('row');
    expect(calls).toEqual([
      'ingestion:prepareCreate',
      'quota:prepareCreate',
      'ingestion:beforeCreate',
      'quota:beforeCreate',
      'catalog:begin',
      'quota:reserveInTransaction(the create transaction)',
      'catalog:insert',
    ]);
    expect(LIFECYCLE_CONTRIBUTIONS.quota.inCreateTransaction).toEqual(['reserve']);
  });

  it('runs the create again while a listener settles its failure, and answers the error when none does', async () => {
    const lifecycle = new ImageLifecycle();
    const seen: unknown[] = [];
    let reserves = 0;
    lifecycle.register('quota', {
      reserveInTransaction: () => {
        reserves++;
        return reserves < 3 ? Promise.reject(new Error(`refused ${reserves}`)) : Promise.resolve();
      },
      createFailed: (_i, e) => {
        seen.push((e as Error).message);
        return Promise.resolve(true);
      },
    });
    await expect(lifecycle.persist(image, async (reserve) => (await reserve({} as never), 'ok'))).resolves.toBe('ok');
    expect(reserves).toBe(3);
    expect(seen).toEqual(['refused 1', 'refused 2']);

    // nobody claims the error: it is answered at once, the write ran once
    const plain = new ImageLifecycle();
    plain.register('quota', { createFailed: () => Promise.resolve(false) });
    let writes = 0;
    await expect(plain.persist(image, () => (writes++, Promise.reject(new AppError('CONFLICT', 'no'))))).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(writes).toBe(1);

    // a listener that answers instead (QUOTA_EXCEEDED) ends it with its error
    const refusing = new ImageLifecycle();
    refusing.register('quota', { createFailed: () => Promise.reject(new AppError('QUOTA_EXCEEDED', 'full')) });
    await expect(refusing.persist(image, () => Promise.reject(new Error('refused')))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });

    // settled forever: gives up after CREATE_ATTEMPTS writes with the last error
    const endless = new ImageLifecycle();
    endless.register('quota', { createFailed: () => Promise.resolve(true) });
    let tries = 0;
    await expect(endless.persist(image, () => Promise.reject(new Error(`try ${++tries}`)))).rejects.toThrow(`try ${CREATE_ATTEMPTS}`);
    expect(tries).toBe(CREATE_ATTEMPTS);
  });
});
