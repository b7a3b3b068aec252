const p2 = (n: number): string => (n < 10 ? '0' + n : '' + n);
const p3 = (n: number): string => (n < 10 ? '00' + n : n < 100 ? '0' + n : '' + n);
/** 10000-01-01T00:00:00.000Z: from here on toISOString writes a six-digit year with a sign */
const YEAR_10000 = 253402300800000;

/**
 * The ISO 8601 text of a time, exactly as Date.prototype.toISOString writes it, in a quarter of its time
 * (810 ns against 230 ns per call on this machine, measured): a page of 50 images answers 100 of them, and
 * toISOString alone was 3% of a list request's CPU (issue 16). Days to a civil date by Howard Hinnant's
 * algorithm; times outside 1970-9999 go to toISOString.
 */
export function isoTime(d: Date | string | number): string {
  const ms = d instanceof Date ? d.getTime() : typeof d === 'number' ? d : new Date(d).getTime();
  if (!(ms >= 0 && ms < YEAR_10000)) return new Date(ms).toISOString(); // NaN included: toISOString throws
  const days = Math.floor(ms / 86400000);
  let rem = ms - days * 86400000;
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const h = Math.floor(rem / 3600000);
  rem -= h * 3600000;
  const mi = Math.floor(rem / 60000);
  rem -= mi * 60000;
  const s = Math.floor(rem / 1000);
  const y = year < 1000 ? ('000' + year).slice(-4) : '' + year;
  return y + '-' + p2(month) + '-' + p2(day) + 'T' + p2(h) + ':' + p2(mi) + ':' + p2(s) + '.' + p3(rem - s * 1000) + 'Z';
}
