import { test } from "node:test";
import assert from "node:assert/strict";
import { PciBus, routingId, ridBus, ridDevfn, devfnDevice, devfnFunction, formatBdf } from "./bus.js";
import { PciError } from "./errors.js";
import { PciFunction, type PciEffect } from "./function.js";
import { makeExamplePf } from "./fixtures.js";
import { AriCapability } from "./ari.js";
import { SriovCapability, PCI_SRIOV_BAR, PCI_SRIOV_CTRL, PCI_SRIOV_NUM_VF } from "./sriov.js";
import { PCI_COMMAND } from "./regs.js";

const code = (c: string) => (e: unknown): boolean => e instanceof PciError && e.code === c;
const plain = (): PciFunction => new PciFunction({ vendorId: 0x8086, deviceId: 0x100e, classCode: 0x020000, express: true });

test("PCIe Base §2.2.6.2: routing IDs are 16 bits — bus = rid >> 8, devfn = rid & 0xff, device = devfn >> 3", () => {
  assert.equal(routingId(3, 0x11), 0x0311);
  assert.equal(ridBus(0x0311), 3);
  assert.equal(ridDevfn(0x0311), 0x11);
  assert.equal(devfnDevice(0x11), 2);
  assert.equal(devfnFunction(0x11), 1);
  assert.equal(formatBdf(0x0311), "03:02.1");
});

test("PCIe Base §2.3.2: config reads of an absent function return all ones; writes are dropped", () => {
  const bus = new PciBus();
  assert.equal(bus.configRead(0, 8, 0, 4), 0xffffffff);
  assert.equal(bus.configRead(0, 8, 0, 2), 0xffff);
  assert.equal(bus.configRead(0, 8, 0, 1), 0xff);
  assert.deepEqual(bus.configWrite(0, 8, 4, 2, 6), []);
  const f = plain();
  bus.attach(f, { bus: 0, device: 1, function: 0 });
  assert.equal(bus.configRead(0, 8, 0, 4), 0x100e8086);
  bus.configWrite(0, 8, PCI_COMMAND, 2, 6);
  assert.equal(f.command, 6);
  bus.detach(f);
  assert.equal(bus.configRead(0, 8, 0, 4), 0xffffffff);
  assert.equal(bus.configRead(300, 8, 0, 4), 0xffffffff);
});

test("bus addresses: one function per routing ID; a function attaches once; detach needs attach", () => {
  const bus = new PciBus();
  const a = plain(), b = plain();
  assert.equal(bus.attach(a, { bus: 1, devfn: 0x10 }), 0x0110);
  assert.throws(() => bus.attach(b, { bus: 1, device: 2, function: 0 }), code("PCI_ADDRESS_IN_USE"));
  assert.throws(() => bus.attach(a, { bus: 1, devfn: 0x11 }), code("PCI_ADDRESS_IN_USE"));
  assert.throws(() => bus.attach(b, { bus: 1, device: 32, function: 0 }), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => bus.attach(b, { bus: 256, devfn: 0 }), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => bus.detach(b), code("PCI_NOT_ATTACHED"));
  assert.equal(bus.functionAt(1, 0x10), a);
  assert.equal(bus.ridOf(a), 0x0110);
  assert.deepEqual(bus.functions().map((x) => x.rid), [0x0110]);
});

test("PCIe Base §6.13: function numbers above 7 only with ARI, on device 0", () => {
  const bus = new PciBus();
  assert.throws(() => bus.attach(plain(), { bus: 0, device: 0, function: 9 }), code("PCI_NEEDS_ARI"));
  const f = plain();
  new AriCapability(f);
  assert.throws(() => bus.attach(f, { bus: 0, device: 1, function: 9 }), code("PCI_BAD_ARGUMENT"));
  assert.equal(bus.attach(f, { bus: 0, device: 0, function: 9 }), 9);
});

test("SR-IOV §2.1.2 / QEMU 'VF addr overflows': a PF whose last VF would leave the bus is refused", () => {
  const bus = new PciBus();
  const { pf } = makeExamplePf({ totalVfs: 8, firstVfOffset: 1, vfStride: 1 });
  assert.throws(() => bus.attach(pf, { bus: 2, devfn: 0xf8 }), code("PCI_VF_OFF_BUS"));
  assert.equal(bus.attach(pf, { bus: 2, devfn: 0xf0 }), 0x02f0);
});

