/**
 * The vDPA data plane of a VF: the NIC itself acting as a virtio-net device on rings that live
 * in some guest's memory (DESIGN.md §1, "that is what vDPA means"). The host's vhost-vdpa
 * handle (src/host) programs it the way the vhost-vdpa ioctls program mlx5_vdpa: features,
 * status, ring size/addresses/base, call and config callbacks; once the driver sets DRIVER_OK,
 * the VF takes frames from the TX rings and fills the RX ring by itself, with no hypervisor
 * object on the path. Numbers follow virtio 1.3 §5.1 (virtio-net) and §2.7 (split rings).
 */
import type { GuestMemory } from "../memory/index.js";
import { SplitQueueDevice, VirtqueueError } from "../virtio/index.js";
import type { DescChain } from "../virtio/index.js";
import { macKeyIsMulticast, macKeyAt } from "../wire/index.js";
import { NicError } from "./errors.js";
import type { VfReceiver, VfTxSource, VirtualFunction } from "./vf.js";

// virtio 1.3 §2.1 device status bits.
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

// Feature bits (virtio 1.3 §5.1.3, §6).
export const F_MTU = 3;
export const F_MAC = 5;
export const F_STATUS = 16;
export const F_CTRL_VQ = 17;
export const F_CTRL_RX = 18;
export const F_MQ = 22;
export const F_CTRL_MAC_ADDR = 23;
export const F_RING_INDIRECT_DESC = 28;
export const F_RING_EVENT_IDX = 29;
export const F_VERSION_1 = 32;
export const F_ACCESS_PLATFORM = 33;

const bit = (n: number): bigint => 1n << BigInt(n);

/** What the VF's virtio-net function offers (mlx5_vdpa offers a superset with offloads we do not model). */
export const VDPA_NET_FEATURES: bigint =
  bit(F_MTU) | bit(F_MAC) | bit(F_STATUS) | bit(F_CTRL_VQ) | bit(F_CTRL_RX) | bit(F_MQ) | bit(F_CTRL_MAC_ADDR) | bit(F_RING_INDIRECT_DESC) | bit(F_RING_EVENT_IDX) | bit(F_VERSION_1) | bit(F_ACCESS_PLATFORM);

/** Feature names as iproute2's vdpa prints them (vdpa/vdpa.c net feature table). */
export const FEATURE_NAMES: Record<number, string> = {
  [F_MTU]: "MTU",
  [F_MAC]: "MAC",
  [F_STATUS]: "STATUS",
  [F_CTRL_VQ]: "CTRL_VQ",
  [F_CTRL_RX]: "CTRL_RX",
  [F_MQ]: "MQ",
  [F_CTRL_MAC_ADDR]: "CTRL_MAC_ADDR",
  [F_RING_INDIRECT_DESC]: "RING_INDIRECT_DESC",
  [F_RING_EVENT_IDX]: "RING_EVENT_IDX",
  [F_VERSION_1]: "VERSION_1",
  [F_ACCESS_PLATFORM]: "ACCESS_PLATFORM",
};

export function featureNames(features: bigint): string[] {
  const out: string[] = [];
  for (let b = 0; b < 64; b++) if ((features >> BigInt(b)) & 1n) out.push(FEATURE_NAMES[b] ?? `bit_${b}`);
  return out;
}

/** struct virtio_net_hdr_v1 (§5.1.6): 12 bytes before every frame with VERSION_1. */
export const NET_HDR_LEN = 12;
/** Size of the queues the device accepts at most (mlx5_vdpa's MLX5_VDPA_MAX_VQ_ENTRIES). */
export const MAX_VQ_SIZE = 256;
/** Queue pairs one VF function supports (max_supported_vqs = 2 × this + 1). */
export const MAX_VQ_PAIRS = 8;
export const VDPA_MTU = 1500;

export interface VringAddress {
  desc: number;
  avail: number;
  used: number;
}

interface QueueSlot {
  num: number;
  addr: VringAddress | null;
  base: number;
  call: (() => void) | null;
  ready: boolean;
  dev: SplitQueueDevice | null;
}

export interface VdpaEngineOptions {
  maxVqp: number;
  mtu?: number;
}

/**
 * The VF's virtio-net function. Queue numbering is virtio-net's: receiveq(k) = 2k,
 * transmitq(k) = 2k + 1, controlq = 2 × max_vq_pairs (§5.1.2). Received frames go to receiveq(0)
 * (no RSS model); every enabled transmit queue is served. The control queue implements
 * VIRTIO_NET_CTRL_RX (promisc/allmulti, which the eswitch honours only for trusted VFs),
 * VIRTIO_NET_CTRL_MAC (table and address set, the latter refused by the eswitch when the
 * administrator owns the MAC and the VF is not trusted) and VIRTIO_NET_CTRL_MQ.
 */
