/**
 * `vpf demo` (also `npm start`): the paper's story on the default topology, told through the
 * same commands a user types into `vpf exec`, each step followed by a check of its evidence.
 * Exit status 0 only when every check held; `--json` prints a machine-readable report.
 */
import type { Writable } from "node:stream";
import { defaultTopology } from "./topology.js";
import { World, vvfNumber } from "./world.js";
import type { ExecResult } from "./daemon.js";
import { VF_RESOURCE } from "./kubelet.js";
import type { Pod } from "./kubelet.js";

export interface DemoStep {
  readonly title: string;
  readonly commands: { readonly node: string; readonly command: string; readonly result: ExecResult }[];
  readonly checks: { readonly what: string; readonly ok: boolean; readonly detail?: string }[];
}

export interface DemoReport {
  readonly ok: boolean;
  readonly steps: readonly DemoStep[];
}

const VPF = "/sys/bus/pci/devices/0000:01:00.0";

class Story {
  readonly steps: DemoStep[] = [];
  #step: { title: string; commands: DemoStep["commands"][number][]; checks: DemoStep["checks"][number][] } | undefined;

  constructor(
    readonly world: World,
    readonly out: Writable | undefined,
  ) {}

  step(title: string): void {
    this.#flush();
    this.#step = { title, commands: [], checks: [] };
    this.out?.write(`\n== ${this.steps.length + 1}. ${title}\n`);
  }

  async sh(node: string, command: string, show = true): Promise<ExecResult> {
    const result = await this.world.exec(node, [command]);
    this.#step?.commands.push({ node, command, result });
    if (show) {
      this.out?.write(`${node}$ ${command}\n`);
      const text = (result.stdout + result.stderr).trimEnd();
      if (text !== "") this.out?.write(`${text.split("\n").map((l) => `  ${l}`).join("\n")}\n`);
    }
    return result;
  }

  check(what: string, ok: boolean, detail?: string): void {
    this.#step?.checks.push({ what, ok, ...(detail === undefined ? {} : { detail }) });
    this.out?.write(`  ${ok ? "✓" : "✗"} ${what}${!ok && detail !== undefined ? ` (${detail})` : ""}\n`);
  }

  #flush(): void {
    if (this.#step !== undefined) this.steps.push({ ...this.#step });
    this.#step = undefined;
  }

  finish(): DemoReport {
    this.#flush();
    return { ok: this.steps.every((s) => s.checks.every((c) => c.ok)), steps: this.steps };
  }
}

function pool(world: World, name: string): { capacity: number; available: number } {
  for (const h of world.status().hosts) for (const p of h.pools) if (p.name === name) return p;
  return { capacity: -1, available: -1 };
}

function vfStats(world: World, pf: string, vf: number): { tx: number; rx: number } {
  const h = world.node("host1");
  if (h.kind !== "host") return { tx: -1, rx: -1 };
  const info = h.host.getVfInfo(pf).vfs[vf];
  return { tx: Number(info?.stats?.txPackets ?? -1n), rx: Number(info?.stats?.rxPackets ?? -1n) };
}

const vvfOf = vvfNumber;

async function podOf(world: World, vm: string, pod: string): Promise<Pod | undefined> {
  return (await world.kubelet(vm)).pod(pod);
}

/**
 * Kubernetes in the guests (issue 8): each VM's kubelet stand-in runs the SR-IOV device plugin
 * and vpf-sriov; pods get vVFs and talk through the eswitch; a deleted pod's VF is free again.
 */
