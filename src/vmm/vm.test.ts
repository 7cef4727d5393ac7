import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualClock } from "../base/index.js";
import { GuestMemory } from "../memory/index.js";
import { Host } from "../host/index.js";
import { Nic } from "../nic/index.js";
import { lspciDumpBus } from "../pci/index.js";
import { EthernetRepr, MacAddress } from "../wire/index.js";
import { VIRTIO_F_SR_IOV, VIRTIO_F_VERSION_1, VIRTIO_F_ADMIN_VQ, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_RING_F_EVENT_IDX } from "../virtio/index.js";
import { HostVfControl, hostBackend, type VfBackend } from "./host-adapter.js";
import { BackendPool } from "./pool.js";
import { TestGuest, type VirtioFunction } from "./test-guest.js";
import {
  AdminQualifier,
  AdminStatus,
  ETH_P_8021Q,
  SUPPORTED_OPCODES,
  decodeAdminResult,
  decodeOpcodeList,
  decodeVfConfig,
  decodeVfStats,
  encodeAdminCommand,
  resultLength,
  type VfAdminCommand,
} from "./vf-admin.js";
import { Vm } from "./vm.js";
import { VdpaNetDevice } from "./vdpa-net.js";
import type { VmPolicy } from "./policy.js";

const MiB = 1024 * 1024;
const bit = (n: number): bigint => 1n << BigInt(n);
const WANT = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_SR_IOV) | bit(VIRTIO_F_ADMIN_VQ) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_RING_F_EVENT_IDX);
const POLICY: VmPolicy = { vlan: { mode: "allow-list", allowed: [0, 100] }, allowSpoofchkOff: false, allowTrust: false };

/** A host whose PF has `n` VFs, each with a vDPA device vdpa<i>. */
function hostWith(n: number, bus = 0x3b): { host: Host; pf: string; backends: VfBackend[] } {
  const host = new Host(new Nic({ clock: new VirtualClock(), totalVfs: Math.max(1, n), bus }));
  const pf = host.pfNames()[0]!;
  host.setSriovNumVfs(pf, n);
  const backends = host.vdpaMgmtdevShow().map((m, i) => {
    host.vdpaDevAdd({ name: `vdpa${i}`, mgmtdev: m.name });
    return hostBackend(host, `vdpa${i}`);
  });
  return { host, pf, backends };
}

interface World {
  host: Host;
  pf: string;
  backends: VfBackend[];
  pool: BackendPool<VfBackend>;
  vm: Vm;
  guest: TestGuest;
}

function world(poolSize: number, opts: { quota?: number; policy?: VmPolicy } = {}): World {
  const { host, pf, backends } = hostWith(poolSize + 1);
  const pool = new BackendPool("pool0", backends.slice(1));
  const vm = new Vm({ name: "vm1", memory: 64 * MiB });
  vm.addVpf({ backend: backends[0]!, pool, policy: opts.policy ?? POLICY, ...(opts.quota !== undefined ? { quota: opts.quota } : {}) });
  vm.start();
  const guest = new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB });
  return { host, pf, backends, pool, vm, guest };
}

const VPF_BUS = 1;
const SRIOV_ID = 0x10;

/** The guest brings the vPF up and places its VF BARs, as firmware + virtio_pci + the PCI core do. */
function vpfUp(w: World): { f: VirtioFunction; sriov: number } {
  const g = w.guest;
  g.assignBars(VPF_BUS, 0);
  const sriov = g.findExtCap(VPF_BUS, 0, SRIOV_ID);
  assert.ok(sriov !== undefined, "the vPF carries an SR-IOV capability");
  g.assignVfBars(VPF_BUS, 0, sriov);
  const f = g.virtioUp(VPF_BUS, 0, { want: WANT, barOf: (i) => g.barAddress(VPF_BUS, 0, i), admin: true });
  return { f, sriov };
}

function enableVfs(w: World, sriov: number, n: number): void {
  w.guest.write(VPF_BUS, 0, sriov + 0x10, 2, n);
  w.guest.write(VPF_BUS, 0, sriov + 0x08, 2, 0x09); // VF Enable | VF MSE, as sriov_enable writes it
}

function admin(w: World, f: VirtioFunction, cmd: VfAdminCommand): { status: number; qualifier: number; payload: Uint8Array } {
  const req = encodeAdminCommand(cmd);
  const opcode = req[0]! | (req[1]! << 8);
  const r = decodeAdminResult(w.guest.adminCommand(f, req, resultLength(opcode)));
  assert.ok(r !== undefined, "a status came back");
  return r;
}

/** LIST_QUERY then LIST_USE of every supported opcode (what a driver does once after reset). */
function adminInit(w: World, f: VirtioFunction): void {
  const q = admin(w, f, { op: "list-query" });
  assert.equal(q.status, AdminStatus.OK);
  const ops = decodeOpcodeList(q.payload);
  for (const op of SUPPORTED_OPCODES) assert.ok(ops.includes(op), `opcode 0x${op.toString(16)} listed`);
  assert.equal(admin(w, f, { op: "list-use", opcodes: ops }).status, AdminStatus.OK);
}

