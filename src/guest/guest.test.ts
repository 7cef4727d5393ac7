import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestKernel } from "./kernel.js";
import { TestMachine } from "./test-machine.js";
import { SysError } from "./errors.js";
import { kstrtou16, kstrtobool } from "./pci-core.js";
import * as ip from "./iproute.js";
import { VIRTIO_F_SR_IOV } from "./virtio-pci.js";
import { needEvent } from "./virtqueue.js";
import { PciFunction } from "../pci/index.js";
import { NLMSG_DONE, NLMSG_ERROR, NLM_F_CAPPED, NLM_F_MULTI, splitMessages, readI32At } from "./nl.js";

const PF = "/sys/bus/pci/devices/0000:01:00.0";

function boot(opts: ConstructorParameters<typeof TestMachine>[0] = {}): { m: TestMachine; k: GuestKernel } {
  const m = new TestMachine(opts);
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory });
  return { m, k };
}

function errno(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof SysError) return e.errno;
    if (e instanceof Error && "code" in e) return String(e.code);
    throw e;
  }
  return "OK";
}

test("enumeration: root port numbered, ARI forwarding on, PF found with 4096-byte config and BARs in the window", () => {
  const { m, k } = boot();
  const names = k.pci.devices.map((d) => d.name);
  assert.deepEqual(names, ["0000:00:01.0", "0000:01:00.0"]);
  const port = k.pci.devices[0]!;
  assert.equal(port.secondary, 1);
  assert.equal(port.ariForwarding, true);
  const pf = k.pci.devices[1]!;
  assert.equal(pf.cfgSize, 4096);
  const bar = pf.bars[0]!;
  assert.ok(bar.address >= m.bus.mmioWindow.base && bar.address + bar.size <= m.bus.mmioWindow.base + m.bus.mmioWindow.size);
  assert.equal(bar.size, 0x4000);
  assert.equal(k.sysfs().readBytes(`${PF}/config`).length, 4096);
});

test("sriov_init: page size, ARI hierarchy, NumVFs probed back to 0, sysfs values", () => {
  const { m, k } = boot();
  const s = k.sysfs();
  assert.equal(s.read(`${PF}/sriov_totalvfs`), "8\n");
  assert.equal(s.read(`${PF}/sriov_numvfs`), "0\n");
  assert.equal(s.read(`${PF}/sriov_offset`), "1\n");
  assert.equal(s.read(`${PF}/sriov_stride`), "1\n");
  assert.equal(s.read(`${PF}/sriov_vf_device`), "1041\n");
  assert.equal(s.read(`${PF}/sriov_drivers_autoprobe`), "1\n");
  const sr = m.sriov!;
  const pos = m.pf.findExtendedCapability(0x10)!;
  assert.equal(m.pf.configRead(pos + 0x10, 2), 0, "NumVFs written back to 0 after compute_max_vf_buses");
  assert.equal(m.pf.configRead(pos + 0x20, 4), 1, "System Page Size 4 KiB");
  assert.equal(m.pf.configRead(pos + 0x08, 2) & 0x10, 0x10, "ARI Capable Hierarchy set below an ARI-forwarding port");
  assert.equal(sr.totalVfs, 8);
});

test("sriov_numvfs: Linux's parse and range rules", () => {
  const { k } = boot();
  const s = k.sysfs();
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "abc")), "EINVAL");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "70000")), "ERANGE");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "9")), "ERANGE");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "0")), "OK", "same value is a no-op");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "0x4\n")), "OK");
  assert.equal(s.read(`${PF}/sriov_numvfs`), "4\n");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "4")), "OK");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "2")), "EBUSY");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "0")), "OK");
  assert.equal(k.pci.devices.length, 2);
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "8")), "OK");
  assert.equal(k.initNs.list().length, 1 + 1 + 8);
});

test("kstrtou16 and kstrtobool follow the kernel helpers", () => {
  assert.equal(kstrtou16("+12\n"), 12);
  assert.equal(kstrtou16("017"), 15);
  assert.equal(kstrtou16("0"), 0);
  assert.equal(errno(() => kstrtou16("")), "EINVAL");
  assert.equal(errno(() => kstrtou16("1 ")), "EINVAL");
  assert.equal(errno(() => kstrtou16("65536")), "ERANGE");
  assert.equal(kstrtobool("on"), true);
  assert.equal(kstrtobool("N"), false);
  assert.equal(errno(() => kstrtobool("x")), "EINVAL");
});

