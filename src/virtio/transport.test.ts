import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestAllocator, GuestMemory } from "../memory/index.js";
import { ArpOperation, Ipv4Address, MacAddress, buildArpFrame, buildUdpFrame, dissectFrame } from "../wire/index.js";
import { PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, PciFunction, SriovCapability } from "../pci/index.js";
import {
  LoopbackBackend,
  SplitQueueDevice,
  VIRTIO_F_VERSION_1,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_OK,
  VIRTIO_PCI_BAR_SPEC,
  VIRTIO_RING_F_EVENT_IDX,
  VirtioPciDriver,
  VirtioNet,
  VirtioNetError,
  VirtqueueError,
  VirtioPciTransport,
  VirtioTransportError,
  attachVirtioNet,
  backendPair,
  bit,
  createVirtioNetPci,
  type NetBackend,
  type SplitQueueDriver,
} from "./index.js";

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc);
const ALL = (1n << 64n) - 1n;

function frame(n: number, len = 64): Uint8Array {
  const f = new Uint8Array(len);
  f.set(MAC, 0);
  f[6] = 2;
  f[12] = 0x08;
  f[len - 1] = n;
  return f;
}

class NetDriver {
  readonly queues = new Map<number, SplitQueueDriver<number>>();
  constructor(readonly drv: VirtioPciDriver, readonly mem: GuestMemory, readonly alloc: GuestAllocator) {}
  setup(indices: number[], size = 32): void {
    for (const q of indices) this.queues.set(q, this.drv.setupQueue<number>(q, { size }));
  }
  q(i: number): SplitQueueDriver<number> {
    const q = this.queues.get(i);
    assert.ok(q !== undefined);
    return q;
  }
  post(rx: number, n: number): void {
    for (let i = 0; i < n; i++) {
      const a = this.alloc.alloc(1530, 64);
      this.q(rx).add([], [{ addr: a, len: 1530 }], a);
    }
    this.drv.kick(rx);
  }
  send(tx: number, f: Uint8Array, split = false): void {
    const a = this.alloc.alloc(12 + f.length, 64);
    this.mem.fill(a, 12);
    this.mem.write(a + 12, f);
    const segs = split ? [{ addr: a, len: 12 }, { addr: a + 12, len: f.length }] : [{ addr: a, len: 12 + f.length }];
    this.q(tx).add(segs, [], a, { indirect: split });
    this.drv.kick(tx);
    while (this.q(tx).getUsed() !== undefined);
  }
  recv(rx: number): number[] {
    const out: number[] = [];
    for (let u = this.q(rx).getUsed(); u !== undefined; u = this.q(rx).getUsed()) out.push(this.mem.readU8(u.token + u.len - 1));
    return out;
  }
  ctrl(q: number, bytes: number[]): number {
    const a = this.alloc.alloc(bytes.length + 1, 8);
    this.mem.write(a, Uint8Array.from(bytes));
    this.q(q).add([{ addr: a, len: bytes.length }], [{ addr: a + bytes.length, len: 1 }], a);
    this.drv.kick(q);
    const u = this.q(q).getUsed();
    assert.ok(u !== undefined);
    return this.mem.readU8(a + bytes.length);
  }
}

function machine(opts: { queuePairs?: number } = {}) {
  const mem = new GuestMemory(1 << 22);
  const alloc = new GuestAllocator(mem, 0x1000, (1 << 22) - 0x1000);
  const dev = createVirtioNetPci({ memory: mem, mac: MAC, backend: new LoopbackBackend(), ...opts });
  const drv = new VirtioPciDriver(dev.fn, mem, alloc);
  drv.enableFunction();
  return { mem, alloc, dev, drv, net: new NetDriver(drv, mem, alloc) };
}

