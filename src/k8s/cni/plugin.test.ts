import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { ETH_P_8021AD, ETH_P_8021Q } from "../rtnl.js";
import { runCni } from "./plugin.js";
import { cniBench, execPlugin, PF_BDF, type CniBench } from "./testkit.js";

type Json = Record<string, unknown>;

async function call(b: CniBench, command: string, cid: string, ns: string, conf: Json, ifname = "net1"): Promise<{ exitCode: number; out: Json | undefined }> {
  const r = await runCni(b.env(command, cid, ns, ifname), JSON.stringify(conf));
  return { exitCode: r.exitCode, out: r.stdout === "" ? undefined : (JSON.parse(r.stdout) as Json) };
}

test("ADD configures the VF through the PF, moves and renames it, runs host-local; CHECK passes; DEL restores; DEL repeats", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const vf = b.vf(1);
  const before = { ...b.kernel.vfConfig(PF_BDF, 1)! };
  const origName = b.kernel.links.get([...b.kernel.links.values()].find((l) => l.bdf === vf)!.index)!.name;
  const origMac = [...b.kernel.links.values()].find((l) => l.bdf === vf)!.mac;
  const conf = b.conf({ cniVersion: "1.1.0", deviceID: vf, vlan: 100, vlanQoS: 3, vlanProto: "802.1ad", mac: "02:00:00:00:00:42", spoofchk: "off", trust: "on", link_state: "enable", min_tx_rate: 10, max_tx_rate: 500 });
  const add = await call(b, "ADD", "c1", "pod1", conf);
  assert.equal(add.exitCode, 0, JSON.stringify(add.out));
  assert.deepEqual(add.out, {
    cniVersion: "1.1.0",
    interfaces: [{ name: "net1", mac: "02:00:00:00:00:42", sandbox: "/var/run/netns/pod1", mtu: 1500, pciID: vf }],
    ips: [{ address: "10.56.0.2/24", gateway: "10.56.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
  assert.deepEqual(b.kernel.vfConfig(PF_BDF, 1), { mac: "02:00:00:00:00:42", vlan: 100, qos: 3, vlanProto: ETH_P_8021AD, spoofchk: 0, trust: 1, linkState: 1, minTxRate: 10, maxTxRate: 500 });
  const pod = b.kernel.linkByName("net1", "pod1")!;
  assert.equal(pod.bdf, vf);
  assert.equal(pod.up, true);
  assert.equal(pod.mac, "02:00:00:00:00:42");
  assert.deepEqual(b.kernel.addressesOf(pod), ["10.56.0.2/24"]);
  assert.deepEqual(b.kernel.routes, [{ netns: "pod1", family: 2, dst: "0.0.0.0/0", gateway: "10.56.0.1", oif: pod.index }]);
  assert.equal(b.kernel.linkByName(origName, null), undefined, "the VF netdev left the initial namespace");
  assert.deepEqual(await b.kernel.sysfs.listDir(`/sys/bus/pci/devices/${vf}/virtio${pod.virtio.slice(6)}/net`), []);
  assert.ok(existsSync(join(b.dir, "ipam", "vfnet", "10.56.0.2")));

  const check = await call(b, "CHECK", "c1", "pod1", { ...conf, prevResult: add.out });
  assert.equal(check.exitCode, 0, JSON.stringify(check.out));

  const del = await call(b, "DEL", "c1", "pod1", conf);
  assert.equal(del.exitCode, 0, JSON.stringify(del.out));
  assert.deepEqual(b.kernel.vfConfig(PF_BDF, 1), before);
  const home = b.kernel.linkByName(origName, null)!;
  assert.equal(home.bdf, vf);
  assert.equal(home.mac, origMac);
  assert.equal(b.kernel.linkByName("net1", "pod1"), undefined);
  assert.ok(!existsSync(join(b.dir, "ipam", "vfnet", "10.56.0.2")), "host-local released the address");
  assert.deepEqual((await readdir(join(b.dir, "state"))).filter((f) => f.endsWith(".json")), []);

  const again = await call(b, "DEL", "c1", "pod1", conf);
  assert.equal(again.exitCode, 0);
  const checkAfter = await call(b, "CHECK", "c1", "pod1", { ...conf, prevResult: add.out });
  assert.equal(checkAfter.exitCode, 1);
  assert.equal(checkAfter.out!.code, 104);
});

test("CHECK notices a VF setting changed behind the plugin's back", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const conf = b.conf({ vlan: 7 });
  const add = await call(b, "ADD", "c1", "pod1", conf);
  assert.equal(add.exitCode, 0);
  // Someone resets the VLAN through the PF.
  const kv = b.kernel.vfConfig(PF_BDF, 0)!;
  assert.equal(kv.vlan, 7);
  assert.equal(kv.vlanProto, ETH_P_8021Q);
  const link = b.kernel.linkByName("eth0", null)!;
  const { Rtnl } = await import("./netlink.js");
  const { GuestEndpointClient } = await import("../endpoint.js");
  const { vfSetInfo } = await import("../rtnl.js");
  const c = await GuestEndpointClient.connect(b.endpoint.path);
  await new Rtnl(c).setLink(null, link.index, { vf: vfSetInfo(0, { vlan: { vlan: 0, qos: 0, proto: ETH_P_8021Q } }) });
  c.close();
  const check = await call(b, "CHECK", "c1", "pod1", { ...conf, prevResult: add.out });
  assert.equal(check.exitCode, 1);
  assert.equal(check.out!.code, 104);
  assert.match(String(check.out!.msg), /vlan/);
});

test("DEL succeeds and restores the VF when the pod's namespace is already gone", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const conf = b.conf({ mac: "02:00:00:00:00:07" });
  assert.equal((await call(b, "ADD", "c1", "pod1", conf)).exitCode, 0);
  b.kernel.netnsDel("pod1");
  const back = [...b.kernel.links.values()].find((l) => l.bdf === b.vf(0))!;
  assert.equal(back.netns, null);
  assert.equal(back.name, "net1", "the kernel returned it under the pod's name");
  const del = await call(b, "DEL", "c1", "pod1", conf);
  assert.equal(del.exitCode, 0, JSON.stringify(del.out));
  assert.equal(back.name, "eth1");
  assert.equal(b.kernel.vfConfig(PF_BDF, 0)!.mac, "00:00:00:00:00:00");
});

test("one VF never goes to two pods; a VF whose pod namespace died can be reused", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  assert.equal((await call(b, "ADD", "c1", "pod1", b.conf())).exitCode, 0);
  const second = await call(b, "ADD", "c2", "pod2", b.conf());
  assert.equal(second.exitCode, 1);
  assert.equal(second.out!.code, 100);
  b.kernel.netnsDel("pod1");
  // The kernel brought the netdev home as "net1"; the stale allocation does not block c2.
  const third = await call(b, "ADD", "c2", "pod2", b.conf());
  assert.equal(third.exitCode, 0, JSON.stringify(third.out));
  assert.equal(b.kernel.linkByName("net1", "pod2")!.bdf, b.vf(0));
});