test("topology: a root port per device with bus numbers and ARI forwarding, the vPF behind it", () => {
  const w = world(4);
  const g = w.guest;
  const found = g.scan(2);
  assert.deepEqual(found.map((x) => [x.bus, x.devfn, x.vendor, x.device]), [[0, 0x80, 0x1b36, 0x000c], [1, 0, 0x1af4, 0x1041]]);
  // Root port: type 1 header, class 0604, bus numbers 0/1/1, PCIe Root Port with ARI forwarding.
  assert.equal(g.read(0, 0x80, 0x0e, 1) & 0x7f, 1);
  assert.equal(g.read(0, 0x80, 0x08, 4) >>> 8, 0x060400);
  assert.deepEqual([g.read(0, 0x80, 0x18, 1), g.read(0, 0x80, 0x19, 1), g.read(0, 0x80, 0x1a, 1)], [0, 1, 1]);
  const exp = g.findCap(0, 0x80, 0x10)!;
  assert.equal((g.read(0, 0x80, exp + 2, 2) >> 4) & 0xf, 4, "device/port type: root port");
  assert.equal(g.read(0, 0x80, exp + 0x24, 4) & 0x20, 0x20, "ARI Forwarding Supported");
  assert.equal(g.read(0, 0x80, exp + 0x28, 2) & 0x20, 0x20, "ARI Forwarding Enable, as firmware left it");
  // vPF: PCIe endpoint, ARI, SR-IOV with TotalVFs = InitialVFs = pool capacity, offset 1, stride 1.
  const sriov = g.findExtCap(1, 0, SRIOV_ID)!;
  assert.ok(g.findExtCap(1, 0, 0x0e) !== undefined, "ARI capability");
  assert.equal(g.read(1, 0, sriov + 0x0e, 2), 4);
  assert.equal(g.read(1, 0, sriov + 0x0c, 2), 4);
  assert.deepEqual([g.read(1, 0, sriov + 0x14, 2), g.read(1, 0, sriov + 0x16, 2), g.read(1, 0, sriov + 0x1a, 2)], [1, 1, 0x1041]);
  // No VF exists yet: every VF routing ID reads all ones.
  for (let d = 1; d <= 4; d++) assert.equal(g.read(1, d, 0x08, 4), 0xffff_ffff);
});

test("the vPF offers VIRTIO_F_SR_IOV and the admin queue; VF Enable makes vVFs at the capability's routing IDs", () => {
  const w = world(4);
  const { f, sriov } = vpfUp(w);
  assert.ok((f.features & bit(VIRTIO_F_SR_IOV)) !== 0n);
  assert.ok(f.adminQueue !== undefined);
  enableVfs(w, sriov, 3);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 1, "VF Enable reads back set");
  for (let n = 1; n <= 3; n++) {
    // A VF's Vendor/Device ID read 0xFFFF (SR-IOV §3.4.1.1); its class and header answer.
    assert.equal(w.guest.read(1, n, 0x00, 4), 0xffff_ffff);
    assert.equal(w.guest.read(1, n, 0x08, 4), 0x0200_0001, `vVF ${n} is a virtio-net function`);
  }
  assert.equal(w.guest.read(1, 4, 0x08, 4), 0xffff_ffff, "VF 4 is beyond NumVFs");
  assert.equal(w.pool.available, 1);
  assert.equal(w.pool.heldBy("vm1"), 3);
  const vpf = w.vm.vpfs[0]!;
  assert.deepEqual([1, 2, 3].map((n) => vpf.vvfBackend(n)?.name), ["vdpa1", "vdpa2", "vdpa3"]);
  // NumVFs is locked while VF Enable is set.
  w.guest.write(1, 0, sriov + 0x10, 2, 1);
  assert.equal(w.guest.read(1, 0, sriov + 0x10, 2), 3);
  // Disable: the vVFs vanish and the backends go back.
  w.guest.write(1, 0, sriov + 0x08, 2, 0);
  assert.equal(w.guest.read(1, 1, 0x08, 4), 0xffff_ffff);
  assert.equal(w.pool.available, 4);
  assert.equal(w.pool.heldBy("vm1"), 0);
});

test("frames between two vVFs go through the NIC's eswitch, rings served by the host VFs directly", () => {
  const w = world(2);
  const { f, sriov } = vpfUp(w);
  enableVfs(w, sriov, 2);
  const g = w.guest;
  const vf = [1, 2].map((n) => g.virtioUp(1, n, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, n) }));
  const macs = ["02:00:00:00:00:01", "02:00:00:00:00:02"].map((m) => MacAddress.parse(m));
  const vpf = w.vm.vpfs[0]!;
  adminInit(w, f);
  for (let n = 1; n <= 2; n++) assert.equal(admin(w, f, { op: "set-mac", vf: n, mac: macs[n - 1]!.bytes() }).status, AdminStatus.OK);
  // vVF 2 posts a receive buffer; vVF 1 sends one frame to it.
  const rxBuf = g.allocator.alloc(2048);
  vf[1]!.queues.get(0)!.ring.add([], [{ addr: rxBuf, len: 2048 }], 1);
  g.kick(vf[1]!, 0);
  const frame = new Uint8Array(60);
  EthernetRepr.emit({ dst: macs[1]!, src: macs[0]!, vlans: [], etherType: 0x0800 }, frame);
  const txBuf = g.allocator.alloc(12 + frame.length);
  g.memory.fill(txBuf, 12);
  g.memory.write(txBuf + 12, frame);
  const msisBefore = g.msis.length;
  vf[0]!.queues.get(1)!.ring.add([{ addr: txBuf, len: 12 + frame.length }], [], 2);
  g.kick(vf[0]!, 1);
  const used = vf[1]!.queues.get(0)!.ring.getUsed();
  assert.ok(used !== undefined, "the frame reached vVF 2's receive ring");
  assert.equal(used.len, 12 + 60);
  assert.deepEqual(g.memory.read(rxBuf + 12, 60), frame);
  // The receive interrupt is vVF 2's MSI-X vector 1 (queue 0), delivered to the guest.
  assert.ok(g.msis.slice(msisBefore).some((m) => m.data === ((vf[1]!.tag << 8) | 1)));
  // The host VFs counted the frame: it crossed the eswitch.
  const info = w.host.getVfInfo(w.pf).vfs;
  assert.equal(info[1]!.stats?.txPackets, 1n);
  assert.equal(info[2]!.stats?.rxPackets, 1n);
  // The guest reads the same counters through the vPF.
  const st = decodeVfStats(admin(w, f, { op: "get-stats", vf: 2 }).payload);
  assert.equal(st?.rxPackets, 1n);
  assert.equal(vpf.vvfTransport(2)!.deviceQueue(0)!.stats.chains, 0, "no vmm-side ring walk: the NIC VF served the ring");
  assert.equal(vpf.vvfTransport(1)!.deviceQueue(1)!.stats.chains, 0);
});

