/**
 * Linux's drivers/pci/iov.c, replayed as configuration cycles against the bus (pci-sriov.md §8):
 * the model must accept exactly what the kernel writes, in the order it writes it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PciBus } from "./bus.js";
import { EcamWindow } from "./access.js";
import { makeExamplePf } from "./fixtures.js";
import type { PciEffect, PciFunction } from "./function.js";
import { PCI_COMMAND, PCI_EXT_CAP_ID_SRIOV } from "./regs.js";

const PAGE_SIZE = 4096;

test("Linux sriov_init + sriov_enable(4) + sriov_disable through ECAM (pci-sriov.md §8)", () => {
  const bus = new PciBus();
  const { pf } = makeExamplePf();
  const log: PciEffect[] = [];
  const wired = new Set<PciFunction>();
  bus.onEffects((fn, _rid, effects) => {
    log.push(...effects);
    for (const e of effects) {
      if (e.kind === "vfs-enabled") {
        const vfs = bus.attachEnabledVfs(fn, { classCode: 0x020000, revision: 1 });
        // The vmm wires each VF's device registers (here one doorbell at offset 0 of VF BAR 0).
        vfs.forEach((vf, i) => {
          if (wired.has(vf)) return; // VF instances are reused across enables
          vf.mapBarRegion(0, 0, 4, { read: () => 0xcafe0000 + i, write: () => undefined });
          wired.add(vf);
        });
      } else if (e.kind === "vfs-disabled") {
        bus.detachVfs(fn);
      }
    }
  });
  bus.attach(pf, { bus: 1, device: 0, function: 0 });
  const ecam = new EcamWindow(bus);
  const pfBase = 1 << 20;
  const rd = (off: number, w: 1 | 2 | 4): number => ecam.read(pfBase + off, w);
  const wr = (off: number, w: 1 | 2 | 4, v: number): void => ecam.write(pfBase + off, w, v);

  // pci_find_ext_capability: walk the extended list from 0x100 (bounded, as the kernel does).
  let pos = 0x100;
  let sriov = 0;
  for (let ttl = 0; ttl < 480 && pos >= 0x100; ttl++) {
    const hdr = rd(pos, 4);
    if ((hdr & 0xffff) === PCI_EXT_CAP_ID_SRIOV) {
      sriov = pos;
      break;
    }
    pos = hdr >>> 20;
  }
  assert.ok(sriov >= 0x100);

  // sriov_init: VF Enable clear, ARI Capable Hierarchy (ARI forwarding above), TotalVFs.
  assert.equal(rd(sriov + 0x08, 2) & 1, 0);
  wr(sriov + 0x08, 2, 0x10);
  const total = rd(sriov + 0x0e, 2);
  assert.equal(total, 8);
  assert.equal(rd(sriov + 0x0c, 2), total); // InitialVFs == TotalVFs (no VF Migration)
  // Page size: the smallest supported size >= PAGE_SIZE.
  const pgsz = rd(sriov + 0x1c, 4) & ~(PAGE_SIZE / 4096 - 1);
  assert.ok(pgsz !== 0);
  wr(sriov + 0x20, 4, pgsz & -pgsz);
  // __pci_read_base on each VF BAR: save, write ones, read, restore.
  const sizes: number[] = [];
  for (let i = 0; i < 6; i++) {
    const at = sriov + 0x24 + 4 * i;
    const orig = rd(at, 4);
    wr(at, 4, 0xffffffff);
    const mask = rd(at, 4);
    wr(at, 4, orig);
    if (mask === 0) continue;
    let size = 0x1_0000_0000 - ((mask & ~0xf) >>> 0);
    if ((mask & 0x6) === 0x4) {
      const hiOrig = rd(at + 4, 4);
      wr(at + 4, 4, 0xffffffff);
      const hi = rd(at + 4, 4);
      wr(at + 4, 4, hiOrig);
      // 64-bit: size = 2^64 − (hi:lo mask); below 4 GiB the upper dword reads all ones.
      size = (0xffffffff - hi) * 0x1_0000_0000 + size;
      i++;
    }
    assert.equal(size % PAGE_SIZE, 0, "VF BAR must be a multiple of PAGE_SIZE");
    sizes.push(size);
  }
  assert.deepEqual(sizes, [0x4000]);
  // compute_max_vf_buses: NumVFs = TotalVFs down to 1, re-reading offset and stride.
  for (let nr = total; nr >= 1; nr--) {
    wr(sriov + 0x10, 2, nr);
    const offset = rd(sriov + 0x14, 2), stride = rd(sriov + 0x16, 2);
    assert.ok(offset !== 0 && (nr === 1 || stride !== 0));
  }
  wr(sriov + 0x10, 2, 0);
  // Resource assignment: VF BAR 0 gets size × TotalVFs at 0x8_0000_0000.
  wr(sriov + 0x24, 4, 0x0000000c);
  wr(sriov + 0x28, 4, 0x8);

  // sriov_enable(4): pci_iov_set_numvfs, re-read offset/stride, then VFE | MSE.
  wr(sriov + 0x10, 2, 4);
  const offset = rd(sriov + 0x14, 2), stride = rd(sriov + 0x16, 2);
  assert.deepEqual(log, []);
  wr(sriov + 0x08, 2, rd(sriov + 0x08, 2) | 0x1 | 0x8);
  assert.deepEqual(log, [{ kind: "vfs-enabled", numVfs: 4 }]);
  // pci_iov_add_virtfn for each VF: config at PF RID + offset + i × stride.
  for (let i = 0; i < 4; i++) {
    const rid = 0x0100 + offset + i * stride;
    const base = rid << 12;
    assert.equal(ecam.read(base, 4), 0xffffffff); // Vendor/Device read 0xFFFF
    assert.equal(ecam.read(base + 8, 4) >>> 8, 0x020000);
    assert.equal(ecam.read(base + 0x10, 4), 0); // a VF's own BARs read 0
    ecam.write(base + PCI_COMMAND, 2, 0x6); // pci_enable_device + pci_set_master
    assert.equal(bus.mmioRead(0x8_0000_0000 + i * 0x4000, 4), 0xcafe0000 + i);
  }
  assert.equal(ecam.read((0x0100 + offset + 4 * stride) << 12, 4), 0xffffffff); // no VF 5

  // Writing another NumVFs while enabled is ignored by the device (Linux returns -EBUSY first).
  wr(sriov + 0x10, 2, 2);
  assert.equal(rd(sriov + 0x10, 2), 4);

  // sriov_disable: clear VFE | MSE, then NumVFs = 0.
  wr(sriov + 0x08, 2, rd(sriov + 0x08, 2) & ~(0x1 | 0x8));
  wr(sriov + 0x10, 2, 0);
  assert.deepEqual(log, [{ kind: "vfs-enabled", numVfs: 4 }, { kind: "vfs-disabled", numVfs: 4 }]);
  assert.equal(ecam.read((0x0100 + offset) << 12, 4), 0xffffffff);
  assert.equal(bus.mmioRead(0x8_0000_0000, 4), 0xffffffff);
  assert.deepEqual(bus.functions().map((f) => f.rid), [0x0100]);

  // Enable again with 8: the same VF instances come back, reset.
  wr(sriov + 0x10, 2, 8);
  wr(sriov + 0x08, 2, rd(sriov + 0x08, 2) | 0x9);
  assert.equal(bus.functions().length, 9);
  assert.equal(ecam.read(((0x0100 + offset) << 12) + PCI_COMMAND, 2), 0);
});