test("concurrent ADD processes for one VF: exactly one wins", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const conf = JSON.stringify(b.conf({ ipam: undefined }));
  const rs = await Promise.all([execPlugin(b.env("ADD", "c1", "pod1"), conf), execPlugin(b.env("ADD", "c2", "pod2"), conf)]);
  assert.deepEqual(rs.map((r) => r.exitCode).sort(), [0, 1], rs.map((r) => r.stdout).join("\n"));
  const loser = JSON.parse(rs.find((r) => r.exitCode === 1)!.stdout) as Json;
  assert.equal(loser.code, 100);
  const holders = [b.kernel.linkByName("net1", "pod1"), b.kernel.linkByName("net1", "pod2")].filter((l) => l !== undefined);
  assert.equal(holders.length, 1);
});

test("a PF without VF netlink support (unpatched virtio_net) fails ADD cleanly with 'failed to find vf'", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  b.kernel.faults.noVfOps = true;
  const r = await call(b, "ADD", "c1", "pod1", b.conf({ vlan: 5 }));
  assert.equal(r.exitCode, 1);
  assert.equal(r.out!.code, 102);
  assert.match(String(r.out!.msg), /failed to find vf 0/);
  assert.equal(b.kernel.linkByName("eth1", null)!.bdf, b.vf(0), "the VF stays home");
});