export class VdpaNetEngine implements VfReceiver {
  readonly maxVqp: number;
  readonly mtu: number;
  readonly deviceFeatures = VDPA_NET_FEATURES;
  #driverFeatures = 0n;
  #status = 0;
  #memory: GuestMemory | null = null;
  readonly #queues: QueueSlot[];
  #configCall: (() => void) | null = null;
  #running = false;
  #suspended = false;
  #activePairs = 1;
  readonly #txSources: VfTxSource[] = [];
  #unlisten: (() => void) | null = null;
  /** Frames taken from TX rings, frames put in RX rings, frames dropped for want of RX buffers. */
  readonly stats = { txFrames: 0, rxFrames: 0, rxNoBuffer: 0, rxTooBig: 0, txBad: 0, ctrlCommands: 0 };

  constructor(
    readonly vf: VirtualFunction,
    options: VdpaEngineOptions,
  ) {
    if (!Number.isInteger(options.maxVqp) || options.maxVqp < 1 || options.maxVqp > MAX_VQ_PAIRS) {
      throw new NicError("NIC_BAD_ARGUMENT", `max_vqp ${options.maxVqp} outside 1..${MAX_VQ_PAIRS}`, { maxVqp: options.maxVqp });
    }
    this.maxVqp = options.maxVqp;
    this.mtu = options.mtu ?? VDPA_MTU;
    this.#queues = Array.from({ length: 2 * this.maxVqp + 1 }, () => ({ num: 0, addr: null, base: 0, call: null, ready: false, dev: null }));
  }

  get numQueues(): number {
    return this.#queues.length;
  }
  get status(): number {
    return this.#status;
  }
  get driverFeatures(): bigint {
    return this.#driverFeatures;
  }
  get running(): boolean {
    return this.#running && !this.#suspended;
  }

  #has(f: number): boolean {
    return ((this.#driverFeatures >> BigInt(f)) & 1n) === 1n;
  }

  /** VHOST_SET_MEM_TABLE: the guest memory the rings and buffers live in. */
  setMemory(mem: GuestMemory | null): void {
    this.#memory = mem;
  }

  setFeatures(features: bigint): void {
    this.#driverFeatures = features & this.deviceFeatures;
  }

  setVringNum(q: number, num: number): void {
    this.#slot(q).num = num;
  }
  setVringAddr(q: number, addr: VringAddress): void {
    this.#slot(q).addr = { ...addr };
  }
  setVringBase(q: number, base: number): void {
    this.#slot(q).base = base & 0xffff;
  }
  /** last_avail_idx of the queue: live while running, the saved one after stop/suspend. */
  getVringBase(q: number): number {
    const s = this.#slot(q);
    return s.dev !== null ? s.dev.lastAvailIdx : s.base;
  }
  setVringCall(q: number, fn: (() => void) | null): void {
    this.#slot(q).call = fn;
  }
  setVringReady(q: number, ready: boolean): void {
    this.#slot(q).ready = ready;
  }
  setConfigCall(fn: (() => void) | null): void {
    this.#configCall = fn;
  }

  #slot(q: number): QueueSlot {
    const s = this.#queues[q];
    if (s === undefined) throw new NicError("NIC_BAD_ARGUMENT", `queue ${q} outside 0..${this.#queues.length - 1}`, { queue: q });
    return s;
  }

