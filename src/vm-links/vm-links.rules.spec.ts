import { AccessPolicy } from '../access/access.policy';
import { Principal, Role } from '../access/principal';
import { ImageRecord } from '../catalog/image.record';
import { ImageKind, ImagePhase, ImageStatus, IsoUsage, OsCategory, Scope } from '../catalog/image.enums';
import { AppError } from '../common/errors';
import { assertLaunchDisks, assertUsable, ImageUse, WINDOWS_IDE_MAX_DATA_DISKS } from './vm-links.rules';

/** The real policy: it is a pure class, so the rule is checked with the collaborator it runs with. */
const access = new AccessPolicy();
const owner = (userId = 'u1', departmentId = 'd1', role = Role.User): Principal => ({ userId, departmentId, role, name: userId });

const image = (over: Partial<ImageRecord> = {}): ImageRecord =>
  Object.assign({} as ImageRecord, {
    id: 'img-1',
    kind: ImageKind.Image,
    osCategory: OsCategory.Ubuntu,
    isoUsage: null,
    scope: Scope.Public,
    phase: ImagePhase.Ready,
    status: ImageStatus.Active,
    ownerId: 'someone',
    departmentId: 'd9',
    zoneId: 'zone-a',
    virtualSizeBytes: 10_000,
    ...over,
  });

/** The code the rule throws, or null when it lets the use through. */
function codeOf(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return e.code;
  }
}
const usable = (img: ImageRecord, use = ImageUse.CreateVm, who = owner(), zone = 'zone-a') => codeOf(() => assertUsable(access, img, who, zone, use));

describe("assertUsable: may this owner's VM use the image (R6-R8, R15, R19)", () => {
  it('lets a ready public image create a VM and a ready ISO be mounted', () => {
    expect(usable(image())).toBeNull();
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.OS }), ImageUse.MountIso)).toBeNull();
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.Tool }), ImageUse.MountIso)).toBeNull();
  });

  it('refuses to mount a disk image (NOT_AN_ISO), before anything else about it', () => {
    expect(usable(image(), ImageUse.MountIso)).toBe('NOT_AN_ISO');
    expect(usable(image({ scope: Scope.Private, phase: ImagePhase.Failed, zoneId: 'zone-b' }), ImageUse.MountIso)).toBe('NOT_AN_ISO');
  });

  it("refuses another owner's private image (IMAGE_NOT_USABLE) and says nothing of its state", () => {
    expect(usable(image({ scope: Scope.Private }))).toBe('IMAGE_NOT_USABLE');
    expect(usable(image({ scope: Scope.Private, phase: ImagePhase.Failed, zoneId: 'zone-b' }))).toBe('IMAGE_NOT_USABLE');
    // an admin of the image's department sees it but may not use another's private image
    expect(usable(image({ scope: Scope.Private, departmentId: 'd1' }), ImageUse.CreateVm, owner('a1', 'd1', Role.Admin))).toBe('IMAGE_NOT_USABLE');
  });

  it('lets the owner use their own private image', () => {
    expect(usable(image({ scope: Scope.Private, ownerId: 'u1', departmentId: 'd1' }))).toBeNull();
  });

  it.each([ImagePhase.Queued, ImagePhase.Importing, ImagePhase.Verifying, ImagePhase.Failed, ImagePhase.Disabled])(
    'refuses a %s image (IMAGE_NOT_ACTIVE), for a launch and a mount',
    (phase) => {
      expect(usable(image({ phase, status: ImageStatus.Inactive }))).toBe('IMAGE_NOT_ACTIVE');
      expect(usable(image({ phase, status: ImageStatus.Inactive, kind: ImageKind.Iso, isoUsage: IsoUsage.OS }), ImageUse.MountIso)).toBe('IMAGE_NOT_ACTIVE');
    },
  );

  it('refuses to create a VM from a tool ISO (ISO_NOT_BOOTABLE), but an OS ISO creates one', () => {
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.Tool }))).toBe('ISO_NOT_BOOTABLE');
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.OS }))).toBeNull();
  });

  it('refuses an image of another zone (ZONE_MISMATCH), comparing zone ids case-insensitively', () => {
    expect(usable(image(), ImageUse.CreateVm, owner(), 'zone-b')).toBe('ZONE_MISMATCH');
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.Tool }), ImageUse.MountIso, owner(), 'zone-b')).toBe('ZONE_MISMATCH');
    expect(usable(image(), ImageUse.CreateVm, owner(), 'ZONE-A')).toBeNull();
  });

  it('checks in order: inactive before tool ISO, tool ISO before zone', () => {
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.Tool, phase: ImagePhase.Disabled }), ImageUse.CreateVm, owner(), 'zone-b')).toBe(
      'IMAGE_NOT_ACTIVE',
    );
    expect(usable(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.Tool }), ImageUse.CreateVm, owner(), 'zone-b')).toBe('ISO_NOT_BOOTABLE');
  });
});

