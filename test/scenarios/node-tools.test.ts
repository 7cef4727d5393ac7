/**
 * Issue 6 item 3: the tools inside nodes, with the output formats people know, on a live world
 * (the default topology, in-process): tcpdump in a guest and on NIC ports (text and a pcap that
 * the real tshark reads), lspci variants decoded by the real pciutils, ip's JSON, the external
 * host's ping and traffic generator, and usage errors.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { World } from "../../src/world/world.js";
import { defaultTopology } from "../../src/world/topology.js";
import { tsharkFields } from "../../src/wire/index.js";

const VPF = "/sys/bus/pci/devices/0000:01:00.0";

async function world(): Promise<{ w: World; sh: (node: string, cmd: string) => Promise<{ stdout: string; stderr: string; exitCode: number }> }> {
  const w = World.create(defaultTopology());
  const sh = (node: string, cmd: string): Promise<{ stdout: string; stderr: string; exitCode: number }> => Promise.resolve(w.exec(node, [cmd]));
  for (const c of [
    `echo 2 > ${VPF}/sriov_numvfs`,
    "ip link set eth0 vf 0 mac 52:54:00:01:00:10 vlan 100",
    "ip link set eth1 address 52:54:00:01:00:10",
    "ip link set eth1 up",
    "ip addr add 10.0.100.1/24 dev eth1",
  ]) {
    const r = await sh("vm1", c);
    assert.equal(r.exitCode, 0, `${c}: ${r.stderr}`);
  }
  return { w, sh };
}

test("tcpdump in the guest prints the ping as tcpdump does; on the uplink it writes a pcap tshark reads with the VLAN tag", async () => {
  const { w, sh } = await world();
  try {
    const guestCap = sh("vm1", "tcpdump -i eth1 -c 4 --timeout 5");
    const dir = mkdtempSync(join(tmpdir(), "vpf-tools-"));
    const pcap = join(dir, "uplink.pcap");
    const wireCap = sh("host1", `tcpdump -i p0 -c 4 -w ${pcap} --timeout 5`);
    const ping = await sh("ext1", "ping -c 2 10.0.100.1");
    assert.equal(ping.exitCode, 0, ping.stdout + ping.stderr);
    const g = await guestCap;
    const lines = g.stdout.trim().split("\n");
    assert.equal(lines.length, 4, g.stdout);
    assert.ok(lines.some((l) => /^\d\d:\d\d:\d\d\.\d{6} IP 10\.0\.100\.100 > 10\.0\.100\.1: ICMP echo request, id \d+, seq 1, length 64$/.test(l)), JSON.stringify(lines));
    assert.ok(lines.some((l) => / IP 10\.0\.100\.1 > 10\.0\.100\.100: ICMP echo reply, id \d+, seq 1, length 64$/.test(l)), JSON.stringify(lines));
    assert.match(g.stderr, /listening on eth1, link-type EN10MB \(Ethernet\)/);
    assert.match(g.stderr, /4 packets captured/);
    const u = await wireCap;
    assert.equal(u.exitCode, 0, u.stderr);
    const rows = tsharkFields(pcap, ["vlan.id", "ip.src", "ip.dst", "icmp.type"]);
    assert.ok(rows.length >= 2);
    for (const r of rows) assert.equal(r["vlan.id"], "100", "frames on the wire carry VLAN 100");
    assert.ok(rows.some((r) => r["ip.src"] === "10.0.100.100" && r["ip.dst"] === "10.0.100.1" && r["icmp.type"] === "8"));
  } finally {
    await w.close();
  }
});

test("lspci variants are pciutils' own decoding of the guest's config space", async () => {
  const { w, sh } = await world();
  try {
    const plain = await sh("vm1", "lspci");
    assert.match(plain.stdout, /^01:00\.0 Ethernet controller: Red Hat, Inc\. Virtio 1\.0 network device/m);
    assert.match(plain.stdout, /^01:00\.1 Ethernet controller: Red Hat, Inc\. Virtio 1\.0 network device/m);
    const n = await sh("vm1", "lspci -n -s 01:00.0");
    assert.match(n.stdout, /^01:00\.0 0200: 1af4:1041 \(rev 01\)$/m);
    const d = await sh("vm1", "lspci -D -s 01:00.2");
    assert.match(d.stdout, /^0000:01:00\.2 /m);
    const x = await sh("vm1", "lspci -xxxx -s 01:00.0");
    assert.match(x.stdout, /^ff0: /m, "4096-byte config space");
    const t = await sh("vm1", "lspci -t");
    assert.match(t.stdout, /---10\.0-\[01\]--\+-00\.0\n +\+-00\.1\n +\\-00\.2/);
    const bad = await sh("vm1", "lspci -q");
    assert.equal(bad.exitCode, 2);
    assert.match(bad.stderr, /invalid option/);
  } finally {
    await w.close();
  }
});

test("ip -j, ip addr, trafgen and usage errors", async () => {
  const { w, sh } = await world();
  try {
    const j = JSON.parse((await sh("vm1", "ip -j link show eth0")).stdout) as { ifname: string; vfinfo_list: { vf: number; address: string; vlan_list?: { vlan: number }[] }[] }[];
    assert.equal(j[0]?.vfinfo_list[0]?.address, "52:54:00:01:00:10");
    assert.equal(j[0]?.vfinfo_list[0]?.vlan_list?.[0]?.vlan, 100);
    const addr = await sh("vm1", "ip addr show dev eth1");
    assert.match(addr.stdout, /inet 10\.0\.100\.1\/24 scope global eth1/);
    const before = w.node("vm1");
    assert.equal(before.kind, "vm");
    const rx0 = before.kind === "vm" ? before.kernel.initNs.byName("eth1")?.stats.rxPackets ?? 0 : 0;
    const tg = await sh("ext1", "trafgen 10.0.100.1 -c 50 -s 100 -p 5001");
    assert.equal(tg.exitCode, 0, tg.stderr);
    assert.match(tg.stdout, /sent 50 UDP datagrams/);
    const rx1 = before.kind === "vm" ? before.kernel.initNs.byName("eth1")?.stats.rxPackets ?? 0 : 0;
    assert.ok(rx1 - rx0 >= 50, `eth1 received ${rx1 - rx0} frames`);
    const usage = await sh("vm1", "ip link set eth0 vf 0 vlan");
    assert.equal(usage.exitCode, 255);
    const unknown = await sh("vm1", "ip frob");
    assert.match(unknown.stderr, /Object "frob" is unknown, try "ip help"\./);
    const notFound = await sh("ext1", "lspci");
    assert.equal(notFound.exitCode, 127);
    const hostUsage = await sh("host1", "vdpa dev add name x");
    assert.notEqual(hostUsage.exitCode, 0);
  } finally {
    await w.close();
  }
});