  /**
   * Device status write (§2.1.2, §3.1.1). 0 resets: the data plane stops and ring state goes
   * back to defaults. FEATURES_OK sticks only if VERSION_1 was negotiated (§6.1: a device that
   * requires VERSION_1 clears it). DRIVER_OK starts the data plane.
   */
  setStatus(status: number): void {
    status &= 0xff;
    if (status === 0) {
      this.reset();
      return;
    }
    if ((status & STATUS_FEATURES_OK) !== 0 && (this.#status & STATUS_FEATURES_OK) === 0 && !this.#has(F_VERSION_1)) status &= ~STATUS_FEATURES_OK;
    const wasOk = (this.#status & STATUS_DRIVER_OK) !== 0;
    this.#status = status | (this.#status & STATUS_NEEDS_RESET);
    if (!wasOk && (status & STATUS_DRIVER_OK) !== 0) this.#start();
  }

  #start(): void {
    const mem = this.#memory;
    if (mem === null || (this.#status & STATUS_FEATURES_OK) === 0) {
      this.#needsReset();
      return;
    }
    try {
      for (const s of this.#queues) {
        if (!s.ready || s.addr === null || s.num === 0) continue;
        if (s.num > MAX_VQ_SIZE) throw new VirtqueueError("VQ_BAD_SIZE", `queue size ${s.num} above ${MAX_VQ_SIZE}`);
        s.dev = new SplitQueueDevice(
          mem,
          { size: s.num, descAddr: s.addr.desc, availAddr: s.addr.avail, usedAddr: s.addr.used, eventIdx: this.#has(F_RING_EVENT_IDX), indirect: this.#has(F_RING_INDIRECT_DESC) },
          { lastAvailIdx: s.base },
          () => this.#needsReset(),
        );
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      for (const s of this.#queues) s.dev = null;
      this.#needsReset();
      return;
    }
    this.#running = true;
    this.#attach();
    this.vf.pump();
  }

  #attach(): void {
    this.vf.setReceiver(this);
    for (let q = 1; q < 2 * this.maxVqp; q += 2) {
      const dev = this.#queues[q]!.dev;
      if (dev === null) continue;
      const src = this.#txSource(q, dev);
      this.#txSources.push(src);
      this.vf.addTxSource(src);
    }
    this.#unlisten = this.vf.onLinkChange(() => this.#configCall?.());
  }

  #detach(): void {
    if (this.vf.receiver === this) this.vf.setReceiver(null);
    for (const s of this.#txSources) this.vf.removeTxSource(s);
    this.#txSources.length = 0;
    this.#unlisten?.();
    this.#unlisten = null;
  }

  /** VHOST_VDPA_SUSPEND: stops serving the rings, keeping their state (for migration). */
  suspend(): void {
    if (!this.#running || this.#suspended) return;
    this.#suspended = true;
    this.#detach();
  }

  resume(): void {
    if (!this.#running || !this.#suspended) return;
    this.#suspended = false;
    this.#attach();
    this.vf.pump();
  }

  /** Device reset: detach from the VF, save each ring's last_avail_idx, clear the rest. */
  reset(): void {
    if (this.#running && !this.#suspended) this.#detach();
    this.#running = false;
    this.#suspended = false;
    for (const s of this.#queues) {
      if (s.dev !== null) s.base = s.dev.lastAvailIdx;
      s.dev = null;
      s.ready = false;
      s.addr = null;
      s.num = 0;
      s.call = null;
    }
    this.#status = 0;
    this.#driverFeatures = 0n;
    this.#activePairs = 1;
  }

  #needsReset(): void {
    this.#status |= STATUS_NEEDS_RESET;
    if (this.#running && !this.#suspended) this.#detach();
    this.#running = false;
    this.#configCall?.();
  }

  /** struct virtio_net_config (§5.1.4): mac, status, max_virtqueue_pairs, mtu (little-endian). */
  config(): Uint8Array {
    const c = new Uint8Array(12);
    const k = this.vf.macKey;
    for (let i = 0; i < 6; i++) c[i] = Math.floor(k / 2 ** (8 * (5 - i))) & 0xff;
    const linkUp = this.vf.linkUp ? 1 : 0;
    c[6] = linkUp;
    c[8] = this.maxVqp & 0xff;
    c[9] = this.maxVqp >>> 8;
    c[10] = this.mtu & 0xff;
    c[11] = this.mtu >>> 8;
    return c;
  }

  /** A driver notification (the doorbell the guest rings, delivered by vhost-vdpa's kick). */
  kick(q: number): void {
    const s = this.#slot(q);
    if (!this.running || s.dev === null) return;
    if (q === 2 * this.maxVqp) this.#serveCtrl(s);
    else if (q % 2 === 1) this.vf.pump();
  }

  #txSource(q: number, dev: SplitQueueDevice): VfTxSource {
    const slot = this.#queues[q]!;
    const vf = this.vf;
    const stats = this.stats;
    let pending = 0;
    const flush = (): void => {
      if (pending === 0) return;
      pending = 0;
      dev.publishUsed();
      if (dev.needsInterrupt()) slot.call?.();
    };
    return {
      flush,
      pull: (): boolean => {
        const chain = dev.pop();
        if (chain === undefined) {
          flush();
          return false;
        }
        const frame = this.#txFrame(dev, chain);
        dev.addUsed(chain.head, 0);
        pending++;
        if (frame === null) {
          stats.txBad++;
          vf.counters.txDropped++;
        }
        else {
          stats.txFrames++;
          vf.transmit(frame);
        }
        // Return buffers in batches, but never hold a whole ring's worth back.
        if (pending >= 32) flush();
        return true;
      },
    };
  }

  /** The frame of a TX chain without its virtio_net_hdr: a view when one segment holds it. */
  #txFrame(dev: SplitQueueDevice, chain: DescChain): Uint8Array | null {
    const total = chain.readableLen - NET_HDR_LEN;
    if (total < 14 || total > this.mtu + 18) return null;
    const mem = this.#memory!;
    const r = chain.readable;
    const s0 = r[0]!;
    if (r.length === 1) return mem.view(s0.addr + NET_HDR_LEN, total);
    if (r.length === 2 && s0.len === NET_HDR_LEN) return mem.view(r[1]!.addr, total);
    return dev.readChain(chain, NET_HDR_LEN);
  }

  /** Eswitch delivery: one frame into receiveq(0), with a zeroed header and num_buffers = 1. */
  receive(frame: Uint8Array): boolean {
    const slot = this.#queues[0]!;
    const dev = slot.dev;
    if (dev === null) return false;
    const chain = dev.pop();
    if (chain === undefined) {
      this.stats.rxNoBuffer++;
      return false;
    }
    const need = NET_HDR_LEN + frame.length;
    if (chain.writableLen < need) {
      // §5.1.6.4: without MRG_RXBUF each buffer must hold a whole packet; give it back empty.
      this.stats.rxTooBig++;
      dev.pushUsed(chain.head, 0);
      if (dev.needsInterrupt()) slot.call?.();
      return false;
    }
    const w = chain.writable;
    if (w.length === 1) {
      // One buffer: header words and frame straight into guest memory, no intermediate view.
      const mem = this.#memory!;
      const a = w[0]!.addr;
      mem.writeU32(a, 0);
      mem.writeU32(a + 4, 0);
      mem.writeU32(a + 8, 0x0001_0000); // csum_offset 0, num_buffers 1 (le16 at offset 10)
      mem.write(a + NET_HDR_LEN, frame);
    } else {
      const hdr = new Uint8Array(NET_HDR_LEN);
      hdr[10] = 1;
      dev.writeChain(chain, hdr);
      dev.writeChain(chain, frame, NET_HDR_LEN);
    }
    dev.pushUsed(chain.head, need);
    this.stats.rxFrames++;
    if (dev.needsInterrupt()) slot.call?.();
    return true;
  }

  /** virtio-net control queue (§5.1.6.5): class, command, data; then a one-byte ack. */
  #serveCtrl(slot: QueueSlot): void {
    const dev = slot.dev!;
    let any = false;
    for (let chain = dev.pop(); chain !== undefined; chain = dev.pop()) {
      any = true;
      this.stats.ctrlCommands++;
      const req = dev.readChain(chain);
      const ack = req.length >= 2 && chain.writableLen >= 1 ? this.#ctrl(req[0]!, req[1]!, req.subarray(2)) : 1;
      const n = chain.writableLen >= 1 ? dev.writeChain(chain, Uint8Array.of(ack)) : 0;
      dev.addUsed(chain.head, n);
    }
    if (any) {
      dev.publishUsed();
      if (dev.needsInterrupt()) slot.call?.();
    }
  }

  /** Returns VIRTIO_NET_OK (0) or VIRTIO_NET_ERR (1). */
  #ctrl(cls: number, cmd: number, data: Uint8Array): number {
    const OK = 0, ERR = 1;
    if (cls === 0 && this.#has(F_CTRL_RX)) {
      if (data.length < 1 || cmd > 1) return ERR;
      if (cmd === 0) this.vf.setRxMode({ promisc: data[0] !== 0 });
      else this.vf.setRxMode({ allmulti: data[0] !== 0 });
      return OK;
    }
    if (cls === 1 && cmd === 1 && this.#has(F_CTRL_MAC_ADDR)) {
      if (data.length !== 6) return ERR;
      return this.vf.driverSetMac(macKeyAt(data, 0)) ? OK : ERR;
    }
    if (cls === 1 && cmd === 0) {
      // Two tables: unicast then multicast, each le32 count + 6-byte entries (§5.1.6.5.2).
      const mc = parseMacTable(data);
      if (mc === null) return ERR;
      return this.vf.setRxMode({ unicast: mc.unicast, multicast: mc.multicast }) ? OK : ERR;
    }
    if (cls === 4 && cmd === 0 && this.#has(F_MQ)) {
      if (data.length < 2) return ERR;
      const n = data[0]! | (data[1]! << 8);
      if (n < 1 || n > this.maxVqp) return ERR;
      this.#activePairs = n;
      return OK;
    }
    return ERR;
  }

  get activePairs(): number {
    return this.#activePairs;
  }
}

function parseMacTable(data: Uint8Array): { unicast: number[]; multicast: number[] } | null {
  const tables: number[][] = [];
  let o = 0;
  for (let t = 0; t < 2; t++) {
    if (o + 4 > data.length) return null;
    const n = (data[o]! | (data[o + 1]! << 8) | (data[o + 2]! << 16) | (data[o + 3]! << 24)) >>> 0;
    o += 4;
    if (n > 4096 || o + 6 * n > data.length) return null;
    const list: number[] = [];
    for (let i = 0; i < n; i++, o += 6) list.push(macKeyAt(data, o));
    tables.push(list);
  }
  const [unicast, multicast] = tables as [number[], number[]];
  if (multicast.some((k) => !macKeyIsMulticast(k))) return null;
  return { unicast, multicast };
}
