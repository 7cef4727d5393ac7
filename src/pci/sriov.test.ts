import { test } from "node:test";
import assert from "node:assert/strict";
import { makeExamplePf } from "./fixtures.js";
import {
  PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_ARI, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_INITIAL_VF, PCI_SRIOV_STATUS, PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_SUP_PGSIZE, PCI_SRIOV_BAR, PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE, PCI_SRIOV_VF_DID, PCI_SRIOV_FUNC_LINK,
} from "./sriov.js";

test("SR-IOV §3.3: power-on register values (InitialVFs = TotalVFs, page sizes 0x553 / 1)", () => {
  const { pf, sriov } = makeExamplePf();
  const o = sriov.offset;
  assert.equal(pf.configRead(o, 4) & 0xfffff, 0x10010);
  assert.equal(pf.configRead(o + PCI_SRIOV_INITIAL_VF, 2), 8);
  assert.equal(pf.configRead(o + PCI_SRIOV_TOTAL_VF, 2), 8);
  assert.equal(pf.configRead(o + PCI_SRIOV_NUM_VF, 2), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_CTRL, 2), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_FUNC_LINK, 1), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_OFFSET, 2), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_STRIDE, 2), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_DID, 2), 0x1041);
  assert.equal(pf.configRead(o + PCI_SRIOV_SUP_PGSIZE, 4), 0x553);
  assert.equal(pf.configRead(o + PCI_SRIOV_SYS_PGSIZE, 4), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_BAR, 4), 0xc);
  assert.equal(pf.configRead(o + PCI_SRIOV_STATUS, 2), 0);
});

test("SR-IOV §3.3.3.1: setting VF Enable returns vfs-enabled and creates nothing; clearing returns vfs-disabled", () => {
  const { pf, sriov } = makeExamplePf();
  const o = sriov.offset;
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_NUM_VF, 2, 4), []);
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE), [{ kind: "vfs-enabled", numVfs: 4 }]);
  assert.equal(sriov.vfEnabled, true);
  assert.equal(sriov.enabledVfs, 4);
  assert.equal(sriov.existingVf(1), undefined);
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_MSE), [{ kind: "vfs-disabled", numVfs: 4 }]);
  assert.equal(sriov.enabledVfs, 0);
});

import { PciError } from "./errors.js";
import { PciFunction } from "./function.js";
import { SriovCapability } from "./sriov.js";
import { PCI_COMMAND } from "./regs.js";

const code = (c: string) => (e: unknown): boolean => e instanceof PciError && e.code === c;
const ctrlOf = (s: SriovCapability): number => s.pf.configRead(s.offset + PCI_SRIOV_CTRL, 2);

test("SR-IOV §3.3.3: Control has VF Enable, VF MSE and ARI Capable Hierarchy writable, nothing else (QEMU wmask 0x19)", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0xfffe);
  assert.equal(ctrlOf(sriov), PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI);
  assert.equal(sriov.vfMse, true);
  assert.equal(sriov.ariCapableHierarchy, true);
});

test("SR-IOV §3.3.7: NumVFs is writable (any 16-bit value, not clamped) while VF Enable is clear", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 0xffff);
  assert.equal(sriov.numVfs, 0xffff);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 8);
  assert.equal(sriov.numVfs, 8);
});

test("SR-IOV §3.3.3.1 (QEMU): VF Enable cannot be set while NumVFs > TotalVFs", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 9);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE), []);
  assert.equal(sriov.vfEnabled, false);
  assert.equal(ctrlOf(sriov) & PCI_SRIOV_CTRL_VFE, 0);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 8);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE), [{ kind: "vfs-enabled", numVfs: 8 }]);
});

test("SR-IOV §3.3.7: NumVFs is read-only while VF Enable is set", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 2);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 5);
  pf.configWrite(sriov.offset + PCI_SRIOV_TOTAL_VF, 4, 0x00070000);
  assert.equal(sriov.numVfs, 2);
  assert.equal(sriov.enabledVfs, 2);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 5);
  assert.equal(sriov.numVfs, 5);
});

