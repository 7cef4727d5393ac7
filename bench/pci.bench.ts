/**
 * PCI model figures (issue 2 item 7): configuration reads and writes per second (4-byte accesses
 * at mixed offsets, straight to the function and through the bus), and the time to enable 255 VFs
 * under ARI including the returned effect and the 255 VF functions created and attached.
 */
import { opsPerSecond, type BenchResult, type BenchSuite } from "./harness.js";
import {
  AriCapability, MsixCapability, PciBus, PciExpressCapability, PciFunction, SriovCapability, makeExamplePf,
  PCI_SRIOV_CTRL, PCI_SRIOV_NUM_VF, PCI_SRIOV_BAR, PCI_SRIOV_SYS_PGSIZE,
} from "../src/pci/index.js";

function mixedOffsets(sriovOff: number, expressOff: number, msixOff: number): number[] {
  // Header, BARs, capability headers, PCIe, MSI-X and SR-IOV registers: what enumeration touches.
  const offs = [0x00, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x20, 0x24, 0x2c, 0x34, 0x3c,
    expressOff, expressOff + 4, expressOff + 8, expressOff + 0x10, msixOff, msixOff + 4,
    sriovOff, sriovOff + 4, sriovOff + 8, sriovOff + 0x0c, sriovOff + 0x10, sriovOff + 0x14, sriovOff + 0x1c,
    sriovOff + 0x20, sriovOff + 0x24, 0x100, 0x200, 0x800];
  return offs.map((o) => o & ~3);
}

function enable255(): { ms: number; attached: number; effects: number } {
  const pf = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, express: true, multifunction: true });
  pf.defineBar(4, { kind: "mem64", size: 0x4000, prefetchable: true });
  new PciExpressCapability(pf, { type: "endpoint", flr: true });
  new MsixCapability(pf, { vectors: 4, tableBar: 4, tableOffset: 0x2000, pbaBar: 4, pbaOffset: 0x3000 });
  new AriCapability(pf);
  const sriov = new SriovCapability(pf, {
    totalVfs: 255, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041,
    vfBars: [{ index: 0, kind: "mem64", size: 0x4000, prefetchable: true }],
  });
  const bus = new PciBus();
  bus.attach(pf, { bus: 1, devfn: 0 });
  let effects = 0;
  bus.onEffects((fn, _rid, list) => {
    for (const e of list) {
      effects++;
      if (e.kind === "vfs-enabled") bus.attachEnabledVfs(fn, { classCode: 0x020000 });
    }
  });
  const o = sriov.offset;
  bus.configWrite(1, 0, o + PCI_SRIOV_BAR, 4, 0xc0000000);
  const t0 = process.hrtime.bigint();
  bus.configWrite(1, 0, o + PCI_SRIOV_CTRL, 2, 0x10); // ARI Capable Hierarchy
  bus.configWrite(1, 0, o + PCI_SRIOV_NUM_VF, 2, 255);
  bus.configWrite(1, 0, o + PCI_SRIOV_CTRL, 2, 0x19); // VF Enable | VF MSE | ARI
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const attached = bus.functions().length - 1;
  if (attached !== 255 || effects !== 1 || bus.configRead(1, 255, 0x08, 4) >>> 8 !== 0x020000) {
    throw new Error(`enable255: ${attached} VFs attached, ${effects} effects`);
  }
  return { ms, attached, effects };
}

export const suite: BenchSuite = {
  name: "pci",
  run(): BenchResult[] {
    const { pf, sriov, express, msix } = makeExamplePf();
    const bus = new PciBus();
    bus.attach(pf, { bus: 0, devfn: 0 });
    const offs = mixedOffsets(sriov.offset, express.offset, msix.offset);
    const n = offs.length;
    let sink = 0;
    const reads = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink ^= pf.configRead(offs[i] ?? 0, 4);
    }, n);
    const busReads = opsPerSecond(() => {
      for (let i = 0; i < n; i++) sink ^= bus.configRead(0, 0, offs[i] ?? 0, 4);
    }, n);
    // Writes: the value read back, so state stays valid (no FLR, no VF Enable) while every write
    // still runs the masked store and the hooks of the capability it lands in.
    const values = offs.map((o) => pf.configRead(o, 4));
    const writes = opsPerSecond(() => {
      for (let i = 0; i < n; i++) pf.configWrite(offs[i] ?? 0, 4, values[i] ?? 0);
    }, n);
    const busWrites = opsPerSecond(() => {
      for (let i = 0; i < n; i++) bus.configWrite(0, 0, offs[i] ?? 0, 4, values[i] ?? 0);
    }, n);
    const sriovWrites = opsPerSecond(() => {
      pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 3);
      pf.configWrite(sriov.offset + PCI_SRIOV_SYS_PGSIZE, 4, 1);
    }, 2);
    if (sink === 0x7fffffff) console.log(""); // keep reads observable to the JIT
    enable255(); // warm-up
    const runs = Array.from({ length: 7 }, () => enable255().ms).sort((a, b) => a - b);
    return [
      { name: "config reads (PciFunction, 4-byte, mixed offsets)", value: reads, unit: "ops/s" },
      { name: "config reads (PciBus, 4-byte, mixed offsets)", value: busReads, unit: "ops/s" },
      { name: "config writes (PciFunction, 4-byte, mixed offsets)", value: writes, unit: "ops/s" },
      { name: "config writes (PciBus, 4-byte, mixed offsets)", value: busWrites, unit: "ops/s" },
      { name: "SR-IOV register writes (NumVFs, page size)", value: sriovWrites, unit: "ops/s" },
      { name: "enable 255 VFs with ARI (3 writes, effect, 255 VFs attached)", value: runs[0] ?? NaN, unit: "ms", note: `best of 7; median ${(runs[3] ?? NaN).toFixed(2)} ms` },
    ];
  },
};
