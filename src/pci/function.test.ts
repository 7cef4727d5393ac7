import { test } from "node:test";
import assert from "node:assert/strict";
import { PciFunction } from "./function.js";
import { PciError } from "./errors.js";
import { PciExpressCapability } from "./express.js";
import { PowerManagementCapability } from "./pm.js";
import { makeExamplePf } from "./fixtures.js";
import {
  PCI_CAPABILITY_LIST, PCI_COMMAND, PCI_STATUS, PCI_BASE_ADDRESS_0, PCI_ROM_ADDRESS, PCI_HEADER_TYPE, PCI_CAP_ID_VNDR,
  PCI_STATUS_CAP_LIST, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN, PCI_LATENCY_TIMER, PCI_SECONDARY_BUS, PCI_SEC_STATUS,
} from "./regs.js";

const code = (c: string) => (e: unknown): boolean => e instanceof PciError && e.code === c;

function plain(express = true): PciFunction {
  return new PciFunction({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 1, express });
}

test("PCI 3.0 §6.2.1: vendor, device, revision and class code are read-only", () => {
  const f = plain();
  f.configWrite(0, 4, 0x12345678);
  f.configWrite(8, 4, 0xffffffff);
  assert.equal(f.configRead(0, 4), 0x10411af4);
  assert.equal(f.configRead(8, 4), 0x02000001);
  assert.equal(f.configRead(0x2c, 4), 0x00011af4);
});

test("PCI 3.0 §6.2.1: Header Type bit 7 says multifunction; type 1 for bridges", () => {
  assert.equal(plain().configRead(PCI_HEADER_TYPE, 1), 0);
  const m = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, express: true, multifunction: true });
  assert.equal(m.configRead(PCI_HEADER_TYPE, 1), 0x80);
  const b = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0x060400, express: true, headerType: 1 });
  assert.equal(b.configRead(PCI_HEADER_TYPE, 1), 1);
});

test("PCI 3.0 §6.2.2 / PCIe Base §7.5.1.1.3: Command has exactly IO, Mem, BusMaster, Parity, SERR, INTx Disable writable", () => {
  const f = plain();
  f.configWrite(PCI_COMMAND, 2, 0xffff);
  assert.equal(f.configRead(PCI_COMMAND, 2), 0x0547);
});

test("PCI 3.0 §6.2.3: Status error bits are RW1C; other status bits are read-only", () => {
  const f = plain();
  f.raiseStatus(0xf900);
  f.configWrite(PCI_STATUS, 2, 0x0000); // writing 0 changes nothing
  assert.equal(f.status & 0xf900, 0xf900);
  f.configWrite(PCI_STATUS, 2, 0x2100); // clears Received Master Abort and Master Data Parity Error
  assert.equal(f.status & 0xf900, 0xd800);
  f.configWrite(PCI_STATUS, 2, 0x06ff); // RO bits: not set by writes
  assert.equal(f.status & 0x06ff, 0);
});

test("PCIe Base §7.5.1.1.8: Latency Timer is read-only 0 on PCIe, RW on conventional PCI; Interrupt Line RW, Pin RO", () => {
  const e = plain(true), c = plain(false);
  e.configWrite(PCI_LATENCY_TIMER, 1, 0x40);
  c.configWrite(PCI_LATENCY_TIMER, 1, 0x40);
  assert.equal(e.configRead(PCI_LATENCY_TIMER, 1), 0);
  assert.equal(c.configRead(PCI_LATENCY_TIMER, 1), 0x40);
  e.configWrite(PCI_INTERRUPT_LINE, 2, 0x030b);
  assert.equal(e.configRead(PCI_INTERRUPT_LINE, 1), 0x0b);
  assert.equal(e.configRead(PCI_INTERRUPT_PIN, 1), 1);
  assert.equal(c.config.size, 256);
  assert.equal(e.config.size, 4096);
});