test("SR-IOV §3.3.3.1: rewriting VF Enable without a change returns no effect", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE), []);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0), []);
});

test("SR-IOV §3.3.4: Status VF Migration Status is RW1C and never set without VF Migration", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_STATUS, 2, 0xffff);
  assert.equal(pf.configRead(sriov.offset + PCI_SRIOV_STATUS, 2), 0);
  assert.equal(pf.config.w1cMask(sriov.offset + PCI_SRIOV_STATUS, 2), 1);
});

const readOnly: { sec: string; name: string; at: number; width: 1 | 2 | 4; value: number }[] = [
  { sec: "§3.3.1", name: "Extended Capability Header", at: 0x00, width: 4, value: 0x00010010 },
  { sec: "§3.3.2", name: "SR-IOV Capabilities (no VF Migration)", at: 0x04, width: 4, value: 0 },
  { sec: "§3.3.5", name: "InitialVFs", at: 0x0c, width: 2, value: 8 },
  { sec: "§3.3.6", name: "TotalVFs", at: 0x0e, width: 2, value: 8 },
  { sec: "§3.3.8", name: "Function Dependency Link", at: 0x12, width: 1, value: 0 },
  { sec: "§3.3.8", name: "reserved byte after the Function Dependency Link", at: 0x13, width: 1, value: 0 },
  { sec: "§3.3.9", name: "First VF Offset", at: 0x14, width: 2, value: 1 },
  { sec: "§3.3.10", name: "VF Stride", at: 0x16, width: 2, value: 1 },
  { sec: "§3.3.10", name: "reserved word before VF Device ID", at: 0x18, width: 2, value: 0 },
  { sec: "§3.3.11", name: "VF Device ID", at: 0x1a, width: 2, value: 0x1041 },
  { sec: "§3.3.12", name: "Supported Page Sizes", at: 0x1c, width: 4, value: 0x553 },
  { sec: "§3.3.15", name: "VF Migration State Array Offset", at: 0x3c, width: 4, value: 0 },
];
for (const r of readOnly) {
  test(`SR-IOV ${r.sec}: ${r.name} is read-only`, () => {
    const { pf, sriov } = makeExamplePf();
    const at = sriov.offset + r.at;
    assert.equal(pf.configRead(at, r.width) & (r.at === 0 ? 0xfffff : 0xffffffff), r.value);
    const before = pf.configRead(at, r.width);
    for (const v of [0xffffffff, 0, 0x5a5a5a5a]) {
      pf.configWrite(at, r.width, v);
      pf.configWrite(at & ~3, 4, v);
      pf.configWrite(at, 1, v); // byte-wide too
      assert.equal(pf.configRead(at, r.width), before);
    }
  });
}

test("SR-IOV §3.3.13: System Page Size takes exactly one supported bit; anything else is discarded", () => {
  const { pf, sriov } = makeExamplePf();
  const at = sriov.offset + PCI_SRIOV_SYS_PGSIZE;
  pf.configWrite(at, 4, 0x10); // 64 KiB
  assert.equal(pf.configRead(at, 4), 0x10);
  assert.equal(sriov.systemPageSize, 65536);
  pf.configWrite(at, 4, 0x2); // 8 KiB
  assert.equal(sriov.systemPageSize, 8192);
  pf.configWrite(at, 4, 0x11); // two bits
  assert.equal(pf.configRead(at, 4), 0x2);
  pf.configWrite(at, 4, 0x4); // 16 KiB: not supported, masked to 0, discarded
  assert.equal(pf.configRead(at, 4), 0x2);
});

test("SR-IOV §3.3.13: System Page Size is locked while VF Enable is set", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  pf.configWrite(sriov.offset + PCI_SRIOV_SYS_PGSIZE, 4, 0x10);
  assert.equal(sriov.systemPageSize, 4096);
});

