import type { Schemas } from './api/client';

/** OS categories (the filter in the table header and the dialogs' select): kept out of dialogs.tsx so the first screen does not load the dialogs. */
export const OS_CATEGORIES: Schemas['OsCategory'][] = [
  'CENTOS',
  'UBUNTU',
  'DEBIAN',
  'REDHAT',
  'ROCKY',
  'SUSE',
  'OPENEULER',
  'KYLIN',
  'UOS',
  'OTHER_LINUX',
  'WINDOWS_VIRTIO',
  'WINDOWS_IDE',
  'OTHER',
];
