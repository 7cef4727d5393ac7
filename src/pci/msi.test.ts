import { test } from "node:test";
import assert from "node:assert/strict";
import { PciFunction } from "./function.js";
import { MsiCapability } from "./msi.js";
import { PciError } from "./errors.js";
import { PCI_COMMAND } from "./regs.js";

function setup(opts: ConstructorParameters<typeof MsiCapability>[1] = {}): { f: PciFunction; msi: MsiCapability; sent: [number, number][] } {
  const f = new PciFunction({ vendorId: 0x8086, deviceId: 0x10ca, classCode: 0x020000, express: true });
  const msi = new MsiCapability(f, opts);
  const sent: [number, number][] = [];
  f.setMsiSink((a, d) => sent.push([a, d]));
  f.configWrite(PCI_COMMAND, 2, 0x4);
  return { f, msi, sent };
}

test("PCI 3.0 §6.8.1.3: Message Control — Enable and Multiple Message Enable RW, capable bits RO, MME clamped to MMC", () => {
  const { f, msi } = setup({ vectors: 4, perVectorMask: true });
  assert.equal(f.configRead(msi.offset, 1), 0x05);
  assert.equal(f.configRead(msi.offset + 2, 2), 0x0184);
  f.configWrite(msi.offset + 2, 2, 0xffff);
  assert.equal(f.configRead(msi.offset + 2, 2), 0x01a5); // MME 7 clamped to MMC 2
  assert.equal(msi.enabledVectors, 4);
});

test("PCI 3.0 §6.8.1.4–§6.8.1.6: address bits 1:0 read 0; the upper address exists only when 64-bit capable", () => {
  const a = setup();
  a.f.configWrite(a.msi.offset + 4, 4, 0xfee0100f);
  a.f.configWrite(a.msi.offset + 8, 4, 0x1);
  assert.equal(a.msi.address, 0x1_fee0_100c);
  const b = setup({ address64: false });
  b.f.configWrite(b.msi.offset + 8, 2, 0x4321); // the data register in a 32-bit capability
  assert.equal(b.msi.data, 0x4321);
  assert.equal(b.f.configRead(b.msi.offset + 2, 2) & 0x80, 0);
});

test("PCI 3.0 §6.8.1.6: vector v of an enabled group replaces the low bits of Message Data", () => {
  const { f, msi, sent } = setup({ vectors: 4 });
  f.configWrite(msi.offset + 4, 4, 0xfee00000);
  f.configWrite(msi.offset + 0x0c, 2, 0x4043);
  assert.equal(msi.notify(1), "disabled");
  f.configWrite(msi.offset + 2, 2, 0x0021); // enable, 4 vectors
  assert.equal(msi.notify(2), "sent");
  assert.deepEqual(sent, [[0xfee00000, 0x4042]]);
  f.configWrite(msi.offset + 2, 2, 0x0011); // 2 vectors: vector 2 is outside the group
  assert.equal(msi.notify(2), "disabled");
  assert.throws(() => msi.notify(4), (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
});

test("PCI 3.0 §6.8.1.7, §6.8.1.8: a masked vector is pending (Pending Bits RO); unmasking sends it", () => {
  const { f, msi, sent } = setup({ vectors: 2, perVectorMask: true });
  f.configWrite(msi.offset + 4, 4, 0xfee00000);
  f.configWrite(msi.offset + 0x0c, 2, 0x30);
  f.configWrite(msi.offset + 0x10, 4, 0xffffffff);
  assert.equal(f.configRead(msi.offset + 0x10, 4), 0x3);
  f.configWrite(msi.offset + 2, 2, 0x0011);
  assert.equal(msi.notify(1), "pending");
  assert.equal(f.configRead(msi.offset + 0x14, 4), 0x2);
  f.configWrite(msi.offset + 0x14, 4, 0); // Pending Bits are read-only
  assert.equal(msi.pending(1), true);
  f.configWrite(msi.offset + 0x10, 4, 0x1);
  assert.deepEqual(sent, [[0xfee00000, 0x31]]);
  assert.equal(f.configRead(msi.offset + 0x14, 4), 0);
  f.reset();
  assert.equal(msi.enabled, false);
  assert.equal(f.configRead(msi.offset + 0x10, 4), 0);
});

test("PCI 3.0 §6.8: without Bus Master Enable an MSI waits; setting Bus Master sends it", () => {
  const { f, msi, sent } = setup();
  f.configWrite(msi.offset + 4, 4, 0xfee00000);
  f.configWrite(msi.offset + 2, 2, 0x1);
  f.configWrite(PCI_COMMAND, 2, 0);
  assert.equal(msi.notify(0), "pending");
  f.configWrite(PCI_COMMAND, 2, 0x4);
  assert.deepEqual(sent, [[0xfee00000, 0]]);
  assert.throws(() => setup({ vectors: 3 }), (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
});