test("multiqueue: control queue at 2N, VQ_PAIRS_SET spreads receive over the pairs", () => {
  const m = machine({ queuePairs: 2 });
  const f = m.drv.negotiate(ALL);
  assert.notEqual(f & bit(VIRTIO_NET_F_MQ), 0n);
  m.net.setup([0, 1, 2, 3, 4]);
  m.drv.driverOk();
  m.net.post(0, 8);
  m.net.post(2, 8);
  assert.equal(m.net.ctrl(4, [VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 3, 0]), VIRTIO_NET_ERR, "more pairs than max");
  assert.equal(m.net.ctrl(4, [VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0, 0]), VIRTIO_NET_ERR, "zero pairs");
  for (let i = 0; i < 2; i++) m.net.send(1, frame(i));
  assert.deepEqual(m.net.recv(0), [0, 1], "one pair active: everything on receiveq 0");
  assert.equal(m.net.ctrl(4, [VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0]), VIRTIO_NET_OK);
  // Frames of one flow stay on one queue; different flows spread over both.
  const flow = (port: number, n: number): Uint8Array => {
    const f = frame(n, 64);
    f[14] = 0x45;
    f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
    f[34] = port >> 8;
    f[35] = port & 0xff;
    return f;
  };
  const where = new Map<number, Set<number>>();
  for (let port = 1000; port < 1016; port++) {
    for (let k = 0; k < 3; k++) m.net.send(port % 2 === 0 ? 1 : 3, flow(port, port & 0xff));
    for (const rx of [0, 2]) {
      const got = m.net.recv(rx);
      for (const n of got) where.set(n, (where.get(n) ?? new Set()).add(rx));
      if (got.length > 0) m.net.post(rx, got.length);
    }
  }
  assert.equal(where.size, 16);
  for (const qs of where.values()) assert.equal(qs.size, 1, "a flow stays on one receive queue");
  assert.equal(new Set([...where.values()].map((q) => [...q][0])).size, 2, "flows use both queues");
  assert.equal(m.dev.net.activePairs, 2);
});

test("multiqueue offered but not negotiated: the control queue is queue 2", () => {
  const m = machine({ queuePairs: 2 });
  m.drv.negotiate(ALL & ~bit(VIRTIO_NET_F_MQ));
  m.net.setup([0, 1, 2]);
  m.drv.driverOk();
  assert.equal(m.net.ctrl(2, [VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0]), VIRTIO_NET_ERR, "MQ command without MQ");
  m.net.post(0, 2);
  m.net.send(1, frame(7));
  assert.deepEqual(m.net.recv(0), [7]);
});

test("without EVENT_IDX, with split and indirect transmit chains, frames still flow", () => {
  const m = machine();
  const f = m.drv.negotiate(bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_CTRL_VQ) | (1n << 28n));
  assert.equal(f & bit(VIRTIO_RING_F_EVENT_IDX), 0n);
  m.net.setup([0, 1, 2]);
  m.drv.driverOk();
  m.net.post(0, 4);
  m.net.send(1, frame(1), true);
  m.net.send(1, frame(2));
  m.net.post(0, 1);
  m.net.send(1, frame(3, 1514), true);
  assert.deepEqual(m.net.recv(0), [1, 2, 3]);
});

test("a VF created by SR-IOV becomes a virtio-net function with attachVirtioNet", () => {
  const mem = new GuestMemory(1 << 22);
  const alloc = new GuestAllocator(mem, 0x1000, (1 << 22) - 0x1000);
  const pf = createVirtioNetPci({ memory: mem, mac: MAC, adminQueue: true });
  const sriov = new SriovCapability(pf.fn, { totalVfs: 2, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041, vfBars: [{ index: 0, ...VIRTIO_PCI_BAR_SPEC }] });
  pf.fn.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.fn.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  const vfFn = sriov.vfFunction(1, { classCode: 0x020000 });
  const vf = attachVirtioNet(vfFn, { memory: mem, mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 1), bar: 0, backend: new LoopbackBackend() });
  assert.equal(vfFn.configRead(0, 2), 0xffff, "a VF's vendor ID reads all ones");
  const drv = new VirtioPciDriver(vfFn, mem, alloc);
  drv.enableFunction();
  assert.equal(drv.common.bar, 0);
  drv.negotiate(ALL);
  const net = new NetDriver(drv, mem, alloc);
  net.setup([0, 1, 2]);
  drv.driverOk();
  net.post(0, 2);
  const f = frame(9);
  f.set(Uint8Array.of(0x52, 0x54, 0, 0, 0, 1), 0);
  net.send(1, f);
  assert.deepEqual(net.recv(0), [9]);
  assert.equal(vf.net.stats.rxFrames, 1);
  assert.throws(() => attachVirtioNet(new PciFunction({ vendorId: 1, deviceId: 2, classCode: 0, express: true }), { memory: mem, mac: MAC }), (e: unknown) => e instanceof VirtioTransportError && e.code === "VIRTIO_BAD_BAR");
});

test("function-level reset resets the virtio device", () => {
  const m = machine();
  m.drv.negotiate(ALL);
  m.net.setup([0, 1, 2]);
  m.drv.driverOk();
  assert.notEqual(m.drv.status, 0);
  const exp = m.dev.fn.findCapability(0x10)!;
  m.dev.fn.configWrite(exp + 0x08, 2, 0x8000); // Device Control: Initiate FLR
  assert.equal(m.dev.transport.status, 0);
  assert.equal(m.dev.transport.negotiatedFeatures, 0n);
  assert.ok(m.dev.transport.stats.resets >= 2);
});