test("VFs appear at the computed routing IDs with virtfnN, physfn, driver and virtio nesting", () => {
  const { k } = boot();
  const s = k.sysfs();
  s.write(`${PF}/sriov_numvfs`, "4");
  assert.deepEqual(
    k.pci.devices.map((d) => d.name),
    ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1", "0000:01:00.2", "0000:01:00.3", "0000:01:00.4"],
  );
  for (let i = 0; i < 4; i++) {
    assert.equal(s.readlink(`${PF}/virtfn${i}`), `../0000:01:00.${i + 1}`);
    assert.equal(s.readlink(`/sys/bus/pci/devices/0000:01:00.${i + 1}/physfn`), "../0000:01:00.0");
    assert.equal(s.read(`/sys/bus/pci/devices/0000:01:00.${i + 1}/vendor`), "0x1af4\n");
  }
  assert.equal(s.readlink(`${PF}/driver`), "../../../../bus/pci/drivers/virtio-pci");
  assert.equal(s.readlink("/sys/bus/pci/devices/0000:01:00.0"), "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  // Netdevs: eth0 for the PF, eth1..eth4 for the VFs in probe order, under virtioN/net.
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "eth1", "eth2", "eth3", "eth4", "lo"]);
  assert.deepEqual(s.list("/sys/bus/pci/devices/0000:01:00.2/virtio2/net"), ["eth2"]);
  assert.equal(s.readlink("/sys/class/net/eth1"), "../../devices/pci0000:00/0000:00:01.0/0000:01:00.1/virtio1/net/eth1");
  assert.equal(s.readlink("/sys/class/net/eth1/device"), "../../../virtio1");
  assert.equal(s.realpath("/sys/class/net/eth0/device/.."), "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0");
  // The virtio nesting breaks sriov-cni's lookups exactly as on Linux (kubernetes.md §6).
  assert.equal(errno(() => s.read("/sys/class/net/eth0/device/sriov_numvfs")), "ENOENT");
  assert.equal(s.read("/sys/class/net/eth0/device/../sriov_numvfs"), "4\n");
  assert.equal(errno(() => s.list("/sys/bus/pci/devices/0000:01:00.1/net")), "ENOENT");
  const change = k.uevents.filter((e) => e.action === "change");
  assert.equal(change.length, 1);
  assert.equal(change[0]!.devpath, "/devices/pci0000:00/0000:00:01.0/0000:01:00.0");
});

test("sysfs errors are Linux's", () => {
  const { k } = boot();
  const s = k.sysfs();
  assert.equal(errno(() => s.read("/sys/nope")), "ENOENT");
  assert.equal(errno(() => s.read(PF)), "EISDIR");
  assert.equal(errno(() => s.list(`${PF}/vendor`)), "ENOTDIR");
  assert.equal(errno(() => s.read(`${PF}/vendor/x`)), "ENOTDIR");
  assert.equal(errno(() => s.write(`${PF}/vendor`, "1")), "EACCES");
  assert.equal(errno(() => s.readlink(`${PF}/vendor`)), "EINVAL");
  assert.equal(errno(() => s.read("/sys/class/net/eth0/carrier")), "EINVAL", "carrier of a down device");
  assert.equal(errno(() => s.read("/sys/class/net/eth0/phys_switch_id")), "EOPNOTSUPP", "virtio_net is no switchdev");
  assert.equal(s.read(`${PF}/numa_node`), "-1\n");
  const irqs = s.list(`${PF}/msi_irqs`);
  assert.equal(irqs.length, 5, "config, receiveq, transmitq, controlq, adminq");
  assert.equal(s.read(`${PF}/msi_irqs/${irqs[0]!}`), "msix\n");
  assert.equal(errno(() => s.read("/sys/bus/pci/drivers/virtio-pci/unbind")), "EACCES");
  // The endpoint-facing methods convert to base KernelErrors with errno codes.
  assert.throws(() => k.sysfsRead("/sys/nope"), (e: unknown) => e instanceof Error && "errno" in e && e.errno === "ENOENT");
});

test("sriov_numvfs without a driver is ENOENT; unbind of the PF disables its VFs", () => {
  const { k } = boot();
  const s = k.sysfs();
  s.write(`${PF}/sriov_numvfs`, "2");
  s.write("/sys/bus/pci/drivers/virtio-pci/unbind", "0000:01:00.0");
  assert.equal(s.read(`${PF}/sriov_numvfs`), "0\n");
  assert.equal(errno(() => s.readlink(`${PF}/driver`)), "ENOENT");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "2")), "ENOENT");
  s.write("/sys/bus/pci/drivers/virtio-pci/bind", "0000:01:00.0");
  assert.equal(errno(() => s.write(`${PF}/sriov_numvfs`, "2")), "OK");
});

