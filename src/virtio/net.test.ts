import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestAllocator, GuestMemory } from "../memory/index.js";
import { SriovCapability, PCI_SRIOV_CTRL, PCI_SRIOV_NUM_VF, PCI_SRIOV_CTRL_VFE } from "../pci/index.js";
import {
  COMMON_ADM_Q_IDX,
  COMMON_ADM_Q_NUM,
  COMMON_CFGGENERATION,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_Q_ENABLE,
  COMMON_Q_MSIX,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  LoopbackBackend,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_ADMIN_VQ,
  VIRTIO_F_SR_IOV,
  VIRTIO_F_VERSION_1,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_CTRL_VLAN_ADD,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_OK,
  VIRTIO_PCI_BAR_SPEC,
  VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_ADMIN_STATUS_OK,
  VIRTIO_ADMIN_STATUS_EINVAL,
  VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP,
  VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER,
  VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE,
  VIRTIO_ADMIN_STATUS_Q_INVALID_FIELD,
  VirtioPciDriver,
  backendPair,
  bit,
  createVirtioNetPci,
  decodeOpcodeBitmap,
  encodeOpcodeBitmap,
  type SplitQueueDriver,
  type TransportEvent,
  type VirtioNetPci,
  type VirtioNetPciOptions,
} from "./index.js";

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const ALL = (1n << 64n) - 1n;
const NET_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MTU) |
  bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX) | bit(VIRTIO_NET_F_CTRL_VLAN) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR) |
  bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);

interface Rig {
  mem: GuestMemory;
  alloc: GuestAllocator;
  dev: VirtioNetPci;
  drv: VirtioPciDriver;
}

function rig(opts: Partial<VirtioNetPciOptions> = {}, mem = new GuestMemory(1 << 22), base = 0x10000): Rig {
  const alloc = new GuestAllocator(mem, base, 1 << 20);
  const dev = createVirtioNetPci({ memory: mem, mac: MAC, ...opts });
  const drv = new VirtioPciDriver(dev.fn, mem, alloc);
  drv.enableFunction();
  return { mem, alloc, dev, drv };
}

interface NetQueues {
  rx: SplitQueueDriver<number>;
  tx: SplitQueueDriver<number>;
  ctrl: SplitQueueDriver<number>;
}

function up(r: Rig, wanted = ALL): NetQueues {
  r.drv.negotiate(wanted);
  const rx = r.drv.setupQueue<number>(0, { size: 64 });
  const tx = r.drv.setupQueue<number>(1, { size: 64 });
  const ctrl = r.drv.setupQueue<number>(2, { size: 16 });
  r.drv.driverOk();
  return { rx, tx, ctrl };
}

function postRx(r: Rig, q: NetQueues, n: number, len = 12 + 1518): void {
  for (let i = 0; i < n; i++) {
    const a = r.alloc.alloc(len, 64);
    q.rx.add([], [{ addr: a, len }], a);
  }
  r.drv.kick(0);
}

function send(r: Rig, q: NetQueues, frame: Uint8Array): void {
  const a = r.alloc.alloc(12 + frame.length, 64);
  r.mem.fill(a, 12);
  r.mem.write(a + 12, frame);
  q.tx.add([{ addr: a, len: 12 + frame.length }], [], a);
  r.drv.kick(1);
}

function received(r: Rig, q: NetQueues): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let u = q.rx.getUsed(); u !== undefined; u = q.rx.getUsed()) {
    if (u.len === 0) {
      // A buffer too small for the frame comes back unused.
      r.alloc.free(u.token);
      continue;
    }
    const bytes = r.mem.read(u.token, u.len);
    assert.equal(bytes[10], 1, "num_buffers is 1");
    out.push(bytes.subarray(12));
    r.alloc.free(u.token);
  }
  return out;
}

function reapTx(r: Rig, q: NetQueues): number {
  let n = 0;
  for (let u = q.tx.getUsed(); u !== undefined; u = q.tx.getUsed()) {
    r.alloc.free(u.token);
    n++;
  }
  return n;
}

function frame(dst: Uint8Array, payload: number, len = 64, vlan?: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(Uint8Array.of(0x02, 0, 0, 0, 0, 9), 6);
  if (vlan === undefined) {
    f[12] = 0x08;
  } else {
    f[12] = 0x81;
    f[14] = vlan >> 8;
    f[15] = vlan & 0xff;
    f[16] = 0x08;
  }
  f[len - 1] = payload;
  return f;
}

