/** Virtualization technologies a zone (and so an image) can run on. */
export enum Hypervisor {
  KVM = 'KVM',
  VMware = 'VMWARE',
  Xen = 'XEN',
  HyperV = 'HYPERV',
}

/** The storage formats a zone can require (what `qemu-img convert` writes). */
export enum RequiredFormat {
  Raw = 'raw',
  Qcow2 = 'qcow2',
}
