/**
 * Frames per second through one virtio-net receive/transmit queue pair on one core (issue 3
 * item 8). The model driver (VirtioPciDriver + SplitQueueDriver) adds a batch of transmit chains
 * and kicks once through the notify register; the device pops them, hands each frame to a
 * loopback backend, which delivers it into a posted receive buffer; the driver reaps both rings
 * and re-posts the receive buffers. Each frame costs one transmit and one receive descriptor.
 */
import { GuestAllocator, GuestMemory } from "../src/memory/index.js";
import { LoopbackBackend, VirtioPciDriver, createVirtioNetPci, type SplitQueueDriver } from "../src/virtio/index.js";
import { opsPerSecond, type BenchResult, type BenchSuite } from "./harness.js";

const MAC = Uint8Array.of(0x52, 0x54, 0, 0x12, 0x34, 0x56);
const HDR = 12;

function pipeline(frameLen: number, batch: number): { run: () => void; check: () => void } {
  const mem = new GuestMemory(16 << 20);
  const alloc = new GuestAllocator(mem, 0x10000, (16 << 20) - 0x10000);
  const lo = new LoopbackBackend();
  lo.record = false;
  const dev = createVirtioNetPci({ memory: mem, mac: MAC, backend: lo, queueSize: 256 });
  const drv = new VirtioPciDriver(dev.fn, mem, alloc);
  drv.enableFunction();
  drv.negotiate((1n << 64n) - 1n);
  const rx: SplitQueueDriver<number> = drv.setupQueue<number>(0, { size: 256 });
  const tx: SplitQueueDriver<number> = drv.setupQueue<number>(1, { size: 256 });
  drv.setupQueue<number>(2, { size: 16 });
  drv.driverOk();
  // Receive buffers: one per ring slot, big enough for a 1500-byte MTU frame.
  for (let i = 0; i < 256; i++) {
    const a = alloc.alloc(HDR + 1518, 64);
    rx.add([], [{ addr: a, len: HDR + 1518 }], a);
  }
  drv.kick(0);
  // Transmit buffers, filled once (a driver maps the skb; it does not copy it again).
  const txBufs: number[] = [];
  for (let i = 0; i < batch; i++) {
    const a = alloc.alloc(HDR + frameLen, 64);
    const f = new Uint8Array(HDR + frameLen);
    f.set(MAC, HDR);
    f[HDR + 12] = 0x08;
    mem.write(a, f);
    txBufs.push(a);
  }
  let rxSeen = 0;
  const run = (): void => {
    for (const a of txBufs) tx.add([{ addr: a, len: HDR + frameLen }], [], a);
    drv.kick(1);
    while (tx.getUsed() !== undefined);
    for (let u = rx.getUsed(); u !== undefined; u = rx.getUsed()) {
      rx.add([], [{ addr: u.token, len: HDR + 1518 }], u.token);
      rxSeen++;
    }
    drv.kick(0);
  };
  const check = (): void => {
    const s = dev.net.stats;
    if (s.rxFrames !== s.txFrames || rxSeen !== s.rxFrames || s.rxDroppedNoBuffer + s.rxDroppedTooBig + s.txErrors !== 0) {
      throw new Error(`benchmark lost frames: tx ${s.txFrames} rx ${s.rxFrames} reaped ${rxSeen}`);
    }
  };
  return { run, check };
}

export const suite: BenchSuite = {
  name: "virtio",
  run(): BenchResult[] {
    const out: BenchResult[] = [];
    for (const len of [64, 1500]) {
      for (const batch of [1, 32, 128]) {
        const p = pipeline(len, batch);
        const fps = opsPerSecond(p.run, batch, 700);
        p.check();
        out.push({ name: `virtio-net loopback ${len} B, batch ${batch}: frames`, value: fps, unit: "frames/s" });
        out.push({ name: `virtio-net loopback ${len} B, batch ${batch}: descriptors`, value: 2 * fps, unit: "desc/s", note: "1 tx + 1 rx descriptor per frame" });
      }
    }
    return out;
  },
};
