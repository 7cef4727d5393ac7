/**
 * Issue 4 item 5: a pcap written by a NIC tap is decoded by the real tshark, and the fields it
 * reports (addresses, VLAN and QinQ tags, protocols, checksum verdicts) match what was sent.
 * tshark is a test dependency (.ci/run installs it): when it is missing this test fails.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock, NS_PER_US } from "../../src/base/index.js";
import { MacAddress, Ipv4Address, Ipv6Address, buildUdpFrame, buildIpFrame, buildArpFrame, buildIcmpEchoFrame, ArpOperation } from "../../src/wire/index.js";
import { Nic, PcapTap, ETH_P_8021AD } from "../../src/nic/index.js";

const FIELDS = [
  "frame.protocols",
  "eth.src",
  "eth.dst",
  "ieee8021ad.id",
  "ieee8021ad.priority",
  "vlan.id",
  "vlan.priority",
  "ip.src",
  "ip.dst",
  "ip.checksum.status",
  "udp.srcport",
  "udp.dstport",
  "udp.checksum.status",
  "tcp.srcport",
  "tcp.checksum.status",
  "icmp.type",
  "icmp.checksum.status",
  "ipv6.src",
  "arp.opcode",
  "frame.time_epoch",
] as const;

function tshark(pcap: Uint8Array): Record<(typeof FIELDS)[number], string>[] {
  const dir = mkdtempSync(join(tmpdir(), "vpf-nic-"));
  try {
    const file = join(dir, "uplink.pcap");
    writeFileSync(file, pcap);
    const args = ["-r", file, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"];
    for (const f of FIELDS) args.push("-e", f);
    const r = spawnSync("tshark", args, { encoding: "utf8" });
    if (r.error !== undefined) assert.fail(`tshark could not run (install the Debian package tshark): ${r.error.message}`);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout
      .trim()
      .split("\n")
      .map((line) => {
        const cols = line.split("|");
        return Object.fromEntries(FIELDS.map((f, i) => [f, cols[i] ?? ""])) as Record<(typeof FIELDS)[number], string>;
      });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("tshark decodes what the uplink tap wrote: VST, QinQ, ARP, UDP, TCP, ICMP, IPv6", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const port = nic.port(0);
  port.enableVfs(3);
  const [vf0, vf1, vf2] = port.vfs as [typeof port.vfs[0], typeof port.vfs[0], typeof port.vfs[0]];
  const m = (s: string): MacAddress => MacAddress.parse(s);
  vf0.setMac(m("02:00:00:00:00:01").key, true);
  vf1.setMac(m("02:00:00:00:00:02").key, true);
  vf2.setMac(m("02:00:00:00:00:03").key, true);
  vf0.setVlan(10, 5, 0x8100);
  vf1.setVlan(100, 3, ETH_P_8021AD);
  const tap = PcapTap.on(port.uplink, { directions: ["tx"] });
  const ext = m("02:ee:00:00:00:01");
  const ip = (s: string): Ipv4Address => Ipv4Address.parse(s);

  // 1: UDP from a VST VF: tag 10 with priority 5 pushed.
  vf0.send(buildUdpFrame({ dst: ext, src: m("02:00:00:00:00:01") }, ip("10.0.0.1"), ip("10.0.0.9"), 4000, 53, new TextEncoder().encode("hello")));
  clock.advance(10n * NS_PER_US);
  // 2: TCP from the 802.1ad VF carrying its own C-tag 7: QinQ 100/7.
  vf1.send(buildIpFrame({ dst: ext, src: m("02:00:00:00:00:02"), vlans: [{ tpid: 0x8100, pcp: 2, dei: false, vid: 7 }] }, { src: ip("10.0.1.1"), dst: ip("10.0.1.9") }, { proto: "tcp", srcPort: 33000, dstPort: 443 }));
  clock.advance(10n * NS_PER_US);
  // 3: ICMP echo from the trunk VF, untagged.
  vf2.send(buildIcmpEchoFrame({ dst: ext, src: m("02:00:00:00:00:03") }, ip("10.0.2.1"), ip("10.0.2.9"), "echoRequest", 7, 1, new Uint8Array(32)));
  clock.advance(10n * NS_PER_US);
  // 4: ARP broadcast from the trunk VF.
  vf2.send(buildArpFrame({ dst: MacAddress.BROADCAST, src: m("02:00:00:00:00:03") }, { operation: ArpOperation.REQUEST, senderMac: m("02:00:00:00:00:03"), senderIp: ip("10.0.2.1"), targetMac: MacAddress.ZERO, targetIp: ip("10.0.2.9") }));
  clock.advance(10n * NS_PER_US);
  // 5: IPv6 UDP from the PF.
  port.pf.send(buildIpFrame({ dst: ext, src: MacAddress.fromKey(port.pf.macKey) }, { src: Ipv6Address.parse("2001:db8::1"), dst: Ipv6Address.parse("2001:db8::9") }, { proto: "udp", srcPort: 5000, dstPort: 6000, payload: new Uint8Array(8) }));
  // Spoofed frame from VF 2 with spoof check on: must not appear.
  vf2.setSpoofchk(true);
  vf2.send(buildUdpFrame({ dst: ext, src: m("02:66:66:66:66:66") }, ip("10.0.2.1"), ip("10.0.2.9"), 1, 2, new Uint8Array(4)));

  assert.equal(tap.packetCount, 5);
  const rows = tshark(tap.bytes());
  assert.equal(rows.length, 5);
  const [udp, tcp, icmp, arp, v6] = rows as [Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>];

  assert.equal(udp["frame.protocols"], "eth:ethertype:vlan:ethertype:ip:udp:dns");
  assert.equal(udp["eth.src"], "02:00:00:00:00:01");
  assert.equal(udp["eth.dst"], "02:ee:00:00:00:01");
  assert.equal(udp["vlan.id"], "10");
  assert.equal(udp["vlan.priority"], "5");
  assert.equal(udp["ip.src"], "10.0.0.1");
  assert.equal(udp["udp.srcport"], "4000");
  assert.equal(udp["udp.dstport"], "53");
  assert.equal(udp["ip.checksum.status"], "1", "IPv4 header checksum good");
  assert.equal(udp["udp.checksum.status"], "1", "UDP checksum good");
  assert.equal(udp["frame.time_epoch"], "0.000000000");

  assert.match(tcp["frame.protocols"]!, /^eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:tcp/);
  assert.equal(tcp["ieee8021ad.id"], "100");
  assert.equal(tcp["ieee8021ad.priority"], "3");
  assert.equal(tcp["vlan.id"], "7");
  assert.equal(tcp["vlan.priority"], "2");
  assert.equal(tcp["tcp.srcport"], "33000");
  assert.equal(tcp["tcp.checksum.status"], "1");
  assert.equal(tcp["frame.time_epoch"], "0.000010000");

  assert.equal(icmp["frame.protocols"], "eth:ethertype:ip:icmp:data");
  assert.equal(icmp["vlan.id"], "");
  assert.equal(icmp["icmp.type"], "8");
  assert.equal(icmp["icmp.checksum.status"], "1");

  assert.equal(arp["frame.protocols"], "eth:ethertype:arp");
  assert.equal(arp["eth.dst"], "ff:ff:ff:ff:ff:ff");
  assert.equal(arp["arp.opcode"], "1");

  assert.match(v6["frame.protocols"]!, /^eth:ethertype:ipv6:udp/);
  assert.equal(v6["ipv6.src"], "2001:db8::1");
  assert.equal(v6["eth.src"], MacAddress.fromKey(port.pf.macKey).toString());
  assert.equal(v6["udp.checksum.status"], "1");
});

test("a VF tap sees the VF's side: untagged under VST", () => {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const port = nic.port(0);
  port.enableVfs(1);
  const vf = port.vfs[0]!;
  vf.setMac(MacAddress.parse("02:00:00:00:00:01").key, true);
  vf.setVlan(42, 0, 0x8100);
  vf.setReceiver({ receive: () => true });
  const tap = PcapTap.on(vf);
  port.uplink.send(buildUdpFrame({ dst: MacAddress.parse("02:00:00:00:00:01"), src: MacAddress.parse("02:ee:00:00:00:01"), vlans: [{ tpid: 0x8100, pcp: 0, dei: false, vid: 42 }] }, Ipv4Address.parse("10.9.0.1"), Ipv4Address.parse("10.9.0.2"), 7, 9, new Uint8Array(3)));
  const rows = tshark(tap.bytes());
  assert.equal(rows.length, 1);
  assert.match(rows[0]!["frame.protocols"], /^eth:ethertype:ip:udp/);
  assert.equal(rows[0]!["vlan.id"], "");
  assert.equal(rows[0]!["ip.dst"], "10.9.0.2");
});