test("an external data plane's used entries raise the queue's interrupt through signalQueue", () => {
  const m = machine();
  m.dev.net.externalDataPlane = true;
  m.drv.negotiate(ALL);
  m.net.setup([0, 1, 2]);
  m.drv.driverOk();
  const info = m.dev.transport.queueInfo(1)!;
  // The NIC builds its own device-side view of the transmit ring from the negotiated layout.
  const nicQ = new SplitQueueDevice(m.mem, info);
  const a = m.alloc.alloc(76, 64);
  m.net.q(1).add([{ addr: a, len: 76 }], [], a);
  m.drv.kick(1);
  const c = nicQ.pop()!;
  nicQ.pushUsed(c.head, 0);
  m.drv.interrupts.length = 0;
  m.dev.transport.signalQueue(1);
  assert.deepEqual(m.drv.interrupts, [info.msixVector]);
  assert.equal(m.net.q(1).getUsed()?.token, a);
});

test("the administrator's MAC survives a reset and reaches the configuration space", () => {
  const m = machine();
  m.drv.negotiate(ALL);
  m.net.setup([0, 1, 2]);
  m.drv.driverOk();
  m.drv.interrupts.length = 0;
  const mac = Uint8Array.of(0x02, 0, 0, 0, 0, 0x42);
  m.dev.net.setMac(mac);
  assert.deepEqual(m.drv.interrupts, [0], "configuration interrupt");
  m.drv.status = 0;
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => m.drv.configRead(i, 1)), [...mac]);
});

test("the factory can carry ARI and SR-IOV; SR_IOV is then offered and VF BARs fit a virtio-net VF", () => {
  const mem = new GuestMemory(1 << 20);
  const pf = createVirtioNetPci({ memory: mem, mac: MAC, adminQueue: true, multifunction: true, sriov: { totalVfs: 8, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041 } });
  assert.ok(pf.sriov !== undefined);
  assert.ok(pf.fn.findExtendedCapability(0x0e) !== undefined, "ARI");
  assert.notEqual(pf.transport.offeredFeatures & bit(37), 0n);
  assert.deepEqual(pf.sriov.vfBarSpec(4), VIRTIO_PCI_BAR_SPEC);
  const vf = attachVirtioNet(pf.sriov.vfFunction(1, { classCode: 0x020000 }), { memory: mem, mac: MAC });
  assert.equal(vf.transport.bar, 4);
});

test("real UDP/IPv4 and ARP frames cross a cable between two virtio-net functions intact", () => {
  const mem = new GuestMemory(1 << 22);
  const [ea, eb] = backendPair();
  const macB = Uint8Array.of(0x52, 0x54, 0, 0, 0, 0xbb);
  const mk = (mac: Uint8Array, backend: NetBackend, base: number) => {
    const alloc = new GuestAllocator(mem, base, 1 << 20);
    const dev = createVirtioNetPci({ memory: mem, mac, backend });
    const drv = new VirtioPciDriver(dev.fn, mem, alloc);
    drv.enableFunction();
    drv.negotiate(ALL);
    const net = new NetDriver(drv, mem, alloc);
    net.setup([0, 1, 2]);
    drv.driverOk();
    net.post(0, 4);
    return { dev, net, alloc };
  };
  const a = mk(MAC, ea, 0x1000);
  const b = mk(macB, eb, 0x200000);
  const l2 = { src: MacAddress.fromBytes(MAC), dst: MacAddress.fromBytes(macB), pad: true };
  const udp = buildUdpFrame(l2, Ipv4Address.parse("10.0.0.1"), Ipv4Address.parse("10.0.0.2"), 4000, 53, Uint8Array.from([1, 2, 3, 4, 5]));
  const arp = buildArpFrame({ src: MacAddress.fromBytes(macB), dst: MacAddress.BROADCAST, pad: true }, {
    operation: ArpOperation.REQUEST, senderMac: MacAddress.fromBytes(macB), senderIp: Ipv4Address.parse("10.0.0.2"),
    targetMac: MacAddress.ZERO, targetIp: Ipv4Address.parse("10.0.0.1"),
  });
  a.net.send(1, udp);
  b.net.send(1, arp);
  const readFrames = (n: NetDriver): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let u = n.q(0).getUsed(); u !== undefined; u = n.q(0).getUsed()) out.push(mem.read(u.token + 12, u.len - 12));
    return out;
  };
  const [gotUdp] = readFrames(b.net);
  const [gotArp] = readFrames(a.net);
  assert.deepEqual(gotUdp, udp);
  assert.deepEqual(gotArp, arp);
  const d = dissectFrame(gotUdp);
  assert.deepEqual([...d.payload], [1, 2, 3, 4, 5]);
  assert.equal(d.udp?.dstPort, 53);
  assert.equal(dissectFrame(gotArp).arp?.targetIp.toString(), "10.0.0.1");
});

