/**
 * Issue 4 item 5: frames between VFs (served by the NIC from vDPA rings), the PF and the uplink,
 * configured with the administrator's commands: VLAN, QinQ, spoof check, trust, link state, rates.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock, NS_PER_MS } from "../../src/base/index.js";
import { MacAddress, Ipv4Address, buildUdpFrame, EthernetFrame, vlanTag } from "../../src/wire/index.js";
import { Nic, connectUplinks } from "../../src/nic/index.js";
import { Host, runCommand, VirtioNetDouble } from "../../src/host/index.js";

const PF = "enp59s0f0np0";
const m = (s: string): MacAddress => MacAddress.parse(s);
const EXT = "02:ee:00:00:00:01";

interface World {
  clock: VirtualClock;
  nic: Nic;
  host: Host;
  guests: VirtioNetDouble[];
  wire: Uint8Array[];
  pfRx: Uint8Array[];
  sh(cmd: string): void;
}

/** N VFs with MACs 02:00:00:00:00:0k, each a vDPA device served from a guest double's rings. */
function world(n: number): World {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const host = new Host(nic);
  const sh = (cmd: string): void => {
    const r = runCommand(host, cmd);
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  };
  sh(`echo ${n} > /sys/class/net/${PF}/device/sriov_numvfs`);
  const guests: VirtioNetDouble[] = [];
  for (let i = 0; i < n; i++) {
    const bdf = nic.port(0).vfAddress(i).toString();
    sh(`vdpa dev add name vdpa${i} mgmtdev pci/${bdf} mac 02:00:00:00:00:0${i + 1}`);
    const g = new VirtioNetDouble(host.openVhostVdpa(`vdpa${i}`), { queueSize: 64 });
    g.start();
    guests.push(g);
  }
  const wire: Uint8Array[] = [];
  nic.port(0).uplink.attach((f) => wire.push(f));
  const pfRx: Uint8Array[] = [];
  nic.port(0).pf.setReceiver((f) => pfRx.push(f));
  return { clock, nic, host, guests, wire, pfRx, sh };
}

function udp(dst: string, src: string, vlans: ReturnType<typeof vlanTag>[] = [], payload = 18): Uint8Array {
  return buildUdpFrame({ dst: m(dst), src: m(src), vlans }, Ipv4Address.parse("10.0.0.1"), Ipv4Address.parse("10.0.0.2"), 1000, 2000, new Uint8Array(payload));
}

test("VF ↔ VF through rings, VF → PF, uplink → VF; unknown unicast leaves by the uplink", () => {
  const w = world(3);
  const [g0, g1, g2] = w.guests as [VirtioNetDouble, VirtioNetDouble, VirtioNetDouble];
  g0.send(udp("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(g1.receive().length, 1);
  assert.equal(g2.receive().length, 0);
  assert.equal(w.wire.length, 0, "VEB keeps VF-to-VF traffic off the wire");
  const pfMac = MacAddress.fromKey(w.nic.port(0).pf.macKey).toString();
  g2.send(udp(pfMac, "02:00:00:00:00:03"));
  assert.equal(w.pfRx.length, 1);
  w.nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT));
  assert.equal(g2.receive().length, 1);
  g1.send(udp("02:99:00:00:00:01", "02:00:00:00:00:02"));
  assert.equal(w.wire.length, 1);
  g0.send(udp("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  assert.equal(g1.receive().length, 1);
  assert.equal(g2.receive().length, 1);
  assert.equal(w.pfRx.length, 2);
  assert.equal(w.wire.length, 2);
  const info = w.host.getVfInfo(PF).vfs;
  assert.equal(info[0]!.stats?.txPackets, 2n);
  assert.equal(info[1]!.stats?.broadcast, 1n);
  assert.equal(info[2]!.stats?.rxPackets, 2n);
});

test("VST VLANs: isolation between VLANs, tags on the wire, none in the guest", () => {
  const w = world(3);
  const [g0, g1, g2] = w.guests as [VirtioNetDouble, VirtioNetDouble, VirtioNetDouble];
  w.sh(`ip link set ${PF} vf 0 vlan 10 qos 4`);
  w.sh(`ip link set ${PF} vf 1 vlan 10`);
  w.sh(`ip link set ${PF} vf 2 vlan 20`);
  g0.send(udp("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01"));
  const got1 = g1.receive();
  assert.equal(got1.length, 1);
  assert.equal(EthernetFrame.check(got1[0]!).tagCount, 0);
  assert.equal(g2.receive().length, 0);
  const onWire = EthernetFrame.check(w.wire[0]!);
  assert.deepEqual([onWire.tag(0).vid, onWire.tag(0).pcp], [10, 4]);
  // Same MAC in the wrong VLAN is not delivered: VF 2's MAC tagged 10.
  w.nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT, [vlanTag(10)]));
  assert.equal(g2.receive().length, 0);
  w.nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT, [vlanTag(20)]));
  assert.equal(g2.receive().length, 1);
  // Back to VGT: the VF sees the tag.
  w.sh(`ip link set ${PF} vf 2 vlan 0`);
  w.nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT, [vlanTag(30)]));
  const tagged = g2.receive();
  assert.equal(EthernetFrame.check(tagged[0]!).tag(0).vid, 30);
});