test("guest VF configuration over the admin queue: applied on the host, policy refusals change nothing", () => {
  const w = world(3);
  const { f, sriov } = vpfUp(w);
  // Before VF Enable the SR-IOV group does not exist.
  adminInit(w, f);
  const early = admin(w, f, { op: "get-config", vf: 1 });
  assert.deepEqual([early.status, early.qualifier], [AdminStatus.EINVAL, AdminQualifier.INVALID_GROUP]);
  enableVfs(w, sriov, 2);
  const ok = admin(w, f, { op: "set-vlan", vf: 1, vlan: 100, qos: 2, vlanProto: ETH_P_8021Q });
  assert.equal(ok.status, AdminStatus.OK);
  const host1 = w.host.getVfInfo(w.pf).vfs[1]!;
  assert.deepEqual([host1.vlan, host1.qos, host1.vlanProto], [100, 2, ETH_P_8021Q], "host VF 1 (vVF 1's backend) carries the VLAN");
  const refused = admin(w, f, { op: "set-vlan", vf: 2, vlan: 200, qos: 0, vlanProto: ETH_P_8021Q });
  assert.deepEqual([refused.status, refused.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_VLAN]);
  assert.equal(w.host.getVfInfo(w.pf).vfs[2]!.vlan, 0, "nothing changed on the host");
  assert.equal(w.vm.vpfs[0]!.mediator.counters.refused.POLICY_VLAN, 1);
  // A rate above the line rate (100 Gbit/s) is the host's EINVAL, passed on as such.
  const fast = admin(w, f, { op: "set-rate", vf: 1, minTxRateMbps: 0, maxTxRateMbps: 200_000 });
  assert.deepEqual([fast.status, fast.qualifier], [AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD]);
  assert.equal(w.host.getVfInfo(w.pf).vfs[1]!.maxTxRate, 0);
  const trust = admin(w, f, { op: "set-trust", vf: 2, enabled: true });
  assert.deepEqual([trust.status, trust.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_TRUST]);
  const cfg = decodeVfConfig(admin(w, f, { op: "get-config", vf: 1 }).payload);
  assert.deepEqual([cfg?.vlan, cfg?.qos, cfg?.spoofchk, cfg?.trust], [100, 2, true, false]);
  const bad = admin(w, f, { op: "get-config", vf: 3 });
  assert.deepEqual([bad.status, bad.qualifier], [AdminStatus.EINVAL, AdminQualifier.INVALID_MEMBER]);
  // Unknown opcode in our range.
  const raw = encodeAdminCommand({ op: "get-config", vf: 1 });
  raw[0] = 0x0a;
  const unk = decodeAdminResult(w.guest.adminCommand(f, raw, 32));
  assert.equal(unk?.qualifier, AdminQualifier.INVALID_OPCODE);
  // Spoof check stays on (host default), MAC unique on the eswitch.
  assert.equal(w.host.getVfInfo(w.pf).vfs[2]!.spoofchk, true);
  const vpfMac = w.host.getVfInfo(w.pf).vfs[0]!.mac;
  const dup = admin(w, f, { op: "set-mac", vf: 2, mac: vpfMac.bytes() });
  if (!vpfMac.isZero) assert.deepEqual([dup.status, dup.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_MAC_IN_USE]);
  // Disabling VFs returns the host VFs neutral: the VLAN the guest set is gone.
  w.guest.write(1, 0, sriov + 0x08, 2, 0);
  assert.equal(w.host.getVfInfo(w.pf).vfs[1]!.vlan, 0);
});

test("a short pool leaves nothing half-created: VF Enable reads back clear, no VF answers, the pool is untouched", () => {
  const { host, backends } = hostWith(5);
  const pool = new BackendPool("shared", backends.slice(2));
  const other = pool.take("vm2", 2); // another VM holds two of the three
  const vm = new Vm({ name: "vm1", memory: 64 * MiB });
  vm.addVpf({ backend: backends[0]!, pool, policy: POLICY });
  vm.start();
  const w: World = { host, pf: host.pfNames()[0]!, backends, pool, vm, guest: new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB }) };
  const { sriov } = vpfUp(w);
  assert.equal(w.guest.read(1, 0, sriov + 0x0e, 2), 3, "TotalVFs is the pool's capacity");
  enableVfs(w, sriov, 2);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 0, "VF Enable refused");
  assert.equal(w.guest.read(1, 1, 0x08, 4), 0xffff_ffff);
  assert.equal(pool.available, 1);
  assert.equal(pool.heldBy("vm1"), 0);
  assert.equal(vm.vpfs[0]!.lastEnableFailure?.code, "VMM_POOL_EXHAUSTED");
  // NumVFs is writable again (VF Enable clear), and one VF fits.
  enableVfs(w, sriov, 1);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 1);
  assert.equal(pool.heldBy("vm1"), 1);
  pool.give("vm2", other);
});

