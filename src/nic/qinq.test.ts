import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock } from "../base/index.js";
import { MacAddress, EthernetRepr, EthernetFrame, vlanTag } from "../wire/index.js";
import type { VlanTag } from "../wire/index.js";
import { Nic, ETH_P_8021AD, ETH_P_8021Q, type VirtualFunction } from "./index.js";

// Two-tag VST (a vpf extension): an 802.1Q C-tag under an 802.1ad S-tag, pushed and popped by the VF.

const mac = (s: string): MacAddress => MacAddress.parse(s);
const S = (vid: number, pcp = 0): VlanTag => vlanTag(vid, { tpid: ETH_P_8021AD, pcp });
const C = (vid: number, pcp = 0): VlanTag => vlanTag(vid, { pcp });

function frame(dst: string, src: string, vlans: VlanTag[] = [], payloadLen = 46): Uint8Array {
  const repr: EthernetRepr = { dst: mac(dst), src: mac(src), vlans, etherType: 0x0800 };
  const hl = EthernetRepr.bufferLen(repr);
  const b = new Uint8Array(hl + payloadLen);
  EthernetRepr.emit(repr, b);
  for (let i = 0; i < payloadLen; i++) b[hl + i] = (i * 7) & 0xff;
  return b;
}

const tags = (f: Uint8Array): number[][] => EthernetFrame.check(f).tags().map((t) => [t.tpid, t.vid, t.pcp]);

function setup(n: number): { nic: Nic; wire: Uint8Array[]; vfs: VirtualFunction[]; rx: Uint8Array[][]; pfRx: Uint8Array[] } {
  const nic = new Nic({ clock: new VirtualClock() });
  const port = nic.port(0);
  port.enableVfs(n);
  const wire: Uint8Array[] = [];
  port.uplink.attach((f) => wire.push(f.slice()));
  const pfRx: Uint8Array[] = [];
  port.pf.setReceiver((f) => pfRx.push(f.slice()));
  const vfs = [...port.vfs];
  const rx = vfs.map((vf, i) => {
    vf.setMac(mac(`02:00:00:00:00:0${i + 1}`).key, true);
    const got: Uint8Array[] = [];
    vf.setReceiver({ receive: (f) => (got.push(f.slice()), true) });
    return got;
  });
  return { nic, wire, vfs, rx, pfRx };
}

test("two-tag VST: C-tag then S-tag pushed towards the wire, both popped towards the VF", () => {
  const { nic, wire, vfs, rx } = setup(1);
  const vf = vfs[0]!;
  vf.setVlan(300, 5, ETH_P_8021AD, { vlan: 42, qos: 3 });
  assert.deepEqual(vf.vst, { vid: 300, pcp: 5, tpid: ETH_P_8021AD, inner: { vid: 42, pcp: 3 } });
  const sent = frame("02:ee:00:00:00:01", "02:00:00:00:00:01");
  vf.send(sent);
  assert.equal(wire.length, 1);
  assert.deepEqual(tags(wire[0]!), [[ETH_P_8021AD, 300, 5], [ETH_P_8021Q, 42, 3]]);
  assert.equal(wire[0]!.length, sent.length + 8);
  assert.deepEqual(wire[0]!.subarray(20), sent.subarray(12), "payload and EtherType follow the two tags unchanged");

  // From the wire: exactly S 300 over C 42 is delivered untagged (PCPs may differ).
  nic.port(0).uplink.send(frame("02:00:00:00:00:01", "02:ee:00:00:00:01", [S(300, 1), C(42, 6)]));
  assert.equal(rx[0]!.length, 1);
  assert.equal(EthernetFrame.check(rx[0]![0]!).tagCount, 0);
  assert.deepEqual(rx[0]![0]!, frame("02:00:00:00:00:01", "02:ee:00:00:00:01"));
  // Anything else does not reach it: S only, S over another C, C over S, another S, untagged.
  for (const vlans of [[S(300)], [S(300), C(43)], [C(42), S(300)], [S(301), C(42)], [C(42)], []]) {
    nic.port(0).uplink.send(frame("02:00:00:00:00:01", "02:ee:00:00:00:01", vlans));
  }
  assert.equal(rx[0]!.length, 1);
  const st = vf.counters.snapshot();
  assert.equal(st.txPackets, 1n);
  assert.equal(st.txBytes, BigInt(sent.length), "tx counts what the VF sent, before the push");
  assert.equal(st.rxPackets, 1n);
  assert.equal(st.rxBytes, BigInt(rx[0]![0].length), "rx counts what the VF got, after the pop");
});