test("virtio_pci sriov_configure: EBUSY without DRIVER_OK, EINVAL without VIRTIO_F_SR_IOV", () => {
  const { k } = boot();
  const pf = k.pci.find("0000:01:00.0")!;
  const vdev = k.virtioPci.devices.get(pf)!;
  assert.ok(vdev.has(VIRTIO_F_SR_IOV));
  vdev.features &= ~(1n << 37n);
  assert.equal(errno(() => k.sysfs().write(`${PF}/sriov_numvfs`, "1")), "EINVAL");
  vdev.features |= 1n << 37n;
  vdev.reset();
  assert.equal(errno(() => k.sysfs().write(`${PF}/sriov_numvfs`, "1")), "EBUSY");
});

test("a PF without SR-IOV capability has no sriov files and no bit 37", () => {
  const { k } = boot({ sriov: false });
  assert.equal(errno(() => k.sysfs().read(`${PF}/sriov_numvfs`)), "ENOENT");
  const vdev = k.virtioPci.devices.get(k.pci.find("0000:01:00.0")!)!;
  assert.equal(vdev.has(VIRTIO_F_SR_IOV), false);
});

test("sriov_drivers_autoprobe 0 leaves new VFs unbound and without netdevs", () => {
  const { k } = boot();
  const s = k.sysfs();
  s.write(`${PF}/sriov_drivers_autoprobe`, "0");
  s.write(`${PF}/sriov_numvfs`, "2");
  assert.equal(errno(() => s.readlink("/sys/bus/pci/devices/0000:01:00.1/driver")), "ENOENT");
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "lo"]);
  s.write("/sys/bus/pci/drivers/virtio-pci/bind", "0000:01:00.2");
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "eth1", "lo"]);
});

test("rtnetlink: link dump with RTEXT_FILTER_VF reports IFLA_NUM_VF and IFLA_VFINFO_LIST", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "3");
  const r = ip.parseReplies(k.netlink(ip.getLinkRequest()));
  assert.equal(r.done, true);
  assert.deepEqual(r.links.map((l) => l.name), ["lo", "eth0", "eth1", "eth2", "eth3"]);
  const eth0 = r.links[1]!;
  assert.equal(eth0.numVf, 3);
  assert.equal(eth0.vfs?.length, 3);
  assert.equal(eth0.vfs?.[1]?.mac, "52:54:00:00:01:02");
  assert.equal(eth0.vfs?.[1]?.spoofchk, 1);
  assert.equal(r.links[2]!.numVf, 0, "a VF's netdev has no VFs");
  const single = ip.parseReplies(k.netlink(ip.getLinkRequest("eth0", false)));
  assert.equal(single.links.length, 1);
  assert.equal(single.links[0]!.numVf, undefined, "no IFLA_NUM_VF without RTEXT_FILTER_VF");
  assert.equal(ip.parseReplies(k.netlink(ip.getLinkRequest("nosuch"))).error, -19);
});

test("rtnetlink: VF settings through IFLA_VFINFO_LIST reach the device; refusals are negative errnos", () => {
  const { m, k } = boot({ vlanAllow: [100] });
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  const eth0 = k.initNs.byName("eth0")!.ifindex;
  const ok = (req: Uint8Array): number => ip.parseReplies(k.netlink(req)).error;
  assert.equal(ok(ip.setVfRequest(eth0, 0, { vlan: 100, qos: 3 })), 0);
  assert.equal(m.vfConfigs.get(1)!.vlan, 100);
  assert.equal(m.vfConfigs.get(1)!.qos, 3);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { vlan: 200 })), -1, "EPERM from host policy");
  assert.equal(m.vfConfigs.get(1)!.vlan, 100, "nothing changed");
  assert.equal(ok(ip.setVfRequest(eth0, 1, { vlan: 100, proto: 0x88a8 })), 0);
  assert.equal(m.vfConfigs.get(2)!.vlanProto, 0x88a8);
  assert.equal(ok(ip.setVfRequest(eth0, 1, { vlan: 4096 })), -22);
  assert.equal(ok(ip.setVfRequest(eth0, 1, { vlan: 5, proto: 0x1234 })), -93);
  assert.equal(ok(ip.setVfRequest(eth0, 5, { vlan: 100 })), -22, "no such VF");
  assert.equal(ok(ip.setVfRequest(eth0, 0, { mac: "01:00:00:00:00:01" })), -22, "multicast MAC");
  assert.equal(ok(ip.setVfRequest(eth0, 0, { mac: "02:aa:bb:cc:dd:ee" })), 0);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { spoofchk: false })), 0);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { trust: true })), 0);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { state: 2 })), 0);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { minTxRate: 10, maxTxRate: 100 })), 0);
  assert.equal(ok(ip.setVfRequest(eth0, 0, { minTxRate: 100, maxTxRate: 10 })), -22);
  const vf0 = ip.parseReplies(k.netlink(ip.getLinkRequest("eth0"))).links[0]!.vfs![0]!;
  assert.deepEqual(
    { mac: vf0.mac, vlan: vf0.vlan, qos: vf0.qos, spoofchk: vf0.spoofchk, trust: vf0.trust, linkState: vf0.linkState, min: vf0.minTxRate, max: vf0.maxTxRate },
    { mac: "02:aa:bb:cc:dd:ee", vlan: 100, qos: 3, spoofchk: 0, trust: 1, linkState: 2, min: 10, max: 100 },
  );
  const eth1 = k.initNs.byName("eth1")!.ifindex;
  assert.equal(ok(ip.setVfRequest(eth1, 0, { vlan: 100 })), -95, "a VF netdev has no admin queue, so no VF ops");
});

