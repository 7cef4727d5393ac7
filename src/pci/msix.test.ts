import { test } from "node:test";
import assert from "node:assert/strict";
import { makeExamplePf } from "./fixtures.js";
import { PciError } from "./errors.js";
import { PciFunction } from "./function.js";
import { MsixCapability } from "./msix.js";
import { PCI_COMMAND } from "./regs.js";

function setup(): { pf: PciFunction; msix: MsixCapability; sent: [number, number][] } {
  const { pf, msix } = makeExamplePf();
  const sent: [number, number][] = [];
  pf.setMsiSink((a, d) => sent.push([a, d]));
  pf.configWrite(PCI_COMMAND, 2, 0x6);
  // Program vector 1: address 0xfee01000, data 0x41.
  pf.barWrite(4, 0x2000 + 16, 4, 0xfee01000);
  pf.barWrite(4, 0x2000 + 20, 4, 0);
  pf.barWrite(4, 0x2000 + 24, 4, 0x41);
  return { pf, msix, sent };
}

test("PCI 3.0 §6.8.2.3: Message Control — Table Size RO (N−1), Enable and Function Mask RW, BIR/offset RO", () => {
  const { pf, msix } = setup();
  const o = msix.offset;
  assert.equal(pf.configRead(o, 1), 0x11);
  pf.configWrite(o + 2, 2, 0xffff);
  assert.equal(pf.configRead(o + 2, 2), 0xc003);
  pf.configWrite(o + 4, 4, 0);
  pf.configWrite(o + 8, 4, 0);
  assert.equal(pf.configRead(o + 4, 4), 0x2004);
  assert.equal(pf.configRead(o + 8, 4), 0x3004);
});

test("PCI 3.0 §6.8.2.9: table entries reset to masked; Vector Control has only the Mask Bit writable", () => {
  const { pf } = setup();
  assert.equal(pf.barRead(4, 0x2000 + 12, 4), 1);
  assert.equal(pf.barRead(4, 0x2000 + 16, 4), 0xfee01000);
  pf.barWrite(4, 0x2000 + 12, 4, 0xfffffffe);
  assert.equal(pf.barRead(4, 0x2000 + 12, 4), 0);
  pf.barWrite(4, 0x2000 + 12, 4, 0xffffffff);
  assert.equal(pf.barRead(4, 0x2000 + 12, 4), 1);
});

test("PCI 3.0 §6.8.2: notify with MSI-X disabled sends nothing and sets nothing pending", () => {
  const { msix, sent } = setup();
  assert.equal(msix.notify(1), "disabled");
  assert.deepEqual(sent, []);
  assert.equal(msix.pending(1), false);
});

test("PCI 3.0 §6.8.2.9: a masked vector sets its pending bit; unmasking sends the message and clears it", () => {
  const { pf, msix, sent } = setup();
  pf.configWrite(msix.offset + 2, 2, 0x8000);
  assert.equal(msix.notify(1), "pending");
  assert.equal(msix.pending(1), true);
  assert.equal(pf.barRead(4, 0x3000, 4), 0b10);
  pf.barWrite(4, 0x3000, 4, 0); // the PBA is read-only
  assert.equal(msix.pending(1), true);
  pf.barWrite(4, 0x2000 + 28, 4, 0); // unmask vector 1
  assert.deepEqual(sent, [[0xfee01000, 0x41]]);
  assert.equal(msix.pending(1), false);
  assert.equal(msix.notify(1), "sent");
  assert.equal(sent.length, 2);
});

test("PCI 3.0 §6.8.2.3: Function Mask holds every vector pending; clearing it delivers them", () => {
  const { pf, msix, sent } = setup();
  pf.barWrite(4, 0x2000 + 28, 4, 0);
  pf.configWrite(msix.offset + 2, 2, 0xc000);
  assert.equal(msix.functionMasked, true);
  assert.equal(msix.notify(1), "pending");
  assert.deepEqual(sent, []);
  pf.configWrite(msix.offset + 2, 2, 0x8000);
  assert.deepEqual(sent, [[0xfee01000, 0x41]]);
  assert.equal(msix.pending(1), false);
});

test("PCI 3.0 §6.8: without Bus Master Enable no message leaves; setting it releases pending ones", () => {
  const { pf, msix, sent } = setup();
  pf.barWrite(4, 0x2000 + 28, 4, 0);
  pf.configWrite(msix.offset + 2, 2, 0x8000);
  pf.configWrite(PCI_COMMAND, 2, 0x2);
  assert.equal(msix.notify(1), "pending");
  assert.deepEqual(sent, []);
  pf.configWrite(PCI_COMMAND, 2, 0x6);
  assert.deepEqual(sent, [[0xfee01000, 0x41]]);
});

test("PCIe Base §6.6.2: a function reset masks every vector again and clears the PBA", () => {
  const { pf, msix } = setup();
  pf.configWrite(msix.offset + 2, 2, 0x8000);
  msix.notify(2);
  pf.reset();
  assert.equal(msix.enabled, false);
  assert.equal(msix.pending(2), false);
  assert.deepEqual(msix.entry(1), { address: 0, data: 0, masked: true });
});

test("MSI-X layout errors: vector range, missing BAR, table overlapping PBA", () => {
  const { msix } = setup();
  assert.throws(() => msix.notify(4), (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
  const f = new PciFunction({ vendorId: 1, deviceId: 1, classCode: 0, express: true });
  assert.throws(() => new MsixCapability(f, { vectors: 4, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }),
    (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_REGION");
  f.defineBar(0, { kind: "mem32", size: 0x1000 });
  assert.throws(() => new MsixCapability(f, { vectors: 4, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x20 }),
    (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_REGION");
  assert.throws(() => new MsixCapability(f, { vectors: 4096, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x800 }),
    (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
});