function ctrl(r: Rig, q: NetQueues, cls: number, cmd: number, data: Uint8Array): number {
  const a = r.alloc.alloc(2 + data.length, 8);
  r.mem.write(a, Uint8Array.of(cls, cmd, ...data));
  const ack = r.alloc.alloc(1, 8);
  r.mem.writeU8(ack, 0xee);
  q.ctrl.add([{ addr: a, len: 2 + data.length }], [{ addr: ack, len: 1 }], ack);
  r.drv.kick(2);
  const u = q.ctrl.getUsed();
  assert.ok(u !== undefined, "control command completed");
  assert.equal(u.len, 1);
  return r.mem.readU8(ack);
}

test("PCI identity, virtio capabilities and BAR layout", () => {
  const { dev, drv } = rig();
  const fn = dev.fn;
  assert.equal(fn.configRead(0, 2), 0x1af4);
  assert.equal(fn.configRead(2, 2), 0x1041);
  assert.equal(fn.configRead(8, 4) >>> 8, 0x020000);
  assert.equal(fn.configRead(8, 1), 1, "modern devices have revision ≥ 1");
  assert.equal(fn.configRead(0x2c, 2), 0x1af4);
  assert.deepEqual(fn.barSpec(4), VIRTIO_PCI_BAR_SPEC);
  assert.equal(drv.common.bar, 4);
  assert.deepEqual([drv.common.offset, drv.isrWin.offset, drv.deviceWin.offset, drv.notifyWin.offset], [0, 0x1000, 0x1800, 0x2000]);
  assert.equal(drv.notifyMultiplier, VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER);
  assert.equal(drv.deviceWin.length, 12);
  assert.equal(drv.numQueues, 3);
  assert.ok(fn.findCapability(0x10) !== undefined, "PCI Express endpoint");
  assert.ok(fn.findCapability(0x11) !== undefined, "MSI-X");
  // Config space: MAC, status LINK_UP, max pairs 1, MTU 1500.
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => drv.configRead(i, 1)), [...MAC]);
  assert.equal(drv.configRead(6, 2), 1);
  assert.equal(drv.configRead(8, 2), 1);
  assert.equal(drv.configRead(10, 2), 1500);
});

test("features offered: net set, ring features, MQ with pairs, SR_IOV only with the capability, ADMIN_VQ on request", () => {
  const a = rig();
  const f = a.drv.deviceFeatures();
  assert.equal(f & NET_FEATURES, NET_FEATURES);
  assert.equal(f & bit(VIRTIO_NET_F_MQ), 0n);
  assert.equal(f & bit(VIRTIO_F_SR_IOV), 0n);
  assert.equal(f & bit(VIRTIO_F_ADMIN_VQ), 0n);
  const b = rig({ queuePairs: 4, adminQueue: true });
  assert.notEqual(b.drv.deviceFeatures() & bit(VIRTIO_NET_F_MQ), 0n);
  assert.notEqual(b.drv.deviceFeatures() & bit(VIRTIO_F_ADMIN_VQ), 0n);
  assert.equal(b.drv.numQueues, 9, "2N + ctrl, admin excluded");
  assert.equal(b.drv.commonRead(COMMON_ADM_Q_IDX, 2), 9);
  assert.equal(b.drv.commonRead(COMMON_ADM_Q_NUM, 2), 1);
  new SriovCapability(b.dev.fn, { totalVfs: 4, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041, vfBars: [{ index: 0, ...VIRTIO_PCI_BAR_SPEC }] });
  assert.notEqual(b.drv.deviceFeatures() & bit(VIRTIO_F_SR_IOV), 0n);
});