test("rtnetlink: up/down, rename, MAC, MTU, namespace moves and addresses", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  const run = (req: Uint8Array, ctx = {}): number => ip.parseReplies(k.netlink(req, ctx)).error;
  const eth1 = k.initNs.byName("eth1")!;
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { up: true })), 0);
  assert.equal(eth1.isUp, true);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { name: "vf0" })), -16, "rename while up");
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { up: false })), 0);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { name: "eth2" })), -17);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { name: "bad/name" })), -22);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { name: "vf0" })), 0);
  assert.equal(eth1.name, "vf0");
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { mac: "02:00:00:00:00:99" })), 0);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { mac: "01:00:00:00:00:99" })), -99);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { mtu: 70000 })), -22);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { mtu: 1400 })), 0);
  k.netnsAdd("pod1");
  assert.equal(errno(() => k.netnsAdd("pod1")), "EEXIST");
  const nsFd = (fd: number): string | null | undefined => (fd === 7 ? "pod1" : undefined);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { netnsFd: 9 }), { nsFd }), -9);
  assert.equal(run(ip.setLinkRequest(eth1.ifindex, { netnsFd: 7, name: "net1" }), { nsFd }), 0);
  assert.equal(eth1.ns.name, "pod1");
  assert.equal(eth1.name, "net1");
  assert.deepEqual(k.sysfs("pod1").list("/sys/class/net"), ["lo", "net1"]);
  assert.deepEqual(k.sysfs().list("/sys/class/net"), ["eth0", "eth2", "lo"]);
  assert.equal(errno(() => k.sysfs().list("/sys/bus/pci/devices/0000:01:00.1/virtio1/net")), "ENOENT");
  // In the pod: address, up, dump.
  const pod = { netns: "pod1" };
  assert.equal(run(ip.addrRequest(true, eth1.ifindex, "10.0.0.1", 24), pod), 0);
  assert.equal(run(ip.addrRequest(true, eth1.ifindex, "10.0.0.1", 24), pod), -17);
  const addrs = ip.parseReplies(k.netlink(ip.getAddrRequest(), pod)).addrs;
  assert.deepEqual(addrs.map((a) => `${a.address}/${a.prefixLen}`), ["127.0.0.1/8", "10.0.0.1/24"]);
  assert.equal(run(ip.addrRequest(false, eth1.ifindex, "10.0.0.1", 24), pod), 0);
  assert.equal(run(ip.addrRequest(false, eth1.ifindex, "10.0.0.1", 24), pod), -99);
  // A new VF takes the lowest free eth%d in the initial namespace.
  k.sysfs().write(`${PF}/sriov_numvfs`, "0");
  k.sysfs().write(`${PF}/sriov_numvfs`, "1");
  assert.deepEqual(k.sysfs().list("/sys/class/net"), ["eth0", "eth1", "lo"]);
  // Deleting the namespace returns its physical devices.
  k.netnsAdd("pod2");
  const vf = k.initNs.byName("eth1")!;
  assert.equal(run(ip.setLinkRequest(vf.ifindex, { netnsPid: k.namespace("pod2").pid })), 0);
  k.netnsDel("pod2");
  assert.equal(vf.ns, k.initNs);
});

