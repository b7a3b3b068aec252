import { FileEntry, FileEntryType, pageEntries } from './file-source';

/**
 * The file directory's name filter follows the catalog's search rule (README, "Finding images"): a
 * case-insensitive, accent-sensitive substring, wildcards taken literally. It runs in the service, not in a
 * database, so it is the same in both shapes.
 */
const entry = (name: string, type = FileEntryType.File): FileEntry => ({ name, path: name, type, size: 1, modifiedAt: new Date(0) });
const ENTRIES = ['Café.iso', 'cafe.iso', 'ÉCOLE.qcow2', '100%_done.raw', 'a_b.vmdk', 'two  spaces.iso'].map((n) => entry(n));
const names = (name: string) =>
  pageEntries({ entries: ENTRIES, truncated: false }, { page: 1, pageSize: 100, sort: 'name', order: 'asc', name }).items.map((e) => e.name);

describe('file directory name filter', () => {
  it.each([
    ['CAFÉ', ['Café.iso']],
    ['cafe', ['cafe.iso']],
    ['école', ['ÉCOLE.qcow2']],
    ['ecole', []],
    ['%', ['100%_done.raw']],
    ['_', ['100%_done.raw', 'a_b.vmdk']],
    ['a%b', []],
    ['two  spaces', ['two  spaces.iso']],
    ['two spaces', []],
  ])('%j finds %j', (name, want) => {
    expect(names(name).sort()).toEqual([...want].sort());
  });
});
