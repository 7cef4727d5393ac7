import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { VirtualClock } from "../base/index.js";
import { GuestMemory } from "../memory/index.js";
import { Nic, VdpaNetEngine, STATUS_DRIVER_OK, STATUS_FEATURES_OK, STATUS_NEEDS_RESET } from "./index.js";

function nicWithVfs(): Nic {
  const nic = new Nic({ clock: new VirtualClock() });
  const p = nic.port(0);
  p.enableVfs(4);
  p.vf(0).setMac(0x020000000001, true);
  p.vf(1).setMac(0x020000000002, true);
  p.vf(1).setVlan(7, 1, 0x8100);
  p.vf(2).setVlan(9, 0, 0x88a8);
  p.vf(2).setSpoofchk(true);
  p.vf(3).setMac(0x020000000004, true);
  p.vf(3).setVlan(9, 2, 0x88a8, { vlan: 5, qos: 1 }); // two-tag VST under VF 2's S-VLAN
  for (const vf of p.vfs) vf.setReceiver({ receive: () => true });
  p.uplink.attach(() => undefined);
  p.pf.setReceiver(() => undefined);
  return nic;
}

test("arbitrary bytes from the wire, a VF or the PF never throw and every frame is accounted for", () => {
  const nic = nicWithVfs();
  const p = nic.port(0);
  const frames = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    // Frames that start with a known MAC and a tag TPID, so the tagged paths are exercised.
    fc.tuple(fc.constantFrom(0x02, 0xff, 0x01), fc.constantFrom(0x81, 0x88, 0x91), fc.uint8Array({ minLength: 0, maxLength: 60 })).map(([d, t, rest]) => {
      const b = new Uint8Array(12 + 2 + rest.length);
      b.fill(d, 0, 6);
      b[5] = 2;
      b[11] = 1;
      b[6] = 2;
      b[12] = t;
      b[13] = t === 0x88 ? 0xa8 : 0;
      b.set(rest, 14);
      return b;
    }),
    // S 9 over C 5 (the two-tag VF's pair) or a near miss, possibly cut short.
    fc.tuple(fc.constantFrom(0x02, 0xff), fc.constantFrom(4, 5, 6), fc.constantFrom(0x81, 0x88), fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 12, max: 30 })).map(([d, cvid, inner, rest, cut]) => {
      const b = new Uint8Array(22 + rest.length);
      b.fill(d, 0, 6);
      b[5] = 4;
      b[6] = 2;
      b[11] = 1;
      b.set([0x88, 0xa8, 0, 9, inner, inner === 0x88 ? 0xa8 : 0, 0, cvid, 8, 0], 12);
      b.set(rest, 22);
      return b.subarray(0, Math.min(b.length, cut));
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), frames), { maxLength: 30 }), (items) => {
      for (const [who, f] of items) {
        if (who === 0) p.uplink.send(f);
        else if (who === 5) p.pf.send(f);
        else p.vf(who - 1).send(f);
      }
      for (const port of p.ports) {
        const s = port.counters.snapshot();
        assert.ok(s.rxPackets >= 0n && s.txDropped >= 0n);
      }
    }),
    { numRuns: 200 },
  );
});

test("arbitrary guest ring memory never makes the vDPA engine throw", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
      fc.constantFrom(1, 2, 4, 8, 16),
      fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 6 }),
      (bytes, size, kicks) => {
        const nic = nicWithVfs();
        const vf = nic.port(0).vf(0);
        const mem = new GuestMemory(0x10000);
        mem.write(0, bytes);
        const e = new VdpaNetEngine(vf, { maxVqp: 1 });
        e.setFeatures((1n << 32n) | (1n << 17n) | (1n << 18n) | (1n << 23n) | (1n << 22n) | (1n << 28n));
        e.setStatus(1 | 2 | STATUS_FEATURES_OK);
        e.setMemory(mem);
        for (let q = 0; q < 3; q++) {
          e.setVringNum(q, size);
          e.setVringAddr(q, { desc: 0x100 * q * 4, avail: 0x800 + 0x80 * q, used: 0xc00 + 0x100 * q });
          e.setVringReady(q, true);
        }
        e.setStatus(1 | 2 | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        for (const q of kicks) e.kick(q);
        nic.port(0).uplink.send(Uint8Array.of(2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 9, 8, 0, 1, 2));
        const st = e.status;
        assert.ok((st & STATUS_NEEDS_RESET) !== 0 || (st & STATUS_DRIVER_OK) !== 0);
        e.reset();
        assert.equal(e.status, 0);
      },
    ),
    { numRuns: 150 },
  );
});