test("two-tag VST: the VF may send no tag of its own", () => {
  const { wire, vfs } = setup(1);
  const vf = vfs[0]!;
  vf.setVlan(300, 0, ETH_P_8021AD, { vlan: 42, qos: 0 });
  vf.send(frame("02:ee:00:00:00:01", "02:00:00:00:00:01", [C(7)]));
  vf.send(frame("02:ee:00:00:00:01", "02:00:00:00:00:01", [S(7)]));
  vf.send(frame("02:ee:00:00:00:01", "02:00:00:00:00:01", [vlanTag(7, { tpid: 0x9100 })]));
  assert.equal(wire.length, 0);
  assert.equal(vf.counters.snapshot().txDropped, 3n);
});

test("two-tag VST: tenants with the same C-VID under different S-tags are isolated", () => {
  const { nic, wire, vfs, rx, pfRx } = setup(4);
  // Tenant A (S 100): VFs 0 and 1 on C 10. Tenant B (S 200): VFs 2 and 3 on C 10.
  vfs[0]!.setVlan(100, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[1]!.setVlan(100, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[2]!.setVlan(200, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[3]!.setVlan(200, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[0]!.send(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 1, 0, 0]);
  assert.equal(wire.length, 1, "flooded to the uplink (a trunk)");
  assert.equal(pfRx.length, 1, "and to the PF (a trunk)");
  // Unicast to tenant B's VF from tenant A: not in A's domain, so unknown unicast (uplink only).
  vfs[0]!.send(frame("02:00:00:00:00:03", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 1, 0, 0]);
  assert.equal(wire.length, 2);
  assert.deepEqual(tags(wire[1]!), [[ETH_P_8021AD, 100, 0], [ETH_P_8021Q, 10, 0]]);
  // Inside tenant B: unicast switched in the NIC, never on the wire.
  vfs[2]!.send(frame("02:00:00:00:00:04", "02:00:00:00:00:03"));
  assert.deepEqual(rx.map((r) => r.length), [0, 1, 0, 1]);
  assert.equal(wire.length, 2);
  assert.equal(EthernetFrame.check(rx[3]![0]!).tagCount, 0);
  // From the wire, S 200 / C 10 broadcast reaches tenant B only.
  nic.port(0).uplink.send(frame("ff:ff:ff:ff:ff:ff", "02:ee:00:00:00:01", [S(200), C(10)]));
  assert.deepEqual(rx.map((r) => r.length), [0, 1, 1, 2]);
});

test("two-tag VST: C-VIDs under one S-tag are isolated; a one-tag S-VLAN port is their trunk", () => {
  const { nic, wire, vfs, rx } = setup(4);
  vfs[0]!.setVlan(100, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[1]!.setVlan(100, 0, ETH_P_8021AD, { vlan: 20, qos: 0 });
  vfs[2]!.setVlan(100, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  vfs[3]!.setVlan(100, 0, ETH_P_8021AD); // S-tag only: the tenant's C-VLAN trunk
  vfs[0]!.send(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 0, 1, 1]);
  assert.deepEqual(tags(rx[3]![0]!), [[ETH_P_8021Q, 10, 0]], "the S-only port sees the C-tag");
  vfs[0]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 0, 1, 1], "C 10 cannot reach C 20 by unicast either");
  assert.equal(wire.length, 2);
  vfs[1]!.send(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:02"));
  assert.deepEqual(rx.map((r) => r.length), [0, 0, 1, 2]);
  // The S-only port tags C 20 itself and reaches VF 1 (unicast), untagged after both pops.
  vfs[3]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:04", [C(20)]));
  assert.equal(rx[1]!.length, 1);
  assert.equal(EthernetFrame.check(rx[1]![0]!).tagCount, 0);
  // ...and VF 1 reaches the S-only port by unicast (looked up in the S-VLAN after the pair).
  vfs[1]!.send(frame("02:00:00:00:00:04", "02:00:00:00:00:02"));
  assert.equal(rx[3]!.length, 3);
  assert.deepEqual(tags(rx[3]![2]!), [[ETH_P_8021Q, 20, 0]]);
  const wireBefore = wire.length;
  nic.port(0).uplink.send(frame("02:00:00:00:00:01", "02:ee:00:00:00:01", [S(100), C(20)]));
  assert.equal(rx[0]!.length, 0, "a frame for VF 0's MAC in C 20 is not VF 0's");
  assert.equal(wire.length, wireBefore);
});

test("two-tag VST: settings are validated and replaced as a whole; VLAN 0 clears everything", () => {
  const { vfs, wire } = setup(1);
  const vf = vfs[0]!;
  assert.throws(() => vf.setVlan(100, 0, ETH_P_8021Q, { vlan: 5, qos: 0 }), { code: "NIC_BAD_ARGUMENT" }, "an inner tag needs 802.1ad outside");
  assert.throws(() => vf.setVlan(0, 3, ETH_P_8021AD, { vlan: 5, qos: 0 }), { code: "NIC_BAD_ARGUMENT" }, "and an S-VID");
  assert.throws(() => vf.setVlan(4095, 0, ETH_P_8021AD, { vlan: 5, qos: 0 }), { code: "NIC_BAD_ARGUMENT" });
  assert.throws(() => vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 4095, qos: 0 }), { code: "NIC_BAD_ARGUMENT" });
  assert.throws(() => vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 5, qos: 8 }), { code: "NIC_BAD_ARGUMENT" });
  assert.throws(() => vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 0, qos: 2 }), { code: "NIC_BAD_ARGUMENT" });
  assert.throws(() => vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 1.5, qos: 0 }), { code: "NIC_BAD_ARGUMENT" });
  assert.equal(vf.vst, null, "refusals change nothing");
  vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 0, qos: 0 });
  assert.deepEqual(vf.vst, { vid: 100, pcp: 0, tpid: ETH_P_8021AD }, "inner 0 = one-tag VST");
  vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 7, qos: 1 });
  assert.equal(vf.innerVlan, 7);
  vf.setVlan(100, 0, ETH_P_8021AD);
  assert.equal(vf.innerVlan, 0, "a setting without inner drops the inner tag");
  vf.send(frame("02:ee:00:00:00:01", "02:00:00:00:00:01"));
  assert.deepEqual(tags(wire[0]!), [[ETH_P_8021AD, 100, 0]]);
  vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 7, qos: 1 });
  vf.setVlan(0, 0, ETH_P_8021Q);
  assert.equal(vf.vst, null);
  assert.deepEqual([vf.innerVlan, vf.innerQos], [0, 0]);
});

