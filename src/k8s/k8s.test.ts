import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { KernelError } from "../base/index.js";
import { LinkRepr } from "../wire/rtnetlink.js";
import { NlmF, parseNlMessages } from "../wire/netlink.js";
import { GuestEndpointClient, serveGuestEndpoint } from "./endpoint.js";
import { FakeGuestKernel } from "./fake-kernel.js";
import { DirSysfs, MemorySysfs } from "./sysfs.js";
import { locateVf, netdevsOf } from "./pci.js";
import { discoverNetDevices } from "./deviceplugin/discovery.js";
import * as nl from "./rtnl.js";

async function tempDir(t: { after: (fn: () => unknown) => void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "vpf-k8s-"));
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

test("DirSysfs: a fake virtio sysfs on disk (real symlinks) resolves PF, VF index and netdevs", async (t) => {
  const root = await tempDir(t);
  const dev = (bdf: string): string => join(root, "sys/devices/pci0000:00", bdf);
  const pf = "0000:00:04.0", vf0 = "0000:00:04.1", vf1 = "0000:00:04.2";
  await mkdir(join(root, "sys/bus/pci/devices"), { recursive: true });
  await mkdir(join(root, "sys/bus/pci/drivers/virtio-pci"), { recursive: true });
  for (const [bdf, virtio, eth] of [[pf, "virtio0", "eth0"], [vf0, "virtio1", "eth1"], [vf1, "virtio2", "eth2"]] as const) {
    await mkdir(join(dev(bdf), virtio, "net", eth), { recursive: true });
    await writeFile(join(dev(bdf), virtio, "net", eth, "operstate"), "down\n");
    await writeFile(join(dev(bdf), "vendor"), "0x1af4\n");
    await writeFile(join(dev(bdf), "device"), "0x1041\n");
    await writeFile(join(dev(bdf), "class"), "0x020000\n");
    await symlink("../../../bus/pci/drivers/virtio-pci", join(dev(bdf), "driver"));
    await symlink(`../../../devices/pci0000:00/${bdf}`, join(root, "sys/bus/pci/devices", bdf));
  }
  await writeFile(join(dev(pf), "sriov_numvfs"), "2\n");
  await writeFile(join(dev(pf), "sriov_totalvfs"), "8\n");
  await symlink(`../${vf0}`, join(dev(pf), "virtfn0"));
  await symlink(`../${vf1}`, join(dev(pf), "virtfn1"));
  await symlink(`../${pf}`, join(dev(vf0), "physfn"));
  await symlink(`../${pf}`, join(dev(vf1), "physfn"));
  const sysfs = new DirSysfs(root);
  assert.deepEqual(await locateVf(sysfs, vf1), { vf: vf1, pf, vfIndex: 1, pfNetdev: "eth0" });
  assert.deepEqual(await netdevsOf(sysfs, vf0), ["eth1"]);
  const devs = await discoverNetDevices(sysfs);
  assert.deepEqual(devs.map((d) => [d.bdf, d.pfNetdevs, d.vfIndex, d.driver]), [[vf0, ["eth0"], 0, "virtio-pci"], [vf1, ["eth0"], 1, "virtio-pci"]]);
  await assert.rejects(sysfs.readFile("/sys/nope"), (e: unknown) => e instanceof KernelError && e.code === "ENOENT");
  await assert.rejects(locateVf(sysfs, pf), (e: unknown) => (e as { code?: string }).code === "K8S_NOT_A_VF");
});

test("MemorySysfs follows links in the middle of a path and refuses writes to read-only attributes", async () => {
  const s = new MemorySysfs();
  s.putFile("/sys/devices/a/virtio0/net/eth0/mtu", "1500\n");
  s.putLink("/sys/bus/pci/devices/a", "../../../devices/a");
  s.putLink("/sys/devices/b/physfn", "../a");
  assert.equal(await s.readFile("/sys/devices/b/physfn/virtio0/net/eth0/mtu"), "1500\n");
  assert.equal(await s.readlink("/sys/devices/b/physfn"), "../a");
  assert.equal(s.realpath("/sys/bus/pci/devices/a/virtio0"), "/sys/devices/a/virtio0");
  await assert.rejects(s.writeFile("/sys/devices/a/virtio0/net/eth0/mtu", "9000"), (e: unknown) => e instanceof KernelError && e.code === "EPERM");
  s.putLink("/loop/x", "/loop/x");
  await assert.rejects(s.readFile("/loop/x/y"), (e: unknown) => e instanceof KernelError);
});

