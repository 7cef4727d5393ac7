/**
 * Two-tag VST (vpf's extension beyond IFLA_VF_VLAN_LIST): a VF's frames leave with the tenant's
 * 802.1ad S-tag over the guest's 802.1Q C-tag, configured with the administrator's command line,
 * served from vDPA rings, and decoded from an uplink pcap by the real tshark.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock, NS_PER_US } from "../../src/base/index.js";
import { MacAddress, Ipv4Address, buildUdpFrame, EthernetFrame, vlanTag, tsharkFields } from "../../src/wire/index.js";
import type { VlanTag } from "../../src/wire/index.js";
import { Nic, PcapTap } from "../../src/nic/index.js";
import { Host, runCommand, VirtioNetDouble } from "../../src/host/index.js";

const PF = "enp59s0f0np0";
const EXT = "02:ee:00:00:00:01";
const m = (s: string): MacAddress => MacAddress.parse(s);

function udp(dst: string, src: string, vlans: VlanTag[] = [], srcPort = 1000): Uint8Array {
  return buildUdpFrame({ dst: m(dst), src: m(src), vlans }, Ipv4Address.parse("10.0.0.1"), Ipv4Address.parse("10.0.0.2"), srcPort, 2000, new Uint8Array(18));
}

function tshark(pcap: Uint8Array, fields: readonly string[]): Record<string, string>[] {
  const dir = mkdtempSync(join(tmpdir(), "vpf-qinq-"));
  try {
    const file = join(dir, "uplink.pcap");
    writeFileSync(file, pcap);
    return tsharkFields(file, fields);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("two-tag VST: tshark sees the tenant's S-tag over the guest's C-tag on the uplink; tenants and C-VLANs stay apart", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const host = new Host(nic);
  const sh = (cmd: string): string => {
    const r = runCommand(host, cmd);
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  sh(`echo 4 > /sys/class/net/${PF}/device/sriov_numvfs`);
  const guests: VirtioNetDouble[] = [];
  for (let i = 0; i < 4; i++) {
    sh(`vdpa dev add name vdpa${i} mgmtdev pci/${nic.port(0).vfAddress(i).toString()} mac 02:00:00:00:00:0${i + 1}`);
    const g = new VirtioNetDouble(host.openVhostVdpa(`vdpa${i}`), { queueSize: 64 });
    g.start();
    guests.push(g);
  }
  const [a10, a20, b10, a10b] = guests as [VirtioNetDouble, VirtioNetDouble, VirtioNetDouble, VirtioNetDouble];
  // Tenant A is S-VLAN 100 (PCP 5), tenant B S-VLAN 200; both use C-VLAN 10, A also 20.
  sh(`ip link set ${PF} vf 0 vlan 100 qos 5 proto 802.1ad inner_vlan 10 inner_qos 3`);
  sh(`ip link set ${PF} vf 1 vlan 100 qos 5 proto 802.1ad inner_vlan 20`);
  sh(`ip link set ${PF} vf 2 vlan 200 proto 802.1ad inner_vlan 10`);
  sh(`ip link set ${PF} vf 3 vlan 100 qos 5 proto 802.1ad inner_vlan 10`);
  assert.match(sh(`ip link show ${PF}`), /vf 0 .*vlan 100, qos 5, vlan protocol 802\.1ad, vpf inner vlan 10, vpf inner qos 3,/);

  const tap = PcapTap.on(nic.port(0).uplink);
  a10.send(udp(EXT, "02:00:00:00:00:01", [], 1001));
  clock.advance(10n * NS_PER_US);
  a20.send(udp(EXT, "02:00:00:00:00:02", [], 1002));
  clock.advance(10n * NS_PER_US);
  b10.send(udp(EXT, "02:00:00:00:00:03", [], 1003));
  clock.advance(10n * NS_PER_US);
  // A broadcast in A/10 reaches A's other C-10 VF only (and the uplink), not A/20 or B/10.
  a10.send(udp("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", [], 1004));
  clock.advance(10n * NS_PER_US);
  assert.equal(a10b.receive().length, 1);
  assert.equal(a20.receive().length, 0);
  assert.equal(b10.receive().length, 0);
  // From the wire: S 200 / C 10 for VF 2's MAC is delivered with both tags popped; the same MAC
  // under S 100 / C 10 is not (a different tenant's domain).
  nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT, [vlanTag(200, { tpid: 0x88a8, pcp: 1 }), vlanTag(10, { pcp: 6 })], 1005));
  clock.advance(10n * NS_PER_US);
  nic.port(0).uplink.send(udp("02:00:00:00:00:03", EXT, [vlanTag(100, { tpid: 0x88a8 }), vlanTag(10)], 1006));
  const got = b10.receive();
  assert.equal(got.length, 1);
  assert.equal(EthernetFrame.check(got[0]!).tagCount, 0);
  assert.equal(a10.receive().length, 0);
  assert.equal(a10b.receive().length, 0);

  const rows = tshark(tap.bytes(), ["frame.protocols", "eth.src", "ieee8021ad.id", "ieee8021ad.priority", "vlan.id", "vlan.priority", "udp.srcport", "udp.checksum.status", "ip.checksum.status"]);
  assert.equal(rows.length, 6);
  const bySrcPort = new Map(rows.map((r) => [r["udp.srcport"], r]));
  const expect: [string, string, string, string, string][] = [
    ["1001", "100", "5", "10", "3"],
    ["1002", "100", "5", "20", "0"],
    ["1003", "200", "0", "10", "0"],
    ["1004", "100", "5", "10", "3"],
    ["1005", "200", "1", "10", "6"],
    ["1006", "100", "0", "10", "0"],
  ];
  for (const [port, sVid, sPcp, cVid, cPcp] of expect) {
    const r = bySrcPort.get(port);
    assert.ok(r !== undefined, `frame from port ${port} captured`);
    assert.match(r["frame.protocols"]!, /^eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:udp/);
    assert.deepEqual([r["ieee8021ad.id"], r["ieee8021ad.priority"], r["vlan.id"], r["vlan.priority"]], [sVid, sPcp, cVid, cPcp], `tags of ${port}`);
    assert.equal(r["udp.checksum.status"], "1");
    assert.equal(r["ip.checksum.status"], "1");
  }

  // Counters as IFLA_VF_STATS reports them: the VF's own view, before push and after pop.
  const info = host.getVfInfo(PF).vfs;
  assert.equal(info[0]!.stats?.txPackets, 2n);
  assert.equal(info[2]!.stats?.rxPackets, 1n);
  assert.equal(info[2]!.stats?.rxBytes, BigInt(got[0]!.length));
  assert.equal(info[3]!.stats?.broadcast, 1n);
});
