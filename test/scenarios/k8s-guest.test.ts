/**
 * Scenario: Kubernetes programs against the model guest kernel (src/guest) on its test machine
 * (a virtio-net PF with SR-IOV whose VF configuration goes over the admin virtqueue to a
 * "host" table). The device plugin discovers the VFs through the guest endpoint and hands one
 * to a pod through the kubelet stand-in; vpf-sriov (the real executable) configures it through
 * the vPF with rtnetlink, moves it into the pod's namespace with host-local addressing, and gives
 * it back on DEL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GuestKernel, TestMachine } from "../../src/guest/index.js";
import { GuestEndpointClient, KubeletStandIn, SriovDevicePlugin, parseDevicePluginConfig, serveGuestEndpoint } from "../../src/k8s/index.js";
import { execPlugin } from "../../src/k8s/cni/testkit.js";

const PF = "0000:01:00.0";

async function setup(t: { after: (fn: () => unknown) => void }, opts: ConstructorParameters<typeof TestMachine>[0] = {}) {
  const dir = await mkdtemp(join(tmpdir(), "vpf-k8s-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const m = new TestMachine({ totalVfs: 8, ...opts });
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory });
  const ep = await serveGuestEndpoint(join(dir, "guest.sock"), k);
  t.after(() => ep.close());
  const guest = await GuestEndpointClient.connect(ep.path);
  t.after(() => guest.close());
  return { dir, m, k, ep, guest };
}

function cniEnv(command: string, cid: string, ns: string): Record<string, string> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: cid, CNI_NETNS: `/var/run/netns/${ns}`, CNI_IFNAME: "net1", CNI_PATH: "/usr/lib/cni" };
}

test("device plugin allocates a guest VF, vpf-sriov attaches it to a pod and gives it back", async (t) => {
  const { dir, m, k, ep, guest } = await setup(t);
  await guest.writeFile(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, "4");

  const kubelet = new KubeletStandIn(dir);
  await kubelet.start();
  t.after(() => kubelet.stop());
  const pfName = (await guest.listDir(`/sys/bus/pci/devices/${PF}/virtio0/net`))[0]!;
  const config = parseDevicePluginConfig(JSON.stringify({ resourceList: [{ resourceName: "vpf_vf", resourcePrefix: "vpf.dev", selectors: { vendors: ["1af4"], devices: ["1041"], drivers: ["virtio-pci"], pfNames: [pfName] } }] }));
  const dp = new SriovDevicePlugin({ sysfs: guest, config, pluginDir: dir, devInfoDir: join(dir, "devinfo") });
  await dp.start();
  t.after(() => dp.stop());
  const client = kubelet.connect("vpf.dev/vpf_vf");
  t.after(() => client.close());
  const ids = dp.server("vpf.dev/vpf_vf")!.list().map((d) => d.ID);
  assert.equal(ids.length, 4, "four vVFs, found through virtio*/net");
  const alloc = await client.allocate({ container_requests: [{ devices_ids: [ids[2]!] }] });
  const vf = alloc.container_responses[0]!.envs.PCIDEVICE_VPF_DEV_VPF_VF!;
  assert.equal(vf, ids[2]);

  k.netnsAdd("pod1");
  const conf = JSON.stringify({
    cniVersion: "1.0.0", name: "vfnet", type: "vpf-sriov", deviceID: vf, guestEndpoint: ep.path, dataDir: join(dir, "cni"),
    vlan: 100, vlanQoS: 2, mac: "02:00:00:00:01:03", spoofchk: "on", trust: "off",
    ipam: { type: "host-local", subnet: "10.77.0.0/24", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "ipam") },
  });
  const add = await execPlugin(cniEnv("ADD", "pod1c", "pod1"), conf);
  assert.equal(add.exitCode, 0, add.stdout);
  const result = JSON.parse(add.stdout) as { interfaces: { name: string; mac: string }[]; ips: { address: string }[]; routes: unknown[] };
  assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0" }], "the default route went in over RTM_NEWROUTE");
  assert.deepEqual(result.interfaces[0], { name: "net1", mac: "02:00:00:00:01:03", sandbox: "/var/run/netns/pod1" });
  assert.equal(result.ips[0]!.address, "10.77.0.2/24");
  // The VF configuration reached the "host" over the admin virtqueue (member id = VF number).
  const host = m.vfConfigs.get(3)!;
  assert.equal(host.vlan, 100);
  assert.equal(host.qos, 2);
  assert.deepEqual([...host.mac], [2, 0, 0, 0, 1, 3]);
  // In the pod's namespace, sysfs shows net1; the initial namespace no longer shows the VF's netdev.
  assert.deepEqual(k.sysfs("pod1").list("/sys/class/net").filter((n) => n !== "lo"), ["net1"]);
  assert.deepEqual(await dp.rescan(), [], "a VF in a pod stays healthy and listed");

  // CHECK reads it all back from the guest: the link, the VF settings on the vPF, the address.
  const check = await execPlugin(cniEnv("CHECK", "pod1c", "pod1"), JSON.stringify({ ...(JSON.parse(conf) as object), prevResult: result }));
  assert.deepEqual(check, { stdout: "", exitCode: 0 });

  const del = await execPlugin(cniEnv("DEL", "pod1c", "pod1"), conf);
  assert.deepEqual(del, { stdout: "", exitCode: 0 });
  assert.equal(m.vfConfigs.get(3)!.vlan, 0, "VLAN restored on the host side");
  assert.deepEqual(k.sysfs("pod1").list("/sys/class/net").filter((n) => n !== "lo"), []);
  const again = await execPlugin(cniEnv("DEL", "pod1c", "pod1"), conf);
  assert.equal(again.exitCode, 0);
});

test("a VLAN the host refuses fails ADD with EPERM and leaves the VF untouched", async (t) => {
  const { dir, m, k, ep, guest } = await setup(t, { vlanAllow: [100] });
  await guest.writeFile(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, "2");
  k.netnsAdd("pod1");
  const vf = "0000:01:00.1";
  const conf = JSON.stringify({ cniVersion: "1.1.0", name: "vfnet", type: "vpf-sriov", deviceID: vf, guestEndpoint: ep.path, dataDir: join(dir, "cni"), vlan: 200 });
  const add = await execPlugin(cniEnv("ADD", "c1", "pod1"), conf);
  assert.equal(add.exitCode, 1);
  const err = JSON.parse(add.stdout) as { code: number; details: string };
  assert.equal(err.code, 102);
  assert.match(err.details, /EPERM/);
  assert.equal(m.vfConfigs.get(1)!.vlan, 0);
  assert.deepEqual(k.sysfs("pod1").list("/sys/class/net").filter((n) => n !== "lo"), []);
});
