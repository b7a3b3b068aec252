import { AppError } from '../common/errors';
import { ImagePhase, ImageStatus } from './image.enums';
import { assertTransition, phasesLeadingTo, statusOfPhase } from './image-state';

const Q = ImagePhase.Queued;
const I = ImagePhase.Importing;
const V = ImagePhase.Verifying;
const R = ImagePhase.Ready;
const F = ImagePhase.Failed;
const D = ImagePhase.Disabled;
const C = ImagePhase.Converting;
const ALL = [Q, I, V, R, F, D, C];

/**
 * The image life cycle written out independently of image-state.ts, so a changed table fails here:
 * queued -> importing | verifying (a direct upload) | failed; importing -> verifying | failed | queued (a
 * restart) | importing (a resumed import); verifying -> ready | failed | queued; ready <-> disabled;
 * failed -> queued (a retry); conversion: verifying (the judged source) -> converting, queued (a requested
 * copy of an ACTIVE image) -> converting, converting -> verifying (the result judged again) | failed | queued (a
 * crash or retry starts again).
 */
const ALLOWED: Array<[ImagePhase, ImagePhase]> = [
  [Q, I],
  [Q, V],
  [Q, F],
  [Q, C],
  [I, V],
  [I, F],
  [I, Q],
  [I, I],
  [V, R],
  [V, F],
  [V, Q],
  [V, C],
  [C, V],
  [C, F],
  [C, Q],
  [R, D],
  [D, R],
  [F, Q],
];
const allowed = (from: ImagePhase, to: ImagePhase) => ALLOWED.some(([f, t]) => f === from && t === to);
const REFUSED = ALL.flatMap((from) => ALL.filter((to) => !allowed(from, to)).map((to) => [from, to] as [ImagePhase, ImagePhase]));

describe('image state machine (R7)', () => {
  it('covers every pair of phases, allowed or refused', () => {
    expect(ALLOWED.length + REFUSED.length).toBe(ALL.length * ALL.length);
  });

  it.each(ALLOWED)('allows %s -> %s', (from, to) => {
    expect(() => assertTransition('img-1', from, to)).not.toThrow();
  });

  it.each(REFUSED)('refuses %s -> %s with INVALID_STATE and the current status and phase', (from, to) => {
    let caught: unknown;
    try {
      assertTransition('img-1', from, to);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(AppError);
    const err = caught as AppError;
    expect(err.code).toBe('INVALID_STATE');
    expect(err.message).toContain('img-1');
    expect(err.details).toEqual({ status: from === R ? ImageStatus.Active : ImageStatus.Inactive, phase: from, wanted: to });
  });

  it('makes only READY active', () => {
    expect(ALL.filter((p) => statusOfPhase(p) === ImageStatus.Active)).toEqual([R]);
    expect(ALL.filter((p) => statusOfPhase(p) === ImageStatus.Inactive)).toEqual([Q, I, V, F, D, C]);
  });

  it.each(ALL)('names the phases leading to %s', (to) => {
    const want = ALLOWED.filter(([, t]) => t === to).map(([f]) => f);
    expect([...phasesLeadingTo(to)].sort()).toEqual([...want].sort());
  });

  it('converts only judged bytes: CONVERTING is entered from VERIFYING or a queued copy, and always judged again', () => {
    expect(phasesLeadingTo(C).sort()).toEqual([Q, V].sort());
    expect(ALL.filter((to) => allowed(C, to))).not.toContain(R);
  });

  it('never leaves READY except to DISABLED, so a usable image cannot be re-imported in place', () => {
    expect(ALL.filter((to) => allowed(R, to))).toEqual([D]);
    expect(phasesLeadingTo(R).sort()).toEqual([V, D].sort());
  });
});