test("SR-IOV §3.3.14: VF BARs size like BARs (wmask ~(size−1)); a VF BAR below the page size grows to it", () => {
  const { pf, sriov } = makeExamplePf({ vfBars: [
    { index: 0, kind: "mem64", size: 0x4000, prefetchable: true },
    { index: 2, kind: "mem32", size: 0x800 },
  ] });
  const b = sriov.offset + PCI_SRIOV_BAR;
  for (let i = 0; i < 6; i++) pf.configWrite(b + 4 * i, 4, 0xffffffff);
  assert.equal(pf.configRead(b, 4), 0xffffc00c);
  assert.equal(pf.configRead(b + 4, 4), 0xffffffff);
  assert.equal(pf.configRead(b + 8, 4), 0xfffff000); // 2 KiB rounded to the 4 KiB page
  assert.equal(pf.configRead(b + 12, 4), 0);
  assert.equal(sriov.vfBarSize(2), 0x1000);
  pf.configWrite(b + 8, 4, 0);
  pf.configWrite(sriov.offset + PCI_SRIOV_SYS_PGSIZE, 4, 0x10);
  pf.configWrite(b + 8, 4, 0xffffffff);
  assert.equal(pf.configRead(b + 8, 4), 0xffff0000);
  assert.equal(sriov.vfBarSize(0), 0x10000);
});

test("SR-IOV §3.3.14: VF n's BAR is VF BAR base + (n−1) × size; VF BAR registers of the VF itself read 0", () => {
  const { pf, sriov } = makeExamplePf();
  const b = sriov.offset + PCI_SRIOV_BAR;
  pf.configWrite(b, 4, 0xe0000000);
  pf.configWrite(b + 4, 4, 0x1);
  assert.equal(sriov.vfBarBase(0), 0x1_e000_0000);
  assert.equal(sriov.vfBarAddress(0, 3), 0x1_e000_c000);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 4);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  const vf = sriov.vfFunction(4, { classCode: 0x020000 });
  assert.equal(vf.barAddress(0), undefined); // VF's own Memory Space bit still clear
  vf.configWrite(PCI_COMMAND, 2, 0x2);
  assert.equal(vf.barAddress(0), 0x1_e000_c000);
  assert.equal(vf.barSize(0), 0x4000);
  vf.configWrite(0x10, 4, 0xffffffff);
  assert.equal(vf.configRead(0x10, 4), 0);
  assert.equal(vf.configRead(0, 4), 0xffffffff); // SR-IOV §3.4.1.1/.2: VF Vendor and Device ID read 0xFFFF
});

test("SR-IOV §3.3.3.4 (QEMU): VF MSE is stored but does not gate VF BARs", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_BAR, 4, 0xe0000000);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  const vf = sriov.vfFunction(1, { classCode: 0x020000 });
  vf.configWrite(PCI_COMMAND, 2, 0x2);
  assert.equal(sriov.vfMse, false);
  assert.equal(vf.barAddress(0), 0xe0000000);
});

test("SR-IOV §3.3.3.5: ARI Capable Hierarchy is locked while VFs are enabled", () => {
  const { pf, sriov } = makeExamplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_ARI);
  assert.equal(sriov.ariCapableHierarchy, false);
});

test("SR-IOV §3.3.9, §3.3.10: offset and stride follow NumVFs and ARI Capable Hierarchy through the layout callback", () => {
  const calls: string[] = [];
  const { pf, sriov } = makeExamplePf({
    totalVfs: 16,
    layout: (n, ari) => {
      calls.push(`${n}/${ari}`);
      return ari ? { firstVfOffset: 1, vfStride: 1 } : { firstVfOffset: 8, vfStride: n > 8 ? 1 : 2 };
    },
  });
  assert.equal(sriov.firstVfOffset, 8);
  assert.equal(sriov.vfStride, 2);
  calls.length = 0;
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 12);
  assert.deepEqual([sriov.firstVfOffset, sriov.vfStride], [8, 1]);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_ARI);
  assert.deepEqual([sriov.firstVfOffset, sriov.vfStride], [1, 1]);
  assert.deepEqual(calls, ["12/false", "12/true"]);
  assert.equal(sriov.vfRoutingId(0x0100, 12), 0x010c);
});