test("a failure after IPAM rolls back everything: address released, VF home, VF settings restored", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  b.kernel.faults.failNewAddr = "ENOSPC";
  const before = { ...b.kernel.vfConfig(PF_BDF, 0)! };
  const r = await call(b, "ADD", "c1", "pod1", b.conf({ vlan: 9, trust: "on" }));
  assert.equal(r.exitCode, 1);
  assert.equal(r.out!.code, 102);
  assert.match(String(r.out!.details), /ENOSPC/);
  assert.deepEqual(b.kernel.vfConfig(PF_BDF, 0), before);
  const l = b.kernel.linkByName("eth1", null)!;
  assert.equal(l.bdf, b.vf(0));
  assert.deepEqual(await readdir(join(b.dir, "ipam", "vfnet")).then((f) => f.filter((x) => /^\d/.test(x))), []);
  b.kernel.faults.failNewAddr = null;
  assert.equal((await call(b, "ADD", "c1", "pod1", b.conf({ vlan: 9 }))).exitCode, 0);
});

test("input errors carry the CNI spec's codes", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const cases: [Record<string, string>, string, number][] = [
    [{ ...b.env("ADD", "c1", "pod1"), CNI_CONTAINERID: "" }, JSON.stringify(b.conf()), 3],
    [{ ...b.env("ADD", "c1", "pod1"), CNI_IFNAME: "a/b" }, JSON.stringify(b.conf()), 4],
    [{ ...b.env("ADD", "c1", "pod1"), CNI_COMMAND: "FROB" }, JSON.stringify(b.conf()), 4],
    [{ ...b.env("ADD", "c1", "pod1"), CNI_NETNS: "/proc/1/ns/net" }, JSON.stringify(b.conf()), 4],
    [b.env("ADD", "c1", "pod1"), "{not json", 6],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ cniVersion: "0.3.1" })), 1],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ vlanQoS: 2 })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ vlan: 0, vlanQoS: 2 })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ vlan: 0, vlanProto: "802.1ad" })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ link_state: "up" })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ spoofchk: true })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ min_tx_rate: 10, max_tx_rate: 5 })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ deviceID: undefined })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ mac: "01:00:5e:00:00:01" })), 7],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ deviceID: PF_BDF })), 101],
    [b.env("ADD", "c1", "nosuchns"), JSON.stringify(b.conf()), 8],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ guestEndpoint: join(b.dir, "absent.sock") })), 11],
    [b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf({ ipam: { type: "no-such-ipam" } })), 103],
    [b.env("CHECK", "c1", "pod1"), JSON.stringify(b.conf()), 7],
    [b.env("STATUS", "", ""), JSON.stringify(b.conf()), 1],
  ];
  for (const [env, stdin, code] of cases) {
    const r = await runCni(env, stdin);
    assert.equal(r.exitCode, 1, stdin);
    const e = JSON.parse(r.stdout) as Json;
    assert.equal(e.code, code, `${stdin} → ${r.stdout}`);
    assert.equal(typeof e.msg, "string");
    assert.equal(typeof e.cniVersion, "string");
  }
  assert.equal(b.kernel.linkByName("net1", "pod1"), undefined, "no failed ADD left an interface behind");
});

