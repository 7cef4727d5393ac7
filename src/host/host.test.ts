import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock, KernelError } from "../base/index.js";
import { MacAddress, EthernetRepr, emitAttrs, parseAttrs, parseVfInfo, vfInfoSpec } from "../wire/index.js";
import { Nic, STATUS_NEEDS_RESET } from "../nic/index.js";
import { Host, runCommand, VirtioNetDouble, parseKernelU16, rtnlVfInfo } from "./index.js";

function newHost(): Host {
  return new Host(new Nic({ clock: new VirtualClock(), ports: 2 }));
}
const PF = "enp59s0f0np0";

function frame(dst: string, src: string, len = 60): Uint8Array {
  const b = new Uint8Array(len);
  EthernetRepr.emit({ dst: MacAddress.parse(dst), src: MacAddress.parse(src), vlans: [], etherType: 0x0800 }, b);
  return b;
}

test("sriov_numvfs follows the kernel's rules", () => {
  const h = newHost();
  assert.deepEqual(h.pfNames(), ["enp59s0f0np0", "enp59s0f1np1"]);
  assert.equal(h.readFile(`/sys/class/net/${PF}/device/sriov_totalvfs`), "127\n");
  h.writeFile(`/sys/class/net/${PF}/device/sriov_numvfs`, "4\n");
  assert.equal(h.readFile("/sys/bus/pci/devices/0000:3b:00.0/sriov_numvfs"), "4\n");
  h.writeFile(`/sys/class/net/${PF}/device/sriov_numvfs`, "4"); // same value: no-op
  assert.throws(() => h.setSriovNumVfs(PF, 2), { code: "EBUSY" });
  h.setSriovNumVfs(PF, 0);
  h.setSriovNumVfs(PF, "0x2");
  assert.equal(h.sriovNumVfs(PF), 2);
  assert.equal(parseKernelU16("010"), 8);
  assert.ok(Number.isNaN(parseKernelU16("4 ")));
});