test("feature negotiation: subset accepted; unoffered, no VERSION_1, broken dependencies refused", () => {
  const r = rig();
  assert.equal(r.drv.negotiate(NET_FEATURES), NET_FEATURES);
  assert.equal(r.dev.transport.negotiatedFeatures, NET_FEATURES);
  const tryAccept = (f: bigint): boolean => {
    r.drv.status = 0;
    r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    r.drv.writeDriverFeatures(f);
    r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    return (r.drv.status & VIRTIO_CONFIG_S_FEATURES_OK) !== 0;
  };
  assert.equal(tryAccept(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MQ)), false, "MQ not offered");
  assert.equal(tryAccept(bit(VIRTIO_NET_F_MAC)), false, "no VERSION_1");
  assert.equal(tryAccept(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_CTRL_RX)), false, "CTRL_RX needs CTRL_VQ");
  assert.equal(r.dev.transport.stats.featuresRefused, 3);
  assert.equal(tryAccept(bit(VIRTIO_F_VERSION_1)), true);
  // After FEATURES_OK, feature writes are ignored.
  r.drv.commonWrite(COMMON_GFSELECT, 4, 0);
  r.drv.commonWrite(COMMON_GF, 4, 0xffff_ffff);
  assert.equal(r.drv.commonRead(COMMON_GF, 4), 0);
  assert.equal(r.dev.transport.stats.featureWritesIgnored, 1);
});

test("status state machine: out-of-order and bit-clearing writes are ignored and counted", () => {
  const r = rig();
  const t = r.dev.transport;
  r.drv.status = VIRTIO_CONFIG_S_DRIVER; // DRIVER without ACKNOWLEDGE
  assert.equal(r.drv.status, 0);
  r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
  r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK; // skips FEATURES_OK
  assert.equal(r.drv.status, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
  r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE; // clears DRIVER
  assert.equal(r.drv.status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  r.drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_NEEDS_RESET; // not the driver's bit
  assert.equal(r.drv.status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
  assert.equal(t.stats.invalidStatusWrites, 3);
  r.drv.status = 0;
  assert.equal(r.drv.status, 0);
});

test("queue registers: sizes, MSI-X vectors, writes before FEATURES_OK or after enable are ignored", () => {
  const r = rig();
  const d = r.drv;
  d.commonWrite(COMMON_Q_SELECT, 2, 0);
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 256);
  d.commonWrite(COMMON_Q_SIZE, 2, 64); // before FEATURES_OK
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 256);
  d.negotiate(NET_FEATURES);
  d.commonWrite(COMMON_Q_SELECT, 2, 0);
  d.commonWrite(COMMON_Q_SIZE, 2, 100); // not a power of two
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 256);
  d.commonWrite(COMMON_Q_SIZE, 2, 64);
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 64);
  d.commonWrite(COMMON_Q_MSIX, 2, 500); // beyond the MSI-X table
  assert.equal(d.commonRead(COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
  d.commonWrite(COMMON_Q_SELECT, 2, 7); // no such queue
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 0);
  d.commonWrite(COMMON_Q_ENABLE, 2, 1);
  assert.equal(d.commonRead(COMMON_Q_ENABLE, 2), 0);
  d.setupQueue(0, { size: 64 });
  d.commonWrite(COMMON_Q_SELECT, 2, 0);
  d.commonWrite(COMMON_Q_SIZE, 2, 32); // after enable
  assert.equal(d.commonRead(COMMON_Q_SIZE, 2), 64);
  d.commonWrite(COMMON_Q_ENABLE, 2, 0); // MUST NOT write 0
  assert.equal(d.commonRead(COMMON_Q_ENABLE, 2), 1);
  assert.ok(r.dev.transport.stats.queueWritesIgnored >= 5);
});

test("driver and device move Ethernet frames both ways through a loopback backend", () => {
  const lo = new LoopbackBackend();
  const r = rig({ backend: lo });
  const q = up(r);
  postRx(r, q, 8);
  const frames = [frame(MAC, 1), frame(MAC, 2, 1514), frame(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 3, 60)];
  for (const f of frames) send(r, q, f);
  assert.equal(reapTx(r, q), 3);
  assert.deepEqual(received(r, q), frames);
  assert.deepEqual(lo.seen, frames);
  const s = r.dev.net.stats;
  assert.deepEqual([s.txFrames, s.rxFrames, s.txBytes, s.rxBytes], [3, 3, 64 + 1514 + 60, 64 + 1514 + 60]);
  // MSI-X: vectors 1 (rx queue 0) and 2 (tx queue 1) fired.
  assert.ok(r.drv.interrupts.includes(1));
  assert.ok(r.drv.interrupts.includes(2));
  // A frame for another MAC is filtered; a frame with no buffer posted waits in the backlog.
  send(r, q, frame(Uint8Array.of(0x52, 0, 0, 0, 0, 1), 4));
  assert.equal(s.rxDroppedFiltered, 1);
  for (let i = 0; i < 7; i++) send(r, q, frame(MAC, 10 + i));
  reapTx(r, q);
  assert.equal(received(r, q).length, 5);
  postRx(r, q, 4);
  assert.deepEqual(received(r, q).map((f) => f[63]), [15, 16]);
});

