import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock, NS_PER_S } from "../base/index.js";
import { MacAddress, EthernetRepr, EthernetFrame, vlanTag } from "../wire/index.js";
import type { VlanTag } from "../wire/index.js";
import { Nic, VfLinkState, ETH_P_8021AD, type VirtualFunction } from "./index.js";

const mac = (s: string): MacAddress => MacAddress.parse(s);

function frame(dst: string, src: string, vlans: VlanTag[] = [], payloadLen = 46): Uint8Array {
  const repr: EthernetRepr = { dst: mac(dst), src: mac(src), vlans, etherType: 0x0800 };
  const hl = EthernetRepr.bufferLen(repr);
  const b = new Uint8Array(hl + payloadLen);
  EthernetRepr.emit(repr, b);
  for (let i = 0; i < payloadLen; i++) b[hl + i] = i & 0xff;
  return b;
}

function collect(vf: VirtualFunction): Uint8Array[] {
  const got: Uint8Array[] = [];
  vf.setReceiver({ receive: (f) => (got.push(f.slice()), true) });
  return got;
}

function setup(n = 4): { clock: VirtualClock; nic: Nic; wire: Uint8Array[]; vfs: VirtualFunction[]; rx: Uint8Array[][]; pfRx: Uint8Array[] } {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const port = nic.port(0);
  port.enableVfs(n);
  const wire: Uint8Array[] = [];
  port.uplink.attach((f) => wire.push(f));
  const pfRx: Uint8Array[] = [];
  port.pf.setReceiver((f) => pfRx.push(f));
  const vfs = [...port.vfs];
  vfs.forEach((vf, i) => vf.setMac(mac(`02:00:00:00:00:0${i + 1}`).key, true));
  const rx = vfs.map(collect);
  return { clock, nic, wire, vfs, rx, pfRx };
}

test("PCI addresses: PFs at functions 0 and 1, VFs after both (offset, stride 1)", () => {
  const nic = new Nic({ clock: new VirtualClock(), ports: 2 });
  assert.equal(nic.port(0).pf.pciAddress.toString(), "0000:3b:00.0");
  assert.equal(nic.port(1).pf.pciAddress.toString(), "0000:3b:00.1");
  assert.equal(nic.port(0).vfAddress(0).toString(), "0000:3b:00.2");
  assert.equal(nic.port(0).vfAddress(6).toString(), "0000:3b:01.0");
  assert.equal(nic.port(0).vfAddress(126).toString(), "0000:3b:10.0");
  assert.equal(nic.port(1).vfAddress(0).toString(), "0000:3b:10.1");
  assert.equal(nic.port(1).vfAddress(126).toString(), "0000:3b:1f.7");
  assert.throws(() => new Nic({ clock: new VirtualClock(), ports: 2, totalVfs: 128 }), { code: "NIC_BAD_CONFIG" });
  assert.throws(() => new Nic({ clock: new VirtualClock(), ports: 3 }), { code: "NIC_BAD_CONFIG" });
});