test("a backend that refuses midway is rolled back: every handle opened so far is closed again", () => {
  const w = world(3);
  const { sriov } = vpfUp(w);
  const squatter = w.host.openVhostVdpa("vdpa3"); // the third pool backend is busy
  enableVfs(w, sriov, 3);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 0);
  assert.equal(w.pool.available, 3);
  assert.equal(w.vm.vpfs[0]!.lastEnableFailure?.code, "VMM_BACKEND_FAILED");
  // vdpa1 and vdpa2 were opened and must have been closed: the host can open them now.
  w.host.openVhostVdpa("vdpa1").close();
  w.host.openVhostVdpa("vdpa2").close();
  squatter.close();
  enableVfs(w, sriov, 3);
  assert.equal(w.pool.heldBy("vm1"), 3);
});

test("quota: TotalVFs is the VM's quota, and several VMs share one pool lazily", () => {
  const { host, backends } = hostWith(6);
  const pool = new BackendPool("shared", backends.slice(2));
  const vms = ["a", "b"].map((name, i) => {
    const vm = new Vm({ name, memory: 64 * MiB });
    vm.addVpf({ backend: backends[i]!, pool, quota: 3, policy: POLICY });
    vm.start();
    return { host, pf: host.pfNames()[0]!, backends, pool, vm, guest: new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB }) } satisfies World;
  });
  const caps = vms.map((w) => vpfUp(w).sriov);
  assert.equal(vms[0]!.guest.read(1, 0, caps[0]! + 0x0e, 2), 3);
  assert.equal(pool.available, 4, "idle VMs hold nothing");
  enableVfs(vms[0]!, caps[0]!, 3);
  enableVfs(vms[1]!, caps[1]!, 2);
  assert.equal(vms[1]!.guest.read(1, 0, caps[1]! + 0x08, 2) & 1, 0, "only one backend left");
  enableVfs(vms[1]!, caps[1]!, 1);
  assert.deepEqual([pool.heldBy("a"), pool.heldBy("b"), pool.available], [3, 1, 0]);
  vms[0]!.vm.stop();
  assert.deepEqual([pool.heldBy("a"), pool.available], [0, 3], "stop returns every backend");
});

test("FLR of the vPF, system reset and stop all return every backend", () => {
  const w = world(3);
  const { sriov } = vpfUp(w);
  const exp = w.guest.findCap(1, 0, 0x10)!;
  enableVfs(w, sriov, 3);
  w.guest.write(1, 0, exp + 0x08, 2, w.guest.read(1, 0, exp + 0x08, 2) | 0x8000); // Initiate FLR
  assert.equal(w.pool.available, 3);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2), 0, "the PF's SR-IOV control is back at reset values");
  const again = vpfUp(w);
  enableVfs(w, again.sriov, 2);
  assert.equal(w.pool.heldBy("vm1"), 2);
  w.vm.reset();
  assert.equal(w.pool.heldBy("vm1"), 0);
  assert.equal(w.guest.read(0, 0x80, 0x19, 1), 1, "firmware reprogrammed the root port");
  const third = vpfUp(w);
  enableVfs(w, third.sriov, 1);
  w.vm.stop();
  assert.equal(w.pool.heldBy("vm1"), 0);
  assert.equal(w.guest.read(1, 0, 0, 4), 0xffff_ffff, "a stopped VM answers nothing");
  // The vPF's own backend is closed: the host may delete its vDPA device.
  w.host.vdpaDevDel("vdpa0");
});

test("255 vVFs with ARI: function numbers up to 255 behind the root port", () => {
  // 255 pool backends need two NICs' worth of VFs (one port holds at most 255 functions).
  const a = hostWith(1, 0x3b);
  const b = hostWith(255, 0x5e);
  const pool = new BackendPool("big", b.backends);
  const vm = new Vm({ name: "big", memory: 64 * MiB });
  vm.addVpf({ backend: a.backends[0]!, pool, policy: POLICY });
  vm.start();
  const w: World = { host: b.host, pf: b.pf, backends: b.backends, pool, vm, guest: new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB }) };
  const { sriov } = vpfUp(w);
  assert.equal(w.guest.read(1, 0, sriov + 0x0e, 2), 255);
  w.guest.write(1, 0, sriov + 0x08, 2, 0x10); // ARI Capable Hierarchy, as Linux sets it under an ARI port
  w.guest.write(1, 0, sriov + 0x10, 2, 255);
  w.guest.write(1, 0, sriov + 0x08, 2, 0x19); // sriov_enable: ctrl |= VF Enable | VF MSE
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2), 0x19);
  assert.equal(w.guest.read(1, 255, 0x08, 4), 0x0200_0001, "VF 255 at devfn 255");
  assert.equal(pool.available, 0);
  w.guest.write(1, 0, sriov + 0x08, 2, 0x10);
  assert.equal(pool.available, 255);
});

test("property: any sequence of guest writes to the SR-IOV capability keeps the pool consistent", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3f }), fc.constantFrom<1 | 2 | 4>(1, 2, 4), fc.integer({ min: 0, max: 0xffff_ffff })), { maxLength: 30 }),
      (writes) => {
        const w = world(3);
        const { sriov } = vpfUp(w);
        for (const [off, width, value] of writes) {
          const o = off - (off % width);
          w.guest.write(1, 0, sriov + o, width, value & (width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff));
          const vfe = (w.guest.read(1, 0, sriov + 0x08, 2) & 1) === 1;
          const numVfs = w.guest.read(1, 0, sriov + 0x10, 2);
          const held = w.pool.heldBy("vm1");
          assert.equal(held, vfe ? numVfs : 0, "backends held = vVFs that exist");
          assert.equal(w.pool.available + held, 3);
        }
      },
    ),
    { numRuns: 40 },
  );
});