test("two devices joined by a cable exchange frames in both directions", () => {
  const [ea, eb] = backendPair();
  const macB = Uint8Array.of(0x52, 0x54, 0, 0, 0, 0xbb);
  const mem = new GuestMemory(1 << 22);
  const a = rig({ backend: ea }, mem, 0x10000);
  const b = rig({ backend: eb, mac: macB }, mem, 0x200000);
  const qa = up(a);
  const qb = up(b);
  postRx(a, qa, 4);
  postRx(b, qb, 4);
  send(a, qa, frame(macB, 0xab));
  send(b, qb, frame(MAC, 0xba));
  assert.deepEqual(received(b, qb).map((f) => f[63]), [0xab]);
  assert.deepEqual(received(a, qa).map((f) => f[63]), [0xba]);
});

test("control queue: MAC address, promiscuous mode, MAC table, VLAN filter, errors and host policy", () => {
  const r = rig({ backend: new LoopbackBackend() });
  const q = up(r);
  const seen: string[] = [];
  r.dev.net.onControl((c) => seen.push(c.kind));
  const newMac = Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x77);
  const gen = r.drv.commonRead(COMMON_CFGGENERATION, 1);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newMac), VIRTIO_NET_OK);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => r.drv.configRead(i, 1)), [...newMac]);
  assert.notEqual(r.drv.commonRead(COMMON_CFGGENERATION, 1), gen);
  postRx(r, q, 16);
  send(r, q, frame(MAC, 1)); // old MAC: filtered now
  send(r, q, frame(newMac, 2));
  assert.deepEqual(received(r, q).map((f) => f[63]), [2]);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)), VIRTIO_NET_OK);
  send(r, q, frame(MAC, 3));
  assert.deepEqual(received(r, q).map((f) => f[63]), [3]);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(0)), VIRTIO_NET_OK);
  // MAC table: one unicast, one multicast.
  const uc = Uint8Array.of(0x52, 0, 0, 0, 0, 0x11);
  const mc = Uint8Array.of(0x01, 0, 0x5e, 0, 0, 1);
  const table = Uint8Array.of(1, 0, 0, 0, ...uc, 1, 0, 0, 0, ...mc);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table), VIRTIO_NET_OK);
  send(r, q, frame(uc, 4));
  send(r, q, frame(mc, 5));
  send(r, q, frame(Uint8Array.of(0x01, 0, 0x5e, 0, 0, 2), 6));
  assert.deepEqual(received(r, q).map((f) => f[63]), [4, 5]);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, Uint8Array.of(9, 0, 0, 0)), VIRTIO_NET_ERR, "truncated table");
  // VLAN filter: with CTRL_VLAN, tagged frames pass only for added VIDs.
  send(r, q, frame(newMac, 7, 64, 100));
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, Uint8Array.of(100, 0)), VIRTIO_NET_OK);
  send(r, q, frame(newMac, 8, 64, 100));
  assert.deepEqual(received(r, q).map((f) => f[63]), [8]);
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, Uint8Array.of(0, 0x10)), VIRTIO_NET_ERR, "VID 4096");
  assert.equal(ctrl(r, q, 9, 9, new Uint8Array(0)), VIRTIO_NET_ERR, "unknown class");
  // Host policy may refuse.
  r.dev.net.controlPolicy = (c) => c.kind !== "mac-address";
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, MAC), VIRTIO_NET_ERR);
  assert.deepEqual(r.dev.net.mac, newMac);
  assert.deepEqual(seen, ["mac-address", "rx-mode", "rx-mode", "mac-table", "vlan"]);
  assert.equal(r.dev.net.stats.ctrlErrors, 4);
});

test("link status change raises a configuration interrupt and bumps the generation", () => {
  const r = rig();
  up(r);
  const gen = r.drv.commonRead(COMMON_CFGGENERATION, 1);
  r.drv.interrupts.length = 0;
  r.dev.net.setLink(false);
  assert.equal(r.drv.configRead(6, 2), 0);
  assert.deepEqual(r.drv.interrupts, [0]);
  assert.equal(r.drv.commonRead(COMMON_CFGGENERATION, 1), (gen + 1) & 0xff);
  assert.equal(r.drv.readIsr() & 2, 2);
  assert.equal(r.drv.readIsr(), 0, "ISR clears on read");
});