test("a device error while serving a guest write becomes DEVICE_NEEDS_RESET, not an exception", () => {
  class FailingNet extends VirtioNet {
    override activate(): void {
      throw new VirtioNetError("NET_BAD_OPTION", "backend refused");
    }
  }
  const mem = new GuestMemory(1 << 22);
  const alloc = new GuestAllocator(mem, 0x1000, 1 << 20);
  const fn = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, express: true });
  fn.defineBar(4, VIRTIO_PCI_BAR_SPEC);
  const transport = new VirtioPciTransport({ fn, device: new FailingNet({ mac: MAC }), memory: mem, bar: 4 });
  const drv = new VirtioPciDriver(fn, mem, alloc);
  drv.enableFunction();
  drv.negotiate(ALL);
  drv.setupQueue(0, { size: 8 });
  drv.driverOk();
  assert.notEqual(drv.status & 0x40, 0);
  assert.equal(transport.stats.deviceErrors, 1);
  assert.match(transport.lastError ?? "", /activation: NET_BAD_OPTION/);
});

test("property: traffic mixed with ring corruption, resets and link flaps never throws out of the device and keeps accounting", () => {
  const op = fc.oneof(
    fc.record({ k: fc.constant("send" as const), len: fc.integer({ min: 0, max: 1600 }) }),
    fc.record({ k: fc.constant("post" as const), n: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ k: fc.constant("corrupt" as const), q: fc.integer({ min: 0, max: 1 }), area: fc.integer({ min: 0, max: 2 }), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant("reset" as const) }),
    fc.record({ k: fc.constant("link" as const), up: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const m = machine();
      const init = (): void => {
        m.drv.negotiate(ALL);
        m.net.setup([0, 1, 2], 16);
        m.drv.driverOk();
      };
      init();
      for (const o of ops) {
        try {
          if (o.k === "send") {
            if (m.net.q(1).numFree > 0) m.net.send(1, frame(1, Math.max(14, o.len)));
          } else if (o.k === "post") {
            const n = Math.min(o.n, m.net.q(0).numFree);
            if (n > 0) m.net.post(0, n);
            m.net.recv(0);
          } else if (o.k === "corrupt") {
            const c = m.net.q(o.q).config;
            const [base, len] = o.area === 0 ? [c.descAddr, 16 * c.size] : o.area === 1 ? [c.availAddr, 6 + 2 * c.size] : [c.usedAddr, 6 + 8 * c.size];
            m.mem.writeU8(base + (o.at % len), o.v);
          } else if (o.k === "reset") {
            m.drv.status = 0;
            m.net.queues.clear();
            init();
          } else {
            m.dev.net.setLink(o.up);
          }
        } catch (e) {
          // Only the driver side may complain, about a device area the test itself corrupted.
          assert.ok(e instanceof VirtqueueError && (e.code === "VQ_DEVICE_BAD_ID" || e.code === "VQ_DEVICE_USED_AHEAD"), String(e));
          m.drv.status = 0;
          m.net.queues.clear();
          init();
        }
      }
      const s = m.dev.net.stats;
      assert.equal(s.rxFrames + s.rxDroppedNoBuffer + s.rxDroppedTooBig + s.rxDroppedFiltered + s.rxDroppedNotReady + m.dev.net.backlogLength, s.txFrames);
    }),
    { numRuns: 80 },
  );
});

test("the admin queue exists only when VIRTIO_F_ADMIN_VQ is negotiated", () => {
  const m = machine();
  const pf = createVirtioNetPci({ memory: m.mem, mac: MAC, adminQueue: true });
  const drv = new VirtioPciDriver(pf.fn, m.mem, m.alloc);
  drv.enableFunction();
  drv.negotiate(ALL & ~bit(41));
  assert.throws(() => drv.setupQueue(3), /queue 3 does not exist/);
  drv.negotiate(ALL);
  assert.equal(drv.setupQueue(3).size, 64);
});
