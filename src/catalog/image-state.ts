import { AppError, ErrorSet } from '../common/errors';
import { ImagePhase, ImageStatus } from './image.enums';

/** Every allowed phase change. Status follows from the phase: only READY is ACTIVE. */
export const TRANSITIONS: Record<ImagePhase, ImagePhase[]> = {
  [ImagePhase.Queued]: [ImagePhase.Importing, ImagePhase.Verifying, ImagePhase.Converting, ImagePhase.Failed],
  [ImagePhase.Importing]: [ImagePhase.Verifying, ImagePhase.Failed, ImagePhase.Queued, ImagePhase.Importing],
  [ImagePhase.Verifying]: [ImagePhase.Ready, ImagePhase.Failed, ImagePhase.Queued, ImagePhase.Converting],
  // converting the judged source: the result is judged again (VERIFYING); a crash or retry goes back to QUEUED
  [ImagePhase.Converting]: [ImagePhase.Verifying, ImagePhase.Failed, ImagePhase.Queued],
  [ImagePhase.Ready]: [ImagePhase.Disabled],
  [ImagePhase.Disabled]: [ImagePhase.Ready],
  [ImagePhase.Failed]: [ImagePhase.Queued],
};

export const statusOfPhase = (phase: ImagePhase): ImageStatus => (phase === ImagePhase.Ready ? ImageStatus.Active : ImageStatus.Inactive);

/** Phases from which `to` may be entered. */
export function phasesLeadingTo(to: ImagePhase): ImagePhase[] {
  return (Object.keys(TRANSITIONS) as ImagePhase[]).filter((from) => TRANSITIONS[from].includes(to));
}

export function assertTransition(id: string, from: ImagePhase, to: ImagePhase): void {
  if (!TRANSITIONS[from].includes(to)) {
    throw new AppError('INVALID_STATE', `Image ${id} cannot go from ${from} to ${to}`, {
      status: statusOfPhase(from),
      phase: from,
      wanted: to,
    });
  }
}

/** `assertTransition` and `CatalogService.transition`: the image is not in a phase that allows the change. */
export const TRANSITION_ERRORS: ErrorSet = ['INVALID_STATE', 'IMAGE_NOT_FOUND'];