async function podSteps(s: Story, world: World, pf: string, backing: (vm: string, vvf: number) => number): Promise<void> {
  s.step("Kubernetes in the guests: the device plugin offers vVFs, vpf-sriov plugs one into each pod");
  // The hand-made namespaces go (their netdevs come home), and the VMs start afresh with VFs
  // that only the kubelet hands out.
  for (const c of ["ip netns del pod-a", "ip netns del pod-b", `echo 0 > ${VPF}/sriov_numvfs`]) await s.sh("vm1", c, false);
  await s.sh("vm1", `echo 4 > ${VPF}/sriov_numvfs`);
  await s.sh("vm2", `echo 2 > ${VPF}/sriov_numvfs`);
  await s.sh("vm1", "vpfctl net add red --vlan 200 --subnet 10.0.200.0/24 --range 10.0.200.10-10.0.200.99");
  await s.sh("vm1", "vpfctl net add blue --vlan 100 --subnet 10.0.100.0/24 --range 10.0.100.10-10.0.100.99");
  const devs = await s.sh("vm1", "vpfctl devices");
  s.check(`vm1's device plugin lists its 4 vVFs as healthy ${VF_RESOURCE} devices`, (devs.stdout.match(/ Healthy +- *$/gm) ?? []).length === 4, devs.stdout + devs.stderr);
  const adds = [
    await s.sh("vm1", "vpfctl pod add red-a --network red"),
    await s.sh("vm1", "vpfctl pod add red-b --network red"),
    await s.sh("vm1", "vpfctl pod add blue-1 --network blue"),
    await s.sh("vm2", "vpfctl pod add blue-2 --network blue"),
  ];
  s.check("four pods created: each got a VF from Allocate and vpf-sriov's ADD succeeded", adds.every((r) => r.exitCode === 0), adds.map((r) => r.stderr).join(""));
  await s.sh("vm1", "vpfctl pod list");
  const redA = await podOf(world, "vm1", "red-a");
  const redB = await podOf(world, "vm1", "red-b");
  const blue1 = await podOf(world, "vm1", "blue-1");
  const blue2 = await podOf(world, "vm2", "blue-2");
  if (redA === undefined || redB === undefined || blue1 === undefined || blue2 === undefined) throw new Error("a pod is missing after its ADD");
  const inPod = await s.sh("vm1", "ip netns exec red-a ip addr show dev net1");
  s.check("in red-a's namespace the VF is net1 with the pod's MAC and its host-local address", inPod.stdout.includes(redA.mac) && redA.ip !== "" && inPod.stdout.includes(`inet ${redA.ip}`), inPod.stdout + inPod.stderr);
  const hostShow = await s.sh("host1", `ip link show ${pf}`, false);
  const hvA = backing("vm1", vvfOf(redA.deviceId));
  s.check(`the host VF ${hvA} behind red-a's vVF carries its MAC and VLAN 200 (set over the vPF's admin queue)`, new RegExp(`vf ${hvA} +link/ether ${redA.mac} .*vlan 200`).test(hostShow.stdout), hostShow.stdout);
  const devsAfter = await s.sh("vm1", "vpfctl devices");
  s.check("the kubelet stand-in holds 3 of vm1's VFs for pods, 1 is free", (devsAfter.stdout.match(/ Healthy +- *$/gm) ?? []).length === 1, devsAfter.stdout);

  s.step("Pods talk over their vVFs through the eswitch: in one VM, across VMs, with the external host");
  const ipOf = (p: Pod): string => p.ip.split("/")[0] ?? "";
  const statsOf = (vm: string, p: Pod): { tx: number; rx: number } => vfStats(world, pf, backing(vm, vvfOf(p.deviceId)));
  let before = statsOf("vm1", redA);
  const intra = await s.sh("vm1", `ip netns exec red-a ping -c 3 ${ipOf(redB)}`);
  let after = statsOf("vm1", redA);
  s.check("red-a reaches red-b (two pods of vm1, VLAN 200)", intra.exitCode === 0 && /3 received/.test(intra.stdout), intra.stdout + intra.stderr);
  s.check("the host VF behind red-a counted the frames", after.tx - before.tx >= 3 && after.rx - before.rx >= 3, JSON.stringify({ before, after }));
  before = statsOf("vm2", blue2);
  const cross = await s.sh("vm1", `ip netns exec blue-1 ping -c 3 ${ipOf(blue2)}`);
  after = statsOf("vm2", blue2);
  s.check("blue-1 in vm1 reaches blue-2 in vm2 on VLAN 100", cross.exitCode === 0 && /3 received/.test(cross.stdout), cross.stdout + cross.stderr);
  s.check("the host VF behind blue-2 (vm2) counted them", after.tx - before.tx >= 3 && after.rx - before.rx >= 3, JSON.stringify({ before, after }));
  before = statsOf("vm2", blue2);
  const ext = await s.sh("ext1", `ping -c 3 ${ipOf(blue2)}`);
  after = statsOf("vm2", blue2);
  s.check("the external host reaches pod blue-2 over the uplink, VLAN 100", ext.exitCode === 0 && /3 received/.test(ext.stdout), ext.stdout + ext.stderr);
  s.check("the host VF behind blue-2 counted the uplink's frames", after.tx - before.tx >= 3 && after.rx - before.rx >= 3, JSON.stringify({ before, after }));
  const out = await s.sh("vm1", "ip netns exec blue-1 ping -c 2 10.0.100.100");
  s.check("blue-1 reaches the external host", out.exitCode === 0 && /2 received/.test(out.stdout), out.stdout + out.stderr);
  const leak = await s.sh("vm1", `ip netns exec red-a ping -c 2 ${ipOf(blue1)}`, false);
  s.check("red-a (VLAN 200) does not reach blue-1 (VLAN 100)", leak.exitCode !== 0, leak.stdout);

  s.step("Deleting a pod gives its VF back");
  const hvB = backing("vm1", vvfOf(redB.deviceId));
  const del = await s.sh("vm1", "vpfctl pod del red-b");
  s.check("red-b deleted: vpf-sriov's DEL and the namespace's removal succeeded", del.exitCode === 0, del.stderr);
  const ns = await s.sh("vm1", "ip netns");
  s.check("red-b's namespace is gone", !/^red-b$/m.test(ns.stdout), ns.stdout);
  const free = await s.sh("vm1", "vpfctl devices");
  s.check(`the device plugin lists ${redB.deviceId} as healthy and free again`, new RegExp(`${redB.deviceId.replace(/\./g, "\\.")} +Healthy +- *$`, "m").test(free.stdout), free.stdout);
  const hostAfter = await s.sh("host1", `ip link show ${pf}`, false);
  s.check(`host VF ${hvB} no longer carries red-b's MAC`, !new RegExp(`vf ${hvB} +link/ether ${redB.mac}`).test(hostAfter.stdout), hostAfter.stdout);
  const again = await s.sh("vm1", "vpfctl pod add red-c --network red");
  const redC = await podOf(world, "vm1", "red-c");
  s.check("a new pod red-c gets that VF", again.exitCode === 0 && redC?.deviceId === redB.deviceId, again.stdout + again.stderr);
  const ping = await s.sh("vm1", `ip netns exec red-c ping -c 2 ${ipOf(redA)}`);
  s.check("red-c reaches red-a", ping.exitCode === 0 && /2 received/.test(ping.stdout), ping.stdout + ping.stderr);
}