test("unicast VF to VF stays in the switch; unknown unicast goes to the uplink only", () => {
  const { vfs, rx, wire, pfRx } = setup();
  vfs[0]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(rx[1]!.length, 1);
  assert.equal(wire.length, 0);
  vfs[0]!.send(frame("02:aa:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(wire.length, 1);
  assert.equal(rx[2]!.length + rx[3]!.length + pfRx.length, 0);
  const s = vfs[0]!.counters.snapshot();
  assert.equal(s.txPackets, 2n);
  assert.equal(s.txBytes, 120n);
  assert.equal(vfs[1]!.counters.snapshot().rxPackets, 1n);
});

test("broadcast floods to every port but the source; multicast honours filters", () => {
  const { vfs, rx, wire, pfRx } = setup();
  vfs[0]!.send(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 1, 1, 1]);
  assert.equal(wire.length, 1);
  assert.equal(pfRx.length, 1);
  assert.equal(vfs[2]!.counters.snapshot().broadcast, 1n);
  vfs[3]!.setRxMode({ multicast: [mac("01:00:5e:00:00:01").key] });
  vfs[0]!.send(frame("01:00:5e:00:00:02", "02:00:00:00:00:01"));
  assert.deepEqual(rx.map((r) => r.length), [0, 2, 2, 1]);
  assert.equal(vfs[1]!.counters.snapshot().multicast, 1n);
});

test("VST 802.1Q: push towards the wire with QoS, pop towards the VF, VLANs isolated", () => {
  const { nic, vfs, rx, wire } = setup();
  vfs[0]!.setVlan(10, 5, 0x8100);
  vfs[1]!.setVlan(10, 0, 0x8100);
  vfs[2]!.setVlan(20, 0, 0x8100);
  vfs[0]!.send(frame("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  assert.equal(wire.length, 1);
  const onWire = EthernetFrame.check(wire[0]!);
  assert.deepEqual(onWire.tags(), [vlanTag(10, { pcp: 5 })]);
  assert.equal(rx[1]!.length, 1);
  assert.equal(EthernetFrame.check(rx[1]![0]!).tagCount, 0);
  assert.equal(rx[2]!.length, 0);
  assert.equal(rx[3]!.length, 1, "VGT VF is a trunk and sees the tagged broadcast");
  assert.equal(EthernetFrame.check(rx[3]![0]!).tag(0).vid, 10);
  // From the wire: tagged 20 reaches VF 2 untagged; untagged does not reach VST VFs.
  nic.port(0).uplink.send(frame("02:00:00:00:00:03", "02:bb:00:00:00:01", [vlanTag(20)]));
  assert.equal(rx[2]!.length, 1);
  assert.equal(EthernetFrame.check(rx[2]![0]!).tagCount, 0);
  nic.port(0).uplink.send(frame("02:00:00:00:00:03", "02:bb:00:00:00:01"));
  assert.equal(rx[2]!.length, 1);
  // A VF in 802.1Q VST may not send its own tags.
  vfs[0]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:01", [vlanTag(99)]));
  assert.equal(vfs[0]!.counters.snapshot().txDropped, 1n);
});

test("VST 802.1ad: the guest's C-tag rides inside the S-tag (QinQ)", () => {
  const { nic, vfs, rx, wire } = setup();
  vfs[0]!.setVlan(100, 0, ETH_P_8021AD);
  vfs[0]!.send(frame("02:bb:00:00:00:01", "02:00:00:00:00:01", [vlanTag(5)]));
  const f = EthernetFrame.check(wire[0]!);
  assert.deepEqual(f.tags().map((t) => [t.tpid, t.vid]), [[0x88a8, 100], [0x8100, 5]]);
  nic.port(0).uplink.send(frame("02:00:00:00:00:01", "02:bb:00:00:00:01", [vlanTag(100, { tpid: 0x88a8 }), vlanTag(5)]));
  assert.equal(rx[0]!.length, 1);
  assert.deepEqual(EthernetFrame.check(rx[0]![0]!).tags().map((t) => [t.tpid, t.vid]), [[0x8100, 5]]);
  // The VF may not send an S-tag of its own.
  vfs[0]!.send(frame("02:bb:00:00:00:01", "02:00:00:00:00:01", [vlanTag(7, { tpid: 0x88a8 })]));
  assert.equal(vfs[0]!.counters.snapshot().txDropped, 1n);
});

test("spoof check drops foreign source MACs; trust gates promiscuous mode", () => {
  const { nic, vfs, rx, wire } = setup();
  vfs[0]!.setSpoofchk(true);
  vfs[0]!.send(frame("02:bb:00:00:00:01", "02:66:66:66:66:66"));
  assert.equal(wire.length, 0);
  assert.equal(vfs[0]!.counters.snapshot().txDropped, 1n);
  vfs[0]!.setSpoofchk(false);
  vfs[0]!.send(frame("02:bb:00:00:00:01", "02:66:66:66:66:66"));
  assert.equal(wire.length, 1);
  vfs[1]!.setRxMode({ promisc: true });
  nic.port(0).uplink.send(frame("02:cc:00:00:00:09", "02:bb:00:00:00:01"));
  assert.equal(rx[1]!.length, 0, "untrusted VF stays non-promiscuous");
  vfs[1]!.setTrust(true);
  nic.port(0).uplink.send(frame("02:cc:00:00:00:09", "02:bb:00:00:00:01"));
  assert.equal(rx[1]!.length, 1);
  // Untrusted VF cannot replace an administrator's MAC; trusted can.
  assert.equal(vfs[2]!.driverSetMac(mac("02:00:00:00:00:99").key), false);
  vfs[2]!.setTrust(true);
  assert.equal(vfs[2]!.driverSetMac(mac("02:00:00:00:00:99").key), true);
});

test("link state: auto follows the uplink, disable drops, enable ignores the uplink", () => {
  const { nic, vfs, rx } = setup();
  const changes: boolean[] = [];
  vfs[1]!.onLinkChange((up) => changes.push(up));
  vfs[1]!.setLinkState(VfLinkState.DISABLE);
  vfs[0]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(rx[1]!.length, 0);
  assert.equal(vfs[1]!.counters.snapshot().rxDropped, 1n);
  vfs[1]!.setLinkState(VfLinkState.AUTO);
  nic.port(0).uplink.setCarrier(false);
  assert.equal(vfs[1]!.linkUp, false);
  vfs[2]!.setLinkState(VfLinkState.ENABLE);
  assert.equal(vfs[2]!.linkUp, true);
  vfs[2]!.send(frame("02:00:00:00:00:04", "02:00:00:00:00:03"));
  assert.equal(rx[3]!.length, 0, "VF 3 (auto) is down with the uplink");
  nic.port(0).uplink.setCarrier(true);
  assert.deepEqual(changes, [false, true, false, true]);
});

test("max_tx_rate shapes on the virtual clock", () => {
  const { clock, vfs, rx } = setup();
  vfs[0]!.setRate(0, 10); // 10 Mbit/s = 1250 bytes per ms
  for (let i = 0; i < 200; i++) vfs[0]!.send(frame("02:00:00:00:00:02", "02:00:00:00:00:01", [], 986)); // 1000-byte frames
  const burst = rx[1]!.length;
  assert.ok(burst < 200 && burst > 0);
  clock.advance(NS_PER_S / 10n); // 100 ms → 125000 bytes → 125 frames
  const after = rx[1]!.length - burst;
  assert.ok(after >= 124 && after <= 126, `sent ${after}`);
});

test("a driver's extra unicast addresses reach it but never steal a primary MAC", () => {
  const { nic, vfs, rx } = setup();
  assert.equal(vfs[0]!.setRxMode({ unicast: [mac("02:aa:00:00:00:01").key, mac("02:00:00:00:00:02").key] }), true);
  nic.port(0).uplink.send(frame("02:aa:00:00:00:01", "02:bb:00:00:00:01"));
  assert.equal(rx[0]!.length, 1);
  nic.port(0).uplink.send(frame("02:00:00:00:00:02", "02:bb:00:00:00:01"));
  assert.equal(rx[0]!.length, 1);
  assert.equal(rx[1]!.length, 1);
  assert.equal(nic.port(0).eswitch.fdbSize, 6); // PF + 4 VFs + 1 extra
  assert.equal(vfs[0]!.setRxMode({ unicast: Array.from({ length: 4097 }, (_, i) => 0x020000000000 + i) }), false);
});

test("min_tx_rate: under line-rate contention a VF gets at least its guarantee", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock, linkSpeedMbps: 100 });
  const port = nic.port(0);
  port.enableVfs(3);
  const [a, b, c] = port.vfs as [VirtualFunction, VirtualFunction, VirtualFunction];
  a.setMac(mac("02:00:00:00:00:01").key, true);
  b.setMac(mac("02:00:00:00:00:02").key, true);
  c.setMac(mac("02:00:00:00:00:03").key, true);
  const got = { a: 0, b: 0 };
  c.setReceiver({ receive: (f) => ((f[11] === 1 ? got.a++ : got.b++), true) });
  a.setRate(70, 0);
  const fa = frame("02:00:00:00:00:03", "02:00:00:00:00:01", [], 1236); // 1250-byte frames: 10 µs of a 1 Gbit... 100 µs at 100 Mbit/s
  const fb = frame("02:00:00:00:00:03", "02:00:00:00:00:02", [], 1236);
  // Keep both queues full for 200 ms of virtual time.
  for (let t = 0; t < 200; t++) {
    while (a.queuedFrames < 64) a.send(fa);
    while (b.queuedFrames < 64) b.send(fb);
    clock.advance(NS_PER_S / 1000n);
  }
  const total = (got.a + got.b) * 1250 * 8 / 0.2 / 1e6; // Mbit/s
  assert.ok(total > 95 && total < 105, `line rate ${total}`);
  const shareA = got.a / (got.a + got.b);
  assert.ok(shareA >= 0.68, `VF a share ${shareA}`);
  assert.ok(got.b > 0, "the other VF is not starved");
  // Without min rates the arbiter steps aside.
  a.setRate(0, 0);
  assert.equal(port.txArbiter.active, false);
});