test("every host command's errors (table)", () => {
  type Case = [string, (h: Host) => unknown, string];
  const cases: Case[] = [
    ["numvfs above total", (h) => h.setSriovNumVfs(PF, 128), "ERANGE"],
    ["numvfs above u16", (h) => h.setSriovNumVfs(PF, "70000"), "ERANGE"],
    ["numvfs not a number", (h) => h.setSriovNumVfs(PF, "four"), "EINVAL"],
    ["numvfs N to M", (h) => h.setSriovNumVfs(PF, 3), "EBUSY"],
    ["numvfs unknown PF", (h) => h.setSriovNumVfs("eth9", 1), "ENODEV"],
    ["sysfs unknown file", (h) => h.readFile(`/sys/class/net/${PF}/device/nope`), "ENOENT"],
    ["sysfs totalvfs write", (h) => h.writeFile(`/sys/class/net/${PF}/device/sriov_totalvfs`, "3"), "EPERM"],
    ["vf index out of range", (h) => h.setVf(PF, 4, { spoofchk: true }), "EINVAL"],
    ["vf multicast mac", (h) => h.setVf(PF, 0, { mac: "01:00:5e:00:00:01" }), "EINVAL"],
    ["vf malformed mac", (h) => h.setVf(PF, 0, { mac: "zz" }), "EINVAL"],
    ["vf vlan > 4095", (h) => h.setVf(PF, 0, { vlan: { vlan: 4096 } }), "EINVAL"],
    ["vf qos > 7", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, qos: 8 } }), "EINVAL"],
    ["vf bad proto", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, proto: 0x9100 } }), "EINVAL"],
    ["vf inner vlan under 802.1Q", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, inner: { vlan: 10 } } }), "EINVAL"],
    ["vf inner vlan without outer VID", (h) => h.setVf(PF, 0, { vlan: { vlan: 0, qos: 1, proto: "802.1ad", inner: { vlan: 10 } } }), "EINVAL"],
    ["vf inner vlan under outer 4095", (h) => h.setVf(PF, 0, { vlan: { vlan: 4095, proto: "802.1ad", inner: { vlan: 10 } } }), "EINVAL"],
    ["vf inner vlan 4095", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, proto: "802.1ad", inner: { vlan: 4095 } } }), "EINVAL"],
    ["vf inner vlan negative", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, proto: "802.1ad", inner: { vlan: -1 } } }), "EINVAL"],
    ["vf inner qos > 7", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, proto: "802.1ad", inner: { vlan: 10, qos: 8 } } }), "EINVAL"],
    ["vf inner qos without inner vlan", (h) => h.setVf(PF, 0, { vlan: { vlan: 5, proto: "802.1ad", inner: { vlan: 0, qos: 2 } } }), "EINVAL"],
    ["vf min > max", (h) => h.setVf(PF, 0, { minTxRate: 200, maxTxRate: 100 }), "EINVAL"],
    ["vf rate above link", (h) => h.setVf(PF, 0, { maxTxRate: 100_001 }), "EINVAL"],
    ["vf bad link state", (h) => h.setVf(PF, 0, { state: 3 }), "EINVAL"],
    ["vf unknown PF", (h) => h.setVf("eth9", 0, { trust: true }), "ENODEV"],
    ["devlink unknown dev", (h) => h.devlinkEswitchShow("pci/0000:3b:00.2"), "ENODEV"],
    ["devlink switchdev", (h) => h.devlinkEswitchSet("pci/0000:3b:00.0", { mode: "switchdev" }), "EOPNOTSUPP"],
    ["devlink bad mode", (h) => h.devlinkEswitchSet("pci/0000:3b:00.0", { mode: "turbo" }), "EINVAL"],
    ["mgmtdev unknown", (h) => h.vdpaMgmtdevShow("pci/0000:3b:00.9"), "ENODEV"],
    ["vdpa add unknown mgmtdev", (h) => h.vdpaDevAdd({ name: "x", mgmtdev: "pci/0000:3b:07.0" }), "ENODEV"],
    ["vdpa add name taken", (h) => h.vdpaDevAdd({ name: "vdpa0", mgmtdev: "pci/0000:3b:00.3" }), "EEXIST"],
    ["vdpa add second on a VF", (h) => h.vdpaDevAdd({ name: "vdpa9", mgmtdev: "pci/0000:3b:00.2" }), "ENOSPC"],
    ["vdpa add max_vqp 0", (h) => h.vdpaDevAdd({ name: "v1", mgmtdev: "pci/0000:3b:00.3", maxVqp: 0 }), "EINVAL"],
    ["vdpa add max_vqp too big", (h) => h.vdpaDevAdd({ name: "v1", mgmtdev: "pci/0000:3b:00.3", maxVqp: 9 }), "EINVAL"],
    ["vdpa add multicast mac", (h) => h.vdpaDevAdd({ name: "v1", mgmtdev: "pci/0000:3b:00.3", mac: "33:33:00:00:00:01" }), "EINVAL"],
    ["vdpa add bad mtu", (h) => h.vdpaDevAdd({ name: "v1", mgmtdev: "pci/0000:3b:00.3", mtu: 10 }), "EINVAL"],
    ["vdpa add bad name", (h) => h.vdpaDevAdd({ name: "a b", mgmtdev: "pci/0000:3b:00.3" }), "EINVAL"],
    ["vdpa del unknown", (h) => h.vdpaDevDel("nope"), "ENODEV"],
    ["vdpa del while open", (h) => (h.openVhostVdpa("vdpa0"), h.vdpaDevDel("vdpa0")), "EBUSY"],
    ["vhost open twice", (h) => (h.openVhostVdpa("vdpa0"), h.openVhostVdpa("/dev/vhost-vdpa-0")), "EBUSY"],
    ["vhost open unknown", (h) => h.openVhostVdpa("/dev/vhost-vdpa-7"), "ENOENT"],
    ["numvfs to 0 while open", (h) => (h.openVhostVdpa("vdpa0"), h.setSriovNumVfs(PF, 0)), "EBUSY"],
    ["vhost queue index", (h) => h.openVhostVdpa("vdpa0").setVringNum(3, 256), "ENOBUFS"],
    ["vhost ring size", (h) => h.openVhostVdpa("vdpa0").setVringNum(0, 100), "EINVAL"],
    ["vhost unknown features", (h) => h.openVhostVdpa("vdpa0").setFeatures(1n << 60n), "EINVAL"],
    ["vhost features after FEATURES_OK", (h) => {
      const v = h.openVhostVdpa("vdpa0");
      v.setFeatures(1n << 32n);
      v.setStatus(1 | 2 | 8);
      v.setFeatures(1n << 32n);
    }, "EBUSY"],
    ["vhost status clear", (h) => {
      const v = h.openVhostVdpa("vdpa0");
      v.setStatus(3);
      v.setStatus(1);
    }, "EINVAL"],
    ["vhost closed", (h) => {
      const v = h.openVhostVdpa("vdpa0");
      v.close();
      v.getStatus();
    }, "ENODEV"],
  ];
  for (const [name, fn, code] of cases) {
    const h = newHost();
    h.setSriovNumVfs(PF, 4);
    h.vdpaDevAdd({ name: "vdpa0", mgmtdev: "pci/0000:3b:00.2" });
    assert.throws(() => fn(h), (e: unknown) => e instanceof KernelError && e.code === code, name);
  }
});