test("admin completions interrupt the guest on the admin queue's MSI-X vector", () => {
  const w = world(1);
  const { f } = vpfUp(w);
  const before = w.guest.msis.length;
  adminInit(w, f);
  const aq = f.adminQueue!;
  const got = w.guest.msis.slice(before).filter((m) => m.data === ((f.tag << 8) | aq.vector));
  assert.equal(got.length, 2, "one message per completed command");
  assert.equal(got[0]!.address, 0xfee0_0000);
  assert.equal(w.vm.counters.msis, w.guest.msis.length);
});

test("FLR of a vVF resets its backend but keeps it bound; stop then start is a cold boot", () => {
  const w = world(2);
  const { sriov } = vpfUp(w);
  enableVfs(w, sriov, 1);
  const g = w.guest;
  g.virtioUp(1, 1, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, 1) });
  const vpf = w.vm.vpfs[0]!;
  const dev = vpf.vvfTransport(1)!.device;
  assert.ok(dev instanceof VdpaNetDevice);
  const handle = dev.backend!;
  assert.equal(handle.getStatus() & 4, 4, "DRIVER_OK reached the vhost-vdpa backend");
  const exp = g.findCap(1, 1, 0x10)!;
  g.write(1, 1, exp + 0x08, 2, g.read(1, 1, exp + 0x08, 2) | 0x8000);
  assert.equal(handle.getStatus(), 0, "the VF's FLR reset the backend");
  assert.equal(w.pool.heldBy("vm1"), 1, "still bound");
  // Before start and after stop the VM answers nothing; start again reopens the vPF backend.
  w.vm.stop();
  assert.equal(w.guest.read(0, 0x80, 0, 4), 0xffff_ffff);
  assert.ok(w.vm.counters.accessesWhileStopped > 0);
  w.vm.start();
  assert.equal(w.guest.read(0, 0x80, 0, 4), 0x000c_1b36);
  assert.equal(w.guest.read(0, 0x80, 0x19, 1), 1);
  const again = vpfUp(w);
  enableVfs(w, again.sriov, 2);
  assert.equal(w.pool.heldBy("vm1"), 2);
  assert.throws(() => w.vm.start(), (e: unknown) => e instanceof Error && "code" in e && e.code === "VMM_BAD_STATE");
  assert.throws(() => w.vm.addRootPort(), (e: unknown) => e instanceof Error && "code" in e && e.code === "VMM_BAD_STATE");
});

test("property: arbitrary admin request bytes on the queue always get a status and never change the host on failure", () => {
  const w = world(2);
  const { f, sriov } = vpfUp(w);
  adminInit(w, f);
  enableVfs(w, sriov, 2);
  const snapshot = (): string => JSON.stringify(w.host.getVfInfo(w.pf, { skipStats: true }).vfs.map((v) => ({ ...v, mac: v.mac.toString(), broadcast: "" })));
  fc.assert(
    fc.property(fc.constantFrom(...SUPPORTED_OPCODES, 0x7f0a, 0x0002, 0x8000), fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 48 }), (opcode, member, data) => {
      const req = new Uint8Array(24 + data.length);
      req[0] = opcode & 0xff;
      req[1] = opcode >>> 8;
      req[2] = 1;
      req[16] = member;
      req.set(data, 24);
      const before = snapshot();
      const r = decodeAdminResult(w.guest.adminCommand(f, req, 64));
      assert.ok(r !== undefined);
      if (r.status !== AdminStatus.OK) assert.equal(snapshot(), before);
    }),
    { numRuns: 200 },
  );
});

test("property: random guest configuration writes anywhere in the vPF keep backends = existing vVFs", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0x17f }), fc.constantFrom<1 | 2 | 4>(1, 2, 4), fc.integer({ min: 0, max: 0xffff_ffff })), { maxLength: 25 }),
      (writes) => {
        const w = world(2);
        const { sriov } = vpfUp(w);
        for (const [off, width, value] of writes) {
          const o = off - (off % width);
          w.guest.write(1, 0, o, width, value % 2 ** (8 * width));
          // Keep the SR-IOV capability busy too.
          if (value % 3 === 0) enableVfs(w, sriov, value % 4);
          const vfe = (w.guest.read(1, 0, sriov + 0x08, 2) & 1) === 1;
          const numVfs = w.guest.read(1, 0, sriov + 0x10, 2);
          assert.equal(w.pool.heldBy("vm1"), vfe ? numVfs : 0);
        }
      },
    ),
    { numRuns: 30 },
  );
});