test("guest endpoint: sysfs, netlink and namespace operations, with kernel errors carried as errno names", async (t) => {
  const dir = await tempDir(t);
  const k = new FakeGuestKernel([{ bdf: "0000:00:04.0", totalVfs: 4 }]);
  const ep = await serveGuestEndpoint(join(dir, "g.sock"), k);
  t.after(() => ep.close());
  const c = await GuestEndpointClient.connect(ep.path);
  t.after(() => c.close());
  assert.deepEqual(await c.hello(), { protocol: "vpf-guest-endpoint", version: 1 });
  await c.writeFile("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "2");
  await assert.rejects(c.writeFile("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "3"), (e: unknown) => e instanceof KernelError && e.code === "EBUSY");
  await assert.rejects(c.writeFile("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "0\n").then(() => c.writeFile("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "9")), (e: unknown) => e instanceof KernelError && e.code === "ERANGE");
  assert.equal(await c.readlink("/sys/bus/pci/devices/0000:00:04.0"), "../../../devices/pci0000:00/0000:00:04.0");
  await c.netnsAdd("p");
  await assert.rejects(c.netnsAdd("p"), (e: unknown) => e instanceof KernelError && e.code === "EEXIST");
  assert.deepEqual(await c.netnsList(), ["p"]);
  await assert.rejects(c.netnsOpen("absent"), (e: unknown) => e instanceof KernelError && e.code === "ENOENT");
  // An IFLA_NET_NS_FD that this connection never opened is a bad fd.
  const eth0 = k.linkByName("eth0", null)!;
  const req = LinkRepr.emit({ ifi: { family: 0, type: 0, index: eth0.index, flags: 0, change: 0 }, netNsFd: 99, extra: [] }, { type: nl.Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: 5, pid: 0 });
  const [reply] = await c.netlink(req);
  const m = parseNlMessages(reply!)[0]!;
  assert.equal(nl.errorOf(m), 22);
  const fd = await c.netnsOpen("p");
  const ok = await c.netlink(LinkRepr.emit({ ifi: { family: 0, type: 0, index: eth0.index, flags: 0, change: 0 }, netNsFd: fd, extra: [] }, { type: nl.Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: 6, pid: 0 }));
  assert.equal(nl.errorOf(parseNlMessages(ok[0]!)[0]!), 0);
  assert.equal(eth0.netns, "p");
});

test("VF settings encode as iproute2 does: IFLA_VF_VLAN for 802.1Q, IFLA_VF_VLAN_LIST with big-endian proto for 802.1ad", () => {
  const q = LinkRepr.emit({ ifi: { family: 0, type: 0, index: 2, flags: 0, change: 0 }, vfInfoList: [nl.vfSetInfo(3, { vlan: { vlan: 100, qos: 5, proto: nl.ETH_P_8021Q } })], extra: [] }, { type: nl.Rtm.SETLINK, flags: 5, seq: 1, pid: 0 });
  // nlmsghdr(16) ifinfomsg(16) VFINFO_LIST hdr(4) VF_INFO hdr(4) VF_VLAN hdr(4) + {vf, vlan, qos}
  assert.equal(q.length, 16 + 16 + 4 + 4 + 4 + 12);
  assert.deepEqual([...q.subarray(32, 44)], [24, 0, 22, 0, 20, 0, 1, 0, 16, 0, 2, 0]);
  assert.deepEqual([...q.subarray(44)], [3, 0, 0, 0, 100, 0, 0, 0, 5, 0, 0, 0]);
  const ad = LinkRepr.emit({ ifi: { family: 0, type: 0, index: 2, flags: 0, change: 0 }, vfInfoList: [nl.vfSetInfo(1, { vlan: { vlan: 7, qos: 0, proto: nl.ETH_P_8021AD } })], extra: [] }, { type: nl.Rtm.SETLINK, flags: 5, seq: 1, pid: 0 });
  const info = ad.subarray(32 + 4 + 4 + 4 + 4); // down to IFLA_VF_VLAN_INFO payload
  assert.deepEqual([...ad.subarray(40, 44)], [24, 0, 12, 0], "IFLA_VF_VLAN_LIST, 24 bytes");
  assert.deepEqual([...info.subarray(0, 16)], [1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x88, 0xa8, 0, 0]);
  const back = nl.flattenVf(LinkRepr.parse(parseNlMessages(ad)[0]!).vfInfoList![0]!);
  assert.equal(back.vlanProto, nl.ETH_P_8021AD);
  assert.equal(back.vlan, 7);
});

test("fake kernel netlink: random bytes and mutated requests get an error or an ACK, never an exception", () => {
  const k = new FakeGuestKernel([{ bdf: "0000:00:04.0", totalVfs: 4 }]);
  const good = LinkRepr.emit({ ifi: { family: 0, type: 0, index: 2, flags: 0, change: 0 }, vfInfoList: [nl.vfSetInfo(0, { mac: "02:00:00:00:00:01", vlan: { vlan: 5, qos: 1, proto: nl.ETH_P_8021AD }, rate: { min: 1, max: 2 }, trust: true })], extra: [] }, { type: nl.Rtm.SETLINK, flags: 5, seq: 1, pid: 0 });
  const ctx = { netns: null, nsFd: () => undefined };
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const b = good.slice();
      b[i] = v;
      return b;
    })), (bytes) => {
      for (const r of k.netlink(bytes, ctx)) parseNlMessages(r);
    }),
    { numRuns: 500 },
  );
});

