import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lspciDump, lspciAddress } from "./lspci.js";
import { makeExamplePf } from "./fixtures.js";
import { PciFunction } from "./function.js";
import { PciError } from "./errors.js";
import { PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_NUM_VF } from "./sriov.js";
import { PCI_COMMAND } from "./regs.js";

/**
 * Runs the real pciutils `lspci -vvv -F <dump>` (Debian package pciutils). A missing lspci
 * fails the test: the point is that an independent decoder accepts our bytes.
 */
function lspci(dump: string, args: string[] = ["-vvv"]): string {
  const dir = mkdtempSync(join(tmpdir(), "vpf-lspci-"));
  try {
    const file = join(dir, "dump.txt");
    writeFileSync(file, dump);
    return execFileSync("lspci", [...args, "-F", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The SR-IOV block of lspci's output, one line per entry, tabs trimmed. */
function sriovBlock(out: string): string[] {
  const lines = out.split("\n");
  const start = lines.findIndex((l) => l.includes("Single Root I/O Virtualization (SR-IOV)"));
  assert.ok(start >= 0, `no SR-IOV capability in lspci output:\n${out}`);
  const block: string[] = [lines[start]?.trim() ?? ""];
  for (let i = start + 1; i < lines.length && /^\t\t/.test(lines[i] ?? ""); i++) block.push((lines[i] ?? "").trim());
  return block;
}

function examplePf(): ReturnType<typeof makeExamplePf> {
  const x = makeExamplePf();
  x.pf.configWrite(0x20, 4, 0xfe000000); // BAR 4 (64-bit) low dword
  x.pf.configWrite(PCI_COMMAND, 2, 0x6);
  x.pf.configWrite(x.sriov.offset + PCI_SRIOV_BAR, 4, 0xfd000000);
  return x;
}

test("lspci -F decodes the PF's header and capability list (PM, Express endpoint, MSI-X, ARI, SR-IOV)", () => {
  const { pf, sriov, msix, ari, express, pm } = examplePf();
  const out = lspci(lspciDump(pf, { bus: 1, device: 0, function: 0 }));
  assert.match(out, /^01:00\.0 Ethernet controller: .*\(rev 01\)\n/);
  assert.match(out, /Control: I\/O- Mem\+ BusMaster\+/);
  assert.match(out, /Region 4: Memory at fe000000 \(64-bit, prefetchable\)/);
  assert.match(out, new RegExp(`Capabilities: \\[${pm.offset.toString(16)}\\] Power Management version 3`));
  assert.match(out, new RegExp(`Capabilities: \\[${express.offset.toString(16)}\\] Express \\(v2\\) Endpoint, MSI 00`));
  assert.match(out, /FLReset\+/);
  assert.match(out, new RegExp(`Capabilities: \\[${msix.offset.toString(16)}\\] MSI-X: Enable- Count=4 Masked-`));
  assert.match(out, /Vector table: BAR=4 offset=00002000/);
  assert.match(out, /PBA: BAR=4 offset=00003000/);
  assert.match(out, new RegExp(`Capabilities: \\[${ari.offset.toString(16)} v1\\] Alternative Routing-ID Interpretation \\(ARI\\)`));
  assert.match(out, new RegExp(`Capabilities: \\[${sriov.offset.toString(16)} v1\\] Single Root I/O Virtualization \\(SR-IOV\\)`));
});

test("lspci -F decodes every SR-IOV field before and after enabling 4 VFs (SR-IOV §3.3)", () => {
  const { pf, sriov } = examplePf();
  const before = sriovBlock(lspci(lspciDump(pf, { bus: 1, device: 0, function: 0 })));
  assert.deepEqual(before, [
    `Capabilities: [${sriov.offset.toString(16)} v1] Single Root I/O Virtualization (SR-IOV)`,
    "IOVCap:\tMigration- 10BitTagReq- Interrupt Message Number: 000",
    "IOVCtl:\tEnable- Migration- Interrupt- MSE- ARIHierarchy- 10BitTagReq-",
    "IOVSta:\tMigration-",
    "Initial VFs: 8, Total VFs: 8, Number of VFs: 0, Function Dependency Link: 00",
    "VF offset: 1, stride: 1, Device ID: 1041",
    "Supported Page Size: 00000553, System Page Size: 00000001",
    "Region 0: Memory at 00000000fd000000 (64-bit, prefetchable)",
    "VF Migration: offset: 00000000, BIR: 0",
  ]);

  // What Linux's sriov_enable(4) writes: NumVFs, then VF Enable | VF MSE (with ARI Capable Hierarchy set earlier).
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0x10), []);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 4), []);
  assert.deepEqual(pf.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, 0x19), [{ kind: "vfs-enabled", numVfs: 4 }]);
  const after = sriovBlock(lspci(lspciDump(pf, { bus: 1, device: 0, function: 0 })));
  assert.deepEqual(after, [
    before[0],
    "IOVCap:\tMigration- 10BitTagReq- Interrupt Message Number: 000",
    "IOVCtl:\tEnable+ Migration- Interrupt- MSE+ ARIHierarchy+ 10BitTagReq-",
    "IOVSta:\tMigration-",
    "Initial VFs: 8, Total VFs: 8, Number of VFs: 4, Function Dependency Link: 00",
    "VF offset: 1, stride: 1, Device ID: 1041",
    "Supported Page Size: 00000553, System Page Size: 00000001",
    "Region 0: Memory at 00000000fd000000 (64-bit, prefetchable)",
    "VF Migration: offset: 00000000, BIR: 0",
  ]);
});