test("topology limits and bad arguments are refused without leaking a backend", () => {
  const { host, backends } = hostWith(4);
  const pool = new BackendPool("p", backends.slice(3));
  const vm = new Vm({ name: "t", memory: 16 * MiB, firstRootPortSlot: 30 });
  const a = vm.addVpf({ backend: backends[0]!, pool, policy: POLICY });
  vm.addVpf({ backend: backends[1]!, pool, policy: POLICY, name: "second" });
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (e) {
      return e instanceof Error && "code" in e ? String(e.code) : "?";
    }
    return "none";
  };
  assert.equal(code(() => vm.addVpf({ backend: backends[2]!, pool, policy: POLICY })), "VMM_TOPOLOGY");
  host.openVhostVdpa("vdpa2").close(); // the refused vPF did not keep its backend open
  assert.equal(code(() => vm.addVpf({ backend: backends[2]!, pool, policy: POLICY, name: a.name })), "VMM_TOPOLOGY");
  assert.equal(code(() => new Vm({ name: "", memory: MiB })), "VMM_BAD_ARGUMENT");
  assert.equal(code(() => new Vm({ name: "x", memory: MiB, firstRootPortSlot: 0 })), "VMM_BAD_ARGUMENT");
  assert.equal(code(() => new Vm({ name: "x", memory: -1 })), "VMM_BAD_ARGUMENT");
  const vm2 = new Vm({ name: "y", memory: MiB });
  assert.equal(code(() => vm2.addVpf({ backend: backends[2]!, pool, policy: POLICY, quota: -1 })), "VMM_BAD_ARGUMENT");
  assert.equal(code(() => vm2.addVpf({ backend: backends[0]!, pool, policy: POLICY })), "VMM_BACKEND_FAILED", "vdpa0 is held open by vm t");
  // A quota of 0: no SR-IOV capability, no VIRTIO_F_SR_IOV.
  const v0 = vm2.addVpf({ backend: backends[2]!, pool, policy: POLICY, quota: 0 });
  assert.equal(v0.sriov, undefined);
  assert.equal(v0.transport.offeredFeatures & bit(VIRTIO_F_SR_IOV), 0n);
  assert.equal(code(() => vm2.stop()), "VMM_BAD_STATE");
  const ram = new GuestMemory(2 * MiB);
  assert.equal(new Vm({ name: "z", memory: ram }).memory, ram, "a harness's own RAM is the VM's RAM");
  assert.equal(vm.rootPorts.length, 2);
});

test("a link-state change the guest asks for reaches the vVF's driver as a config interrupt and link status", () => {
  const w = world(1);
  const { f, sriov } = vpfUp(w);
  adminInit(w, f);
  enableVfs(w, sriov, 1);
  const g = w.guest;
  const vf = g.virtioUp(1, 1, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, 1) });
  assert.equal(g.mmioRead(vf.deviceCfg + 6, 2) & 1, 1, "VIRTIO_NET_S_LINK_UP: the uplink is up");
  const before = g.msis.length;
  assert.equal(admin(w, f, { op: "set-link-state", vf: 1, state: 2 }).status, AdminStatus.OK);
  assert.equal(g.mmioRead(vf.deviceCfg + 6, 2) & 1, 0, "link forced down");
  assert.ok(g.msis.slice(before).some((m) => m.data === ((vf.tag << 8) | 0)), "configuration-change vector 0 fired");
  assert.equal(w.host.getVfInfo(w.pf).vfs[1]!.linkState, 2);
  assert.equal(admin(w, f, { op: "set-link-state", vf: 1, state: 0 }).status, AdminStatus.OK);
  assert.equal(g.mmioRead(vf.deviceCfg + 6, 2) & 1, 1);
});

test("a backend whose handle fails when queried is rolled back, and the vVF instance is still usable later", () => {
  const { host, pf, backends } = hostWith(3);
  let failures = 1;
  const flaky: VfBackend = {
    name: backends[2]!.name,
    control: backends[2]!.control,
    open: () => {
      const h = backends[2]!.open();
      if (failures-- > 0) h.close(); // a handle that answers ENODEV to every query
      return h;
    },
  };
  const pool = new BackendPool("p", [backends[1]!, flaky]);
  const vm = new Vm({ name: "vm1", memory: 64 * MiB });
  vm.addVpf({ backend: backends[0]!, pool, policy: POLICY });
  vm.start();
  const w: World = { host, pf, backends, pool, vm, guest: new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB }) };
  const { sriov } = vpfUp(w);
  enableVfs(w, sriov, 2);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 0);
  assert.equal(vm.vpfs[0]!.lastEnableFailure?.code, "VMM_BACKEND_FAILED");
  assert.equal(pool.available, 2);
  enableVfs(w, sriov, 2);
  assert.equal(w.guest.read(1, 0, sriov + 0x08, 2) & 1, 1, "the second attempt succeeds");
  assert.equal(w.guest.read(1, 2, 0x08, 4), 0x0200_0001);
});

test("pre-built vVF instances (QEMU 10 style): present before VF Enable, bound at VF Enable", () => {
  const { host, pf, backends } = hostWith(4);
  const pool = new BackendPool("p", backends.slice(1));
  const vm = new Vm({ name: "vm1", memory: 64 * MiB });
  const vpf = vm.addVpf({ backend: backends[0]!, pool, policy: POLICY, prebuildVvfs: true });
  vm.start();
  for (let n = 1; n <= 3; n++) assert.ok(vpf.vvfTransport(n) !== undefined, `vVF ${n} instance exists`);
  const w: World = { host, pf, backends, pool, vm, guest: new TestGuest(vm, vm.memory, { base: 16 * MiB, size: 48 * MiB }) };
  const { sriov } = vpfUp(w);
  assert.equal(w.guest.read(1, 1, 0x08, 4), 0xffff_ffff, "but no VF answers before VF Enable");
  enableVfs(w, sriov, 3);
  const g = w.guest;
  g.virtioUp(1, 3, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, 3) });
  const dev = vpf.vvfTransport(3)!.device;
  assert.ok(dev instanceof VdpaNetDevice);
  assert.equal(dev.backend?.deviceName, "vdpa3");
  assert.equal(dev.backend.getStatus() & 4, 4);
});

