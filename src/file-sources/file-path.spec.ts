import { FileSourceError } from './file-source.errors';
import { isAcceptableName, normalisePath } from './file-path';

const reasonOf = (input: unknown): string | undefined => {
  try {
    normalisePath(input);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(FileSourceError);
    expect((e as FileSourceError).code).toBe('FILE_PATH_INVALID');
    return (e as FileSourceError).details?.reason as string;
  }
};

describe('normalisePath', () => {
  it.each([
    ['', ''],
    ['isos', 'isos'],
    ['isos/', 'isos'],
    ['isos/CentOS 7.iso', 'isos/CentOS 7.iso'],
    ['镜像 目录/中文 镜像.iso', '镜像 目录/中文 镜像.iso'],
    ['a;b/c#d/e$f/[x]', 'a;b/c#d/e$f/[x]'],
    ['.hidden/file', '.hidden/file'],
    ['a..b', 'a..b'],
  ])('accepts %j as %j', (input, out) => {
    expect(normalisePath(input)).toBe(out);
  });

  it.each([
    [undefined, 'NOT_A_STRING'],
    [42, 'NOT_A_STRING'],
    ['/etc/passwd', 'ABSOLUTE'],
    ['/', 'ABSOLUTE'],
    ['..', 'DOT_SEGMENT'],
    ['../x', 'DOT_SEGMENT'],
    ['a/../../x', 'DOT_SEGMENT'],
    ['a/./b', 'DOT_SEGMENT'],
    ['.', 'DOT_SEGMENT'],
    ['a//b', 'EMPTY_SEGMENT'],
    ['a\\b', 'BACKSLASH'],
    ['..\\..\\x', 'BACKSLASH'],
    ['C:/x', 'RESERVED_CHARACTER'],
    ['a*b', 'RESERVED_CHARACTER'],
    ['a?b', 'RESERVED_CHARACTER'],
    ['say "hi"', 'RESERVED_CHARACTER'],
    ['a|b', 'RESERVED_CHARACTER'],
    ['a<b>', 'RESERVED_CHARACTER'],
    ['a\u0000b', 'CONTROL_CHARACTER'],
    ['a\nb', 'CONTROL_CHARACTER'],
    ['a\u007fb', 'CONTROL_CHARACTER'],
    ['a\u0085b', 'CONTROL_CHARACTER'],
    [' lead', 'EDGE_SPACE_OR_DOT'],
    ['trail ', 'EDGE_SPACE_OR_DOT'],
    ['dir /x', 'EDGE_SPACE_OR_DOT'],
    ['name.', 'EDGE_SPACE_OR_DOT'],
    ['\u3000ideographic', 'EDGE_SPACE_OR_DOT'],
    ['a\ud800b', 'INVALID_UNICODE'],
    ['x'.repeat(256), 'NAME_TOO_LONG'],
    ['中'.repeat(86), 'NAME_TOO_LONG'],
    [Array.from({ length: 6 }, () => 'y'.repeat(200)).join('/'), 'PATH_TOO_LONG'],
  ])('refuses %j (%s)', (input, reason) => {
    expect(reasonOf(input)).toBe(reason);
  });

  it('accepts a name of exactly 255 bytes and a path of exactly 1024', () => {
    expect(normalisePath('x'.repeat(255))).toHaveLength(255);
    const p = ['a'.repeat(255), 'b'.repeat(255), 'c'.repeat(255), 'd'.repeat(254), 'e'].join('/');
    expect(Buffer.byteLength(p)).toBe(1024);
    expect(normalisePath(p)).toBe(p);
    expect(() => normalisePath(`${p}f`)).toThrow(/longer than 1024/);
  });

  it('tells names a listing may show', () => {
    expect(isAcceptableName('CentOS 7.iso')).toBe(true);
    expect(isAcceptableName('中文 镜像.iso')).toBe(true);
    for (const bad of ['', '.', '..', 'a/b', 'a\\b', 'x\n', 'end.', ' x']) expect(isAcceptableName(bad)).toBe(false);
  });
});