test("SR-IOV §2.1.2 / PCIe §6.13: VFs beyond function 7 of the PF's device need ARI on the PF", () => {
  const bus = new PciBus();
  const pf = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0x020000, express: true });
  new SriovCapability(pf, { totalVfs: 8, firstVfOffset: 1, vfStride: 1, vfDeviceId: 3 });
  assert.throws(() => bus.attach(pf, { bus: 0, devfn: 0 }), code("PCI_NEEDS_ARI"));
  const pf7 = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0x020000, express: true });
  new SriovCapability(pf7, { totalVfs: 7, firstVfOffset: 1, vfStride: 1, vfDeviceId: 3 });
  bus.attach(pf7, { bus: 0, devfn: 0 });
});

test("VF n lives at PF RID + offset + (n−1) × stride; disabled VFs read all ones; the vmm attaches them on the effect", () => {
  const bus = new PciBus();
  const { pf, sriov } = makeExamplePf({ firstVfOffset: 2, vfStride: 2 });
  const seen: { rid: number; effects: readonly PciEffect[] }[] = [];
  bus.onEffects((fn, rid, effects) => {
    seen.push({ rid, effects });
    for (const e of effects) {
      if (e.kind === "vfs-enabled") bus.attachEnabledVfs(fn, { classCode: 0x020000 });
      if (e.kind === "vfs-disabled") bus.detachVfs(fn);
    }
  });
  bus.attach(pf, { bus: 1, devfn: 0 });
  assert.equal(bus.vfRoutingId(pf, 3), 0x0106);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_NUM_VF, 2, 3);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_CTRL, 2, 1);
  assert.deepEqual(seen, [{ rid: 0x0100, effects: [{ kind: "vfs-enabled", numVfs: 3 }] }]);
  assert.deepEqual(bus.functions().map((f) => f.rid), [0x0100, 0x0102, 0x0104, 0x0106]);
  assert.equal(bus.configRead(1, 6, 0, 4), 0xffffffff); // VF Device/Vendor ID read 0xFFFF (SR-IOV §3.4.1.1)
  assert.equal(bus.configRead(1, 6, 8, 4) >>> 8, 0x020000);
  assert.equal(bus.configRead(1, 8, 8, 4), 0xffffffff); // no VF 4
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_CTRL, 2, 0);
  assert.deepEqual(bus.functions().map((f) => f.rid), [0x0100]);
  // A VF attached while its PF has it disabled is on the bus but answers nothing (QEMU 10 keeps VFs realized).
  const vf1 = sriov.vfFunction(1, { classCode: 0x020000 });
  bus.attachVf(vf1);
  assert.equal(bus.configRead(1, 2, 8, 4), 0xffffffff);
  bus.configWrite(1, 2, PCI_COMMAND, 2, 6);
  assert.equal(vf1.command, 0);
  const vf2 = sriov.vfFunction(2, { classCode: 0x020000 });
  assert.throws(() => bus.attach(vf2, { bus: 1, devfn: 5 }), code("PCI_BAD_ARGUMENT"));
  const other = new PciBus();
  assert.throws(() => other.attachVf(vf2), code("PCI_NOT_ATTACHED"));
});

test("MMIO is routed to the memory BAR that decodes it; unclaimed reads are all ones", () => {
  const bus = new PciBus();
  const f = plain();
  f.defineBar(0, { kind: "mem32", size: 0x1000 });
  let last = 0;
  f.mapBarRegion(0, 0x10, 4, { read: () => 0xabcd1234, write: (_o, _w, v) => { last = v; } });
  bus.attach(f, { bus: 0, devfn: 8 });
  bus.configWrite(0, 8, 0x10, 4, 0xfebf0000);
  assert.equal(bus.mmioRead(0xfebf0010, 4), 0xffffffff); // Memory Space disabled
  bus.configWrite(0, 8, PCI_COMMAND, 2, 2);
  assert.equal(bus.mmioRead(0xfebf0010, 4), 0xabcd1234);
  assert.equal(bus.mmioRead(0xfebf0020, 4), 0); // inside the BAR, outside any window
  assert.equal(bus.mmioRead(0xfebf1000, 4), 0xffffffff);
  assert.equal(bus.mmioRead(0xfebf0ffe, 4), 0xffffffff); // straddles the BAR's end
  bus.mmioWrite(0xfebf0010, 2, 0x5678);
  assert.equal(last, 0x5678);
  bus.configWrite(0, 8, 0x10, 4, 0xfebe0000); // the BAR moves
  assert.equal(bus.mmioRead(0xfebf0010, 4), 0xffffffff);
  assert.equal(bus.mmioRead(0xfebe0010, 4), 0xabcd1234);
  assert.deepEqual(bus.resolveMmio(0xfebe0010), { fn: f, bar: 0, offset: 0x10 });
});

