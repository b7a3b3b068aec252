import { parseRange } from './http-range';

describe('parseRange', () => {
  it.each([
    [undefined, 100, { kind: 'none' }],
    ['', 100, { kind: 'none' }],
    ['bytes=0-9', 100, { kind: 'range', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=90-1000', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'range', start: 90, end: 99 }],
    ['bytes=-1000', 100, { kind: 'range', start: 0, end: 99 }],
    ['BYTES = 5 - 5', 100, { kind: 'range', start: 5, end: 5 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=100-200', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    ['bytes=-5', 0, { kind: 'unsatisfiable' }],
    ['bytes=9-1', 100, { kind: 'none' }],
    ['bytes=0-1,5-6', 100, { kind: 'none' }],
    ['items=0-1', 100, { kind: 'none' }],
    ['bytes=-', 100, { kind: 'none' }],
    ['bytes=a-b', 100, { kind: 'none' }],
    ['bytes=99999999999999999999-', 100, { kind: 'none' }],
  ])('%j of a %d-byte file is %j', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });
});