function adminCmd(r: Rig, aq: SplitQueueDriver<number>, aqIndex: number, opcode: number, member: number, data: Uint8Array = new Uint8Array(0), resultLen = 64, group = 1): { status: number; qualifier: number; result: Uint8Array; len: number } {
  const rd = r.alloc.alloc(24 + data.length + 8, 8);
  const hdr = new Uint8Array(24 + data.length);
  const dv = new DataView(hdr.buffer);
  dv.setUint16(0, opcode, true);
  dv.setUint16(2, group, true);
  dv.setBigUint64(16, BigInt(member), true);
  hdr.set(data, 24);
  r.mem.write(rd, hdr);
  const wr = r.alloc.alloc(8 + resultLen, 8);
  r.mem.fill(wr, 8 + resultLen, 0xee);
  aq.add([{ addr: rd, len: hdr.length }], [{ addr: wr, len: 8 + resultLen }], wr);
  r.drv.kick(aqIndex);
  const u = aq.getUsed();
  assert.ok(u !== undefined, "admin command completed");
  const out = r.mem.read(wr, u.len);
  const odv = new DataView(out.buffer);
  return { status: odv.getUint16(0, true), qualifier: odv.getUint16(2, true), result: out.subarray(8), len: u.len };
}

test("admin virtqueue: LIST_QUERY / LIST_USE, registry, group and member checks (SR-IOV group)", () => {
  const r = rig({ adminQueue: true });
  const fn = r.dev.fn;
  const sriov = new SriovCapability(fn, { totalVfs: 4, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041, vfBars: [{ index: 0, ...VIRTIO_PCI_BAR_SPEC }] });
  const admin = r.dev.transport.admin!;
  const calls: number[] = [];
  admin.register(0x7f00, { name: "echo", usesMember: true, handle: (c) => { calls.push(c.memberId); return { status: 0, result: c.data }; } });
  assert.throws(() => admin.register(0x7f00, { name: "dup", usesMember: false, handle: () => ({ status: 0 }) }));
  assert.throws(() => admin.register(0x8000, { name: "high", usesMember: false, handle: () => ({ status: 0 }) }));
  const f = r.drv.negotiate(ALL);
  assert.notEqual(f & bit(VIRTIO_F_ADMIN_VQ), 0n);
  assert.notEqual(f & bit(VIRTIO_F_SR_IOV), 0n);
  const aqIndex = r.drv.commonRead(COMMON_ADM_Q_IDX, 2);
  const aq = r.drv.setupQueue<number>(aqIndex, { size: 16 });
  r.drv.driverOk();
  const q = adminCmd(r, aq, aqIndex, 0, 0);
  assert.equal(q.status, VIRTIO_ADMIN_STATUS_OK);
  assert.deepEqual(decodeOpcodeBitmap(q.result).filter((o) => o < 0x8000), [0, 1]);
  // The full bitmap (opcode 0x7f00) is longer than the 64-byte result buffer: truncated.
  assert.equal(q.len, 72);
  const big = adminCmd(r, aq, aqIndex, 0, 0, new Uint8Array(0), 4096);
  assert.deepEqual(decodeOpcodeBitmap(big.result), [0, 1, 0x7f00]);
  // Not yet in use → INVALID_OPCODE; unknown group → INVALID_GROUP.
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 0x7f00, 1)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE]);
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 0, 0, new Uint8Array(0), 8, 2)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP]);
  // LIST_USE with an unsupported opcode → INVALID_FIELD; then a proper one.
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 1, 0, encodeOpcodeBitmap([0, 1, 5]))), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_FIELD]);
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 1, 0, encodeOpcodeBitmap([0, 1, 0x7f00]))), [VIRTIO_ADMIN_STATUS_OK, 0]);
  // VF Enable clear → INVALID_GROUP.
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 0x7f00, 1)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP]);
  fn.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 2);
  fn.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 0x7f00, 3)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER]);
  assert.deepEqual(pick(adminCmd(r, aq, aqIndex, 0x7f00, 0)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER]);
  const ok = adminCmd(r, aq, aqIndex, 0x7f00, 2, Uint8Array.of(1, 2, 3));
  assert.equal(ok.status, VIRTIO_ADMIN_STATUS_OK);
  assert.deepEqual([...ok.result], [1, 2, 3, 0, 0, 0, 0, 0], "result padded to 8 bytes");
  assert.deepEqual(calls, [2]);
  // After a device reset only LIST_QUERY and LIST_USE are usable again.
  r.drv.negotiate(ALL);
  const aq2 = r.drv.setupQueue<number>(aqIndex, { size: 16 });
  r.drv.driverOk();
  assert.deepEqual(pick(adminCmd(r, aq2, aqIndex, 0x7f00, 1)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE]);
  assert.equal(admin.stats.commands, 11);
});

