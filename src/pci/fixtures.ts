import { AriCapability } from "./ari.js";
import { PciExpressCapability } from "./express.js";
import { PciFunction } from "./function.js";
import { MsixCapability } from "./msix.js";
import { PowerManagementCapability } from "./pm.js";
import { SriovCapability, type SriovOptions } from "./sriov.js";

/**
 * The virtio-net PF of issue 2 (and of the lspci test): a PCIe endpoint with PM, Express (FLR),
 * MSI-X in BAR 4, ARI and SR-IOV with TotalVFs 8, offset 1, stride 1, VF Device ID 0x1041 and one
 * 64-bit prefetchable 16 KiB VF BAR. Exported for tests and benchmarks of every layer.
 */
export function makeExamplePf(sriov: Partial<SriovOptions> = {}): {
  pf: PciFunction; express: PciExpressCapability; msix: MsixCapability; ari: AriCapability; sriov: SriovCapability; pm: PowerManagementCapability;
} {
  const pf = new PciFunction({
    vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, revision: 1,
    subsystemVendorId: 0x1af4, subsystemId: 0x1100, express: true, multifunction: true,
  });
  pf.defineBar(4, { kind: "mem64", size: 0x4000, prefetchable: true });
  const pm = new PowerManagementCapability(pf);
  const express = new PciExpressCapability(pf, { type: "endpoint", flr: true });
  const msix = new MsixCapability(pf, { vectors: 4, tableBar: 4, tableOffset: 0x2000, pbaBar: 4, pbaOffset: 0x3000 });
  const ari = new AriCapability(pf);
  const sr = new SriovCapability(pf, {
    totalVfs: 8, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041,
    vfBars: [{ index: 0, kind: "mem64", size: 0x4000, prefetchable: true }],
    ...sriov,
  });
  return { pf, express, msix, ari, sriov: sr, pm };
}