test("PCI 3.0 §6.2.5.1: BAR sizing — write all ones, read back the size mask with the type bits", () => {
  const f = plain();
  f.defineBar(0, { kind: "io", size: 32 });
  f.defineBar(1, { kind: "mem32", size: 0x1000 });
  f.defineBar(2, { kind: "mem64", size: 0x4000, prefetchable: true });
  f.defineBar(5, { kind: "mem32", size: 0x100000, prefetchable: true });
  for (let i = 0; i < 6; i++) f.configWrite(PCI_BASE_ADDRESS_0 + 4 * i, 4, 0xffffffff);
  assert.equal(f.configRead(0x10, 4), 0xffffffe1);
  assert.equal(f.configRead(0x14, 4), 0xfffff000);
  assert.equal(f.configRead(0x18, 4), 0xffffc00c);
  assert.equal(f.configRead(0x1c, 4), 0xffffffff);
  assert.equal(f.configRead(0x20, 4), 0); // unimplemented BAR reads 0
  assert.equal(f.configRead(0x24, 4), 0xfff00008);
});

test("PCI 3.0 §6.2.5.1: BAR decoding needs an address and the Command I/O or Memory bit", () => {
  const f = plain();
  f.defineBar(0, { kind: "io", size: 32 });
  f.defineBar(2, { kind: "mem64", size: 0x4000 });
  f.configWrite(0x10, 4, 0xc000);
  f.configWrite(0x18, 4, 0xfe000000);
  f.configWrite(0x1c, 4, 0x1);
  assert.equal(f.barAddress(0), undefined);
  assert.equal(f.barAddress(2), undefined);
  f.configWrite(PCI_COMMAND, 2, 0x2);
  assert.equal(f.barAddress(0), undefined);
  assert.equal(f.barAddress(2), 0x1_fe00_0000);
  f.configWrite(PCI_COMMAND, 2, 0x3);
  assert.equal(f.barAddress(0), 0xc000);
  // A BAR in the middle of sizing (all ones) decodes nothing, as in QEMU.
  f.configWrite(0x18, 4, 0xffffffff);
  f.configWrite(0x1c, 4, 0xffffffff);
  assert.equal(f.barAddress(2), undefined);
  assert.equal(f.barAddress(1), undefined);
});

test("PCI 3.0 §6.2.5.1: impossible BAR definitions are refused", () => {
  const f = plain();
  assert.throws(() => f.defineBar(0, { kind: "mem32", size: 3000 }), code("PCI_BAD_BAR"));
  assert.throws(() => f.defineBar(5, { kind: "mem64", size: 0x1000 }), code("PCI_BAD_BAR"));
  assert.throws(() => f.defineBar(6, { kind: "mem32", size: 0x1000 }), code("PCI_BAD_BAR"));
  assert.throws(() => f.defineBar(0, { kind: "io", size: 512 }), code("PCI_BAD_BAR"));
  f.defineBar(0, { kind: "mem64", size: 0x1000 });
  assert.throws(() => f.defineBar(1, { kind: "mem32", size: 0x1000 }), code("PCI_BAD_BAR"));
});

