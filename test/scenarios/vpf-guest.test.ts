/**
 * Issue 5 item 4: the vPF method end to end, driven as a user of the guest would — sysfs writes,
 * rtnetlink bytes, frames through netdevs — on a VM from src/vmm whose vPF and vVFs are backed
 * by vhost-vdpa devices on host VFs of the emulated NIC (src/nic through src/host).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock } from "../../src/base/index.js";
import { Nic } from "../../src/nic/index.js";
import { Host, runCommand } from "../../src/host/index.js";
import { Vm, BackendPool, hostBackend, VdpaNetDevice, type Vpf, type VfBackend, type VmPolicy } from "../../src/vmm/index.js";
import { GuestKernel, SysError, iproute as ip } from "../../src/guest/index.js";

const VPF = "/sys/bus/pci/devices/0000:01:00.0";

interface Rig {
  clock: VirtualClock;
  nic: Nic;
  host: Host;
  pf: string;
  wire: Uint8Array[];
  backends: VfBackend[];
}

/** A NIC with `n` host VFs, each a vDPA device vdpa<i> with MAC 02:00:00:00:<i/256>:<i%256>. */
function rig(n: number, ports = 1): Rig {
  const clock = new VirtualClock();
  const perPort = Math.ceil(n / ports);
  const nic = new Nic({ clock, ports, totalVfs: perPort });
  const host = new Host(nic);
  const sh = (cmd: string): void => {
    const r = runCommand(host, cmd);
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  };
  const backends: VfBackend[] = [];
  for (let p = 0; p < ports; p++) sh(`echo ${perPort} > /sys/class/net/${host.pfName(p)}/device/sriov_numvfs`);
  for (let i = 0; i < n; i++) {
    const port = Math.floor(i / perPort);
    const bdf = nic.port(port).vfAddress(i % perPort).toString();
    const mac = `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    sh(`vdpa dev add name vdpa${i} mgmtdev pci/${bdf} mac ${mac}`);
    backends.push(hostBackend(host, `vdpa${i}`));
  }
  const wire: Uint8Array[] = [];
  nic.port(0).uplink.attach((f) => wire.push(f));
  return { clock, nic, host, pf: host.pfName(0), wire, backends };
}

const openPolicy: VmPolicy = { vlan: { mode: "allow-list", allowed: [0, 100] }, allowSpoofchkOff: false, allowTrust: false };

interface Guest {
  vm: Vm;
  vpf: Vpf;
  k: GuestKernel;
}

function guest(name: string, backend: VfBackend, pool: BackendPool<VfBackend>, policy: VmPolicy = openPolicy, quota?: number): Guest {
  const vm = new Vm({ name, memory: 128 * 1024 * 1024 });
  const vpf = vm.addVpf({ backend, pool, policy, ...(quota === undefined ? {} : { quota }) });
  vm.start();
  const k = GuestKernel.boot({ platform: vm, memory: vm.memory });
  return { vm, vpf, k };
}

function errnoOf(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SysError) return e.errno;
    if (e instanceof Error && "errno" in e) return String(e.errno);
    throw e;
  }
  return "OK";
}

function nl(k: GuestKernel, req: Uint8Array, ctx = {}): ip.NlReply {
  return ip.parseReplies(k.netlink(req, ctx));
}

function ifindex(k: GuestKernel, name: string, ns: string | null = null): number {
  const d = k.namespace(ns).byName(name);
  assert.ok(d !== undefined, `${name} exists`);
  return d.ifindex;
}

/** Ethernet II frame with an IPv4 ethertype and a recognisable payload. */
function frame(dst: string, src: string, tag: number): Uint8Array {
  const f = new Uint8Array(64);
  dst.split(":").forEach((h, i) => (f[i] = parseInt(h, 16)));
  src.split(":").forEach((h, i) => (f[6 + i] = parseInt(h, 16)));
  f[12] = 0x88;
  f[13] = 0xb5; // IEEE local experimental ethertype
  f[14] = tag;
  return f;
}

test("writing 4 to sriov_numvfs makes 4 vVF netdevs with Linux's sysfs links and takes 4 backends from the pool", () => {
  const r = rig(9);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool);
  const s = g.k.sysfs();
  assert.equal(s.read(`${VPF}/sriov_totalvfs`), "8\n");
  assert.equal(pool.available, 8);
  s.write(`${VPF}/sriov_numvfs`, "4");
  assert.equal(pool.available, 4, "the host pool shrank by 4");
  assert.equal(pool.heldBy("vm1"), 4);
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "eth1", "eth2", "eth3", "eth4", "lo"]);
  for (let i = 0; i < 4; i++) {
    const vf = `0000:01:00.${i + 1}`;
    assert.equal(s.readlink(`${VPF}/virtfn${i}`), `../${vf}`);
    assert.equal(s.readlink(`/sys/bus/pci/devices/${vf}/physfn`), "../0000:01:00.0");
    assert.equal(s.readlink(`/sys/bus/pci/devices/${vf}/driver`), "../../../../bus/pci/drivers/virtio-pci");
    assert.deepEqual(s.list(`/sys/bus/pci/devices/${vf}/virtio${i + 1}/net`), [`eth${i + 1}`]);
    assert.equal(s.realpath(`/sys/class/net/eth${i + 1}/device/..`), `/sys/devices/pci0000:00/0000:00:10.0/${vf}`);
  }
  // The VF's MAC is set through the vPF, as sriov-cni does; the hypervisor applies it to host VF 2.
  assert.equal(nl(g.k, ip.setVfRequest(ifindex(g.k, "eth0"), 1, { mac: "02:00:00:00:aa:02" })).error, 0);
  assert.equal(r.host.getVfInfo(r.pf).vfs[2]!.mac.toString(), "02:00:00:00:aa:02");
  // Writing 2 next is refused as Linux refuses it; nothing changes on either side.
  assert.equal(errnoOf(() => g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "2")), "EBUSY");
  assert.equal(pool.available, 4);
  assert.equal(s.read(`${VPF}/sriov_numvfs`), "4\n");
  // 0 gives the backends back.
  s.write(`${VPF}/sriov_numvfs`, "0");
  assert.equal(pool.available, 8);
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "lo"]);
});

test("VF 0 gets VLAN 100 through rtnetlink; its frames reach the uplink tagged 100", () => {
  const r = rig(3);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool);
  g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "2");
  const eth0 = ifindex(g.k, "eth0");
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 0, { vlan: 100, qos: 2 })).error, 0);
  const info = nl(g.k, ip.getLinkRequest("eth0")).links[0]!;
  assert.equal(info.numVf, 2);
  assert.equal(info.vfs?.[0]?.vlan, 100);
  assert.equal(info.vfs?.[0]?.qos, 2);
  // The host VF behind vVF 1 (vdpa1 = host VF 1) carries the tag now.
  assert.equal(r.host.getVfInfo(r.pf).vfs[1]!.vlan, 100);
  const eth1 = ifindex(g.k, "eth1");
  assert.equal(nl(g.k, ip.setLinkRequest(eth1, { up: true })).error, 0);
  const nd = g.k.initNs.byIndex(eth1)!;
  assert.ok(nd.transmit(frame("02:ee:00:00:00:01", "02:00:00:00:00:01", 7)));
  assert.equal(r.wire.length, 1);
  const w = r.wire[0]!;
  assert.equal((w[12]! << 8) | w[13]!, 0x8100, "802.1Q tag on the wire");
  assert.equal(((w[14]! << 8) | w[15]!) & 0xfff, 100);
  assert.equal(w[14]! >> 5, 2, "PCP = qos");
  assert.equal((w[16]! << 8) | w[17]!, 0x88b5);
});

test("frames between two vVFs are switched by the NIC's eswitch; no hypervisor object touches them", () => {
  const r = rig(3);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool);
  const k = g.k;
  k.sysfsWrite(`${VPF}/sriov_numvfs`, "2");
  k.netnsAdd("a");
  k.netnsAdd("b");
  const nsFd = (fd: number): string | null | undefined => (fd === 3 ? "a" : fd === 4 ? "b" : undefined);
  // As sriov-cni: the VF's MAC through the PF, then the same MAC on the VF's netdev.
  const eth0 = ifindex(k, "eth0");
  for (const [vf, dev, mac] of [[0, "eth1", "02:00:00:00:01:01"], [1, "eth2", "02:00:00:00:01:02"]] as const) {
    assert.equal(nl(k, ip.setVfRequest(eth0, vf, { mac })).error, 0);
    assert.equal(nl(k, ip.setLinkRequest(ifindex(k, dev), { mac })).error, 0);
  }
  assert.equal(nl(k, ip.setLinkRequest(ifindex(k, "eth1"), { netnsFd: 3, name: "net1" }), { nsFd }).error, 0);
  assert.equal(nl(k, ip.setLinkRequest(ifindex(k, "eth2"), { netnsFd: 4, name: "net1" }), { nsFd }).error, 0);
  for (const [ns, addr] of [["a", "10.1.0.1"], ["b", "10.1.0.2"]] as const) {
    const idx = ifindex(k, "net1", ns);
    assert.equal(nl(k, ip.addrRequest(true, idx, addr, 24), { netns: ns }).error, 0);
    assert.equal(nl(k, ip.setLinkRequest(idx, { up: true }), { netns: ns }).error, 0);
  }
  const hostBefore = r.host.getVfInfo(r.pf).vfs;
  const relayBefore = [1, 2].map((n) => {
    const d = g.vpf.vvfTransport(n)!.device;
    assert.ok(d instanceof VdpaNetDevice);
    return n === 1 ? d.stats.kicks : d.stats.calls;
  });
  assert.equal(k.ping("a", "10.1.0.2", 5), 5);
  const hostAfter = r.host.getVfInfo(r.pf).vfs;
  // The host VFs behind vVF 1 and 2 counted every frame (ARP + 5 echo each way).
  assert.ok(hostAfter[1]!.stats!.txPackets - hostBefore[1]!.stats!.txPackets >= 6n);
  assert.ok(hostAfter[2]!.stats!.rxPackets - hostBefore[2]!.stats!.rxPackets >= 6n);
  assert.ok(hostAfter[2]!.stats!.txPackets - hostBefore[2]!.stats!.txPackets >= 6n);
  // Only the ARP broadcasts are flooded to the uplink; the unicast frames stayed in the eswitch.
  assert.ok(r.wire.every((f) => f[0] === 0xff), "the eswitch kept VF-to-VF unicast off the wire");
  // The hypervisor's vVF devices relay only doorbells (vhost kicks) and interrupts (irqfd
  // calls); they have no frame path at all — the NIC VF read the TX ring and wrote the RX ring.
  const relay = [1, 2].map((n) => {
    const d = g.vpf.vvfTransport(n)!.device;
    assert.ok(d instanceof VdpaNetDevice);
    return d.stats;
  });
  assert.ok(relay[0]!.kicks - relayBefore[0]! >= 6, "vVF 1's TX doorbells were relayed");
  assert.ok(relay[1]!.calls - relayBefore[1]! >= 6, "vVF 2's RX interrupts were relayed");
  assert.deepEqual(Object.keys(relay[0]!).sort(), ["activationFailures", "activations", "calls", "kicks"]);
  assert.equal(k.irq.handlerErrors, 0);
  assert.equal(k.irq.spurious, 0);
});

test("a VLAN outside the allow-list is refused with EPERM and nothing changes on the host", () => {
  const r = rig(3);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool, { vlan: { mode: "allow-list", allowed: [0, 100] }, allowSpoofchkOff: false, allowTrust: false });
  g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "2");
  const eth0 = ifindex(g.k, "eth0");
  const before = JSON.stringify(r.host.getVfInfo(r.pf).vfs, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 1, { vlan: 200 })).error, -1);
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 1, { spoofchk: false })).error, -1, "spoof check off is not allowed either");
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 1, { trust: true })).error, -1);
  const after = JSON.stringify(r.host.getVfInfo(r.pf).vfs, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  assert.equal(after, before);
  assert.equal(nl(g.k, ip.getLinkRequest("eth0")).links[0]!.vfs?.[1]?.vlan, 0);
});

test("two VMs on one NIC see none of each other's traffic unless policy puts them on one VLAN", () => {
  const r = rig(8);
  const setup = (name: string, vpfBackend: VfBackend, poolBackends: VfBackend[], allowed: number[], initial: number, addr: string): Guest => {
    const pool = new BackendPool(`pool-${name}`, poolBackends);
    const g = guest(name, vpfBackend, pool, { vlan: { mode: "allow-list", allowed, initial }, allowSpoofchkOff: false, allowTrust: false });
    g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "1");
    const idx = ifindex(g.k, "eth1");
    const mac = `02:00:00:00:02:${addr.split(".")[3]!.padStart(2, "0")}`;
    assert.equal(nl(g.k, ip.setVfRequest(ifindex(g.k, "eth0"), 0, { mac })).error, 0);
    assert.equal(nl(g.k, ip.setLinkRequest(idx, { mac })).error, 0);
    assert.equal(nl(g.k, ip.addrRequest(true, idx, addr, 24)).error, 0);
    assert.equal(nl(g.k, ip.setLinkRequest(idx, { up: true })).error, 0);
    return g;
  };
  const b = r.backends;
  // Tenant A may use VLANs 100 and 300, tenant B 200 and 300; the host starts them on 100 and 200.
  const a = setup("vm-a", b[0]!, [b[1]!], [100, 300], 100, "10.9.0.1");
  const bb = setup("vm-b", b[2]!, [b[3]!], [200, 300], 200, "10.9.0.2");
  assert.equal(a.k.ping(null, "10.9.0.2", 2), 0, "different VLANs: no reply");
  assert.equal(bb.k.stack().counters.icmpEchoRequestsReceived, 0, "and vm-b saw nothing");
  assert.equal(bb.k.stack().neighbours.size, 0, "not even the ARP broadcast");
  // Neither guest can step onto the other's VLAN...
  assert.equal(nl(a.k, ip.setVfRequest(ifindex(a.k, "eth0"), 0, { vlan: 200 })).error, -1);
  assert.equal(nl(bb.k, ip.setVfRequest(ifindex(bb.k, "eth0"), 0, { vlan: 100 })).error, -1);
  assert.equal(a.k.ping(null, "10.9.0.2", 1), 0);
  // ...but both may use the VLAN their policies share, and then they reach each other.
  assert.equal(nl(a.k, ip.setVfRequest(ifindex(a.k, "eth0"), 0, { vlan: 300 })).error, 0);
  assert.equal(nl(bb.k, ip.setVfRequest(ifindex(bb.k, "eth0"), 0, { vlan: 300 })).error, 0);
  assert.equal(a.k.ping(null, "10.9.0.2", 2), 2);
  assert.equal(bb.k.irq.spurious, 0);
  assert.equal(a.k.irq.handlerErrors + bb.k.irq.handlerErrors, 0);
  assert.ok(bb.k.irq.delivered > 0, "vm-b's guest learnt of the frames by MSI-X, without polling");
  // Echo requests queued while ARP was unresolved leave once it resolves (the model's neighbour
  // entries do not time out), so vm-b may see more than the last two.
  assert.ok(bb.k.stack().counters.icmpEchoRequestsReceived >= 2);
  // A third VM on its own VLAN still sees nothing of it.
  const c = setup("vm-c", b[4]!, [b[5]!], [400], 400, "10.9.0.3");
  assert.equal(c.k.ping(null, "10.9.0.1", 1), 0);
  assert.equal(a.k.stack().counters.icmpEchoRequestsReceived, 0);
  assert.equal(c.k.stack().counters.icmpEchoRequestsReceived, 0);
});

test("255 vVFs with ARI: functions 01:00.1 .. 01:00.255, one netdev each", () => {
  // One NIC port holds at most 254 VFs (the PF and its VFs share a bus), so a second NIC
  // supplies the vPF's own backend and the 255th vVF's.
  const r = rig(254);
  const r2 = rig(2);
  const pool = new BackendPool("p", [...r.backends, r2.backends[1]!]);
  const g = guest("vm1", r2.backends[0]!, pool);
  const s = g.k.sysfs();
  assert.equal(s.read(`${VPF}/sriov_totalvfs`), "255\n");
  s.write(`${VPF}/sriov_numvfs`, "255");
  assert.equal(pool.available, 0);
  const names = s.list("/sys/class/net");
  assert.equal(names.length, 257);
  assert.equal(s.readlink(`${VPF}/virtfn254`), "../0000:01:1f.7");
  assert.equal(s.readlink("/sys/bus/pci/devices/0000:01:1f.7/physfn"), "../0000:01:00.0");
  assert.deepEqual(s.list("/sys/bus/pci/devices/0000:01:1f.7/virtio255/net"), ["eth255"]);
  // ARI Capable Hierarchy was set by sriov_init below the ARI-forwarding root port.
  const cfg = s.readBytes(`${VPF}/config`);
  assert.ok(cfg instanceof Uint8Array && cfg.length === 4096);
  const pf = g.k.pci.find("0000:01:00.0")!;
  const st = g.k.pci.sriov.get(pf)!;
  assert.equal(pf.read16(st.pos + 0x08) & 0x11, 0x11, "VF Enable and ARI Capable Hierarchy");
  // `ip link show eth0` (RTEXT_FILTER_SKIP_STATS, as iproute2 asks without -s) lists all 255 VFs;
  // with statistics the 16-bit nest length holds about 220 of them, and the list stops there.
  const lean = nl(g.k, ip.getLinkRequest("eth0", true, true)).links[0]!;
  assert.equal(lean.numVf, 255);
  assert.equal(lean.vfs?.length, 255);
  assert.equal(lean.vfs?.[254]?.vf, 254);
  const full = nl(g.k, ip.getLinkRequest("eth0", true, false)).links[0]!;
  assert.equal(full.numVf, 255);
  assert.ok(full.vfs !== undefined && full.vfs.length > 200 && full.vfs.length < 255, `${full.vfs?.length} VFs with stats`);
});

test("a VM reset returns every backend; the rebooted guest starts with no VFs", () => {
  const r = rig(5);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool);
  g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "4");
  assert.equal(pool.available, 0);
  g.vm.reset();
  assert.equal(pool.available, 4, "every vVF backend is back in the pool");
  g.k.shutdown();
  const k2 = GuestKernel.boot({ platform: g.vm, memory: g.vm.memory });
  assert.equal(k2.sysfsRead(`${VPF}/sriov_numvfs`), "0\n");
  assert.deepEqual(k2.sysfsList("/sys/class/net"), ["eth0", "lo"]);
  k2.sysfsWrite(`${VPF}/sriov_numvfs`, "3");
  assert.equal(pool.available, 1);
  assert.equal(errnoOf(() => k2.sysfsWrite(`${VPF}/sriov_numvfs`, "0")), "OK");
  assert.equal(pool.available, 4);
});

test("a pool too short for the request: clean ENOMEM in the guest, nothing half-created", () => {
  const r = rig(4);
  const pool = new BackendPool("p", r.backends.slice(1));
  const other = guest("vm0", r.backends[0]!, pool);
  void other;
  const r2 = rig(1);
  const g = guest("vm1", r2.backends[0]!, pool, openPolicy, 3);
  g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "2");
  assert.equal(pool.available, 1);
  const s = other.k.sysfs();
  assert.equal(errnoOf(() => other.k.sysfsWrite(`${VPF}/sriov_numvfs`, "2")), "ENOMEM");
  assert.equal(s.read(`${VPF}/sriov_numvfs`), "0\n");
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "lo"]);
  assert.equal(pool.available, 1);
  assert.equal(errnoOf(() => other.k.sysfsWrite(`${VPF}/sriov_numvfs`, "1")), "OK");
});

test("VF link state from the vPF reaches the vVF netdev's carrier through a configuration interrupt", () => {
  const r = rig(2);
  const pool = new BackendPool("p", r.backends.slice(1));
  const g = guest("vm1", r.backends[0]!, pool);
  g.k.sysfsWrite(`${VPF}/sriov_numvfs`, "1");
  const eth0 = ifindex(g.k, "eth0");
  const eth1 = ifindex(g.k, "eth1");
  assert.equal(nl(g.k, ip.setLinkRequest(eth1, { up: true })).error, 0);
  assert.equal(g.k.sysfsRead("/sys/class/net/eth1/operstate"), "up\n");
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 0, { state: 2 })).error, 0);
  assert.equal(g.k.sysfsRead("/sys/class/net/eth1/carrier"), "0\n");
  assert.equal(g.k.sysfsRead("/sys/class/net/eth1/operstate"), "down\n");
  assert.equal(nl(g.k, ip.getLinkRequest("eth1", false)).links[0]!.operstate, 2, "IF_OPER_DOWN over rtnetlink too");
  assert.equal(nl(g.k, ip.setVfRequest(eth0, 0, { state: 1 })).error, 0);
  assert.equal(g.k.sysfsRead("/sys/class/net/eth1/carrier"), "1\n");
  assert.equal(g.k.sysfsRead("/sys/class/net/eth1/operstate"), "up\n");
});