test("ping between two VFs in two namespaces through the device data plane", () => {
  const { m, k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  const a = k.initNs.byName("eth1")!;
  const b = k.initNs.byName("eth2")!;
  k.netnsAdd("a");
  k.netnsAdd("b");
  k.moveDevice(a, k.namespace("a"), undefined);
  k.moveDevice(b, k.namespace("b"), undefined);
  k.addAddress(a, 0x0a000001, 24, "eth1", true);
  k.addAddress(b, 0x0a000002, 24, "eth2", true);
  k.setUp(a, true);
  k.setUp(b, true);
  assert.equal(k.ping("a", "10.0.0.2", 3), 3);
  assert.equal(k.ping("b", "10.0.0.1", 1), 1);
  assert.equal(k.ping("a", "127.0.0.1", 1), 1);
  assert.equal(errno(() => k.ping("a", "192.168.0.1", 1)), "ENETUNREACH");
  assert.ok(m.hub.forwarded >= 8);
  assert.equal(k.irq.spurious, 0);
  assert.equal(k.irq.handlerErrors, 0);
  assert.ok(k.irq.delivered >= 8, "receive completions arrive as MSI-X messages");
  assert.ok(a.stats.txPackets >= 4 && b.stats.rxPackets >= 4);
});

test("routes: RTM_NEWROUTE via a gateway, dump, delete; ping follows the gateway route", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  const a = k.initNs.byName("eth1")!;
  const b = k.initNs.byName("eth2")!;
  k.netnsAdd("a");
  k.netnsAdd("b");
  k.moveDevice(a, k.namespace("a"), undefined);
  k.moveDevice(b, k.namespace("b"), undefined);
  const run = (ns: string, req: Uint8Array): number => ip.parseReplies(k.netlink(req, { netns: ns })).error;
  assert.equal(run("a", ip.addrRequest(true, a.ifindex, "10.0.0.1", 24)), 0);
  assert.equal(run("b", ip.addrRequest(true, b.ifindex, "10.0.0.2", 24)), 0);
  assert.equal(run("b", ip.addrRequest(true, b.ifindex, "10.2.0.5", 32)), 0);
  k.setUp(a, true);
  k.setUp(b, true);
  assert.equal(run("a", ip.routeRequest(true, "10.2.0.0", 16, a.ifindex, "192.168.1.1")), -101, "gateway not on a connected prefix");
  assert.equal(run("a", ip.routeRequest(true, "10.2.0.1", 16, a.ifindex, "10.0.0.2")), -22, "host bits set");
  assert.equal(run("a", ip.routeRequest(true, "10.2.0.0", 16, 999, "10.0.0.2")), -19);
  assert.equal(errno(() => k.ping("a", "10.2.0.5", 1)), "ENETUNREACH");
  assert.equal(run("a", ip.routeRequest(true, "10.2.0.0", 16, a.ifindex, "10.0.0.2")), 0);
  assert.equal(run("a", ip.routeRequest(true, "10.2.0.0", 16, a.ifindex, "10.0.0.2")), -17);
  const routes = ip.parseReplies(k.netlink(ip.getRouteRequest(), { netns: "a" })).routes;
  assert.deepEqual(routes.map((r) => `${r.dst} ${r.gateway ?? "-"} ${r.protocol}`), ["10.0.0.0/24 - 2", "10.2.0.0/16 10.0.0.2 3"]);
  assert.equal(k.ping("a", "10.2.0.5", 2), 2);
  assert.equal(run("a", ip.routeRequest(false, "10.2.0.0", 16, a.ifindex)), 0);
  assert.equal(run("a", ip.routeRequest(false, "10.2.0.0", 16, a.ifindex)), -3);
  assert.equal(errno(() => k.ping("a", "10.2.0.5", 1)), "ENETUNREACH");
});

test("property: random rtnetlink bytes never throw and every request message gets well-formed replies", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 99), fc.integer({ min: 0, max: 0xffff }), (body, type, flags) => {
      const msg = new Uint8Array(16 + body.length);
      const v = new DataView(msg.buffer);
      v.setUint32(0, msg.length, true);
      v.setUint16(4, type, true);
      v.setUint16(6, flags | 1, true);
      msg.set(body, 16);
      for (const r of k.netlink(msg)) {
        assert.ok(r.length >= 16);
        assert.equal(new DataView(r.buffer, r.byteOffset).getUint32(0, true), r.length);
      }
      k.netlink(body);
    }),
    { numRuns: 300 },
  );
});

test("property: random sysfs writes fail only with errno-coded errors", () => {
  const { k } = boot();
  const files = ["sriov_numvfs", "sriov_drivers_autoprobe", "vendor", "config", "virtio0/net/eth0/mtu", "virtio0/net/eth0/flags"];
  fc.assert(
    fc.property(fc.constantFrom(...files), fc.string({ maxLength: 12 }), (f, data) => {
      const path = `${PF}/${f}`;
      try {
        k.sysfsWrite(path, data);
      } catch (e) {
        assert.ok(e instanceof Error && "code" in e && /^E[A-Z]+$/.test(String(e.code)), String(e));
      }
    }),
    { numRuns: 200 },
  );
});

