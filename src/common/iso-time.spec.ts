import { isoTime } from './iso-time';

describe('isoTime', () => {
  it('writes what toISOString writes, for random times from 1970 to 9999 and the edges', () => {
    const times = [0, 1, 999, 1000, 86399999, 86400000, 951782400000 /* 2000-02-29 */, 4107542399999, 253402300799999, Date.UTC(2024, 1, 29, 23, 59, 59, 7)];
    let seed = 12345;
    for (let i = 0; i < 20000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      times.push(Math.floor((seed / 2147483648) * 253402300799999));
    }
    for (const t of times) expect([t, isoTime(t)]).toEqual([t, new Date(t).toISOString()]);
  });

  it('takes a Date, a number or a date text, and hands times outside 1970-9999 to toISOString', () => {
    const d = new Date('2026-12-04T02:15:00.123Z');
    expect(isoTime(d)).toBe('2026-12-04T02:15:00.123Z');
    expect(isoTime('2026-12-04T02:15:00.123Z')).toBe('2026-12-04T02:15:00.123Z');
    expect(isoTime(-1)).toBe('1969-12-31T23:59:59.999Z');
    expect(isoTime(253402300800000)).toBe('+010000-01-01T00:00:00.000Z');
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });
});