test("PCI 3.0 §6.2.5.2: no expansion ROM unless asked; a ROM BAR sizes like a BAR plus its enable bit", () => {
  const f = plain();
  f.configWrite(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(f.configRead(PCI_ROM_ADDRESS, 4), 0);
  const r = plain();
  r.defineRom(0x10000);
  r.configWrite(PCI_ROM_ADDRESS, 4, 0xffffffff);
  assert.equal(r.configRead(PCI_ROM_ADDRESS, 4), 0xffff0001);
});

test("PCI 3.0 §6.7: capabilities are linked from 0x34 in order, dword aligned, Status.CapList set", () => {
  const f = plain();
  assert.equal(f.configRead(PCI_CAPABILITY_LIST, 1), 0);
  assert.equal(f.status & PCI_STATUS_CAP_LIST, 0);
  const a = f.addCapability(PCI_CAP_ID_VNDR, 6);
  const b = f.addCapability(PCI_CAP_ID_VNDR, 3);
  const c = f.addCapability(PCI_CAP_ID_VNDR, 4, 0x80);
  assert.deepEqual([a, b, c], [0x40, 0x48, 0x80]);
  assert.equal(f.configRead(PCI_CAPABILITY_LIST, 1), 0x40);
  assert.equal(f.configRead(0x41, 1), 0x48);
  assert.equal(f.configRead(0x49, 1), 0x80);
  assert.equal(f.configRead(0x81, 1), 0);
  assert.ok((f.status & PCI_STATUS_CAP_LIST) !== 0);
  // New capability bytes are read-only until the capability opens them.
  f.configWrite(0x40, 4, 0xffffffff);
  assert.equal(f.configRead(0x40, 4), 0x00004809);
});

test("PCI 3.0 §6.7: the allocator refuses overlaps and a lack of room", () => {
  const f = plain();
  f.addCapability(PCI_CAP_ID_VNDR, 8, 0x40);
  assert.throws(() => f.addCapability(PCI_CAP_ID_VNDR, 8, 0x44), code("PCI_CAP_NO_ROOM"));
  assert.throws(() => f.addCapability(PCI_CAP_ID_VNDR, 8, 0x42), code("PCI_CAP_NO_ROOM"));
  assert.throws(() => f.addCapability(PCI_CAP_ID_VNDR, 8, 0xfc), code("PCI_CAP_NO_ROOM"));
  assert.throws(() => f.addCapability(PCI_CAP_ID_VNDR, 200), code("PCI_CAP_NO_ROOM"));
});

test("PCIe Base §7.6.3: extended capabilities start at 0x100 and link by header bits 31:20", () => {
  const f = plain();
  const a = f.addExtendedCapability(0x0b, 1, 0x10);
  const b = f.addExtendedCapability(0x0e, 1, 8);
  assert.equal(a, 0x100);
  assert.equal(b, 0x110);
  assert.equal(f.configRead(0x100, 4), (0x110 << 20 | 0x10000 | 0x0b) >>> 0);
  assert.equal(f.configRead(0x110, 4), 0x1000e);
  assert.equal(f.findExtendedCapability(0x0e), 0x110);
  assert.throws(() => plain(false).addExtendedCapability(0x0e, 1, 8), code("PCI_NOT_EXPRESS"));
  assert.throws(() => plain().addExtendedCapability(0x0e, 1, 8, 0x200), code("PCI_CAP_NO_ROOM"));
  assert.throws(() => f.addExtendedCapability(0x0e, 1, 8, 0x1000 - 4), code("PCI_CAP_NO_ROOM"));
});

test("BAR regions: windows answer their accesses, the rest reads 0 and drops writes; overlaps refused", () => {
  const f = plain();
  f.defineBar(0, { kind: "mem32", size: 0x1000 });
  const seen: string[] = [];
  let reg = 0x11223344;
  f.mapBarRegion(0, 0x100, 8, {
    read: (off, w) => (w === 4 && off === 0 ? reg : 0xaa),
    write: (off, w, v) => { seen.push(`${off}/${w}=${v.toString(16)}`); reg = v; },
  });
  assert.equal(f.barRead(0, 0x100, 4), 0x11223344);
  f.barWrite(0, 0x104, 2, 0x1_5678);
  assert.deepEqual(seen, ["4/2=5678"]);
  assert.equal(f.barRead(0, 0x200, 4), 0);
  assert.equal(f.barRead(0, 0x106, 4), 0); // straddles the window's end
  f.barWrite(0, 0x200, 4, 1);
  assert.equal(seen.length, 1);
  assert.throws(() => f.mapBarRegion(0, 0x104, 8, { read: () => 0, write: () => undefined }), code("PCI_BAD_REGION"));
  assert.throws(() => f.mapBarRegion(0, 0xff8, 16, { read: () => 0, write: () => undefined }), code("PCI_BAD_REGION"));
  assert.throws(() => f.mapBarRegion(1, 0, 4, { read: () => 0, write: () => undefined }), code("PCI_BAD_REGION"));
});

test("PCIe Base §6.6.2: writing Initiate FLR resets every register and capability, and reads back 0", () => {
  const { pf, express, sriov, msix } = makeExamplePf();
  pf.configWrite(PCI_COMMAND, 2, 0x6);
  pf.configWrite(0x20, 4, 0xfe000000);
  pf.configWrite(msix.offset + 2, 2, 0x8000);
  pf.configWrite(sriov.offset + 0x10, 2, 3);
  pf.configWrite(sriov.offset + 0x08, 2, 0x9);
  const before = pf.config.bytes();
  const effects = pf.configWrite(express.offset + 8, 2, express.deviceControl | 0x8000);
  assert.deepEqual(effects, [{ kind: "function-reset", reason: "flr" }, { kind: "vfs-disabled", numVfs: 3 }]);
  assert.notDeepEqual(pf.config.bytes(), before);
  const fresh = makeExamplePf().pf;
  assert.deepEqual(pf.config.bytes(), fresh.config.bytes());
  assert.equal(express.deviceControl & 0x8000, 0);
  assert.equal(sriov.vfEnabled, false);
});

test("PCIe Base §7.5.3.3: FLR is not advertised or honoured unless asked for", () => {
  const f = plain();
  const e = new PciExpressCapability(f, { type: "endpoint" });
  assert.equal(f.configRead(e.offset + 4, 4) & 0x10000000, 0);
  f.configWrite(PCI_COMMAND, 2, 0x2);
  assert.deepEqual(f.configWrite(e.offset + 8, 2, 0x8000), []);
  assert.equal(f.command, 0x2);
});

test("PCIe Base §7.5.3: capability registers — version 2, device type, link x1 2.5GT/s, DevSta RW1C", () => {
  const f = plain();
  const e = new PciExpressCapability(f, { type: "endpoint", flr: true });
  assert.equal(f.configRead(e.offset, 1), 0x10);
  assert.equal(f.configRead(e.offset + 2, 2), 0x0002);
  assert.equal(f.configRead(e.offset + 0x12, 2), 0x0011);
  f.configWrite(e.offset + 8, 2, 0x28e0); // MPS code 7 is beyond the supported 256 B: discarded
  assert.equal(e.maxPayloadSize, 128);
  f.configWrite(e.offset + 8, 2, 0x2830);
  assert.equal(e.maxPayloadSize, 256);
  f.configWrite(e.offset + 8, 2, 0x7830); // MRRS code 7 is reserved: discarded
  assert.equal((e.deviceControl >> 12) & 7, 2);
  f.config.poke(e.offset + 0x0a, 2, 0x000f);
  f.configWrite(e.offset + 0x0a, 2, 0x0005);
  assert.equal(f.configRead(e.offset + 0x0a, 2), 0x000a);
  const rc = new PciExpressCapability(plain(), { type: "rc-endpoint" });
  assert.equal(rc.fn.configRead(rc.offset + 2, 2), 0x0092);
  assert.throws(() => new PciExpressCapability(plain(false), { type: "endpoint" }), code("PCI_NOT_EXPRESS"));
  assert.throws(() => new PciExpressCapability(plain(), { type: "root-port" }), code("PCI_BAD_ARGUMENT"));
});

test("PCIe Base §7.5.3 / §6.13: a root port has a type 1 header, slot, link active, and ARI Forwarding Enable", () => {
  const b = new PciFunction({ vendorId: 0x1b36, deviceId: 0x000c, classCode: 0x060400, express: true, headerType: 1 });
  const e = new PciExpressCapability(b, { type: "root-port", slot: 3, ariForwarding: true });
  assert.equal(b.configRead(e.offset + 2, 2), 0x0142);
  assert.equal(b.configRead(e.offset + 0x14, 4) >>> 19, 3);
  assert.ok((b.configRead(e.offset + 0x12, 2) & 0x2000) !== 0);
  assert.equal(e.ariForwardingEnabled, false);
  b.configWrite(e.offset + 0x28, 2, 0x20);
  assert.equal(e.ariForwardingEnabled, true);
  b.configWrite(PCI_SECONDARY_BUS - 1, 4, 0x00020100);
  assert.equal(b.configRead(PCI_SECONDARY_BUS - 1, 4), 0x00020100);
  b.configWrite(PCI_SEC_STATUS, 2, 0xffff);
  assert.equal(b.configRead(PCI_SEC_STATUS, 2), 0);
  assert.throws(() => b.defineBar(2, { kind: "mem32", size: 0x1000 }), code("PCI_BAD_BAR"));
});

test("PCI PM 1.2 §3.2.4: PowerState RW, unsupported states discarded, BARs decode only in D0", () => {
  const f = plain();
  f.defineBar(0, { kind: "mem32", size: 0x1000 });
  const pm = new PowerManagementCapability(f);
  f.configWrite(0x10, 4, 0xfe000000);
  f.configWrite(PCI_COMMAND, 2, 0x2);
  assert.equal(f.barAddress(0), 0xfe000000);
  assert.deepEqual(f.configWrite(pm.offset + 4, 2, 1), []); // D1 unsupported: discarded
  assert.equal(pm.powerState, "D0");
  assert.equal(f.configRead(pm.offset + 4, 2) & 3, 0);
  assert.deepEqual(f.configWrite(pm.offset + 4, 2, 3), [{ kind: "power-state", state: "D3hot" }]);
  assert.equal(f.barAddress(0), undefined);
  assert.deepEqual(f.configWrite(pm.offset + 4, 2, 0), [{ kind: "power-state", state: "D0" }]);
  assert.equal(f.barAddress(0), 0xfe000000); // No_Soft_Reset: state kept
  assert.equal(f.configRead(pm.offset + 4, 2) & 0x8, 0x8);
});

test("PCI PM 1.2 §5.4.1: D3hot → D0 without No_Soft_Reset resets the function", () => {
  const f = plain();
  const pm = new PowerManagementCapability(f, { noSoftReset: false });
  f.configWrite(PCI_COMMAND, 2, 0x4);
  f.configWrite(pm.offset + 4, 2, 3);
  const e = f.configWrite(pm.offset + 4, 2, 0);
  assert.deepEqual(e, [{ kind: "power-state", state: "D0" }, { kind: "function-reset", reason: "power-management" }]);
  assert.equal(f.command, 0);
  assert.equal(pm.powerState, "D0");
});

test("constructor arguments are validated with PCI_BAD_ARGUMENT", () => {
  assert.throws(() => new PciFunction({ vendorId: 0x10000, deviceId: 0, classCode: 0, express: true }), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => new PciFunction({ vendorId: 1, deviceId: 0, classCode: 0x1000000, express: true }), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => new PciFunction({ vendorId: 1, deviceId: 0, classCode: 0, express: true, interruptPin: 5 }), code("PCI_BAD_ARGUMENT"));
});

import { AriCapability } from "./ari.js";

test("PCIe Base §7.8.7: ARI Capability (Next Function Number) and ARI Control are read-only here", () => {
  const f = plain();
  const ari = new AriCapability(f, { nextFunction: 4 });
  assert.equal(f.configRead(ari.offset, 4), 0x0001000e);
  f.configWrite(ari.offset + 4, 4, 0xffffffff);
  assert.equal(f.configRead(ari.offset + 4, 4), 0x0400);
  assert.equal(ari.nextFunction, 4);
  f.reset();
  assert.equal(ari.nextFunction, 4);
  assert.throws(() => ari.setNextFunction(256), code("PCI_BAD_ARGUMENT"));
});

test("PCI PM 1.2 §3.2.4: PME_Status is RW1C and PME_En RW when PME is supported; read-only otherwise", () => {
  const f = plain();
  const pm = new PowerManagementCapability(f, { pmeSupport: 0x18 });
  assert.equal(f.configRead(pm.offset + 2, 2) >> 11, 0x18);
  f.config.poke(pm.offset + 4, 2, f.configRead(pm.offset + 4, 2) | 0x8000);
  f.configWrite(pm.offset + 4, 2, 0x0100);
  assert.equal(f.configRead(pm.offset + 4, 2), 0x8108);
  f.configWrite(pm.offset + 4, 2, 0x8000);
  assert.equal(f.configRead(pm.offset + 4, 2), 0x0008);
  const g = plain();
  const pm2 = new PowerManagementCapability(g);
  g.configWrite(pm2.offset + 4, 2, 0x8100);
  assert.equal(g.configRead(pm2.offset + 4, 2), 0x0008);
});

test("PCI-to-PCI Bridge 1.2 §3.2.5: bridge windows are RW with their type bits read-only", () => {
  const b = new PciFunction({ vendorId: 0x1b36, deviceId: 0x000c, classCode: 0x060400, express: true, headerType: 1 });
  b.configWrite(0x20, 4, 0xffffffff);
  assert.equal(b.configRead(0x20, 4), 0xfff0fff0);
  b.configWrite(0x24, 4, 0xffffffff);
  assert.equal(b.configRead(0x24, 4), 0xfff1fff1);
  b.configWrite(0x1c, 2, 0xffff);
  assert.equal(b.configRead(0x1c, 2), 0xf0f0);
  b.configWrite(0x3e, 2, 0xffff);
  assert.equal(b.configRead(0x3e, 2), 0x006f);
});