test("real pciutils decodes the VM's topology: root port with ARI forwarding, the vPF with SR-IOV, vVFs", () => {
  const w = world(4);
  const { sriov } = vpfUp(w);
  w.guest.write(1, 0, sriov + 0x10, 2, 2);
  w.guest.write(1, 0, sriov + 0x08, 2, 0x19); // VF Enable | VF MSE | ARI Capable Hierarchy
  const dir = mkdtempSync(join(tmpdir(), "vpf-vmm-lspci-"));
  let out: string;
  try {
    const file = join(dir, "dump.txt");
    writeFileSync(file, lspciDumpBus(w.vm.bus));
    out = execFileSync("lspci", ["-vvv", "-F", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const lines = out.split("\n").map((l) => l.trim());
  assert.ok(lines.includes("00:10.0 PCI bridge: Red Hat, Inc. QEMU PCIe Root port (prog-if 00 [Normal decode])"), out);
  assert.ok(lines.some((l) => l === "Bus: primary=00, secondary=01, subordinate=01, sec-latency=0"), "lspci: lines.some((l) => l === 'Bus: primary=00, secondary=01, subo");
  assert.ok(lines.some((l) => l.startsWith("Capabilities: [40] Express (v2) Root Port (Slot+)")), "lspci: lines.some((l) => l.startsWith('Capabilities: [40] Express (");
  assert.ok(lines.some((l) => l.startsWith("DevCtl2:") && l.endsWith("ARIFwd+")), "lspci: lines.some((l) => l.startsWith('DevCtl2:') && l.endsWith('AR");
  assert.ok(lines.includes("01:00.0 Ethernet controller: Red Hat, Inc. Virtio 1.0 network device (rev 01)"), "lspci: lines.includes('01:00.0 Ethernet controller: Red Hat, Inc. V");
  assert.ok(lines.some((l) => l.endsWith("Single Root I/O Virtualization (SR-IOV)")), "lspci: lines.some((l) => l.endsWith('Single Root I/O Virtualization");
  assert.ok(lines.some((l) => l.startsWith("IOVCtl:") && l.includes("Enable+") && l.includes("ARIHierarchy+")), "lspci: lines.some((l) => l.startsWith('IOVCtl:') && l.includes('Ena");
  assert.ok(lines.includes("Initial VFs: 4, Total VFs: 4, Number of VFs: 2, Function Dependency Link: 00"), "lspci: lines.includes('Initial VFs: 4, Total VFs: 4, Number of VFs:");
  assert.ok(lines.includes("VF offset: 1, stride: 1, Device ID: 1041"), "lspci: lines.includes('VF offset: 1, stride: 1, Device ID: 1041')");
  assert.ok(lines.some((l) => l.startsWith("01:00.1 Ethernet controller")), "lspci: lines.some((l) => l.startsWith('01:00.1 Ethernet controller'");
  assert.ok(lines.some((l) => l.startsWith("01:00.2 Ethernet controller")), "lspci: lines.some((l) => l.startsWith('01:00.2 Ethernet controller'");
  assert.ok(!lines.some((l) => l.startsWith("01:00.3")), "VF 3 does not exist");
});

test("the vPF's own data plane is its host VF: a frame from the vPF reaches a vVF through the eswitch", () => {
  const w = world(1);
  const { f, sriov } = vpfUp(w);
  adminInit(w, f);
  enableVfs(w, sriov, 1);
  const g = w.guest;
  const vf = g.virtioUp(1, 1, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, 1) });
  const vfMac = MacAddress.parse("02:00:00:00:00:11");
  assert.equal(admin(w, f, { op: "set-mac", vf: 1, mac: vfMac.bytes() }).status, AdminStatus.OK);
  // The vPF's MAC as its device configuration reports it (the host VF's).
  const vpfMac = new Uint8Array(6);
  for (let i = 0; i < 6; i++) vpfMac[i] = g.mmioRead(f.deviceCfg + i, 1);
  const rxBuf = g.allocator.alloc(2048);
  vf.queues.get(0)!.ring.add([], [{ addr: rxBuf, len: 2048 }], 1);
  g.kick(vf, 0);
  const frame = new Uint8Array(64);
  EthernetRepr.emit({ dst: vfMac, src: MacAddress.fromBytes(vpfMac), vlans: [], etherType: 0x0800 }, frame);
  const txBuf = g.allocator.alloc(12 + frame.length);
  g.memory.fill(txBuf, 12);
  g.memory.write(txBuf + 12, frame);
  f.queues.get(1)!.ring.add([{ addr: txBuf, len: 12 + frame.length }], [], 2);
  g.kick(f, 1);
  const used = vf.queues.get(0)!.ring.getUsed();
  assert.ok(used !== undefined, "delivered");
  assert.deepEqual(g.memory.read(rxBuf + 12, frame.length), frame);
  assert.equal(w.host.getVfInfo(w.pf).vfs[0]!.stats?.txPackets, 1n, "sent by the vPF's host VF");
});

test("property: random guest MMIO writes into the vPF's and a vVF's BARs never throw out of the VM", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 0x3fff }), fc.constantFrom<1 | 2 | 4>(1, 2, 4), fc.integer({ min: 0, max: 0xffff_ffff })), { maxLength: 40 }),
      (writes) => {
        const w = world(1);
        const { sriov } = vpfUp(w);
        enableVfs(w, sriov, 1);
        const g = w.guest;
        g.virtioUp(1, 1, { want: WANT, barOf: (i) => g.vfBarAddress(1, 0, sriov, i, 1) });
        const bases = [g.barAddress(1, 0, 4), g.vfBarAddress(1, 0, sriov, 4, 1)];
        for (const [vf, off, width, value] of writes) {
          const o = off - (off % width);
          g.mmioWrite(bases[vf ? 1 : 0]! + o, width, value % 2 ** (8 * width));
          g.mmioRead(bases[vf ? 1 : 0]! + o, width);
        }
        assert.equal(w.pool.heldBy("vm1"), (g.read(1, 0, sriov + 0x08, 2) & 1) === 1 ? 1 : 0);
      },
    ),
    { numRuns: 40 },
  );
});

