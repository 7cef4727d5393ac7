import { test } from "node:test";
import assert from "node:assert/strict";
import { Conf1Ports, EcamWindow } from "./access.js";
import { PciBus } from "./bus.js";
import { makeExamplePf } from "./fixtures.js";
import { PCI_COMMAND } from "./regs.js";

function setup(): { bus: PciBus; pf: ReturnType<typeof makeExamplePf>["pf"]; sriovOff: number } {
  const bus = new PciBus();
  const { pf, sriov } = makeExamplePf();
  bus.attach(pf, { bus: 1, devfn: 0x08 });
  return { bus, pf, sriovOff: sriov.offset };
}

test("PCIe Base §7.2.2 (ECAM): offset = bus << 20 | devfn << 12 | register reaches the whole 4 KiB", () => {
  const { bus, pf, sriovOff } = setup();
  const ecam = new EcamWindow(bus);
  assert.equal(ecam.size, 256 << 20);
  const base = (1 << 20) | (0x08 << 12);
  assert.equal(ecam.read(base, 4), 0x10411af4);
  assert.equal(ecam.read(base + sriovOff + 0x0e, 2), 8);
  ecam.write(base + PCI_COMMAND, 2, 6);
  assert.equal(pf.command, 6);
  assert.equal(ecam.read(base + 0xffe, 4), 0xffffffff); // crosses into the next function
  assert.equal(ecam.read(ecam.size, 1), 0xff);
  assert.equal(ecam.read(0, 4), 0xffffffff); // nobody at 00:00.0
  const sub = new EcamWindow(bus, 1, 1);
  assert.equal(sub.read(0x08 << 12, 2), 0x1af4);
});

test("PCI 3.0 §3.2.2.3.2 (CF8/CFC): enable bit, bus/devfn/register latch, byte lanes of the data port", () => {
  const { bus, pf } = setup();
  const io = new Conf1Ports(bus);
  assert.equal(io.read(0xcfc, 4), 0xffffffff); // enable bit clear
  io.write(0xcf8, 4, 0x8001_0800 | 0x7f00_0003);
  assert.equal(io.read(0xcf8, 4), 0x8001_0800);
  assert.equal(io.read(0xcfc, 4), 0x10411af4);
  assert.equal(io.read(0xcfe, 2), 0x1041);
  io.write(0xcf8, 4, 0x8001_0804);
  io.write(0xcfc, 2, 6);
  assert.equal(pf.command, 6);
  assert.equal(io.read(0xcfd, 4), 0xffffffff); // runs past 0xCFF
  io.write(0xcf8, 1, 0); // not the latch
  assert.equal(io.read(0xcf8, 4), 0x8001_0804);
  assert.equal(io.claims(0xcf9), true);
  assert.equal(io.claims(0xd00), false);
});