test("VERSION, STATUS and GC (CNI 1.1.0)", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const v = await runCni({ CNI_COMMAND: "VERSION" }, '{"cniVersion":"1.0.0"}');
  assert.deepEqual(JSON.parse(v.stdout), { cniVersion: "1.0.0", supportedVersions: ["1.0.0", "1.1.0"] });
  const conf11 = b.conf({ cniVersion: "1.1.0" });
  assert.deepEqual(await runCni({ CNI_COMMAND: "STATUS", CNI_PATH: "/usr/lib/cni" }, JSON.stringify(conf11)), { stdout: "", exitCode: 0 });
  const down = await runCni({ CNI_COMMAND: "STATUS" }, JSON.stringify({ ...conf11, guestEndpoint: join(b.dir, "gone.sock") }));
  assert.equal((JSON.parse(down.stdout) as Json).code, 50);

  assert.equal((await call(b, "ADD", "c1", "pod1", b.conf({ cniVersion: "1.1.0" }))).exitCode, 0);
  assert.equal((await call(b, "ADD", "c2", "pod2", b.conf({ cniVersion: "1.1.0", deviceID: b.vf(1) }))).exitCode, 0);
  const gc = await runCni({ CNI_COMMAND: "GC", CNI_PATH: "/usr/lib/cni" }, JSON.stringify({ ...conf11, "cni.dev/valid-attachments": [{ containerID: "c2", ifname: "net1" }] }));
  assert.deepEqual(gc, { stdout: "", exitCode: 0 });
  assert.equal(b.kernel.linkByName("net1", "pod1"), undefined, "c1 was collected");
  assert.equal(b.kernel.linkByName("net1", "pod2")!.bdf, b.vf(1), "c2 is valid and stays");
  assert.ok(!existsSync(join(b.dir, "ipam", "vfnet", "10.56.0.2")));
  assert.ok(existsSync(join(b.dir, "ipam", "vfnet", "10.56.0.3")));
  const missingPath = await runCni({ CNI_COMMAND: "GC" }, JSON.stringify(conf11));
  assert.equal((JSON.parse(missingPath.stdout) as Json).code, 4);
});

test("ADD with prevResult appends its interface and keeps the earlier one's", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const prevResult = { cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/var/run/netns/pod1" }], ips: [{ address: "192.168.0.5/24", interface: 0 }] };
  const r = await call(b, "ADD", "c1", "pod1", b.conf({ prevResult, ipam: undefined }));
  assert.equal(r.exitCode, 0);
  assert.equal((r.out!.interfaces as Json[]).length, 2);
  assert.deepEqual(r.out!.ips, prevResult.ips);
});

test("the executable: ADD and DEL as processes, with host-local", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const conf = JSON.stringify(b.conf());
  const add = await execPlugin(b.env("ADD", "c9", "pod1"), conf);
  assert.equal(add.exitCode, 0, add.stdout);
  assert.equal(((JSON.parse(add.stdout) as Json).ips as Json[])[0]!.address, "10.56.0.2/24");
  const del = await execPlugin(b.env("DEL", "c9", "pod1"), conf);
  assert.deepEqual(del, { stdout: "", exitCode: 0 });
  const ver = await execPlugin({ CNI_COMMAND: "VERSION" }, "");
  assert.deepEqual(JSON.parse(ver.stdout), { cniVersion: "1.1.0", supportedVersions: ["1.0.0", "1.1.0"] });
});

test("untrusted config and env: every answer is a result or a CNI error JSON, never a crash", async () => {
  const field = fc.oneof(fc.jsonValue(), fc.constantFrom("on", "off", "802.1ad", "0000:00:04.1", "02:00:00:00:00:01", -1, 4095, 1e20));
  const keys = fc.constantFrom("cniVersion", "name", "type", "deviceID", "vlan", "vlanQoS", "vlanProto", "mac", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate", "ipam", "prevResult", "runtimeConfig", "dataDir", "cni.dev/valid-attachments");
  await fc.assert(
    fc.asyncProperty(fc.dictionary(keys, field), fc.constantFrom("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", ""), fc.string({ maxLength: 20 }), async (extra, cmd, cid) => {
      // No guestEndpoint and a data dir that cannot exist: nothing outside the process is touched.
      const conf = { cniVersion: "1.0.0", name: "n", type: "vpf-sriov", dataDir: "/nonexistent/vpf-prop", ...extra };
      delete (conf as Json).guestEndpoint;
      const r = await runCni({ CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: "/run/netns/x", CNI_IFNAME: "net1", CNI_ARGS: cid.includes(";") ? cid : "" }, JSON.stringify(conf));
      if (r.exitCode === 0) return;
      const e = JSON.parse(r.stdout) as Json;
      assert.equal(typeof e.code, "number");
      assert.equal(typeof e.msg, "string");
      assert.notEqual(e.code, 999, r.stdout);
    }),
    { numRuns: 300 },
  );
});

test("an interface name already taken in the pod fails ADD with EEXIST and leaves the VF home", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  assert.equal((await call(b, "ADD", "c1", "pod1", b.conf({ deviceID: b.vf(0) }), "net1")).exitCode, 0);
  const r = await call(b, "ADD", "c2", "pod1", b.conf({ deviceID: b.vf(1), vlan: 3 }), "net1");
  assert.equal(r.exitCode, 1);
  assert.equal(r.out!.code, 102);
  assert.match(String(r.out!.details), /EEXIST/);
  assert.equal(b.kernel.linkByName("eth2", null)!.bdf, b.vf(1));
  assert.equal(b.kernel.vfConfig(PF_BDF, 1)!.vlan, 0);
});