test("shutdown unbinds every driver and removes devices", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "3");
  k.shutdown();
  assert.equal(k.pci.devices.length, 0);
  assert.deepEqual(k.sysfs().list("/sys/class/net"), ["lo"]);
});

test("a conventional PCI function on bus 0: 256-byte config, BAR assigned, no driver", () => {
  const m = new TestMachine();
  const nicFn = new PciFunction({ vendorId: 0x8086, deviceId: 0x100e, classCode: 0x020000, express: false });
  nicFn.defineBar(0, { kind: "mem32", size: 0x20000 });
  m.bus.attach(nicFn, { bus: 0, device: 3, function: 0 });
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory });
  const d = k.pci.find("0000:00:03.0")!;
  assert.equal(d.cfgSize, 256);
  assert.equal(d.bars[0]!.size, 0x20000);
  assert.equal(d.bars[0]!.address % 0x20000, 0, "naturally aligned");
  const s = k.sysfs();
  assert.equal(s.readBytes("/sys/bus/pci/devices/0000:00:03.0/config").length, 256);
  assert.equal(s.read("/sys/bus/pci/devices/0000:00:03.0/class"), "0x020000\n");
  assert.equal(errno(() => s.readlink("/sys/bus/pci/devices/0000:00:03.0/driver")), "ENOENT");
  assert.equal(errno(() => s.read("/sys/bus/pci/devices/0000:00:03.0/sriov_numvfs")), "ENOENT");
});

test("uevents: add and bind at boot, KOBJ_CHANGE on the PF per sriov_numvfs change, net add/remove", () => {
  const { k } = boot();
  const boot0 = k.uevents.map((e) => `${e.action} ${e.subsystem}`);
  assert.ok(boot0.includes("add pci") && boot0.includes("bind pci") && boot0.includes("add net"));
  const seen: string[] = [];
  k.onUevent((e) => seen.push(`${e.action} ${e.subsystem} ${e.env.NUM_VFS ?? e.env.INTERFACE ?? ""}`.trim()));
  k.sysfs().write(`${PF}/sriov_numvfs`, "1");
  k.sysfs().write(`${PF}/sriov_numvfs`, "0");
  assert.deepEqual(seen, [
    "add pci",
    "add virtio",
    "add net eth1",
    "bind pci",
    "change pci 1",
    "remove net eth1",
    "remove virtio",
    "unbind pci",
    "remove pci",
    "change pci 0",
  ]);
});

test("netlink framing: ACK is NLMSG_ERROR 0 with the header only, errors echo the request, dumps end in NLMSG_DONE", () => {
  const { k } = boot();
  const eth0 = k.initNs.byName("eth0")!.ifindex;
  const req = ip.setLinkRequest(eth0, { up: true });
  const ackMsgs = k.netlink(req).flatMap((r) => splitMessages(r));
  assert.equal(ackMsgs.length, 1);
  const a = ackMsgs[0]!;
  assert.equal(a.type, NLMSG_ERROR);
  assert.equal(a.flags, NLM_F_CAPPED);
  assert.equal(readI32At(a.payload, 0), 0);
  assert.equal(a.raw.length, 16 + 4 + 16);
  assert.deepEqual(a.payload.subarray(4, 20), req.subarray(0, 16));
  // dev_change_name refuses an up device before it even looks at the new name.
  const bad = ip.setLinkRequest(eth0, { name: "x/y" });
  const e = k.netlink(bad).flatMap((r) => splitMessages(r))[0]!;
  assert.equal(readI32At(e.payload, 0), -16);
  assert.equal(e.flags, 0);
  assert.deepEqual(e.payload.subarray(4), bad);
  const dumpReq = ip.getLinkRequest();
  const seq = readI32At(dumpReq, 8);
  const dump = k.netlink(dumpReq).flatMap((r) => splitMessages(r));
  const last = dump[dump.length - 1]!;
  assert.equal(last.type, NLMSG_DONE);
  assert.equal(last.flags, NLM_F_MULTI);
  assert.equal(readI32At(last.payload, 0), 0);
  assert.equal(dump.length, 3, "lo, eth0, DONE");
  for (const m of dump) {
    assert.equal(m.flags, NLM_F_MULTI);
    assert.equal(m.seq, seq);
  }
  // Unknown message types and pid-addressed namespaces.
  const unknown = new Uint8Array(32);
  new DataView(unknown.buffer).setUint32(0, 32, true);
  new DataView(unknown.buffer).setUint16(4, 99, true);
  new DataView(unknown.buffer).setUint16(6, 1, true);
  assert.equal(ip.parseReplies(k.netlink(unknown)).error, -95);
  assert.equal(ip.parseReplies(k.netlink(ip.setLinkRequest(eth0, { netnsPid: 4242 }))).error, -3);
});