/** Runs the story; writes progress to `out` unless it is undefined. */
export async function demoReport(out: Writable | undefined): Promise<DemoReport> {
  const world = World.create(defaultTopology());
  const s = new Story(world, out);
  const host = world.node("host1");
  const pf = host.kind === "host" ? host.host.pfName(0) : "";
  const backing = (vm: string, vvf: number): number => {
    const n = world.node(vm);
    if (n.kind !== "vm" || host.kind !== "host") return -1;
    const b = n.vpf.vvfBackend(vvf);
    return b === undefined ? -1 : (host.vdpa.get(b.name)?.vf ?? -1);
  };
  try {
    s.step("The guest sees its virtual PF as an SR-IOV capable PCIe function");
    const lspci = await s.sh("vm1", "lspci -s 01:00.0 -vvv");
    s.check("lspci decodes a virtio network device at 01:00.0", lspci.exitCode === 0 && /Virtio/i.test(lspci.stdout), lspci.stderr);
    s.check("it carries the SR-IOV capability with Total VFs 8", /Single Root I\/O Virtualization/.test(lspci.stdout) && /Total VFs: 8/.test(lspci.stdout));
    const total = await s.sh("vm1", `cat ${VPF}/sriov_totalvfs`);
    s.check("sysfs sriov_totalvfs reads 8 (the pool's capacity)", total.stdout === "8\n", total.stdout);
    s.check("the host pools are untouched: an idle VM holds no host VF", pool(world, "vm1-pool").available === 8 && pool(world, "vm2-pool").available === 8);

    s.step("The guest creates VFs; the hypervisor takes host VFs from the pool");
    await s.sh("vm1", `echo 4 > ${VPF}/sriov_numvfs`);
    await s.sh("vm2", `echo 2 > ${VPF}/sriov_numvfs`);
    const ls1 = await s.sh("vm1", "ls /sys/class/net");
    s.check("vm1 has 4 new netdevs eth1..eth4", ls1.stdout === "eth0\neth1\neth2\neth3\neth4\nlo\n", ls1.stdout);
    const link = await s.sh("vm1", `readlink ${VPF}/virtfn0`);
    s.check("virtfn0 links to the first VF at 01:00.1", link.stdout === "../0000:01:00.1\n", link.stdout);
    s.check("pool vm1-pool shrank from 8 to 4 free", pool(world, "vm1-pool").available === 4);
    s.check("pool vm2-pool shrank from 8 to 6 free", pool(world, "vm2-pool").available === 6);
    const again = await s.sh("vm1", `echo 2 > ${VPF}/sriov_numvfs`);
    s.check("changing NumVFs without going through 0 fails with EBUSY, as on Linux", again.exitCode !== 0 && /Device or resource busy/.test(again.stderr), again.stderr);

    s.step("VFs get MACs and VLANs from inside the guest (rtnetlink on the vPF)");
    await s.sh("vm1", "ip link set eth0 vf 0 mac 52:54:00:01:00:10 vlan 100");
    await s.sh("vm1", "ip link set eth0 vf 1 mac 52:54:00:01:00:11 vlan 200");
    await s.sh("vm1", "ip link set eth0 vf 2 mac 52:54:00:01:00:12 vlan 200");
    await s.sh("vm2", "ip link set eth0 vf 0 mac 52:54:00:02:00:10 vlan 100");
    const show = await s.sh("vm1", "ip link show eth0");
    s.check("ip link shows vf 0 with its MAC and VLAN 100", /vf 0 +link\/ether 52:54:00:01:00:10 .*vlan 100/.test(show.stdout), show.stdout);
    const hostShow = await s.sh("host1", `ip link show ${pf}`);
    const hv = backing("vm1", 1);
    s.check(`the hypervisor applied it to host VF ${hv} behind vm1's vVF 1`, new RegExp(`vf ${hv} +link/ether 52:54:00:01:00:10 .*vlan 100`).test(hostShow.stdout), hostShow.stdout);

    s.step("Pods' interfaces: addresses, and two vVFs of vm1 in separate namespaces");
    // As SR-IOV CNI does: the VF netdev takes the MAC the PF gave its VF (the spoof check wants it).
    for (const c of [
      "ip link set eth1 address 52:54:00:01:00:10", "ip link set eth2 address 52:54:00:01:00:11", "ip link set eth3 address 52:54:00:01:00:12",
      "ip link set eth1 up", "ip addr add 10.0.100.1/24 dev eth1",
      "ip netns add pod-a", "ip link set eth2 netns pod-a", "ip -n pod-a link set eth2 up", "ip -n pod-a addr add 10.0.200.1/24 dev eth2",
      "ip netns add pod-b", "ip link set eth3 netns pod-b", "ip -n pod-b link set eth3 up", "ip -n pod-b addr add 10.0.200.2/24 dev eth3",
    ]) await s.sh("vm1", c, false);
    for (const c of ["ip link set eth1 address 52:54:00:02:00:10", "ip link set eth1 up", "ip addr add 10.0.100.2/24 dev eth1"]) await s.sh("vm2", c, false);
    const ns = await s.sh("vm1", "ip netns");
    s.check("vm1 has namespaces pod-a and pod-b", ns.stdout === "pod-a\npod-b\n", ns.stdout);

    s.step("Traffic crosses the NIC's eswitch: between vVFs, across VMs, to the external host");
    const before = vfStats(world, pf, backing("vm1", 2));
    const intra = await s.sh("vm1", "ip netns exec pod-a ping -c 3 10.0.200.2");
    s.check("pod-a reaches pod-b (two vVFs of vm1, VLAN 200)", intra.exitCode === 0 && /3 received/.test(intra.stdout), intra.stdout + intra.stderr);
    const after = vfStats(world, pf, backing("vm1", 2));
    s.check("the host VF behind pod-a's vVF counted the frames (the eswitch switched them)", after.tx - before.tx >= 3 && after.rx - before.rx >= 3, JSON.stringify({ before, after }));
    const cross = await s.sh("vm1", "ping -c 3 10.0.100.2");
    s.check("vm1 reaches vm2 on VLAN 100", cross.exitCode === 0 && /3 received/.test(cross.stdout), cross.stdout + cross.stderr);
    const ext = await s.sh("ext1", "ping -c 3 10.0.100.1");
    s.check("the external host reaches vm1 over the uplink, tagged with VLAN 100", ext.exitCode === 0 && /3 received/.test(ext.stdout), ext.stdout + ext.stderr);
    const counters = await s.sh("host1", `ip -s link show ${pf}`);
    s.check("host-side VF statistics show the traffic", /RX: bytes/.test(counters.stdout));

    s.step("Isolation and host policy");
    const iso = await s.sh("vm2", "ip addr add 10.0.200.9/24 dev eth2", false);
    await s.sh("vm2", "ip link set eth2 up", false);
    const refused = await s.sh("vm2", "ip link set eth0 vf 1 vlan 200");
    s.check("vm2 may not join VLAN 200 (outside its allow-list): EPERM", refused.exitCode !== 0 && /Operation not permitted/.test(refused.stderr), refused.stderr);
    const leak = await s.sh("vm2", "ping -c 2 10.0.200.1");
    s.check("vm2's untagged-by-policy vVF cannot reach vm1's VLAN 200 pods", iso.exitCode === 0 && leak.exitCode !== 0, leak.stdout);
    const hostAfter = await s.sh("host1", `ip link show ${pf}`, false);
    const hv2 = backing("vm2", 2);
    s.check("nothing changed on the host VF behind vm2's vVF 2", !new RegExp(`vf ${hv2} .*vlan 200`).test(hostAfter.stdout));

    s.step("Disabling VFs returns every backend to the pool");
    await s.sh("vm2", `echo 0 > ${VPF}/sriov_numvfs`);
    s.check("pool vm2-pool is full again", pool(world, "vm2-pool").available === 8);

    await podSteps(s, world, pf, backing);
  } catch (e) {
    s.check("the demo ran to the end", false, e instanceof Error ? e.message : String(e));
  } finally {
    await world.close();
  }
  return s.finish();
}

export async function runDemo(opts: { json: boolean; out: Writable }): Promise<number> {
  const report = await demoReport(opts.json ? undefined : opts.out);
  if (opts.json) opts.out.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const checks = report.steps.flatMap((s) => s.checks);
    opts.out.write(`\n${report.ok ? "PASS" : "FAIL"}: ${checks.filter((c) => c.ok).length}/${checks.length} checks held\n`);
  }
  return report.ok ? 0 : 1;
}
