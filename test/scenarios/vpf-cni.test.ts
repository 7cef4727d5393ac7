/**
 * The vpf-sriov CNI plugin (src/k8s) against the model guest on a vmm VM on the emulated NIC:
 * the plugin reaches the guest only through the guest endpoint (sysfs files and rtnetlink
 * bytes), the guest's virtio_net carries the VF settings on the vPF's admin queue, the
 * hypervisor checks host policy and configures the host VF. Then two pods ping each other
 * through the NIC's eswitch.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { VirtualClock } from "../../src/base/index.js";
import { Nic } from "../../src/nic/index.js";
import { Host } from "../../src/host/index.js";
import { Vm, BackendPool, hostBackend, type VfBackend } from "../../src/vmm/index.js";
import { GuestKernel } from "../../src/guest/index.js";
import { serveGuestEndpoint } from "../../src/k8s/endpoint.js";
import { runCni } from "../../src/k8s/cni/plugin.js";

const HOST_LOCAL = "/usr/lib/cni/host-local";

test("vpf-sriov CNI ADD/DEL on the model guest configures host VFs through the vPF; pods ping through the eswitch", async (t) => {
  // CI installs containernetworking-plugins (scripts/setup): a missing host-local fails, never skips.
  assert.ok(existsSync(HOST_LOCAL), `${HOST_LOCAL} is missing: run bash scripts/setup`);
  const nic = new Nic({ clock: new VirtualClock(), totalVfs: 5 });
  const host = new Host(nic);
  const pf = host.pfName(0);
  host.setSriovNumVfs(pf, 5);
  const backends: VfBackend[] = [];
  for (let i = 0; i < 5; i++) {
    host.vdpaDevAdd({ name: `vdpa${i}`, mgmtdev: `pci/${nic.port(0).vfAddress(i).toString()}` });
    backends.push(hostBackend(host, `vdpa${i}`));
  }
  const vm = new Vm({ name: "node1", memory: 64 * 1024 * 1024 });
  vm.addVpf({ backend: backends[0]!, pool: new BackendPool("p", backends.slice(1)), policy: { vlan: { mode: "allow-list", allowed: [0, 100] }, allowSpoofchkOff: false, allowTrust: false } });
  vm.start();
  const k = GuestKernel.boot({ platform: vm, memory: vm.memory });
  k.sysfsWrite("/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", "2");
  k.netnsAdd("pod1");
  k.netnsAdd("pod2");

  const dir = await mkdtemp(join(tmpdir(), "vpf-cni-guest-"));
  const endpoint = await serveGuestEndpoint(join(dir, "guest.sock"), k);
  t.after(async () => {
    await endpoint.close();
    await rm(dir, { recursive: true, force: true });
  });
  const conf = (vf: string, mac: string): string =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "vfnet",
      type: "vpf-sriov",
      deviceID: vf,
      guestEndpoint: endpoint.path,
      dataDir: join(dir, "state"),
      vlan: 100,
      mac,
      ipam: { type: "host-local", subnet: "10.56.0.0/24", dataDir: join(dir, "ipam") },
    });
  const env = (cmd: string, cid: string, ns: string): Record<string, string> => ({
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: cid,
    CNI_NETNS: `/var/run/netns/${ns}`,
    CNI_IFNAME: "net1",
    CNI_PATH: "/usr/lib/cni",
  });

  const a = await runCni(env("ADD", "c1", "pod1"), conf("0000:01:00.1", "02:00:00:00:00:a1"));
  assert.equal(a.exitCode, 0, a.stdout);
  const b = await runCni(env("ADD", "c2", "pod2"), conf("0000:01:00.2", "02:00:00:00:00:a2"));
  assert.equal(b.exitCode, 0, b.stdout);
  const ipOf = (out: string): string => ((JSON.parse(out) as { ips: { address: string }[] }).ips[0]!.address.split("/")[0]!);

  // The host VFs behind vVF 1 and 2 (pool backends vdpa1, vdpa2) carry what the pods asked for.
  const vfs = host.getVfInfo(pf).vfs;
  assert.equal(vfs[1]!.mac.toString(), "02:00:00:00:00:a1");
  assert.equal(vfs[1]!.vlan, 100);
  assert.equal(vfs[2]!.mac.toString(), "02:00:00:00:00:a2");
  assert.equal(vfs[2]!.vlan, 100);
  // In the guest, each VF netdev moved into its pod as net1 with the pod's MAC and address.
  const net1 = k.namespace("pod1").byName("net1")!;
  assert.equal([...net1.mac].map((x) => x.toString(16).padStart(2, "0")).join(":"), "02:00:00:00:00:a1");
  assert.equal(net1.isUp, true);
  assert.deepEqual(k.sysfsList("/sys/class/net"), ["eth0", "lo"]);

  assert.equal(k.ping("pod1", ipOf(b.stdout), 3), 3);
  assert.equal(k.ping("pod2", ipOf(a.stdout), 1), 1);

  const d = await runCni(env("DEL", "c1", "pod1"), conf("0000:01:00.1", "02:00:00:00:00:a1"));
  assert.equal(d.exitCode, 0, d.stdout);
  assert.equal(k.namespace("pod1").byName("net1"), undefined);
  assert.deepEqual(k.sysfsList("/sys/class/net"), ["eth0", "eth1", "lo"], "the VF netdev came home");
  // A VLAN the host does not allow fails the ADD with the guest's EPERM, and changes nothing.
  const bad = JSON.parse(conf("0000:01:00.1", "02:00:00:00:00:a3")) as Record<string, unknown>;
  bad.vlan = 300;
  const refused = await runCni(env("ADD", "c3", "pod2"), JSON.stringify(bad));
  assert.notEqual(refused.exitCode, 0);
  assert.match(refused.stdout, /not permitted|EPERM/i, refused.stdout);
  assert.equal(host.getVfInfo(pf).vfs[1]!.vlan, 0, "the host VF kept its VLAN");
  assert.deepEqual(k.sysfsList("/sys/class/net"), ["eth0", "eth1", "lo"], "the plugin rolled back: the VF netdev stayed home");
});