function pick(x: { status: number; qualifier: number }): [number, number] {
  return [x.status, x.qualifier];
}

test("admin commands without an SR-IOV capability fail with INVALID_GROUP", () => {
  const r = rig({ adminQueue: true });
  r.drv.negotiate(ALL);
  const aq = r.drv.setupQueue<number>(3, { size: 8 });
  r.drv.driverOk();
  assert.deepEqual(pick(adminCmd(r, aq, 3, 0, 0)), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP]);
});

test("reset in the middle of traffic loses no accounting", () => {
  const lo = new LoopbackBackend();
  const r = rig({ backend: lo });
  let q = up(r);
  postRx(r, q, 4);
  let sent = 0;
  for (let i = 0; i < 10; i++, sent++) send(r, q, frame(MAC, i));
  // 4 delivered, 6 waiting in the backlog for buffers; transmit buffers not yet reaped.
  const got = received(r, q).length;
  assert.equal(got, 4);
  r.drv.status = 0; // reset with buffers in flight
  const txBack = reapTx(r, q) + q.tx.detachUnused().length;
  const rxBack = q.rx.detachUnused().length;
  const s = r.dev.net.stats;
  assert.equal(s.txFrames, sent, "every transmitted frame counted once");
  assert.equal(s.rxFrames + s.rxDroppedNotReady, sent, "every frame delivered or counted as dropped");
  assert.equal(rxBack, 0);
  assert.equal(txBack, 10, "the driver gets every transmit buffer back");
  // The device comes back and counters continue.
  q = up(r);
  postRx(r, q, 2);
  send(r, q, frame(MAC, 99));
  assert.deepEqual(received(r, q).map((f) => f[63]), [99]);
  assert.equal(s.txFrames, 11);
  assert.equal(s.rxFrames, 5);
  assert.equal(r.dev.transport.stats.resets >= 2, true);
});