test("VF configuration round-trips through the rtnetlink view and ip link show", () => {
  const h = newHost();
  h.setSriovNumVfs(PF, 3);
  h.setVf(PF, 0, { mac: "00:11:22:33:44:55", vlan: { vlan: 5, qos: 1, proto: "802.1ad" }, spoofchk: true, state: "enable", trust: true, queryRss: true });
  h.setVf(PF, 1, { vlan: { vlan: 6, qos: 2 }, state: "disable", maxTxRate: 100, minTxRate: 10 });
  h.setVf(PF, 2, { vlan: { vlan: 7, qos: 3 } });
  const info = h.getVfInfo(PF);
  assert.equal(info.numVf, 3);
  assert.equal(info.vfs[0]!.mac.toString(), "00:11:22:33:44:55");
  assert.equal(info.vfs[0]!.vlanProto, 0x88a8);
  assert.equal(info.vfs[1]!.txRate, 100);
  assert.equal(info.vfs[1]!.stats?.rxPackets, 0n);
  assert.equal(h.getVfInfo(PF, { skipStats: true }).vfs[0]!.stats, undefined);
  const out = runCommand(h, `ip link show ${PF}`);
  assert.equal(out.status, 0);
  // systemd-networkd's SR-IOV test expectations (reference §11).
  assert.match(out.stdout, /vf 0 .*00:11:22:33:44:55.*vlan 5, qos 1, vlan protocol 802.1ad, spoof checking on, link-state enable, trust on, query_rss on/);
  assert.match(out.stdout, /vf 1 .*vlan 6, qos 2, tx rate 100 \(Mbps\), max_tx_rate 100Mbps, min_tx_rate 10Mbps, spoof checking off, link-state disable, trust off, query_rss off/);
  assert.match(out.stdout, /vf 2 .*vlan 7, qos 3, spoof checking off, link-state auto, trust off, query_rss off/);
  assert.doesNotMatch(out.stdout, /vf 3/);
  // A refused request changes nothing.
  assert.throws(() => h.setVf(PF, 2, { mac: "02:00:00:00:00:01", vlan: { vlan: 9999 } }), { code: "EINVAL" });
  assert.equal(h.getVfInfo(PF).vfs[2]!.mac.toString(), "00:00:00:00:00:00");
});

