import { messagesOf, parseAllinfo, parseStat, parseGetSize, parseLs, smbFailure } from './smbclient-output';

// as smbclient 4.17 prints them (names padded to 30 bytes, attributes 7 wide, sizes %8.0f)
const LS = [
  'Try "help" to get a list of possible commands.',
  '  .                                   D        0  Thu Nov 26 18:08:46 2026',
  '  ..                                  D        0  Thu Nov 26 18:08:46 2026',
  '  sub dir                             D        0  Thu Nov 26 18:08:46 2026',
  '  中文 镜像.iso                   N     5000  Thu Nov 26 18:08:46 2026',
  '  big.raw                             N 314572800  Sun Nov  1 07:05:04 2026',
  '  huge.qcow2                          A 4781506560  Thu Nov 26 18:08:46 2026',
  '  Disk A                              N       12  Thu Nov 26 18:08:46 2026',
  '  a name that is longer than thirty characters.iso      A     1000  Thu Nov 26 18:08:46 2026',
  '  NT_STATUS_LOGON_FAILURE.txt         N        3  Thu Nov 26 18:08:46 2026',
  '  hidden                             DH        0  Thu Nov 26 18:08:46 2026',
  '',
  '\t\t264212084 blocks of size 1024. 80957424 blocks available',
].join('\n');

describe('smbclient output', () => {
  it('parses an ls listing: names with spaces and Chinese characters, big sizes, attributes, UTC times', () => {
    const entries = parseLs(LS);
    expect(entries.map((e) => [e.name, e.isDir, e.size])).toEqual([
      ['sub dir', true, 0],
      ['中文 镜像.iso', false, 5000],
      ['big.raw', false, 314572800],
      ['huge.qcow2', false, 4781506560],
      ['Disk A', false, 12],
      ['a name that is longer than thirty characters.iso', false, 1000],
      ['NT_STATUS_LOGON_FAILURE.txt', false, 3],
      ['hidden', true, 0],
    ]);
    expect(entries[2].modifiedAt.toISOString()).toBe('2026-11-01T07:05:04.000Z');
  });

  it('parses allinfo of a file and of a folder', () => {
    const file = parseAllinfo(
      'altname: _SREZV~M.ISO\ncreate_time:    Thu Nov 26 18:08:47 2026 UTC\naccess_time:    Thu Nov 26 18:08:47 2026 UTC\nwrite_time:     Thu Nov 26 18:08:48 2026 UTC\nchange_time:    Thu Nov 26 18:08:47 2026 UTC\nattributes:  (80)\nstream: [::$DATA], 5000 bytes\n',
    );
    expect(file).toEqual({ isDir: false, size: 5000, modifiedAt: new Date('2026-11-26T18:08:48Z') });
    const dir = parseAllinfo('altname: S49777~C\nwrite_time:     Thu Nov 26 18:08:47 2026 UTC\nattributes: D (10)\n');
    expect(dir).toMatchObject({ isDir: true, size: undefined });
    expect(parseAllinfo('NT_STATUS_OBJECT_NAME_NOT_FOUND getting alt name for \\nope')).toBeNull();
  });

  it("takes a file's size from the ls line after allinfo, whose stream size is 32 bits (Samba 4.17, measured)", () => {
    // smbclient's own output for a file of 4 GiB + 7 bytes: allinfo says 7, ls says 4294967303
    const out =
      'altname: a.raw\ncreate_time:    Fri Dec  4 02:35:06 2026 UTC\naccess_time:    Fri Dec  4 02:35:06 2026 UTC\nwrite_time:     Fri Dec  4 02:35:06 2026 UTC\nchange_time:    Fri Dec  4 02:35:06 2026 UTC\nattributes:  (80)\nstream: [::$DATA], 7 bytes\n' +
      '  a.raw                               N 4294967303  Fri Dec  4 02:35:05 2026\n\n\t\t264212084 blocks of size 1024. 80687664 blocks available\n';
    expect(parseAllinfo(out)?.size).toBe(7);
    expect(parseStat(out, 'a.raw')).toEqual({ isDir: false, size: 4294967303, modifiedAt: new Date('2026-12-04T02:35:06Z') });
    // spelt otherwise on a share that ignores case: the one file listed
    expect(parseStat(out, 'A.RAW')?.size).toBe(4294967303);
    // no ls line (an older smbclient, a failed ls): allinfo's figure
    expect(parseStat(out.split('  a.raw')[0], 'a.raw')?.size).toBe(7);
    expect(parseStat('NT_STATUS_OBJECT_NAME_NOT_FOUND getting alt name for \\nope', 'nope')).toBeNull();
  });

  it('reads the size a get announced', () => {
    expect(parseGetSize('Try "help"\ngetting file \\a file.raw of size 1000 as - (21.7 KiloBytes/sec) (average 21.7 KiloBytes/sec)\n')).toBe(1000);
    expect(parseGetSize('parallel_read returned NT_STATUS_CONNECTION_RESET\n')).toBeUndefined();
  });

  it.each([
    ['session setup failed: NT_STATUS_LOGON_FAILURE', 'FILE_SOURCE_AUTH_FAILED', false],
    ['tree connect failed: NT_STATUS_BAD_NETWORK_NAME', 'FILE_SOURCE_SHARE_NOT_FOUND', false],
    ['do_connect: Connection to 127.0.0.1 failed (Error NT_STATUS_CONNECTION_REFUSED)', 'FILE_SOURCE_UNREACHABLE', true],
    ['NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\nope', 'FILE_NOT_FOUND', false],
    ['NT_STATUS_OBJECT_PATH_NOT_FOUND listing \\a\\b\\*', 'FILE_NOT_FOUND', false],
    ['NT_STATUS_FILE_IS_A_DIRECTORY opening remote file \\sub dir', 'FILE_NOT_A_FILE', false],
    ['NT_STATUS_ACCESS_DENIED opening remote file \\x', 'FILE_ACCESS_DENIED', false],
    ['NT_STATUS_SHARING_VIOLATION opening remote file \\x', 'FILE_BUSY', true],
    ['parallel_read returned NT_STATUS_CONNECTION_RESET', 'FILE_READ_INTERRUPTED', true],
    ['NT_STATUS_IO_TIMEOUT listing \\*', 'FILE_SOURCE_TIMEOUT', true],
    ['NT_STATUS_INTERNAL_ERROR something', 'FILE_SOURCE_FAILED', true],
  ])('maps %j to %s', (text, code, retryable) => {
    const e = smbFailure(text, 'x on file source s');
    expect(e).toMatchObject({ code, retryable });
    expect(e!.message).toMatch(/^x on file source s: /);
  });

  it('finds no failure in a good listing, even when a name looks like a status', () => {
    expect(smbFailure(messagesOf(LS), 'x')).toBeNull();
    expect(smbFailure(messagesOf('getting file \\NT_STATUS_ACCESS_DENIED.iso of size 3 as - (1 KiloBytes/sec)'), 'x')).toBeNull();
    // the status comes before the path smbclient names
    expect(smbFailure('NT_STATUS_OBJECT_NAME_NOT_FOUND opening remote file \\NT_STATUS_LOGON_FAILURE', 'x')?.code).toBe('FILE_NOT_FOUND');
  });
});