test("installCniPlugin writes a vpf-sriov wrapper a runtime can find on CNI_PATH", async (t) => {
  const { installCniPlugin } = await import("./install.js");
  const { pluginCommand } = await import("./testkit.js");
  const { execFile } = await import("node:child_process");
  const b = await cniBench();
  t.after(() => b.close());
  const { cmd, args } = pluginCommand(); // compiled main.js, or main.ts through tsx in the dev loop
  const path = await installCniPlugin(join(b.dir, "bin"), { node: cmd, args });
  const out = await new Promise<string>((resolve, reject) => {
    const c = execFile(path, [], { env: { CNI_COMMAND: "VERSION", PATH: process.env.PATH ?? "/usr/bin:/bin" } }, (err, stdout) => (err === null ? resolve(stdout) : reject(new Error(err.message))));
    c.stdin?.end("{}");
  });
  assert.deepEqual(JSON.parse(out), { cniVersion: "1.1.0", supportedVersions: ["1.0.0", "1.1.0"] });
});

test("model-based: any sequence of ADD, DEL and pod deaths keeps one VF per pod, never disturbs a live pod, and DEL restores everything", async () => {
  type Cmd = { kind: "add"; c: number; vf: number; ns: number; vlan: number } | { kind: "del"; c: number } | { kind: "kill"; ns: number };
  const cmd: fc.Arbitrary<Cmd> = fc.oneof(
    fc.record({ kind: fc.constant("add" as const), c: fc.nat(3), vf: fc.nat(2), ns: fc.nat(2), vlan: fc.integer({ min: 1, max: 4094 }) }),
    fc.record({ kind: fc.constant("del" as const), c: fc.nat(3) }),
    fc.record({ kind: fc.constant("kill" as const), ns: fc.nat(2) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(cmd, { maxLength: 10 }), async (cmds) => {
      const b = await cniBench(3, ["p0g0", "p1g0", "p2g0"]);
      try {
        const initial = [0, 1, 2].map((i) => ({ cfg: { ...b.kernel.vfConfig(PF_BDF, i)! }, link: { ...[...b.kernel.links.values()].find((l) => l.bdf === b.vf(i))! } }));
        // Runtimes name namespaces uniquely: a pod slot gets a new generation when its pod dies.
        const gen = [0, 0, 0];
        const nsName = (ns: number): string => `p${ns}g${gen[ns]}`;
        const live = new Map<number, { vf: number; ns: string; vlan: number }>();
        const dead = new Map<number, string>(); // attachments whose pod died, DEL still to come
        const run = (command: string, c: number, ns: string, conf: Json) => runCni({ ...b.env(command, `c${c}`, ""), CNI_NETNS: `/run/netns/${ns}` }, JSON.stringify(conf));
        for (const k of cmds) {
          if (k.kind === "add") {
            if (live.has(k.c) || dead.has(k.c)) continue; // a runtime never ADDs an attachment twice without DEL
            const held = [...live.values()].some((a) => a.vf === k.vf);
            const nsTaken = [...live.values()].some((a) => a.ns === nsName(k.ns)); // one "net1" per namespace
            const r = await run("ADD", k.c, nsName(k.ns), b.conf({ deviceID: b.vf(k.vf), vlan: k.vlan, ipam: undefined }));
            assert.equal(r.exitCode === 0, !held && !nsTaken, r.stdout);
            if (r.exitCode === 0) live.set(k.c, { vf: k.vf, ns: nsName(k.ns), vlan: k.vlan });
          } else if (k.kind === "del") {
            const ns = live.get(k.c)?.ns ?? dead.get(k.c) ?? nsName(0);
            const r = await run("DEL", k.c, ns, b.conf({ ipam: undefined }));
            assert.equal(r.exitCode, 0, r.stdout);
            live.delete(k.c);
            dead.delete(k.c);
          } else {
            const old = nsName(k.ns);
            b.kernel.netnsDel(old);
            for (const [c, a] of live) {
              if (a.ns !== old) continue;
              live.delete(c);
              dead.set(c, old);
            }
            gen[k.ns]! += 1;
            b.kernel.netnsAdd(nsName(k.ns));
          }
          const vfs = [...live.values()].map((a) => a.vf);
          assert.equal(new Set(vfs).size, vfs.length, "one VF per pod");
          for (const a of live.values()) {
            assert.equal(b.kernel.vfConfig(PF_BDF, a.vf)!.vlan, a.vlan, "a live pod's VF keeps its settings");
            assert.equal(b.kernel.linkByName("net1", a.ns)?.bdf, b.vf(a.vf));
          }
        }
        for (const [c, a] of live) assert.equal((await run("DEL", c, a.ns, b.conf({ ipam: undefined }))).exitCode, 0);
        for (const [c, ns] of dead) assert.equal((await run("DEL", c, ns, b.conf({ ipam: undefined }))).exitCode, 0);
        for (let i = 0; i < 3; i++) {
          assert.deepEqual(b.kernel.vfConfig(PF_BDF, i), initial[i]!.cfg);
          const l = [...b.kernel.links.values()].find((x) => x.bdf === b.vf(i))!;
          assert.deepEqual([l.name, l.netns, l.mac, l.mtu], [initial[i]!.link.name, null, initial[i]!.link.mac, initial[i]!.link.mtu]);
        }
        assert.deepEqual((await readdir(join(b.dir, "state")).catch(() => [])).filter((f) => f.endsWith(".json")), []);
      } finally {
        await b.close();
      }
    }),
    { numRuns: 60 },
  );
});

test("the executable starts IPAM before loading the plugin; a refused ADD still releases the address", async (t) => {
  const b = await cniBench();
  t.after(() => b.close());
  const ipamFiles = async (): Promise<string[]> => (await readdir(join(b.dir, "ipam", "vfnet")).catch(() => [])).filter((f) => /^\d/.test(f));
  for (const bad of [{ vlanQoS: 3 }, { deviceID: PF_BDF }, { cniVersion: "0.4.0" }, { deviceID: undefined }, { guestEndpoint: undefined }]) {
    const r = await execPlugin(b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf(bad)));
    assert.equal(r.exitCode, 1, r.stdout);
    assert.deepEqual(await ipamFiles(), [], JSON.stringify(bad));
  }
  const missingId = await execPlugin({ ...b.env("ADD", "c1", "pod1"), CNI_CONTAINERID: "" }, JSON.stringify(b.conf()));
  assert.equal((JSON.parse(missingId.stdout) as Json).code, 3);
  const ok = await execPlugin(b.env("ADD", "c1", "pod1"), JSON.stringify(b.conf()));
  assert.equal(ok.exitCode, 0, ok.stdout);
  // host-local hands out addresses round-robin, so the one kept is the next after those released.
  const kept = await ipamFiles();
  assert.equal(kept.length, 1);
  assert.equal(((JSON.parse(ok.stdout) as Json).ips as Json[])[0]!.address, `${kept[0]}/24`);
});
