import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { makeExamplePf } from "./fixtures.js";
import { PciBus } from "./bus.js";
import type { AccessWidth } from "./platform.js";
import { PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_BAR } from "./sriov.js";

interface Write {
  offset: number;
  width: number;
  value: number;
}

/** Offsets anywhere, but biased to the registers where the rules live. */
function writes(sriovOff: number, expressOff: number, msixOff: number): fc.Arbitrary<Write[]> {
  const offset = fc.oneof(
    fc.integer({ min: 0, max: 4095 }),
    fc.integer({ min: 0, max: 0x3f }),
    fc.integer({ min: sriovOff, max: sriovOff + 0x3f }),
    fc.constantFrom(sriovOff + PCI_SRIOV_CTRL, sriovOff + PCI_SRIOV_NUM_VF, sriovOff + PCI_SRIOV_SYS_PGSIZE, sriovOff + PCI_SRIOV_BAR,
      expressOff + 8, msixOff + 2, 4, 6),
    fc.integer({ min: -8, max: 4100 }),
  );
  const width = fc.oneof(fc.constantFrom(1, 2, 4), fc.integer({ min: -1, max: 8 }));
  const value = fc.oneof(
    fc.integer({ min: 0, max: 0xffffffff }),
    fc.constantFrom(0, 0xffffffff, PCI_SRIOV_CTRL_VFE, 0x19, 0x8000, 8, 9, 0xffff),
    fc.integer({ min: 0, max: 16 }),
    fc.double(),
  );
  return fc.array(fc.record({ offset, width, value }), { maxLength: 60 });
}

const { pf: proto, sriov: protoSriov, express: protoExp, msix: protoMsix } = makeExamplePf();
const OFF = { sriov: protoSriov.offset, express: protoExp.offset, msix: protoMsix.offset };
const powerOn = proto.config.bytes();
const wmask: number[] = [], w1c: number[] = [];
for (let i = 0; i < 4096; i++) {
  wmask.push(proto.config.wmask(i, 1));
  w1c.push(proto.config.w1cMask(i, 1));
}

test("property (issue 2 item 6): random writes never change a read-only bit, never set a RW1C bit, never throw", () => {
  fc.assert(
    fc.property(writes(OFF.sriov, OFF.express, OFF.msix), (ws) => {
      const { pf } = makeExamplePf();
      for (const w of ws) pf.configWrite(w.offset, w.width as AccessWidth, w.value);
      const now = pf.config.bytes();
      for (let i = 0; i < 4096; i++) {
        const ro = ~(wmask[i] ?? 0) & ~(w1c[i] ?? 0) & 0xff;
        // Bits that are neither writable nor RW1C at power-on keep their value; RW1C bits, which
        // start clear and are never raised here, stay clear.
        if ((((now[i] ?? 0) ^ (powerOn[i] ?? 0)) & ro) !== 0) return false;
        if (((now[i] ?? 0) & (w1c[i] ?? 0)) !== 0) return false;
      }
      return true;
    }),
    { numRuns: 300, seed: 0x5eed },
  );
});

test("property (issue 2 item 6): VFs are never enabled while NumVFs > TotalVFs, and NumVFs never changes while enabled", () => {
  fc.assert(
    fc.property(writes(OFF.sriov, OFF.express, OFF.msix), (ws) => {
      const { pf, sriov } = makeExamplePf();
      for (const w of ws) {
        const wasEnabled = sriov.vfEnabled;
        const numBefore = sriov.numVfs;
        const effects = pf.configWrite(w.offset, w.width as AccessWidth, w.value);
        const ctrl = pf.configRead(sriov.offset + PCI_SRIOV_CTRL, 2);
        if ((ctrl & PCI_SRIOV_CTRL_VFE) !== 0 && sriov.numVfs > sriov.totalVfs) return false;
        if (sriov.vfEnabled !== ((ctrl & PCI_SRIOV_CTRL_VFE) !== 0)) return false;
        if (sriov.vfEnabled && sriov.enabledVfs > sriov.totalVfs) return false;
        // A function-level reset (FLR) legitimately returns NumVFs to 0, with VFs disabled.
        const reset = effects.some((e) => e.kind === "function-reset");
        if (wasEnabled && !reset && sriov.numVfs !== numBefore) return false;
        if (wasEnabled && sriov.vfEnabled && sriov.numVfs !== numBefore) return false;
      }
      return true;
    }),
    { numRuns: 300, seed: 0x5eed + 1 },
  );
});

test("property: effects report every VF Enable edge exactly once, with the count that was enabled", () => {
  fc.assert(
    fc.property(writes(OFF.sriov, OFF.express, OFF.msix), (ws) => {
      const { pf, sriov } = makeExamplePf();
      let enabled = 0; // VFs the owner believes exist
      let on = false;
      for (const w of ws) {
        for (const e of pf.configWrite(w.offset, w.width as AccessWidth, w.value)) {
          if (e.kind === "vfs-enabled") {
            if (on) return false;
            on = true;
            enabled = e.numVfs;
          } else if (e.kind === "vfs-disabled") {
            if (!on || e.numVfs !== enabled) return false;
            on = false;
            enabled = 0;
          }
        }
        if (on !== sriov.vfEnabled || enabled !== sriov.enabledVfs) return false;
      }
      return true;
    }),
    { numRuns: 300, seed: 0x5eed + 2 },
  );
});