test("two-tag VST (vpf extension): setVf with inner, getVfInfo, ip link show, rtnetlink view", () => {
  const h = newHost();
  h.setSriovNumVfs(PF, 2);
  h.setVf(PF, 0, { vlan: { vlan: 300, qos: 5, proto: 0x88a8, inner: { vlan: 42, qos: 3 } } });
  h.setVf(PF, 1, { vlan: { vlan: 300, proto: "802.1ad", inner: { vlan: 0 } } });
  const vfs = h.getVfInfo(PF).vfs;
  const v0 = vfs[0]!;
  const v1 = vfs[1]!;
  assert.deepEqual([v0.vlan, v0.qos, v0.vlanProto, v0.innerVlan], [300, 5, 0x88a8, { vlan: 42, qos: 3 }]);
  assert.equal(v1.innerVlan, undefined, "inner VLAN 0 = S-tag only");
  assert.equal("innerVlan" in v1, false);
  // rtnetlink carries the outer tag only (IFLA_VF_VLAN_LIST has one entry).
  const w = rtnlVfInfo(v0);
  assert.deepEqual(w.vlan, { vlan: 300, qos: 5 });
  assert.deepEqual(w.vlanList, [{ vlan: 300, qos: 5, proto: 0x88a8 }]);
  assert.deepEqual(parseVfInfo(parseAttrs(emitAttrs([vfInfoSpec(w)]))[0]!), w);
  const out = runCommand(h, `ip link show ${PF}`).stdout;
  assert.match(out, /vf 0 .*vlan 300, qos 5, vlan protocol 802\.1ad, vpf inner vlan 42, vpf inner qos 3, spoof checking/);
  assert.match(out, /vf 1 .*vlan 300, vlan protocol 802\.1ad, spoof checking/);
  // The NIC pushes both tags.
  const port = h.nic.port(0);
  const wire: Uint8Array[] = [];
  port.uplink.attach((f) => wire.push(f.slice()));
  port.vf(0).send(frame("02:ee:00:00:00:01", "02:00:00:00:00:01"));
  assert.deepEqual([...wire[0]!.subarray(12, 20)], [0x88, 0xa8, 0xa1, 0x2c, 0x81, 0x00, 0x60, 0x2a]);
  // A later vlan without inner drops the inner tag; a refused one changes nothing.
  assert.throws(() => h.setVf(PF, 0, { trust: true, vlan: { vlan: 301, inner: { vlan: 7 } } }), { code: "EINVAL" });
  assert.deepEqual(h.getVfInfo(PF).vfs[0]!.innerVlan, { vlan: 42, qos: 3 });
  assert.equal(h.getVfInfo(PF).vfs[0]!.trust, false);
  h.setVf(PF, 0, { vlan: { vlan: 300, proto: "802.1ad" } });
  assert.equal(h.getVfInfo(PF).vfs[0]!.innerVlan, undefined);
  // Command line: inner_vlan / inner_qos after vlan.
  assert.equal(runCommand(h, `ip link set ${PF} vf 1 vlan 200 proto 802.1ad inner_vlan 7 inner_qos 2 spoofchk on`).status, 0);
  assert.deepEqual(h.getVfInfo(PF).vfs[1]!.innerVlan, { vlan: 7, qos: 2 });
  assert.equal(h.getVfInfo(PF).vfs[1]!.spoofchk, true);
  assert.deepEqual(runCommand(h, `ip link set ${PF} vf 1 vlan 200 inner_vlan 7`), { status: 2, stdout: "", stderr: "RTNETLINK answers: Invalid argument\n" });
  assert.equal(runCommand(h, `ip link set ${PF} vf 1 vlan 200 proto 802.1ad inner_qos 2`).status, 255);
  assert.equal(runCommand(h, `ip link set ${PF} vf 1 vlan 200 proto 802.1ad inner_vlan x`).status, 255);
});