describe("assertLaunchDisks: the launch's disk rules (R3, root disk)", () => {
  const disks = (img: ImageRecord, d: { dataDisks?: number; rootDiskBytes?: number }) => codeOf(() => assertLaunchDisks(img, d));

  it('gives a Windows-IDE image or ISO at most one data disk (TOO_MANY_DATA_DISKS)', () => {
    expect(WINDOWS_IDE_MAX_DATA_DISKS).toBe(1);
    const ide = image({ osCategory: OsCategory.WindowsIde });
    expect(disks(ide, {})).toBeNull();
    expect(disks(ide, { dataDisks: 1 })).toBeNull();
    expect(disks(ide, { dataDisks: 2 })).toBe('TOO_MANY_DATA_DISKS');
    expect(disks(image({ osCategory: OsCategory.WindowsIde, kind: ImageKind.Iso, isoUsage: IsoUsage.OS }), { dataDisks: 2 })).toBe('TOO_MANY_DATA_DISKS');
  });

  it('says how many disks were asked and the limit', () => {
    try {
      assertLaunchDisks(image({ osCategory: OsCategory.WindowsIde }), { dataDisks: 3 });
      throw new Error('not refused');
    } catch (e) {
      expect((e as AppError).details).toEqual({ osCategory: OsCategory.WindowsIde, maxDataDisks: 1, dataDisks: 3 });
    }
  });

  it('lets any other OS mount several data disks', () => {
    expect(disks(image({ osCategory: OsCategory.WindowsVirtio }), { dataDisks: 8 })).toBeNull();
    expect(disks(image({ osCategory: OsCategory.Ubuntu }), { dataDisks: 8 })).toBeNull();
  });

  it("refuses a root disk smaller than the image's virtual size (ROOT_DISK_TOO_SMALL); equal fits", () => {
    expect(disks(image({ virtualSizeBytes: 10_000 }), { rootDiskBytes: 9_999 })).toBe('ROOT_DISK_TOO_SMALL');
    expect(disks(image({ virtualSizeBytes: 10_000 }), { rootDiskBytes: 10_000 })).toBeNull();
    expect(disks(image({ virtualSizeBytes: 10_000 }), { rootDiskBytes: 20_000 })).toBeNull();
    try {
      assertLaunchDisks(image({ virtualSizeBytes: 10_000 }), { rootDiskBytes: 1 });
    } catch (e) {
      expect((e as AppError).details).toEqual({ rootDiskBytes: 1, virtualSizeBytes: 10_000 });
    }
  });

  it('has no root disk rule for an ISO, an unknown virtual size or no root disk asked', () => {
    expect(disks(image({ kind: ImageKind.Iso, isoUsage: IsoUsage.OS, virtualSizeBytes: 10_000 }), { rootDiskBytes: 1 })).toBeNull();
    expect(disks(image({ virtualSizeBytes: null }), { rootDiskBytes: 1 })).toBeNull();
    expect(disks(image({ virtualSizeBytes: 10_000 }), {})).toBeNull();
  });
});