test("MMIO reaches VFs at VF BAR + index × size, gated by each VF's own Memory bit and by VF Enable", () => {
  const bus = new PciBus();
  const { pf, sriov } = makeExamplePf();
  bus.attach(pf, { bus: 1, devfn: 0 });
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_BAR, 4, 0xd0000000);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_NUM_VF, 2, 2);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_CTRL, 2, 1);
  const vfs = bus.attachEnabledVfs(pf, { classCode: 0x020000 });
  vfs.forEach((vf, i) => vf.mapBarRegion(0, 0, 4, { read: () => 0x100 + i, write: () => undefined }));
  assert.equal(bus.mmioRead(0xd0004000, 4), 0xffffffff);
  bus.configWrite(1, 2, PCI_COMMAND, 2, 2);
  assert.equal(bus.mmioRead(0xd0004000, 4), 0x101);
  assert.equal(bus.mmioRead(0xd0000000, 4), 0xffffffff);
  bus.configWrite(1, 1, PCI_COMMAND, 2, 2);
  assert.equal(bus.mmioRead(0xd0000000, 4), 0x100);
  bus.configWrite(1, 0, sriov.offset + PCI_SRIOV_CTRL, 2, 0);
  assert.equal(bus.mmioRead(0xd0000000, 4), 0xffffffff);
});

test("I/O BARs answer port accesses when Command I/O is set", () => {
  const bus = new PciBus();
  const f = plain();
  f.defineBar(0, { kind: "io", size: 32 });
  f.mapBarRegion(0, 0, 32, { read: (o) => o, write: () => undefined });
  bus.attach(f, { bus: 0, devfn: 8 });
  bus.configWrite(0, 8, 0x10, 4, 0xc040);
  assert.equal(bus.ioRead(0xc044, 1), 0xff);
  bus.configWrite(0, 8, PCI_COMMAND, 2, 1);
  assert.equal(bus.ioRead(0xc044, 1), 4);
});

test("MSI messages of attached functions reach the platform's handler", () => {
  const bus = new PciBus();
  const got: [number, number][] = [];
  bus.onMsi((a, d) => got.push([a, d]));
  const { pf } = makeExamplePf();
  bus.attach(pf, { bus: 0, devfn: 0x20 });
  pf.configWrite(PCI_COMMAND, 2, 4);
  assert.equal(pf.sendMsi(0xfee00000, 0x30), true);
  assert.deepEqual(got, [[0xfee00000, 0x30]]);
  bus.detach(pf);
  assert.equal(pf.sendMsi(0xfee00000, 0x31), false);
});

test("QEMU pci_set_enabled: a disabled function reads all ones, drops writes, decodes no BAR, and comes back reset", () => {
  const bus = new PciBus();
  const f = plain();
  f.defineBar(0, { kind: "mem32", size: 0x1000 });
  f.mapBarRegion(0, 0, 4, { read: () => 7, write: () => undefined });
  bus.attach(f, { bus: 0, devfn: 8 });
  bus.configWrite(0, 8, 0x10, 4, 0xfeb00000);
  bus.configWrite(0, 8, PCI_COMMAND, 2, 2);
  assert.equal(bus.mmioRead(0xfeb00000, 4), 7);
  f.setEnabled(false);
  assert.equal(f.present, false);
  assert.equal(bus.configRead(0, 8, 0, 4), 0xffffffff);
  bus.configWrite(0, 8, PCI_COMMAND, 2, 6);
  assert.equal(bus.mmioRead(0xfeb00000, 4), 0xffffffff);
  f.setEnabled(true);
  assert.equal(bus.configRead(0, 8, 0, 4), 0x100e8086);
  assert.equal(f.command, 0);
  assert.equal(f.barAddress(0), undefined);
});