test("QinQ: 802.1ad VST wraps the tenant's C-tags in the service tag", () => {
  const w = world(2);
  const [g0, g1] = w.guests as [VirtioNetDouble, VirtioNetDouble];
  w.sh(`ip link set ${PF} vf 0 vlan 300 proto 802.1ad`);
  w.sh(`ip link set ${PF} vf 1 vlan 300 proto 802.1ad`);
  g0.send(udp("02:00:00:00:00:02", "02:00:00:00:00:01", [vlanTag(12)]));
  const inner = g1.receive();
  assert.equal(inner.length, 1);
  assert.deepEqual(EthernetFrame.check(inner[0]!).tags().map((t) => [t.tpid, t.vid]), [[0x8100, 12]]);
  g0.send(udp(EXT, "02:00:00:00:00:01", [vlanTag(12)]));
  assert.deepEqual(EthernetFrame.check(w.wire[0]!).tags().map((t) => [t.tpid, t.vid]), [[0x88a8, 300], [0x8100, 12]]);
  assert.match(runCommand(w.host, `ip link show ${PF}`).stdout, /vf 0 .*vlan 300, vlan protocol 802.1ad/);
});

test("spoof check and trust, driven through the guest's control queue", () => {
  const w = world(2);
  const [g0, g1] = w.guests as [VirtioNetDouble, VirtioNetDouble];
  w.sh(`ip link set ${PF} vf 0 spoofchk on`);
  g0.send(udp(EXT, "02:00:00:00:00:77"));
  assert.equal(w.wire.length, 0);
  assert.equal(w.host.getVfInfo(PF).vfs[0]!.stats?.txDropped, 1n);
  g0.send(udp(EXT, "02:00:00:00:00:01"));
  assert.equal(w.wire.length, 1);
  // Promiscuous mode asked through VIRTIO_NET_CTRL_RX: effective only once trusted.
  assert.equal(g1.control(0, 0, Uint8Array.of(1)), 0);
  w.nic.port(0).uplink.send(udp("02:44:00:00:00:01", EXT));
  assert.equal(g1.receive().length, 0);
  w.sh(`ip link set ${PF} vf 1 trust on`);
  w.nic.port(0).uplink.send(udp("02:44:00:00:00:01", EXT));
  assert.equal(g1.receive().length, 1);
  // Administrator-set MAC: the untrusted guest may not change it.
  w.sh(`ip link set ${PF} vf 0 mac 02:00:00:00:00:01`);
  assert.equal(g0.control(1, 1, Uint8Array.of(2, 0, 0, 0, 0, 0x55)), 1);
  w.sh(`ip link set ${PF} vf 0 trust on`);
  assert.equal(g0.control(1, 1, Uint8Array.of(2, 0, 0, 0, 0, 0x55)), 0);
});