test("a namespace's link dump shows only its devices; deleting it sends VFs home renamed when the name is taken", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  k.netnsAdd("p");
  const eth1 = k.initNs.byName("eth1")!;
  k.moveDevice(eth1, k.namespace("p"), undefined);
  assert.deepEqual(ip.parseReplies(k.netlink(ip.getLinkRequest(), { netns: "p" })).links.map((l) => l.name), ["lo", "eth1"]);
  k.renameDevice(k.initNs.byName("eth2")!, "eth1");
  k.netnsDel("p");
  assert.equal(eth1.ns, k.initNs);
  assert.equal(eth1.name, "dev0");
  assert.deepEqual(k.netnsList(), []);
  assert.equal(errno(() => k.netnsDel("p")), "ENOENT");
  assert.equal(errno(() => k.netnsAdd("a/b")), "EINVAL");
});

test("EVENT_IDX: negotiated when offered; refilled receive buffers need no doorbell, sends need one each", () => {
  const { k } = boot();
  k.sysfs().write(`${PF}/sriov_numvfs`, "2");
  const a = k.initNs.byName("eth1")!;
  const b = k.initNs.byName("eth2")!;
  k.setUp(a, true);
  k.setUp(b, true);
  const va = k.virtnetOf(a)!;
  const vb = k.virtnetOf(b)!;
  assert.equal(va.tx.eventIdx, true);
  const rxKicks = vb.rx.kicks;
  const txKicks = va.tx.kicks;
  const f = new Uint8Array(60);
  f.set(b.mac, 0);
  f.set(a.mac, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let i = 0; i < 10; i++) assert.ok(a.transmit(f));
  assert.equal(b.stats.rxPackets, 10);
  assert.equal(va.tx.kicks - txKicks, 10);
  assert.equal(vb.rx.kicks, rxKicks, "the device had buffers left: avail_event did not ask for a kick");
  // A burst (xmit_more) rings the doorbell once; a burst longer than the ring kicks when full.
  const kicksBefore = va.tx.kicks;
  assert.equal(a.transmitBatch(new Array<Uint8Array>(20).fill(f)), 20);
  assert.equal(b.stats.rxPackets, 30);
  assert.equal(va.tx.kicks - kicksBefore, 1);
  assert.equal(a.transmitBatch(new Array<Uint8Array>(150).fill(f)), 150);
  assert.equal(b.stats.rxPackets, 180);
  assert.equal(va.tx.bogusUsed + vb.rx.bogusUsed, 0);
});

test("needEvent is vring_need_event over 16-bit wrap-around", () => {
  assert.equal(needEvent(5, 6, 5), true);
  assert.equal(needEvent(5, 5, 4), false);
  assert.equal(needEvent(0xffff, 1, 0xfffe), true);
  assert.equal(needEvent(10, 9, 0), false);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 0x7fff }), fc.integer({ min: 0, max: 0xffff }), (old, n, r) => {
      const newIdx = (old + n) & 0xffff;
      // An event index inside [old, new) has been passed; one outside it has not.
      assert.equal(needEvent((old + (r % n)) & 0xffff, newIdx, old), true);
      assert.equal(needEvent((newIdx + (r % (0x10000 - n))) & 0xffff, newIdx, old), false);
    }),
  );
});