test("SR-IOV §2.1.2: RID of VF n = PF RID + First VF Offset + (n−1) × VF Stride, in 16 bits", () => {
  const { sriov } = makeExamplePf({ firstVfOffset: 0x80, vfStride: 2 });
  assert.equal(sriov.vfRoutingId(0x0300, 1), 0x0380);
  assert.equal(sriov.vfRoutingId(0x0300, 8), 0x038e);
  assert.equal(sriov.vfRoutingId(0xffff, 1), 0x007f);
  assert.throws(() => sriov.vfRoutingId(0, 0), code("PCI_BAD_ARGUMENT"));
});

test("SR-IOV §3.3 / QEMU pcie_sriov_pf_reset: a PF reset clears Control, NumVFs, page size and VF BARs and disables VFs", () => {
  const { pf, sriov } = makeExamplePf();
  const vf = sriov.vfFunction(1, { classCode: 0x020000 });
  pf.configWrite(sriov.offset + PCI_SRIOV_BAR, 4, 0xe0000000);
  pf.configWrite(sriov.offset + PCI_SRIOV_SYS_PGSIZE, 4, 0x2);
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 3);
  pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0x19);
  vf.configWrite(PCI_COMMAND, 2, 0x6);
  assert.equal(vf.present, true);
  assert.deepEqual(pf.reset(), [{ kind: "vfs-disabled", numVfs: 3 }]);
  assert.deepEqual(pf.config.bytes(), makeExamplePf().pf.config.bytes());
  assert.equal(vf.present, false);
  assert.equal(vf.command, 0); // a VF that goes away is reset
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 9); // the masks are back too
  assert.equal(sriov.numVfs, 9);
  assert.deepEqual(pf.reset(), []);
});

test("SR-IOV §3.3 parameter rules (Linux sriov_init, QEMU pcie_sriov_pf_init) are enforced", () => {
  const pf = (): PciFunction => new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0x020000, express: true });
  const ok = { totalVfs: 4, firstVfOffset: 1, vfStride: 1, vfDeviceId: 3 };
  assert.throws(() => new SriovCapability(new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, express: false }), ok), code("PCI_NOT_EXPRESS"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, totalVfs: 0 }), code("PCI_BAD_SRIOV"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, firstVfOffset: 0 }), code("PCI_BAD_SRIOV"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, vfStride: 0 }), code("PCI_BAD_SRIOV"));
  new SriovCapability(pf(), { ...ok, totalVfs: 1, vfStride: 0 });
  assert.throws(() => new SriovCapability(pf(), { ...ok, totalVfs: 200, vfStride: 2 }), code("PCI_BAD_SRIOV"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, supportedPageSizes: 0x1 }), code("PCI_BAD_SRIOV"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, vfBars: [{ index: 0, kind: "io", size: 16 }] }), code("PCI_BAD_BAR"));
  assert.throws(() => new SriovCapability(pf(), { ...ok, vfBars: [{ index: 0, kind: "mem64", size: 0x1000 }, { index: 1, kind: "mem32", size: 0x1000 }] }), code("PCI_BAD_SRIOV"));
  assert.throws(() => new SriovCapability(pf(), { totalVfs: 4, vfDeviceId: 3 }), code("PCI_BAD_SRIOV"));
  const { sriov } = makeExamplePf();
  assert.throws(() => new SriovCapability(sriov.vfFunction(1, { classCode: 0 }), ok), code("PCI_BAD_SRIOV"));
  assert.throws(() => sriov.vfFunction(9, { classCode: 0 }), code("PCI_BAD_ARGUMENT"));
  assert.equal(sriov.vfFunction(2, { classCode: 0 }), sriov.vfFunction(2, { classCode: 0 }));
});

test("Linux compute_max_vf_buses: NumVFs written from TotalVFs down to 1, offset/stride re-read each time", () => {
  const { pf, sriov } = makeExamplePf();
  for (let n = 8; n >= 1; n--) {
    pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, n);
    assert.equal(pf.configRead(sriov.offset + PCI_SRIOV_VF_OFFSET, 2), 1);
    assert.equal(pf.configRead(sriov.offset + PCI_SRIOV_VF_STRIDE, 2), 1);
  }
  pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 0);
  assert.equal(sriov.vfEnabled, false);
});
