import {
  PCI_CAP_ID_EXP, PciBus, PciExpressCapability, SriovCapability, PciFunction, formatBdf, type PciEffect,
} from "../pci/index.js";

/**
 * A PCI platform with one SR-IOV PF built from src/pci's device model, for the real kernel's
 * generic PF driver pci-pf-stub (its only job is sriov_configure). It stands in for the vmm's
 * vPF until that exists: the same PciFunction/SriovCapability objects, with VF functions
 * attached to and detached from the bus when the SR-IOV capability reports VF Enable changes
 * (the hypervisor's part, done here as the vmm will do it).
 */
export interface PfStubPlatform {
  readonly bus: PciBus;
  readonly pf: PciFunction;
  readonly sriov: SriovCapability;
  readonly pfDevfn: number;
  /** Names the power-on configuration for the snapshot key. */
  readonly platformKey: string;
  /** Host-side record of every VF change, e.g. "enabled 4 at 00:03.1..00:03.4". */
  readonly events: string[];
}

export interface PfStubOptions {
  /** Where the PF sits on bus 0; default 00:03.0 (v86 leaves slot 3 free). */
  readonly devfn?: number;
  readonly totalVfs?: number;
}

/** Vendor 1af4 with a device ID outside virtio's 0x1000..0x107f, so virtio_pci leaves it alone. */
export const PF_STUB_VENDOR = 0x1af4;
export const PF_STUB_DEVICE = 0x10fe;
export const PF_STUB_VF_DEVICE = 0x10ff;
/** Ethernet controller: what the vPF will be. */
const CLASS_ETHERNET = 0x020000;

export function makePfStubPlatform(options: PfStubOptions = {}): PfStubPlatform {
  const pfDevfn = options.devfn ?? 0x18;
  const totalVfs = options.totalVfs ?? 7;
  const bus = new PciBus();
  const pf = new PciFunction({
    vendorId: PF_STUB_VENDOR, deviceId: PF_STUB_DEVICE, classCode: CLASS_ETHERNET, revision: 1,
    subsystemVendorId: PF_STUB_VENDOR, subsystemId: 0x0001, express: true, multifunction: true,
  });
  // A root-complex integrated endpoint: bus 0 has no root port above it (PCIe Base §1.3.2.3).
  new PciExpressCapability(pf, { type: "rc-endpoint" });
  const sriov = new SriovCapability(pf, { totalVfs, firstVfOffset: 1, vfStride: 1, vfDeviceId: PF_STUB_VF_DEVICE });
  bus.attach(pf, { bus: 0, devfn: pfDevfn });
  const events: string[] = [];
  bus.onEffects((fn: PciFunction, _rid: number, effects: readonly PciEffect[]) => {
    if (fn !== pf) return;
    for (const e of effects) {
      if (e.kind === "vfs-enabled") {
        const vfs = bus.attachEnabledVfs(pf, { classCode: CLASS_ETHERNET, subsystemVendorId: PF_STUB_VENDOR, subsystemId: 0x0001 });
        // SR-IOV §3.5 / Linux expects a PCI Express capability in every VF.
        for (const vf of vfs) if (vf.findCapability(PCI_CAP_ID_EXP) === undefined) new PciExpressCapability(vf, { type: "rc-endpoint" });
        const rids = vfs.map((vf) => formatBdf(bus.ridOf(vf) ?? 0));
        events.push(`enabled ${e.numVfs} at ${rids.join(",")}`);
      } else if (e.kind === "vfs-disabled") {
        const n = bus.detachVfs(pf);
        events.push(`disabled ${n}`);
      }
    }
  });
  const platformKey = `pf-stub:${PF_STUB_VENDOR.toString(16)}:${PF_STUB_DEVICE.toString(16)}@${pfDevfn}:total${totalVfs}:v1`;
  return { bus, pf, sriov, pfDevfn, platformKey, events };
}