test("property: any sequence of user operations keeps PCI, netdevs and the device in agreement", () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant("numvfs" as const), v: fc.oneof(fc.integer({ min: 0, max: 10 }).map(String), fc.constantFrom("", "x", "-1", "0x3", "99999")) }),
    fc.record({ kind: fc.constant("vlan" as const), vf: fc.integer({ min: -1, max: 9 }), vlan: fc.integer({ min: 0, max: 5000 }) }),
    fc.record({ kind: fc.constant("move" as const), dev: fc.integer({ min: 1, max: 9 }), ns: fc.constantFrom("a", "b", "nope") }),
    fc.record({ kind: fc.constant("netns" as const), add: fc.boolean(), ns: fc.constantFrom("a", "b") }),
    fc.record({ kind: fc.constant("sysfs" as const), path: fc.constantFrom("/sys/class/net/eth1/device/../physfn", "/sys/bus/pci/devices/0000:01:00.3/virtio3/net", `${PF}/virtfn2`, "/sys/class/net/eth2/mtu"), data: fc.string({ maxLength: 6 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
      const { m, k } = boot();
      for (const o of ops) {
        try {
          if (o.kind === "numvfs") k.sysfsWrite(`${PF}/sriov_numvfs`, o.v);
          else if (o.kind === "vlan") k.netlink(ip.setVfRequest(k.initNs.byName("eth0")!.ifindex, o.vf, { vlan: o.vlan }));
          else if (o.kind === "move") {
            const d = k.initNs.byName(`eth${o.dev}`);
            if (d !== undefined) k.netlink(ip.setLinkRequest(d.ifindex, { netnsFd: 5 }), { nsFd: (fd) => (fd === 5 && o.ns !== "nope" ? o.ns : undefined) });
          } else if (o.kind === "netns") {
            if (o.add) k.netnsAdd(o.ns);
            else k.netnsDel(o.ns);
          } else {
            k.sysfsWrite(o.path, o.data);
          }
        } catch (e) {
          assert.ok(e instanceof Error && "errno" in e, `unexpected ${String(e)}`);
        }
        const st = k.pci.sriov.get(k.pci.find("0000:01:00.0")!)!;
        const n = st.numVFs;
        assert.equal(k.pci.devices.length, 2 + n);
        assert.equal(k.allNetdevs().filter((d) => d.name !== "lo").length, 1 + n);
        assert.equal(m.bus.functions().length, 2 + n, "the device side agrees on the VF count");
      }
    }),
    { numRuns: 25 },
  );
});

test("guest RAM too small for every VF's rings: those probes fail with ENOMEM, the enable itself succeeds", () => {
  const m = new TestMachine();
  // Room for the PF and about two VFs' DMA arenas.
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory }, { dmaBase: 0x100000, dmaSize: 1024 * 1024 });
  k.sysfsWrite(`${PF}/sriov_numvfs`, "8");
  assert.equal(k.sysfsRead(`${PF}/sriov_numvfs`), "8\n");
  const bound = k.pci.devices.filter((d) => d.isVirtfn && k.pci.bound.has(d)).length;
  assert.ok(bound >= 1 && bound < 8, `${bound} VFs bound`);
  assert.equal(k.allNetdevs().filter((d) => d.name !== "lo").length, 1 + bound);
  k.sysfsWrite(`${PF}/sriov_numvfs`, "0");
  k.sysfsWrite(`${PF}/sriov_numvfs`, "2");
  assert.equal(k.allNetdevs().filter((d) => d.name !== "lo").length, 3, "memory came back with the removed VFs");
});

test("sysfs directory caching: a listener reading sysfs in the middle of a change never leaves a stale tree", () => {
  const { k } = boot();
  const s = k.sysfs();
  const seenDuring: string[][] = [];
  k.onUevent((e) => {
    if (e.subsystem === "pci") seenDuring.push(s.list("/sys/class/net"));
  });
  s.write(`${PF}/sriov_numvfs`, "3");
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "eth1", "eth2", "eth3", "lo"]);
  assert.equal(s.readlink(`${PF}/virtfn2`), "../0000:01:00.3");
  s.write(`${PF}/sriov_numvfs`, "0");
  assert.deepEqual(s.list("/sys/class/net"), ["eth0", "lo"]);
  assert.equal(errno(() => s.readlink(`${PF}/virtfn0`)), "ENOENT");
  assert.ok(seenDuring.length > 0);
  k.renameDevice(k.initNs.byName("eth0")!, "uplink0");
  assert.deepEqual(s.list("/sys/class/net"), ["lo", "uplink0"]);
});

test("property: random sysfs paths fail only with errno-coded errors, for every operation", () => {
  const { k } = boot();
  k.sysfsWrite(`${PF}/sriov_numvfs`, "2");
  const seg = fc.oneof(
    fc.constantFrom("sys", "bus", "pci", "devices", "class", "net", "eth0", "eth1", "..", ".", "", "0000:01:00.0", "0000:01:00.1", "virtio0", "virtio1", "physfn", "virtfn0", "device", "driver", "config", "subsystem", "statistics", "msi_irqs"),
    fc.string({ maxLength: 5 }),
  );
  fc.assert(
    fc.property(fc.array(seg, { maxLength: 9 }), fc.boolean(), fc.constantFrom("read", "readlink", "list", "write"), (parts, abs, op) => {
      const path = (abs ? "/" : "") + parts.join("/");
      try {
        if (op === "read") k.sysfsReadBytes(path);
        else if (op === "readlink") k.sysfsReadlink(path);
        else if (op === "list") k.sysfsList(path);
        else k.sysfsWrite(path, "1");
      } catch (e) {
        assert.ok(e instanceof Error && "errno" in e, `${op} ${path}: ${String(e)}`);
      }
    }),
    { numRuns: 400 },
  );
});
