import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigSpace, allOnes } from "./config-space.js";
import { PciError } from "./errors.js";

test("PCI 3.0 §6.1: configuration space is 256 bytes, PCIe Base §7.2.2: 4096 bytes; nothing else", () => {
  assert.equal(new ConfigSpace(256).size, 256);
  assert.equal(new ConfigSpace(4096).size, 4096);
  assert.throws(() => new ConfigSpace(512), (e: unknown) => e instanceof PciError && e.code === "PCI_BAD_ARGUMENT");
});

test("PCI 3.0 §6.1: reads of 1, 2 and 4 bytes at any alignment are little-endian", () => {
  const c = new ConfigSpace(256);
  c.setU32(0x40, 0x44332211);
  c.setU32(0x44, 0x88776655);
  assert.equal(c.read(0x40, 4), 0x44332211);
  assert.equal(c.read(0x41, 4), 0x55443322);
  assert.equal(c.read(0x43, 2), 0x5544);
  assert.equal(c.read(0x47, 1), 0x88);
  assert.equal(c.read(0x42, 4), 0x66554433);
});

test("PCIe Base §2.3.2: an access outside the space reads all ones and a write there is dropped", () => {
  const c = new ConfigSpace(256);
  c.setWmask(0xfc, 4, 0xffffffff);
  assert.equal(c.read(0xfe, 4), 0xffffffff);
  assert.equal(c.read(256, 1), 0xff);
  assert.equal(c.read(-1, 2), 0xffff);
  assert.equal(c.read(1.5, 4), 0xffffffff);
  assert.equal(c.write(0xfe, 4, 0x12345678), false);
  assert.equal(c.read(0xfc, 4), 0);
  assert.equal(allOnes(1), 0xff);
});

test("QEMU pci_default_write_config: cfg = (cfg & ~w) | (v & w); cfg &= ~(v & w1c)", () => {
  const c = new ConfigSpace(256);
  c.setU16(0x40, 0xf00f);
  c.setWmask(0x40, 2, 0x00f0); // bits 7:4 RW
  c.setW1c(0x40, 2, 0xf000); // bits 15:12 RW1C
  c.write(0x40, 2, 0x0fff); // RW bits to 1, RO bits ignored, no w1c bit written
  assert.equal(c.read(0x40, 2), 0xf0ff);
  c.write(0x40, 2, 0x3000); // clears two RW1C bits, RW bits go to 0
  assert.equal(c.read(0x40, 2), 0xc00f);
  c.write(0x41, 1, 0xff); // clears the rest; byte writes apply masks of that byte only
  assert.equal(c.read(0x40, 2), 0x000f);
});

test("reset image: init-time setters are restored, run-time pokes are not kept", () => {
  const c = new ConfigSpace(256);
  c.setU8(0x50, 0x12);
  c.setWmask(0x50, 1, 0xff);
  c.write(0x50, 1, 0x34);
  c.poke(0x51, 1, 0x99);
  c.pokeWmask(0x50, 1, 0);
  assert.equal(c.wmask(0x50, 1), 0);
  c.restore();
  assert.equal(c.read(0x50, 2), 0x0012);
  assert.equal(c.wmask(0x50, 1), 0xff);
});

test("capability map: claimed bytes cannot be claimed twice", () => {
  const c = new ConfigSpace(256);
  assert.equal(c.claim(0x40, 8), true);
  assert.equal(c.claim(0x44, 8), false);
  assert.equal(c.claim(0x48, 8), true);
  assert.equal(c.claim(0xfc, 8), false);
  assert.equal(c.isUsed(0x4f), true);
  assert.equal(c.isUsed(0x50), false);
});

test("writes coerce values: negative and fractional numbers store their low 32 bits; NaN stores 0", () => {
  const c = new ConfigSpace(256);
  c.setWmask(0x40, 4, 0xffffffff);
  c.write(0x40, 4, -1);
  assert.equal(c.read(0x40, 4), 0xffffffff);
  c.write(0x40, 4, Number.NaN);
  assert.equal(c.read(0x40, 4), 0);
  c.write(0x40, 4, 2 ** 40 + 5);
  assert.equal(c.read(0x40, 4), 5);
});