test("VST buffers are reused per VF, yet re-entrant sends and deliveries never see each other's bytes", () => {
  const { vfs, wire } = setup(4);
  for (const vf of vfs) vf.setVlan(100, 0, ETH_P_8021AD, { vlan: 10, qos: 0 });
  const [a, b, c, d] = vfs as [VirtualFunction, VirtualFunction, VirtualFunction, VirtualFunction];
  const first = frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", [], 46);
  const second = frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", [], 48);
  const toA = frame("02:00:00:00:00:01", "02:00:00:00:00:02", [], 47);
  // B, reached first by A's broadcast, makes A transmit again mid-flood (re-entrant transmit)
  // and sends a unicast to A (a delivery to A while A's first transmit is still forwarding).
  let bDone = false;
  b.setReceiver({
    receive: () => {
      if (!bDone) {
        bDone = true;
        a.transmit(second);
        b.transmit(toA);
      }
      return true;
    },
  });
  // A, while holding the unicast from B, gets a nested delivery from C.
  const seenByA: number[][] = [];
  let aDone = false;
  a.setReceiver({
    receive: (f) => {
      const before = [...f];
      if (!aDone) {
        aDone = true;
        c.transmit(frame("02:00:00:00:00:01", "02:00:00:00:00:03", [], 50));
      }
      seenByA.push(before, [...f]);
      return true;
    },
  });
  const seenByD: number[][] = [];
  d.setReceiver({ receive: (f) => (seenByD.push([...f]), true) });
  a.transmit(first);
  // D (after B and C in the flood) got both broadcasts intact, the nested one first.
  assert.deepEqual(seenByD, [[...second], [...first]]);
  // A's deliveries: the outer frame reads the same after the nested delivery as before it.
  assert.equal(seenByA.length, 4);
  assert.deepEqual(seenByA[2], [...toA]);
  assert.deepEqual(seenByA[3], [...toA]);
  assert.deepEqual(seenByA[0], seenByA[1]);
  // Every frame on the wire carries exactly S 100 / C 10.
  assert.equal(wire.length, 2);
  for (const w of wire) assert.deepEqual(tags(w).map((t) => t.slice(0, 2)), [[ETH_P_8021AD, 100], [ETH_P_8021Q, 10]]);
});