test("guest endpoint server: garbage frames get error answers and the connection keeps serving", { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const k = new FakeGuestKernel([{ bdf: "0000:00:04.0", totalVfs: 2 }]);
  const ep = await serveGuestEndpoint(join(dir, "g.sock"), k);
  t.after(() => ep.close());
  const frame = (body: Uint8Array): Buffer => {
    const b = Buffer.alloc(4 + body.length);
    b.writeUInt32BE(body.length, 0);
    Buffer.from(body).copy(b, 4);
    return b;
  };
  const bodies = fc.sample(fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v))),
    fc.record({ id: fc.nat(), op: fc.constantFrom("sysfs.read", "sysfs.list", "sysfs.readlink", "sysfs.write", "netlink", "netns.add", "netns.del", "netns.open", "netns.close", "nope"), path: fc.oneof(fc.string(), fc.constant("/sys/bus/pci/devices")), request: fc.string(), name: fc.oneof(fc.string(), fc.constant(null)), fd: fc.integer(), data: fc.string() }, { requiredKeys: ["id", "op"] }).map((v) => new TextEncoder().encode(JSON.stringify(v))),
  ), { numRuns: 200, seed: 8 });
  const sock = createConnection(ep.path);
  await new Promise((r) => sock.once("connect", r));
  let got = Buffer.alloc(0);
  sock.on("data", (c: Buffer) => (got = Buffer.concat([got, c])));
  for (const b of bodies) sock.write(frame(b));
  sock.write(frame(new TextEncoder().encode(JSON.stringify({ id: "last", op: "hello" }))));
  const answers: Record<string, unknown>[] = [];
  while (answers.length < bodies.length + 1) {
    await new Promise((r) => setTimeout(r, 5));
    while (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
      answers.push(JSON.parse(got.subarray(4, 4 + got.readUInt32BE(0)).toString("utf8")) as Record<string, unknown>);
      got = got.subarray(4 + got.readUInt32BE(0));
    }
  }
  sock.destroy();
  for (const a of answers.slice(0, -1)) if (a.ok !== true) assert.equal(typeof a.errno, "string");
  assert.deepEqual(answers.at(-1), { id: "last", ok: true, protocol: "vpf-guest-endpoint", version: 1 });
});

test("guest endpoint: an impossible frame length gets one error frame and the connection closes", { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t);
  const ep = await serveGuestEndpoint(join(dir, "g.sock"), new FakeGuestKernel([]));
  t.after(() => ep.close());
  const sock = createConnection(ep.path);
  await new Promise((r) => sock.once("connect", r));
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  const closed = new Promise((r) => sock.once("close", r));
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0xffffffff, 0);
  sock.write(huge);
  await closed;
  const all = Buffer.concat(chunks);
  const body = JSON.parse(all.subarray(4, 4 + all.readUInt32BE(0)).toString("utf8")) as Record<string, unknown>;
  assert.equal(body.ok, false);
  assert.equal(body.code, "K8S_PROTOCOL");
  assert.equal(all.length, 4 + all.readUInt32BE(0));
  // The server itself keeps serving others.
  const c = await GuestEndpointClient.connect(ep.path);
  assert.equal((await c.hello()).version, 1);
  c.close();
});
