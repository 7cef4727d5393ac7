/**
 * Issue 8 item 3: pods in each VM through the real SR-IOV device plugin and the real vpf-sriov
 * CNI plugin, driven as a user drives them: `vpfctl` inside the VMs, `ip netns exec POD ping`,
 * the host's `ip link show`. Most checks use an in-process world; one goes through a spawned
 * `vpf up` / `vpf exec` daemon.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { World, formatStatus } from "../../src/world/world.js";
import { defaultTopology } from "../../src/world/topology.js";
import { PodError, VF_RESOURCE, macUnder } from "../../src/world/kubelet.js";
import { parseVpfctl, runVpfctl } from "../../src/world/pods.js";
import type { ExecResult } from "../../src/world/daemon.js";

const HOST_LOCAL = "/usr/lib/cni/host-local";
const skip = !existsSync(HOST_LOCAL) && "host-local CNI plugin is not installed";
const VPF = "/sys/bus/pci/devices/0000:01:00.0";

function world(t: { after: (fn: () => unknown) => void }): { w: World; sh: (node: string, line: string) => Promise<ExecResult> } {
  const w = World.create(defaultTopology());
  t.after(() => w.close());
  const sh = (node: string, line: string): Promise<ExecResult> => w.exec(node, [line]);
  return { w, sh };
}

function ok(r: ExecResult): string {
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout;
}

test("pods get vVFs from the device plugin, talk through the eswitch, and give their VF back", { skip }, async (t) => {
  const { w, sh } = world(t);
  ok(await sh("vm1", `echo 3 > ${VPF}/sriov_numvfs`));
  ok(await sh("vm2", `echo 1 > ${VPF}/sriov_numvfs`));
  assert.equal(ok(await sh("vm1", "vpfctl net add blue --vlan 100 --subnet 10.0.100.0/24 --range 10.0.100.10-10.0.100.20")), "network/blue created\n");
  assert.match(ok(await sh("vm2", "vpfctl net list")), /^blue +100 +10\.0\.100\.0\/24 +10\.0\.100\.10-10\.0\.100\.20$/m, "networks are cluster-wide");

  const a = ok(await sh("vm1", "vpfctl pod add a --network blue"));
  assert.equal(a, `pod/a created: ${VF_RESOURCE} 0000:01:00.1, net1 52:54:00:01:c0:01 vlan 100 10.0.100.10/24\n`);
  ok(await sh("vm2", "vpfctl pod add c --network blue"));
  ok(await sh("vm1", "vpfctl pod add b --network blue --ip 10.0.100.15"));
  assert.equal(ok(await sh("vm1", "vpfctl pod list")),
    "NAME  NETWORK  VF            VLAN  MAC                IP\n" +
    "a     blue     0000:01:00.1  100   52:54:00:01:c0:01  10.0.100.10/24\n" +
    "b     blue     0000:01:00.2  100   52:54:00:01:c0:02  10.0.100.15/24\n");
  const c = (await w.kubelet("vm2")).pod("c");
  assert.equal(c?.ip, "10.0.100.11/24", "one host-local pool per network across VMs");
  assert.equal(c?.mac, "52:54:00:02:c0:01", "MACs lie under the VM's MAC prefix");

  // The pod's namespace holds net1 with the address; the initial namespace lost the VF netdevs.
  assert.match(ok(await sh("vm1", "ip netns exec a ip addr show dev net1")), /link\/ether 52:54:00:01:c0:01[\s\S]*inet 10\.0\.100\.10\/24/);
  assert.equal(ok(await sh("vm1", "ls /sys/class/net")), "eth0\neth3\nlo\n");
  // The host VF behind vm1's vVF 1 got the pod's MAC and VLAN over the vPF's admin queue.
  const host = w.node("host1");
  assert.equal(host.kind, "host");
  const pf = host.kind === "host" ? host.host.pfName(0) : "";
  assert.match(ok(await sh("host1", `ip link show ${pf}`)), /vf 0 +link\/ether 52:54:00:01:c0:01 .*vlan 100/);

  // Two pods of one VM, a pod in each VM, a pod and the external host (VLAN 100).
  assert.match(ok(await sh("vm1", "ip netns exec a ping -c 2 10.0.100.15")), /2 received/);
  assert.match(ok(await sh("vm1", "ip netns exec b ping -c 2 10.0.100.11")), /2 received/);
  assert.match(ok(await sh("ext1", "ping -c 2 10.0.100.11")), /2 received/);
  assert.match(ok(await sh("vm2", "ip netns exec c ping -c 2 10.0.100.100")), /2 received/);

  assert.equal(ok(await sh("vm1", "vpfctl devices")),
    "RESOURCE   DEVICE        HEALTH   POD\n" +
    `${VF_RESOURCE}  0000:01:00.1  Healthy  a\n` +
    `${VF_RESOURCE}  0000:01:00.2  Healthy  b\n` +
    `${VF_RESOURCE}  0000:01:00.3  Healthy  -\n`);
  // vpf status names each pod and the host VF its vVF stands on.
  const st = w.status();
  assert.deepEqual(st.vms.find((v) => v.name === "vm1")?.pods, [
    { name: "a", vf: "0000:01:00.1", vlan: 100, ip: "10.0.100.10/24" },
    { name: "b", vf: "0000:01:00.2", vlan: 100, ip: "10.0.100.15/24" },
  ]);
  const text = formatStatus(st);
  assert.match(text, /vm1-pool-0 +pool vm1-pool +vm1 vVF 1 \(pod a\)$/m);
  assert.match(text, /^ {2}pod c: VF 0000:01:00\.1 vlan 100 10\.0\.100\.11\/24$/m);
  const inUse = await sh("vm1", "vpfctl net del blue");
  assert.equal(inUse.exitCode, 1);
  assert.match(inUse.stderr, /used by pods vm1\/a, vm1\/b, vm2\/c \[POD_IN_USE\]/);

  assert.equal(ok(await sh("vm1", "vpfctl pod del b")), `pod/b deleted: ${VF_RESOURCE} 0000:01:00.2 is free\n`);
  assert.equal(ok(await sh("vm1", "ip netns")), "a\n");
  assert.equal(ok(await sh("vm1", "ls /sys/class/net")), "eth0\neth2\neth3\nlo\n", "the VF netdev came home");
  assert.match(ok(await sh("vm1", "vpfctl devices")), /0000:01:00\.2 +Healthy +-$/m);
  assert.doesNotMatch(ok(await sh("host1", `ip link show ${pf}`)), /52:54:00:01:c0:02/, "the host VF no longer has the pod's MAC");
  // The freed VF goes to the next pod; its address was released too.
  assert.match(ok(await sh("vm1", "vpfctl pod add d --network blue --ip 10.0.100.15")), /0000:01:00\.2, .* 10\.0\.100\.15\/24/);
  assert.match(ok(await sh("vm1", "ip netns exec d ping -c 1 10.0.100.10")), /1 received/);

  const dir = w.kube.directory;
  assert.ok(dir !== undefined && existsSync(join(dir, "vm1", "guest.sock")));
  await w.close();
  assert.equal(existsSync(dir), false, "the world's kubelet directory goes with the world");
});

test("refusals: no VFs, all VFs in pods, unknown network, a taken name, a VLAN outside policy", { skip }, async (t) => {
  const { w, sh } = world(t);
  ok(await sh("vm2", "vpfctl net add red --vlan 200 --subnet 10.0.200.0/24"));
  ok(await sh("vm2", "vpfctl net add blue --vlan 100 --subnet 10.0.100.0/24"));
  const none = await sh("vm2", "vpfctl pod add p1 --network blue");
  assert.equal(none.exitCode, 1);
  assert.match(none.stderr, /Insufficient vpf\.io\/vf \(vm2 has no VFs: enable some with 'echo N > \/sys\/bus\/pci\/devices\/0000:01:00\.0\/sriov_numvfs'\) \[POD_NO_VF\]/);
  assert.equal(ok(await sh("vm2", "ip netns")), "", "a refused pod leaves no namespace");

  ok(await sh("vm2", `echo 1 > ${VPF}/sriov_numvfs`));
  // vm2's allow-list is [100, 300]: the guest's request for VLAN 200 is refused by the host.
  const vlan = await sh("vm2", "vpfctl pod add p1 --network red");
  assert.equal(vlan.exitCode, 1);
  assert.match(vlan.stderr, /failed to set up sandbox of pod "p1": .*\(CNI error 102\) \[POD_CNI\]/);
  assert.equal(ok(await sh("vm2", "ip netns")), "");
  assert.equal(ok(await sh("vm2", "ls /sys/class/net")), "eth0\neth1\nlo\n", "vpf-sriov rolled back: the VF stayed home");

  ok(await sh("vm2", "vpfctl pod add p1 --network blue"));
  const dup = await sh("vm2", "vpfctl pod add p1 --network blue");
  assert.equal(dup.exitCode, 1);
  assert.match(dup.stderr, /pods "p1" already exists \[POD_EXISTS\]/);
  const full = await sh("vm2", "vpfctl pod add p2 --network blue");
  assert.match(full.stderr, /all 1 VFs of vm2 are in pods\) \[POD_NO_VF\]/);
  const unknown = await sh("vm2", "vpfctl pod add p2 --network green");
  assert.match(unknown.stderr, /networks "green" not found/);
  // host-local refuses an address outside the subnet: the ADD fails, nothing stays behind.
  ok(await sh("vm2", "vpfctl pod del p1"));
  const badIp = await sh("vm2", "vpfctl pod add p3 --network blue --ip 10.9.9.9");
  assert.equal(badIp.exitCode, 1);
  assert.match(badIp.stderr, /failed to set up sandbox of pod "p3": .*10\.9\.9\.9.*\[POD_CNI\]/);
  assert.equal(ok(await sh("vm2", "ip netns")), "");
  assert.match(ok(await sh("vm2", "vpfctl devices")), /0000:01:00\.1 +Healthy +-$/m);
  await assert.rejects(w.kubelet("host1"), /host1 is not a model-guest VM/);
  const gone = await sh("vm2", "vpfctl pod del nope");
  assert.match(gone.stderr, /pods "nope" not found \[POD_NOT_FOUND\]/);
  const host = await sh("host1", "vpfctl pod list");
  assert.deepEqual([host.exitCode, host.stderr], [1, "vpfctl: command not found\n"], "vpfctl runs in VMs only");
  assert.equal(ok(await sh("vm1", "vpfctl pod list")), "No resources found.\n");
  assert.equal(w.nodes.size, 4);
});

test("concurrent pod adds on one VM never give one VF to two pods", { skip }, async (t) => {
  const { w, sh } = world(t);
  ok(await sh("vm1", `echo 2 > ${VPF}/sriov_numvfs`));
  ok(await sh("vm1", "vpfctl net add blue --vlan 100 --subnet 10.0.100.0/24"));
  const rs = await Promise.all(["p1", "p2", "p3"].map((p) => sh("vm1", `vpfctl pod add ${p} --network blue`)));
  assert.deepEqual(rs.map((r) => r.exitCode).sort(), [0, 0, 1]);
  const pods = (await w.kubelet("vm1")).pods();
  assert.equal(new Set(pods.map((p) => p.deviceId)).size, 2);
  assert.equal(new Set(pods.map((p) => p.ip)).size, 2);
});

test("vpfctl's command line: any argv is a command or a usage error (exit 2), never a crash", async () => {
  const words = fc.oneof(
    fc.constantFrom("pod", "pods", "net", "network", "devices", "add", "del", "list", "get", "--network", "--vlan", "--ip", "--mac", "--subnet", "--range", "-o", "json", "blue", "p1", "4095", "10.0.0.0/24", "10.0.0.5", "02:00:00:00:00:01"),
    fc.string({ maxLength: 12 }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(words, { maxLength: 8 }), async (argv) => {
      try {
        const c = parseVpfctl(argv);
        assert.ok(["net-add", "net-del", "net-list", "pod-add", "pod-del", "pod-list", "devices"].includes(c.op));
        if (c.op === "pod-add" && c.vlan !== undefined) assert.ok(c.vlan >= 0 && c.vlan <= 4094);
      } catch (e) {
        assert.ok(e instanceof PodError && (e.code === "POD_USAGE" || e.code === "POD_BAD_NAME"), String(e));
      }
      // The whole command, against a cluster with no kubelet to reach: 0, 1 or 2, with text.
      const r = await runVpfctl(argv, {
        networks: new Map([["blue", { name: "blue", subnet: "10.0.100.0/24", vlan: 100 }]]),
        podsUsing: () => Promise.resolve([]),
        kubelet: () => Promise.reject(new PodError("POD_CLOSED", "no kubelet here")),
      });
      assert.ok([0, 1, 2].includes(r.exitCode));
      if (r.exitCode !== 0) assert.ok(r.stderr.length > 0);
    }),
    { numRuns: 300 },
  );
  assert.throws(() => parseVpfctl(["pod", "add", "Bad_Name", "--network", "blue"]), /RFC 1123/);
  assert.throws(() => parseVpfctl(["net", "add", "n", "--subnet", "10.0.0.1/24"]), /host bits set/);
  assert.throws(() => parseVpfctl(["net", "add", "n", "--subnet", "10.0.0.0/24", "--range", "10.0.1.1-10.0.1.9"]), /inside 10\.0\.0\.0\/24/);
  assert.throws(() => parseVpfctl(["pod", "add", "p", "--network", "n", "--mac", "01:00:00:00:00:01"]), /unicast/);
  assert.equal(macUnder("52:54:00:01", 0xc003), "52:54:00:01:c0:03");
  assert.equal(macUnder("02:a0", 0xc003), "02:a0:00:00:c0:03");
});

test("pods through a spawned daemon: vpf up, vpf exec vm1 -- vpfctl ..., ip netns exec ping, vpf down", { skip }, () => {
  const compiled = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.js");
  const main = existsSync(compiled) ? compiled : compiled.replace(/\.js$/, ".ts");
  const env = existsSync(compiled) ? process.env : { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import tsx`.trim() };
  const sock = join(mkdtempSync(join(tmpdir(), "vpf-pods-")), "vpf.sock");
  const vpf = (...args: string[]): { status: number; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [main, "--socket", sock, ...args], { encoding: "utf8", timeout: 60_000, env });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const up = vpf("up");
  assert.equal(up.status, 0, up.stderr);
  try {
    for (const line of [`echo 2 > ${VPF}/sriov_numvfs`, "vpfctl net add red --vlan 200 --subnet 10.0.200.0/24", "vpfctl pod add x --network red", "vpfctl pod add y --network red"]) {
      const r = vpf("exec", "vm1", "--", line);
      assert.equal(r.status, 0, `${line}: ${r.stderr}`);
    }
    const ping = vpf("exec", "vm1", "--", "ip", "netns", "exec", "x", "ping", "-c", "2", "10.0.200.3");
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    assert.match(ping.stdout, /2 packets transmitted, 2 received/);
    const del = vpf("exec", "vm1", "--", "vpfctl", "pod", "del", "y");
    assert.equal(del.stdout, `pod/y deleted: ${VF_RESOURCE} 0000:01:00.2 is free\n`);
    const list = vpf("exec", "vm1", "--", "vpfctl", "pod", "list", "-o", "json");
    const pods = JSON.parse(list.stdout) as { name: string; deviceId: string; ip: string }[];
    assert.deepEqual(pods.map((p) => [p.name, p.deviceId, p.ip]), [["x", "0000:01:00.1", "10.0.200.2/24"]]);
  } finally {
    const down = vpf("down");
    assert.equal(down.status, 0, down.stderr);
  }
});