test("misbehaving drivers: bad ring address and descriptor loop set DEVICE_NEEDS_RESET; bad notifications counted", () => {
  const r = rig();
  r.drv.negotiate(NET_FEATURES);
  r.drv.setupQueue(0, { size: 16 });
  // Queue 1 points outside guest memory.
  r.drv.commonWrite(COMMON_Q_SELECT, 2, 1);
  r.drv.commonWrite(0x20, 4, 0xfff0_0000);
  r.drv.commonWrite(COMMON_Q_ENABLE, 2, 1);
  r.drv.driverOk();
  assert.notEqual(r.drv.status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
  assert.match(r.dev.transport.lastError ?? "", /VQ_RING_OUT_OF_RANGE/);
  assert.ok(r.drv.interrupts.includes(0), "configuration interrupt");
  r.drv.fn.barWrite(4, 0x2000 + 4 * 40, 2, 40);
  assert.equal(r.dev.transport.stats.badNotifications, 1);

  const s = rig({ backend: new LoopbackBackend() });
  const q = up(s);
  // Build a 2-descriptor loop by hand in the TX descriptor table.
  const d = q.tx.config.descAddr;
  const buf = s.alloc.alloc(64);
  for (const [i, next] of [[0, 1], [1, 0]] as const) {
    s.mem.writeU64(d + 16 * i, BigInt(buf));
    s.mem.writeU32(d + 16 * i + 8, 64);
    s.mem.writeU16(d + 16 * i + 12, 1);
    s.mem.writeU16(d + 16 * i + 14, next);
  }
  s.mem.writeU16(q.tx.config.availAddr + 4, 0);
  s.mem.writeU16(q.tx.config.availAddr + 2, 1);
  s.drv.notify(1);
  assert.notEqual(s.drv.status & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
  assert.equal(s.dev.transport.deviceQueue(1)?.stats.violations.VQ_CHAIN_LOOP, 1);
  assert.equal(s.dev.net.stats.txFrames, 0);
});

test("external data plane: DRIVER_OK hands over queue configuration, the device leaves rx/tx rings alone", () => {
  const r = rig({ backend: new LoopbackBackend() });
  const events: TransportEvent[] = [];
  r.dev.transport.onEvent((e) => events.push(e));
  r.dev.net.externalDataPlane = true;
  const q = up(r);
  const ok = events.find((e) => e.kind === "driver-ok");
  assert.ok(ok !== undefined && ok.kind === "driver-ok");
  assert.deepEqual(ok.queues.map((i) => [i.index, i.size, i.descAddr]), [[0, 64, q.rx.config.descAddr], [1, 64, q.tx.config.descAddr], [2, 16, q.ctrl.config.descAddr]]);
  assert.equal(ok.queues[0]?.eventIdx, true);
  send(r, q, frame(MAC, 1));
  assert.equal(r.dev.net.stats.txFrames, 0);
  assert.ok(events.some((e) => e.kind === "notify" && e.queue === 1));
  // The control queue still works.
  assert.equal(ctrl(r, q, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, Uint8Array.of(1)), VIRTIO_NET_OK);
});

test("bus mastering off: no DMA, notifications counted, frames dropped", () => {
  const lo = new LoopbackBackend();
  const r = rig({ backend: lo });
  const q = up(r);
  r.dev.fn.configWrite(4, 2, 0x2); // memory only
  send(r, q, frame(MAC, 1));
  assert.equal(r.dev.net.stats.txFrames, 0);
  assert.equal(r.dev.net.receive(frame(MAC, 2)), "dropped");
});

test("property: random register writes never throw and keep the status byte well-formed", () => {
  const access = fc.record({
    region: fc.constantFrom(0, 0x1000, 0x1800, 0x2000, 0x3000, 0x3800),
    off: fc.integer({ min: 0, max: 0x48 }),
    width: fc.constantFrom<1 | 2 | 4>(1, 2, 4),
    value: fc.integer({ min: 0, max: 0xffff_ffff }),
    read: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(access, { maxLength: 80 }), fc.boolean(), (ops, withPrefix) => {
      const r = rig({ backend: new LoopbackBackend(), adminQueue: true });
      if (withPrefix) up(r);
      for (const o of ops) {
        if (o.read) r.dev.fn.barRead(4, o.region + o.off, o.width);
        else r.dev.fn.barWrite(4, o.region + o.off, o.width, o.width === 4 ? o.value : o.value & ((1 << (8 * o.width)) - 1));
        const st = r.dev.transport.status;
        assert.equal(st & 0x30, 0);
        if ((st & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) assert.notEqual(st & VIRTIO_CONFIG_S_FEATURES_OK, 0);
        if ((st & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) assert.notEqual(st & VIRTIO_CONFIG_S_DRIVER, 0);
      }
      // Whatever happened, a reset brings the device back to a working state.
      r.drv.status = 0;
      const q = up(r);
      postRx(r, q, 1);
      send(r, q, frame(MAC, 5));
      assert.deepEqual(received(r, q).map((f) => f[63]), [5]);
    }),
    { numRuns: 60 },
  );
});

test("property: random frames and buffer sizes through the loopback keep rx/tx accounting balanced", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1600 }), fc.integer({ min: 0, max: 3 })), { maxLength: 40 }), (ops) => {
      const lo = new LoopbackBackend();
      const r = rig({ backend: lo, rxBacklog: 4 });
      const q = up(r);
      let n = 0;
      for (const [len, post] of ops) {
        if (post > 0) postRx(r, q, post, post === 1 ? 12 + 100 : 12 + 1518);
        send(r, q, frame(MAC, n++ & 0xff, Math.max(14, len)));
        reapTx(r, q);
        received(r, q);
      }
      const s = r.dev.net.stats;
      assert.equal(s.txFrames + s.txErrors, ops.length);
      assert.equal(s.rxDroppedFiltered, 0);
      assert.equal(s.rxFrames + s.rxDroppedTooBig + s.rxDroppedNoBuffer + r.dev.net.backlogLength, s.txFrames);
    }),
    { numRuns: 60 },
  );
});