test("link state: disable cuts the VF off and tells the guest; auto follows the uplink", () => {
  const w = world(2);
  const [g0, g1] = w.guests as [VirtioNetDouble, VirtioNetDouble];
  w.sh(`ip link set ${PF} vf 1 state disable`);
  assert.equal(g1.config().linkUp, false);
  assert.equal(g1.interrupts.config, 1, "a config-change interrupt announces it");
  g0.send(udp("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(g1.receive().length, 0);
  assert.equal(w.host.getVfInfo(PF).vfs[1]!.stats?.rxDropped, 1n);
  w.sh(`ip link set ${PF} vf 1 state auto`);
  w.nic.port(0).uplink.setCarrier(false);
  assert.equal(g0.config().linkUp, false);
  w.sh(`ip link set ${PF} vf 0 state enable`);
  assert.equal(g0.config().linkUp, true);
  w.nic.port(0).uplink.setCarrier(true);
  g0.send(udp("02:00:00:00:00:02", "02:00:00:00:00:01"));
  assert.equal(g1.receive().length, 1);
});

test("max_tx_rate: frames wait in the TX ring and leave at the configured rate", () => {
  const w = world(2);
  const [g0, g1] = w.guests as [VirtioNetDouble, VirtioNetDouble];
  w.sh(`ip link set ${PF} vf 0 max_tx_rate 8`); // 8 Mbit/s = 1 byte per µs
  const frames = Array.from({ length: 60 }, () => udp("02:00:00:00:00:02", "02:00:00:00:00:01", [], 958)); // 1000 bytes each
  assert.equal(g0.send(...frames), 60);
  const burst = g1.receive().length;
  assert.ok(burst >= 18 && burst <= 20, `burst ${burst}`); // 2 × 9216 B of depth
  w.clock.advance(20n * NS_PER_MS); // 20000 bytes → 20 more frames
  const later = g1.receive().length;
  assert.ok(later >= 19 && later <= 21, `after 20 ms: ${later}`);
  w.clock.advance(100n * NS_PER_MS);
  assert.equal(burst + later + g1.receive().length, 60);
  assert.match(runCommand(w.host, `ip link show ${PF}`).stdout, /vf 0 .*tx rate 8 \(Mbps\), max_tx_rate 8Mbps/);
});

test("min_tx_rate: two saturating VFs on a 100 Mbit/s port, the guaranteed one gets its share", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock, linkSpeedMbps: 100 });
  const host = new Host(nic);
  const sh = (cmd: string): void => assert.equal(runCommand(host, cmd).status, 0, cmd);
  sh(`echo 3 > /sys/class/net/${PF}/device/sriov_numvfs`);
  const g: VirtioNetDouble[] = [];
  for (let i = 0; i < 3; i++) {
    sh(`vdpa dev add name vdpa${i} mgmtdev pci/${nic.port(0).vfAddress(i).toString()} mac 02:00:00:00:00:0${i + 1}`);
    const d = new VirtioNetDouble(host.openVhostVdpa(`vdpa${i}`), { queueSize: 64 });
    d.start();
    g.push(d);
  }
  sh(`ip link set ${PF} vf 0 min_tx_rate 60`);
  sh(`ip link set ${PF} vf 1 min_tx_rate 10`);
  const fa = udp("02:00:00:00:00:03", "02:00:00:00:00:01", [], 1208); // 1250-byte frames
  const fb = udp("02:00:00:00:00:03", "02:00:00:00:00:02", [], 1208);
  let fromA = 0;
  let fromB = 0;
  for (let ms = 0; ms < 100; ms++) {
    g[0]!.send(...Array.from({ length: 16 }, () => fa));
    g[1]!.send(...Array.from({ length: 16 }, () => fb));
    clock.advance(NS_PER_MS);
    for (const f of g[2]!.receive()) {
      if (f[11] === 1) fromA++;
      else fromB++;
    }
  }
  const mbps = (n: number): number => (n * 1250 * 8) / 0.1 / 1e6;
  assert.ok(mbps(fromA) >= 58, `VF 0 got ${mbps(fromA)} Mbit/s`);
  assert.ok(mbps(fromB) >= 9, `VF 1 got ${mbps(fromB)} Mbit/s`);
  assert.ok(mbps(fromA + fromB) <= 106, `line rate exceeded: ${mbps(fromA + fromB)}`);
});

test("two ports cabled back to back: VF on port 0 reaches VF on port 1 over the wire, tags intact", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock, ports: 2 });
  const host = new Host(nic);
  connectUplinks(nic.port(0).uplink, nic.port(1).uplink);
  host.setSriovNumVfs("enp59s0f0np0", 1);
  host.setSriovNumVfs("enp59s0f1np1", 1);
  host.setVf("enp59s0f0np0", 0, { vlan: { vlan: 44 } });
  host.setVf("enp59s0f1np1", 0, { vlan: { vlan: 44 } });
  host.vdpaDevAdd({ name: "a", mgmtdev: `pci/${nic.port(0).vfAddress(0).toString()}`, mac: "02:00:00:00:0a:01" });
  host.vdpaDevAdd({ name: "b", mgmtdev: "pci/0000:3b:10.1", mac: "02:00:00:00:0b:01" });
  const a = new VirtioNetDouble(host.openVhostVdpa("a"));
  const b = new VirtioNetDouble(host.openVhostVdpa("b"));
  a.start();
  b.start();
  a.send(udp("02:00:00:00:0b:01", "02:00:00:00:0a:01"));
  const got = b.receive();
  assert.equal(got.length, 1);
  assert.equal(EthernetFrame.check(got[0]!).tagCount, 0);
  assert.equal(nic.port(0).uplink.counters.snapshot().txPackets, 1n);
  assert.equal(nic.port(1).uplink.counters.snapshot().rxPackets, 1n);
});
