import { byStoredOrder } from './catalog.repository';

/** The order tags are answered in is the databases' (UTF-8 bytes, i.e. code points), whatever the characters. */
describe('byStoredOrder', () => {
  const bytes = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  const samples = [
    'a',
    'b',
    'ab',
    'a b',
    'A',
    'z9',
    '10',
    '9',
    'é',
    'ä',
    'ß',
    '中文',
    '日本',
    '\uE000x',
    '\uFFFDy',
    '😀',
    '😀a',
    '𝔘',
    'k8s:prod',
    'win/2019',
    'x+y',
    'x-y',
    'x.y',
  ];

  it('orders every pair as their UTF-8 bytes do, surrogates and U+E000-U+FFFF included', () => {
    for (const a of samples) for (const b of samples) expect([a, b, Math.sign(byStoredOrder(a, b))]).toEqual([a, b, Math.sign(bytes(a, b))]);
  });

  it('sorts a list into the byte order', () => {
    expect([...samples].sort(byStoredOrder)).toEqual([...samples].sort(bytes));
    // where the JavaScript order differs: a private-use character sorts before an emoji in UTF-16 code units
    expect(['😀', '\uE000'].sort()).toEqual(['😀', '\uE000']);
    expect(['😀', '\uE000'].sort(byStoredOrder)).toEqual(['\uE000', '😀']);
  });
});
