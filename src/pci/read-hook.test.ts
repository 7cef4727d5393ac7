import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { PciFunction } from "./function.js";
import { PciBus } from "./bus.js";
import { EcamWindow } from "./access.js";
import { PciError } from "./errors.js";
import { makeExamplePf } from "./fixtures.js";
import { PCI_CAP_ID_VNDR } from "./regs.js";
import type { AccessWidth } from "./platform.js";

const code = (c: string) => (e: unknown): boolean => e instanceof PciError && e.code === c;

/**
 * A vendor-specific capability (PCI 3.0 §6.7, id 0x09) with an 8-byte body whose bytes 4..7 are
 * a live counter: each read touching them stores the next value first, as a register that
 * reflects device state at the moment of the read.
 */
function counterFunction(): { fn: PciFunction; at: number; calls: { offset: number; width: number }[] } {
  const fn = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, express: true });
  const at = fn.addCapability(PCI_CAP_ID_VNDR, 8);
  fn.config.setU8(at + 2, 8);
  fn.config.setU8(at + 3, 0xaa);
  const calls: { offset: number; width: number }[] = [];
  let counter = 0x11223344;
  fn.onConfigRead(at + 4, 4, (offset, width) => {
    calls.push({ offset, width });
    counter = (counter + 1) >>> 0;
    fn.config.poke(at + 4, 4, counter);
  });
  return { fn, at, calls };
}

test("PCI 3.0 §6.1: a read of a hooked register returns the value the capability supplies at read time", () => {
  const { fn, at, calls } = counterFunction();
  assert.equal(fn.configRead(at + 4, 4), 0x11223345);
  assert.equal(fn.configRead(at + 4, 4), 0x11223346);
  assert.deepEqual(calls, [{ offset: at + 4, width: 4 }, { offset: at + 4, width: 4 }]);
});

test("PCI 3.0 §6.1: reads that do not touch the hooked bytes never run the hook", () => {
  const { fn, at, calls } = counterFunction();
  assert.equal(fn.configRead(0, 4), 0x10411af4);
  assert.equal(fn.configRead(at, 4) & 0xff, PCI_CAP_ID_VNDR);
  assert.equal(fn.configRead(at + 3, 1), 0xaa);
  assert.equal(fn.configRead(at + 8, 4), 0);
  assert.deepEqual(calls, []);
});

test("PCI 3.0 §6.1: a read spanning hooked and plain bytes assembles both, little-endian", () => {
  const { fn, at, calls } = counterFunction();
  // Bytes at+2..at+5: cap_len 8, 0xaa, then the low two counter bytes (0x3345).
  assert.equal(fn.configRead(at + 2, 4), 0x3345aa08);
  assert.deepEqual(calls, [{ offset: at + 2, width: 4 }]);
  // One byte of the counter: the hook sees the access as the guest made it.
  assert.equal(fn.configRead(at + 7, 1), 0x11);
  assert.deepEqual(calls[1], { offset: at + 7, width: 1 });
});

test("PCI 3.0 §6.1: an out-of-range or malformed read answers all ones without running hooks", () => {
  const { fn, calls } = counterFunction();
  assert.equal(fn.configRead(4096, 4), 0xffffffff);
  assert.equal(fn.configRead(4094, 4), 0xffffffff);
  assert.equal(fn.configRead(-1, 1), 0xff);
  assert.equal(fn.configRead(Number.NaN, 2), 0xffff);
  assert.equal(fn.configRead(0x40, 3 as AccessWidth), 0xffffffff);
  assert.deepEqual(calls, []);
});

test("read hooks: writes do not run them; a function-level reset keeps them (they are wiring, not registers)", () => {
  const { fn, at, calls } = counterFunction();
  fn.configWrite(at + 4, 4, 0xdeadbeef);
  assert.deepEqual(calls, []);
  fn.reset();
  assert.equal(fn.configRead(at + 4, 2), 0x3345);
  assert.equal(calls.length, 1);
});

test("PCIe Base §2.3.2: reads through the bus and ECAM run the hook; an absent function answers all ones without it", () => {
  const { fn, at, calls } = counterFunction();
  const bus = new PciBus();
  bus.attach(fn, { bus: 2, devfn: 0 });
  assert.equal(bus.configRead(2, 0, at + 4, 4), 0x11223345);
  const ecam = new EcamWindow(bus);
  assert.equal(ecam.read((2 << 20) + at + 4, 4), 0x11223346);
  assert.equal(calls.length, 2);
  fn.setEnabled(false);
  assert.equal(bus.configRead(2, 0, at + 4, 4), 0xffffffff);
  assert.equal(calls.length, 2);
});

test("read hooks: a range outside the configuration space is refused with PCI_BAD_ARGUMENT", () => {
  const fn = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, express: false });
  assert.throws(() => fn.onConfigRead(0xfc, 8, () => undefined), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => fn.onConfigRead(-4, 4, () => undefined), code("PCI_BAD_ARGUMENT"));
  assert.throws(() => fn.onConfigRead(0x40, 0, () => undefined), code("PCI_BAD_ARGUMENT"));
});

test("read hooks: a function without hooks reads exactly what the generic register read gives (fast path)", () => {
  const { pf } = makeExamplePf();
  fc.assert(
    fc.property(fc.integer({ min: -8, max: 4100 }), fc.constantFrom<AccessWidth>(1, 2, 4), (off, w) => {
      assert.equal(pf.configRead(off, w), pf.config.read(off, w));
    }),
    { numRuns: 300 },
  );
});

test("PCI 3.0 §6.1: with several hooks, each runs only for reads touching its own bytes", () => {
  const fn = new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, express: true });
  const seen: string[] = [];
  fn.onConfigRead(0x100, 4, (o, w) => seen.push(`a ${o.toString(16)}/${w}`));
  fn.onConfigRead(0x40, 2, (o, w) => seen.push(`b ${o.toString(16)}/${w}`));
  fn.onConfigRead(0xffc, 4, (o, w) => seen.push(`c ${o.toString(16)}/${w}`));
  fn.configRead(0x80, 4); // between the hooks: none
  fn.configRead(0x3e, 4); // overlaps b's first two bytes
  fn.configRead(0x103, 1);
  fn.configRead(0xffe, 2);
  fn.configRead(0x42, 2); // just after b
  fn.configRead(0x0, 4); // the header
  assert.deepEqual(seen, ["b 3e/4", "a 103/1", "c ffe/2"]);
});