test("property: bus config cycles and MMIO at any address, width and value never throw", () => {
  const { pf, sriov } = makeExamplePf();
  const bus = new PciBus();
  bus.attach(pf, { bus: 0, devfn: 0 });
  bus.onEffects((fn, _rid, effects) => {
    for (const e of effects) {
      if (e.kind === "vfs-enabled") bus.attachEnabledVfs(fn, { classCode: 0x020000 });
      else if (e.kind === "vfs-disabled") bus.detachVfs(fn);
    }
  });
  const op = fc.record({
    bus: fc.oneof(fc.constant(0), fc.integer({ min: -2, max: 300 })),
    devfn: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: -2, max: 300 })),
    offset: fc.oneof(fc.integer({ min: sriov.offset, max: sriov.offset + 0x3f }), fc.integer({ min: -4, max: 4100 })),
    width: fc.oneof(fc.constantFrom(1, 2, 4), fc.integer({ min: 0, max: 5 })),
    value: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(1, 8, 0x19, 6)),
    address: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.double(), fc.constant(-1)),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      for (const o of ops) {
        const w = o.width as AccessWidth;
        bus.configWrite(o.bus, o.devfn, o.offset, w, o.value);
        const r = bus.configRead(o.bus, o.devfn, o.offset, w);
        if (!Number.isInteger(r) || r < 0 || r > 0xffffffff) return false;
        bus.mmioWrite(o.address, w, o.value);
        const m = bus.mmioRead(o.address, w);
        if (!Number.isInteger(m) || m < 0 || m > 0xffffffff) return false;
      }
      return true;
    }),
    { numRuns: 200, seed: 0x5eed + 3 },
  );
  assert.ok(bus.functions().length >= 1);
});

import { ConfigSpace } from "./config-space.js";
import { PCI_COMMAND } from "./regs.js";

test("property: the generic write matches cfg = (cfg & ~w) | (v & w); cfg &= ~(v & w1c) byte by byte, at any offset and width", () => {
  const byte = fc.integer({ min: 0, max: 255 });
  fc.assert(
    fc.property(
      fc.array(byte, { minLength: 16, maxLength: 16 }), fc.array(byte, { minLength: 16, maxLength: 16 }), fc.array(byte, { minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 15 }), fc.constantFrom(1, 2, 4), fc.integer({ min: 0, max: 0xffffffff }),
      (init, wm, w1c, at, width, value) => {
        const c = new ConfigSpace(256);
        for (let i = 0; i < 16; i++) {
          c.setU8(0x40 + i, init[i] ?? 0);
          c.setWmask(0x40 + i, 1, wm[i] ?? 0);
          c.setW1c(0x40 + i, 1, w1c[i] ?? 0);
        }
        const ok = c.write(0x40 + at, width, value);
        if (!ok) return false; // every access here is inside the space
        for (let i = 0; i < 16; i++) {
          let expect = init[i] ?? 0;
          const k = i - at;
          if (k >= 0 && k < width) {
            const v = (value >>> (8 * k)) & 0xff;
            const w = wm[i] ?? 0;
            expect = ((expect & ~w) | (v & w)) & ~(v & (w1c[i] ?? 0)) & 0xff;
          }
          if (c.read(0x40 + i, 1) !== expect) return false;
        }
        return true;
      },
    ),
    { numRuns: 500, seed: 0x5eed + 4 },
  );
});

test("property: random MMIO into the MSI-X table and PBA never throws, keeps Vector Control's reserved bits 0, and never sets a pending bit", () => {
  const { pf, msix } = makeExamplePf();
  const bus = new PciBus();
  bus.attach(pf, { bus: 0, devfn: 0 });
  bus.configWrite(0, 0, 0x20, 4, 0xfe000000);
  bus.configWrite(0, 0, PCI_COMMAND, 2, 0x6);
  bus.configWrite(0, 0, msix.offset + 2, 2, 0x8000);
  const op = fc.record({
    offset: fc.oneof(fc.integer({ min: 0x2000, max: 0x2040 }), fc.integer({ min: 0x3000, max: 0x3008 }), fc.integer({ min: 0, max: 0x3fff })),
    width: fc.constantFrom(1, 2, 4),
    value: fc.integer({ min: 0, max: 0xffffffff }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 50 }), (ops) => {
      for (const o of ops) bus.mmioWrite(0xfe000000 + o.offset, o.width, o.value);
      for (let v = 0; v < msix.vectors; v++) {
        if ((bus.mmioRead(0xfe000000 + 0x2000 + v * 16 + 12, 4) & ~1) !== 0) return false;
        if (msix.pending(v)) return false;
      }
      return bus.mmioRead(0xfe003000, 4) === 0;
    }),
    { numRuns: 200, seed: 0x5eed + 5 },
  );
});