test("lspci -F shows the VF BAR size through the sizing protocol: all ones reads back ~(16 KiB − 1)", () => {
  const { pf, sriov } = examplePf();
  pf.configWrite(sriov.offset + PCI_SRIOV_BAR, 4, 0xffffffff);
  pf.configWrite(sriov.offset + PCI_SRIOV_BAR + 4, 4, 0xffffffff);
  const block = sriovBlock(lspci(lspciDump(pf, { bus: 1, device: 0, function: 0 })));
  assert.ok(block.includes("Region 0: Memory at ffffffffffffc000 (64-bit, prefetchable)"), block.join("\n"));
  assert.equal(sriov.vfBarSize(0), 0x4000);
});

test("lspci dump format: header line, 16 bytes per line, 4096 bytes for PCIe and 256 for PCI, domain when non-zero", () => {
  const { pf } = examplePf();
  const text = lspciDump(pf, { domain: 1, bus: 2, device: 3, function: 4 });
  const lines = text.trimEnd().split("\n");
  assert.equal(lines[0], "0001:02:03.4 Class 0200: Device 1af4:1041");
  assert.equal(lines.length, 1 + 256);
  assert.equal(lines[1], "000: f4 1a 41 10 06 00 10 00 01 00 00 02 00 00 80 00");
  assert.ok(text.endsWith("\n\n"));
  const conv = new PciFunction({ vendorId: 0x8086, deviceId: 0x100e, classCode: 0x020000, revision: 3, express: false });
  const convLines = lspciDump(conv, lspciAddress(0, 0x18)).trimEnd().split("\n");
  assert.equal(convLines[0], "00:03.0 Class 0200: Device 8086:100e");
  assert.equal(convLines.length, 17);
  assert.match(convLines[16] ?? "", /^f0: /);
  assert.match(lspci(lspciDump(conv, lspciAddress(0, 0x18))), /^00:03\.0 Ethernet controller: .*\(rev 03\)\n/);
  assert.throws(() => lspciDump(conv, { bus: 0, device: 0, function: 8 }), (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
});

import { PciBus } from "./bus.js";
import { lspciDumpBus } from "./lspci.js";

test("lspci -F lists a bus dump: the PF and its 4 enabled VFs, whose raw Vendor/Device IDs read 0xFFFF (SR-IOV §3.4.1.1)", () => {
  const { pf, sriov } = examplePf();
  const bus = new PciBus();
  bus.attach(pf, { bus: 1, devfn: 0 });
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_NUM_VF, 2, 4);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_CTRL, 2, 0x19);
  bus.attachEnabledVfs(pf, { classCode: 0x020000, revision: 1 });
  bus.attachVf(sriov.vfFunction(5, { classCode: 0x020000 })); // attached but not enabled: not listed
  const out = lspci(lspciDumpBus(bus), ["-n"]);
  assert.deepEqual(out.trimEnd().split("\n"), [
    "01:00.0 0200: 1af4:1041 (rev 01)",
    "01:00.1 0200: ffff:ffff (rev 01)",
    "01:00.2 0200: ffff:ffff (rev 01)",
    "01:00.3 0200: ffff:ffff (rev 01)",
    "01:00.4 0200: ffff:ffff (rev 01)",
  ]);
});

import { MsiCapability } from "./msi.js";
import { PciExpressCapability } from "./express.js";

test("lspci -F decodes an RC-integrated endpoint with MSI (count, mask, 64-bit, address, data)", () => {
  const f = new PciFunction({ vendorId: 0x8086, deviceId: 0x10ca, classCode: 0x020000, express: true });
  new PciExpressCapability(f, { type: "rc-endpoint" });
  const msi = new MsiCapability(f, { vectors: 4, perVectorMask: true });
  f.configWrite(msi.offset + 4, 4, 0xfee01000);
  f.configWrite(msi.offset + 12, 2, 0x41);
  f.configWrite(msi.offset + 2, 2, 0x21);
  const out = lspci(lspciDump(f, { bus: 0, device: 5, function: 0 }));
  assert.match(out, /Express \(v2\) Root Complex Integrated Endpoint, MSI 00/);
  assert.match(out, new RegExp(`Capabilities: \\[${msi.offset.toString(16)}\\] MSI: Enable\\+ Count=4/4 Maskable\\+ 64bit\\+`));
  assert.match(out, /Address: 00000000fee01000 {2}Data: 0041/);
});