test("bind reads the host VFs' real state: an operator's change to an idle pool VF is overridden by the defaults", () => {
  const w = world(2);
  const { sriov } = vpfUp(w);
  // While vdpa1 idles in the pool, the host operator sets a VLAN and turns spoof checking off.
  w.host.setVf(w.pf, 1, { vlan: { vlan: 999 }, spoofchk: false, trust: true });
  enableVfs(w, sriov, 2);
  const vf1 = w.host.getVfInfo(w.pf).vfs[1]!;
  assert.deepEqual([vf1.vlan, vf1.spoofchk, vf1.trust], [0, true, false], "the VM's defaults, not the stale host state");
  // Disable, tamper again, re-enable: the prefetched state of the first enable is not reused.
  w.guest.write(1, 0, sriov + 0x08, 2, 0);
  w.host.setVf(w.pf, 2, { vlan: { vlan: 77 } });
  enableVfs(w, sriov, 2);
  assert.equal(w.host.getVfInfo(w.pf).vfs[2]!.vlan, 0);
  for (const b of w.backends) {
    const c = b.control;
    if (c instanceof HostVfControl) assert.equal(c.prefetched, undefined, "no prefetched state outlives VF Enable");
  }
});

test("QinQ mode: the guest's VLAN rides as the C-tag under the tenant's S-tag on the host VF (two-tag VST)", () => {
  const w = world(2, { policy: { vlan: { mode: "qinq", outerVid: 42, outerPcp: 1 }, allowSpoofchkOff: false, allowTrust: false } });
  const { f, sriov } = vpfUp(w);
  adminInit(w, f);
  enableVfs(w, sriov, 2);
  const hostVf = (n: number): ReturnType<Host["getVfInfo"]>["vfs"][number] => w.host.getVfInfo(w.pf, { skipStats: true }).vfs[n]!;
  // Bind default: the S-tag alone.
  assert.deepEqual([hostVf(1).vlan, hostVf(1).qos, hostVf(1).vlanProto, hostVf(1).innerVlan], [42, 1, 0x88a8, undefined]);
  const set = admin(w, f, { op: "set-vlan", vf: 1, vlan: 200, qos: 3, vlanProto: ETH_P_8021Q });
  assert.equal(set.status, AdminStatus.OK);
  assert.deepEqual([hostVf(1).vlan, hostVf(1).qos, hostVf(1).vlanProto, hostVf(1).innerVlan], [42, 1, 0x88a8, { vlan: 200, qos: 3 }]);
  const cfg = decodeVfConfig(admin(w, f, { op: "get-config", vf: 1 }).payload);
  assert.deepEqual([cfg?.vlan, cfg?.qos, cfg?.vlanProto], [200, 3, ETH_P_8021Q], "the guest sees its own tag only");
  // Frames from the vVF leave with S 42 (PCP 1) then C 200 (PCP 3).
  const wire: Uint8Array[] = [];
  w.host.nic.port(0).uplink.attach((fr) => wire.push(fr.slice()));
  w.host.nic.port(0).vf(1).send(new Uint8Array([2, 0xee, 0, 0, 0, 1, ...hostVf(1).mac.bytes(), 0x08, 0x00, ...new Uint8Array(46)]));
  assert.equal(wire.length, 1);
  assert.deepEqual([...wire[0]!.subarray(12, 20)], [0x88, 0xa8, 0x20, 42, 0x81, 0x00, 0x60, 200]);
  // Refusals: VID 4095 cannot be a C-tag; 802.1ad is the host's. Nothing changes on the host.
  const r4095 = admin(w, f, { op: "set-vlan", vf: 1, vlan: 4095, qos: 0, vlanProto: ETH_P_8021Q });
  assert.deepEqual([r4095.status, r4095.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_VLAN]);
  const rAd = admin(w, f, { op: "set-vlan", vf: 1, vlan: 7, qos: 0, vlanProto: 0x88a8 });
  assert.deepEqual([rAd.status, rAd.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_VLAN_PROTO]);
  assert.deepEqual(hostVf(1).innerVlan, { vlan: 200, qos: 3 });
  // VLAN 0 removes the inner tag: the S-tag alone again.
  assert.equal(admin(w, f, { op: "set-vlan", vf: 1, vlan: 0, qos: 0, vlanProto: ETH_P_8021Q }).status, AdminStatus.OK);
  assert.deepEqual([hostVf(1).vlan, hostVf(1).vlanProto, hostVf(1).innerVlan], [42, 0x88a8, undefined]);
  // VF disable leaves the host VF neutral; a re-enable binds the S-tag alone (prefetched diff).
  assert.equal(admin(w, f, { op: "set-vlan", vf: 2, vlan: 10, qos: 0, vlanProto: ETH_P_8021Q }).status, AdminStatus.OK);
  w.guest.write(1, 0, sriov + 0x08, 2, 0);
  assert.deepEqual([hostVf(2).vlan, hostVf(2).innerVlan], [0, undefined]);
  enableVfs(w, sriov, 2);
  assert.deepEqual([hostVf(2).vlan, hostVf(2).vlanProto, hostVf(2).innerVlan], [42, 0x88a8, undefined]);
});
