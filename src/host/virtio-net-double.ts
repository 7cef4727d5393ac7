import { GuestAllocator, GuestMemory } from "../memory/index.js";
import { SplitQueueDriver } from "../virtio/index.js";
import {
  F_CTRL_MAC_ADDR,
  F_CTRL_RX,
  F_CTRL_VQ,
  F_MAC,
  F_MQ,
  F_MTU,
  F_RING_EVENT_IDX,
  F_STATUS,
  F_VERSION_1,
  NET_HDR_LEN,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from "../nic/index.js";
import type { VhostVdpaHandle } from "./vhost.js";

/** The slice of the vhost-vdpa surface a driver-side double needs. */
export type VhostLike = Pick<
  VhostVdpaHandle,
  "getFeatures" | "setFeatures" | "getStatus" | "setStatus" | "setMemory" | "setVringNum" | "setVringAddr" | "setVringBase" | "setVringCall" | "setVringEnable" | "kick" | "getConfig" | "getVqsCount" | "setConfigCall"
>;

export interface VirtioNetDoubleOptions {
  /** Ring size of every queue (default 256). */
  queueSize?: number;
  eventIdx?: boolean;
  /** Bytes of each receive buffer, header included (default 2048). */
  rxBufferSize?: number;
  /** Extra feature bits to refuse (default none). */
  withoutFeatures?: bigint;
}

const bit = (n: number): bigint => 1n << BigInt(n);
const BUF = 2048;

/**
 * A minimal guest virtio-net driver over a vhost-vdpa handle, for tests and benchmarks (the
 * "other side shipped as a test double" of STYLE.md): it owns a guest memory, negotiates
 * features, lays out receiveq0 / transmitq0 / controlq, keeps the RX ring full, and sends and
 * receives frames with the 12-byte virtio_net_hdr_v1 in the same buffer. It is what the vmm's
 * virtio-net front end does for a real guest, without PCI.
 */
export class VirtioNetDouble {
  readonly memory: GuestMemory;
  readonly #alloc: GuestAllocator;
  readonly #size: number;
  readonly #rxSize: number;
  #rx!: SplitQueueDriver<number>;
  #tx!: SplitQueueDriver<number>;
  #ctrl: SplitQueueDriver<number> | null = null;
  readonly #txFree: number[] = [];
  #ctrlBuf = 0;
  #ctrlQ = 0;
  /** Interrupts seen per queue, and config-change interrupts. */
  readonly interrupts = { rx: 0, tx: 0, ctrl: 0, config: 0 };

  constructor(
    readonly handle: VhostLike,
    private readonly options: VirtioNetDoubleOptions = {},
  ) {
    this.#size = options.queueSize ?? 256;
    this.#rxSize = options.rxBufferSize ?? BUF;
    const bytes = 3 * 16 * 1024 + this.#size * (this.#rxSize + BUF) + 64 * 1024;
    this.memory = new GuestMemory(Math.ceil(bytes / 4096) * 4096 + 65536);
    this.#alloc = new GuestAllocator(this.memory, 4096, this.memory.size - 4096);
  }

  /** Virtio initialisation (§3.1.1) through vhost-vdpa; returns the negotiated features. */
  start(): bigint {
    const h = this.handle;
    h.setStatus(0);
    h.setStatus(STATUS_ACKNOWLEDGE);
    h.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const want = bit(F_VERSION_1) | bit(F_MAC) | bit(F_STATUS) | bit(F_MTU) | bit(F_CTRL_VQ) | bit(F_CTRL_RX) | bit(F_CTRL_MAC_ADDR) | bit(F_MQ) | (this.options.eventIdx === true ? bit(F_RING_EVENT_IDX) : 0n);
    const features = h.getFeatures() & want & ~(this.options.withoutFeatures ?? 0n);
    h.setFeatures(features);
    h.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    h.setMemory(this.memory);
    h.setConfigCall(() => this.interrupts.config++);
    const eventIdx = (features & bit(F_RING_EVENT_IDX)) !== 0n;
    this.#rx = SplitQueueDriver.allocate<number>(this.memory, this.#alloc, this.#size, { eventIdx, indirect: false });
    this.#tx = SplitQueueDriver.allocate<number>(this.memory, this.#alloc, this.#size, { eventIdx, indirect: false });
    const queues: [number, SplitQueueDriver<number>, keyof VirtioNetDouble["interrupts"]][] = [
      [0, this.#rx, "rx"],
      [1, this.#tx, "tx"],
    ];
    if ((features & bit(F_CTRL_VQ)) !== 0n) {
      this.#ctrl = SplitQueueDriver.allocate<number>(this.memory, this.#alloc, 16, { eventIdx, indirect: false });
      this.#ctrlQ = h.getVqsCount() - 1;
      this.#ctrlBuf = this.#alloc.alloc(4096, 16);
      queues.push([this.#ctrlQ, this.#ctrl, "ctrl"]);
    }
    for (const [q, d, name] of queues) {
      h.setVringNum(q, d.size);
      h.setVringAddr(q, { desc: d.config.descAddr, avail: d.config.availAddr, used: d.config.usedAddr });
      h.setVringBase(q, 0);
      h.setVringCall(q, () => this.interrupts[name]++);
      h.setVringEnable(q, true);
    }
    for (let i = 0; i < this.#size; i++) this.#txFree.push(this.#alloc.alloc(BUF, 16));
    for (let i = 0; i < this.#size; i++) {
      const a = this.#alloc.alloc(this.#rxSize, 16);
      this.#rx.add([], [{ addr: a, len: this.#rxSize }], a);
    }
    h.setStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    return features;
  }

  /**
   * Queues frames on transmitq0 (header and frame in one buffer) and kicks once. Returns how
   * many were queued (fewer when the ring is full; reap with `reapTx`).
   */
  send(...frames: Uint8Array[]): number {
    let n = 0;
    this.reapTx();
    for (const f of frames) {
      if (f.length > BUF - NET_HDR_LEN) throw new RangeError("frame larger than the double's buffers");
      const a = this.#txFree.pop();
      if (a === undefined) break;
      const mem = this.memory;
      mem.writeU32(a, 0);
      mem.writeU32(a + 4, 0);
      mem.writeU32(a + 8, 0);
      mem.write(a + NET_HDR_LEN, f);
      this.#tx.add([{ addr: a, len: NET_HDR_LEN + f.length }], [], a);
      n++;
    }
    if (n > 0) this.handle.kick(1);
    return n;
  }

  /** Returns transmitted buffers to the free list. */
  reapTx(): number {
    let n = 0;
    for (let u = this.#tx.getUsed(); u !== undefined; u = this.#tx.getUsed()) {
      this.#txFree.push(u.token);
      n++;
    }
    return n;
  }

  /** Reaps received frames (without their header) and gives the buffers back to the device. */
  receive(): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.receiveEach((f) => out.push(f.slice()));
    return out;
  }

  /** Like receive, but hands each frame (a view valid during the call) to fn; returns the count. */
  receiveEach(fn: (frame: Uint8Array) => void): number {
    let n = 0;
    for (let u = this.#rx.getUsed(); u !== undefined; u = this.#rx.getUsed()) {
      if (u.len >= NET_HDR_LEN) fn(this.memory.view(u.token + NET_HDR_LEN, u.len - NET_HDR_LEN));
      this.#rx.add([], [{ addr: u.token, len: this.#rxSize }], u.token);
      n++;
    }
    if (n > 0) this.handle.kick(0);
    return n;
  }

  /** Reaps received buffers and reposts them without looking at the frames (benchmarks); returns the count. */
  drain(): number {
    let n = 0;
    for (let u = this.#rx.getUsed(); u !== undefined; u = this.#rx.getUsed()) {
      this.#rx.add([], [{ addr: u.token, len: this.#rxSize }], u.token);
      n++;
    }
    if (n > 0) this.handle.kick(0);
    return n;
  }

  /** Sends one control command (class, command, data) and returns the device's ack byte. */
  control(cls: number, cmd: number, data: Uint8Array): number {
    const q = this.#ctrl;
    if (q === null) throw new RangeError("no control queue negotiated");
    const a = this.#ctrlBuf;
    this.memory.writeU8(a, cls);
    this.memory.writeU8(a + 1, cmd);
    this.memory.write(a + 2, data);
    const ackAddr = a + 2 + data.length;
    this.memory.writeU8(ackAddr, 0xff);
    q.add([{ addr: a, len: 2 + data.length }], [{ addr: ackAddr, len: 1 }], 0);
    this.handle.kick(this.#ctrlQ);
    const u = q.getUsed();
    if (u === undefined) return -1;
    return this.memory.readU8(ackAddr);
  }

  /** struct virtio_net_config as the device reports it. */
  config(): { mac: Uint8Array; linkUp: boolean; maxVqPairs: number; mtu: number } {
    const c = this.handle.getConfig();
    return { mac: c.slice(0, 6), linkUp: (c[6]! & 1) === 1, maxVqPairs: c[8]! | (c[9]! << 8), mtu: c[10]! | (c[11]! << 8) };
  }
}