test("command lines answer like the real tools", () => {
  const h = newHost();
  assert.equal(runCommand(h, `echo 2 > /sys/class/net/${PF}/device/sriov_numvfs`).status, 0);
  assert.deepEqual(runCommand(h, `echo 3 > /sys/class/net/${PF}/device/sriov_numvfs`), { status: 1, stdout: "", stderr: "echo: write error: Device or resource busy\n" });
  assert.deepEqual(runCommand(h, `ip link set ${PF} vf 0 vlan 4096`), { status: 2, stdout: "", stderr: "RTNETLINK answers: Invalid argument\n" });
  assert.equal(runCommand(h, `ip link set ${PF} vf 0 min_tx_rate 20 max_tx_rate 10`).status, 255);
  assert.equal(runCommand(h, `ip link set ${PF} vf 1 mac 02:00:00:00:00:02 vlan 10 qos 3 proto 802.1ad spoofchk on trust on state enable`).status, 0);
  assert.equal(runCommand(h, "devlink dev eswitch show pci/0000:3b:00.0").stdout, "pci/0000:3b:00.0: mode legacy inline-mode none encap-mode basic\n");
  const sw = runCommand(h, "devlink dev eswitch set pci/0000:3b:00.0 mode switchdev");
  assert.equal(sw.status, 1);
  assert.match(sw.stderr, /not supported yet[\s\S]*kernel answers: Operation not supported/);
  assert.equal(runCommand(h, "vdpa dev add name vdpa0 mgmtdev pci/0000:3b:00.3 mac 02:00:00:00:00:02 max_vqp 2").status, 0);
  assert.equal(runCommand(h, "vdpa dev show").stdout, "vdpa0: type network mgmtdev pci/0000:3b:00.3 vendor_id 5555 max_vqs 5 max_vq_size 256\n");
  assert.equal(runCommand(h, "vdpa dev config show vdpa0").stdout, "vdpa0: mac 02:00:00:00:00:02 link up link_announce false max_vq_pairs 2 mtu 1500\n");
  assert.match(runCommand(h, "vdpa mgmtdev show pci/0000:3b:00.2").stdout, /^pci\/0000:3b:00.2: \n {2}supported_classes net\n {2}max_supported_vqs 17\n {2}dev_features MTU MAC STATUS CTRL_VQ/);
  assert.deepEqual(runCommand(h, "vdpa dev del vdpa7"), { status: 1, stdout: "", stderr: "Error: vdpa device vdpa7 not found\nkernel answers: No such device\n" });
  assert.equal(runCommand(h, "vdpa dev del vdpa0").status, 0);
  assert.equal(runCommand(h, "vdpa dev show").stdout, "");
});

test("vDPA data plane: VF to VF through rings, detach reports last_avail_idx", () => {
  const h = newHost();
  h.setSriovNumVfs(PF, 2);
  h.vdpaDevAdd({ name: "vdpa0", mgmtdev: "pci/0000:3b:00.2", mac: "02:00:00:00:00:01" });
  h.vdpaDevAdd({ name: "vdpa1", mgmtdev: "pci/0000:3b:00.3", mac: "02:00:00:00:00:02" });
  const ha = h.openVhostVdpa("vdpa0");
  const hb = h.openVhostVdpa("/dev/vhost-vdpa-1");
  const a = new VirtioNetDouble(ha, { queueSize: 64 });
  const b = new VirtioNetDouble(hb, { queueSize: 64, eventIdx: true });
  a.start();
  b.start();
  assert.deepEqual([...a.config().mac], [2, 0, 0, 0, 0, 1]);
  assert.equal(a.config().linkUp, true);
  assert.equal(a.config().mtu, 1500);
  const cfg = h.vdpaDevConfigShow("vdpa0")[0]!;
  assert.ok(cfg.negotiatedFeatures !== undefined && (cfg.negotiatedFeatures & (1n << 32n)) !== 0n);
  const f = frame("02:00:00:00:00:02", "02:00:00:00:00:01", 100);
  f[50] = 0xab;
  assert.equal(a.send(f, f, f), 3);
  const got = b.receive();
  assert.equal(got.length, 3);
  assert.deepEqual(got[0], f);
  assert.ok(b.interrupts.rx > 0);
  assert.equal(a.reapTx(), 3);
  const stats = h.getVfInfo(PF).vfs;
  assert.equal(stats[0]!.stats?.txPackets, 3n);
  assert.equal(stats[1]!.stats?.rxBytes, 300n);
  // Control queue: the MAC the administrator did not set may be changed by the driver.
  assert.equal(b.control(1, 1, Uint8Array.of(2, 0, 0, 0, 0, 0x22)), 0);
  assert.equal(h.getVfInfo(PF).vfs[1]!.mac.toString(), "02:00:00:00:00:22");
  assert.equal(b.control(9, 9, Uint8Array.of()), 1);
  // Link state reaches the guest as config status plus a config interrupt.
  h.setVf(PF, 1, { state: "disable" });
  assert.equal(b.config().linkUp, false);
  assert.equal(h.vdpaDevConfigShow("vdpa1")[0]!.linkUp, false);
  // Detach: the saved base is what the TX ring consumed; the device is deletable again.
  assert.equal(ha.getVringBase(1), 3);
  ha.close();
  assert.throws(() => ha.getVringBase(1), { code: "ENODEV" });
  h.setVf(PF, 1, { state: "auto" });
  b.send(frame("02:00:00:00:00:01", "02:00:00:00:00:22"));
  assert.equal(h.getVfInfo(PF).vfs[0]!.stats?.rxDropped, 1n);
  h.vdpaDevDel("vdpa0");
  assert.throws(() => h.openVhostVdpa("vdpa1"), { code: "EBUSY" });
});

test("a ring that runs ahead puts the device in DEVICE_NEEDS_RESET, never throws", () => {
  const h = newHost();
  h.setSriovNumVfs(PF, 1);
  h.vdpaDevAdd({ name: "vdpa0", mgmtdev: "pci/0000:3b:00.2", mac: "02:00:00:00:00:01" });
  const v = h.openVhostVdpa("vdpa0");
  const d = new VirtioNetDouble(v, { queueSize: 16 });
  let configIrq = 0;
  d.start();
  v.setConfigCall(() => configIrq++);
  // Reprogram transmitq0 by hand with an available index a whole ring ahead.
  v.setStatus(0);
  v.setStatus(1 | 2);
  v.setFeatures(1n << 32n);
  v.setStatus(1 | 2 | 8);
  v.setMemory(d.memory);
  v.setVringNum(1, 16);
  v.setVringAddr(1, { desc: 0x10000, avail: 0x11000, used: 0x12000 });
  v.setVringEnable(1, true);
  d.memory.writeU16(0x11002, 100);
  v.setStatus(1 | 2 | 8 | 4);
  v.setConfigCall(() => configIrq++);
  v.kick(1);
  assert.equal(v.getStatus() & STATUS_NEEDS_RESET, STATUS_NEEDS_RESET);
  assert.equal(configIrq, 1);
  v.setStatus(0);
  assert.equal(v.getStatus(), 0);
});

test("VF info encodes as IFLA_VF_INFO and parses back unchanged", () => {
  const h = newHost();
  h.setSriovNumVfs(PF, 2);
  h.setVf(PF, 1, { mac: "00:11:22:33:44:55", vlan: { vlan: 5, qos: 1, proto: "802.1ad" }, spoofchk: true, trust: true, maxTxRate: 50 });
  for (const v of h.getVfInfo(PF).vfs) {
    const w = rtnlVfInfo(v);
    const back = parseVfInfo(parseAttrs(emitAttrs([vfInfoSpec(w)]))[0]!);
    assert.deepEqual(back, w);
  }
  const one = rtnlVfInfo(h.getVfInfo(PF).vfs[1]!);
  assert.deepEqual(one.vlanList, [{ vlan: 5, qos: 1, proto: 0x88a8 }]);
  assert.equal(one.trust, 1);
  assert.equal(one.txRate, 50);
});
