/**
 * The virtio-net device (virtio 1.3 §5.1), transport-independent.
 *
 * Queues: receiveq k = 2k, transmitq k = 2k + 1, controlq = 2N with VIRTIO_NET_F_MQ negotiated
 * (N = max_virtqueue_pairs), else 2 (§5.1.2). Every frame carries a 12-byte struct
 * virtio_net_hdr_v1 (§5.1.6). Frames leave through a NetBackend and arrive by receive(); with
 * vDPA the NIC serves the receive/transmit rings itself (`externalDataPlane`), and the device
 * keeps only the control queue and the configuration space.
 */
import { VpfError } from "../base/index.js";
import {
  NET_CFG_MAC,
  NET_CFG_MAX_VQ_PAIRS,
  NET_CFG_MTU,
  NET_CFG_SIZE,
  NET_CFG_STATUS,
  VIRTIO_ID_NET,
  VIRTIO_NET_CTRL_MAC,
  VIRTIO_NET_CTRL_MAC_ADDR_SET,
  VIRTIO_NET_CTRL_MAC_TABLE_SET,
  VIRTIO_NET_CTRL_MQ,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN,
  VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
  VIRTIO_NET_CTRL_RX,
  VIRTIO_NET_CTRL_RX_ALLMULTI,
  VIRTIO_NET_CTRL_RX_PROMISC,
  VIRTIO_NET_CTRL_VLAN,
  VIRTIO_NET_CTRL_VLAN_ADD,
  VIRTIO_NET_CTRL_VLAN_DEL,
  VIRTIO_NET_ERR,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_RX_EXTRA,
  VIRTIO_NET_F_CTRL_VLAN,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_GUEST_ANNOUNCE,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_LEN,
  VIRTIO_NET_OK,
  VIRTIO_NET_S_LINK_UP,
  bit,
} from "./constants.js";
import type { DescChain, SplitQueueDevice } from "./device-queue.js";
import type { ActivateContext, TransportHooks, VirtioDevice } from "./device.js";

/** A misconfigured device (device-side code, not guest input). */
export class VirtioNetError extends VpfError {}

/** Where frames go when the driver transmits, and where received frames come from. */
export interface NetBackend {
  /** The device hands the backend its receive entry point when it is attached. */
  attach(receive: (frame: Uint8Array) => RxOutcome): void;
  /**
   * A frame the driver transmitted (virtio-net header removed). Like a DMA buffer, `frame` may be
   * a view into guest memory valid only during the call: a backend that keeps it copies it.
   */
  transmit(frame: Uint8Array): void;
}

export type RxOutcome = "delivered" | "queued" | "dropped";

/** Sends every transmitted frame straight back to the device (tests). */
export class LoopbackBackend implements NetBackend {
  #rx: ((frame: Uint8Array) => RxOutcome) | undefined;
  readonly seen: Uint8Array[] = [];
  /** Keep a copy of each frame in `seen` (off for benchmarks). */
  record = true;
  attach(receive: (frame: Uint8Array) => RxOutcome): void {
    this.#rx = receive;
  }
  transmit(frame: Uint8Array): void {
    if (this.record) this.seen.push(frame.slice());
    this.#rx?.(frame);
  }
}

/** Two backends joined by a cable: what one device transmits, the other receives. */
export function backendPair(): [NetBackend, NetBackend] {
  const rx: (((f: Uint8Array) => RxOutcome) | undefined)[] = [undefined, undefined];
  const end = (me: 0 | 1): NetBackend => ({
    attach: (r) => {
      rx[me] = r;
    },
    transmit: (f) => {
      rx[me === 0 ? 1 : 0]?.(f);
    },
  });
  return [end(0), end(1)];
}

/** What the guest asked for on the control queue; the owner may refuse (host policy). */
export type NetControlRequest =
  | { readonly kind: "rx-mode"; readonly promisc: boolean; readonly allmulti: boolean }
  | { readonly kind: "mac-address"; readonly mac: Uint8Array }
  | { readonly kind: "mac-table"; readonly unicast: readonly Uint8Array[]; readonly multicast: readonly Uint8Array[] }
  | { readonly kind: "vlan"; readonly vid: number; readonly add: boolean }
  | { readonly kind: "queue-pairs"; readonly pairs: number };

export interface VirtioNetOptions {
  readonly mac: Uint8Array;
  readonly mtu?: number;
  /** max_virtqueue_pairs; more than 1 offers VIRTIO_NET_F_MQ. */
  readonly queuePairs?: number;
  readonly queueSize?: number;
  readonly backend?: NetBackend;
  /** Frames held for the guest while it has posted no receive buffer (default 256). */
  readonly rxBacklog?: number;
  readonly linkUp?: boolean;
}

export interface VirtioNetStats {
  txFrames: number;
  txBytes: number;
  /** Transmit chains refused: header too short, GSO not negotiated, runt or oversize frame. */
  txErrors: number;
  rxFrames: number;
  rxBytes: number;
  rxDroppedNoBuffer: number;
  rxDroppedTooBig: number;
  rxDroppedFiltered: number;
  rxDroppedNotReady: number;
  ctrlCommands: number;
  ctrlErrors: number;
}

const MAC_TABLE_ENTRIES = 64; // as QEMU: more entries than this means "accept all" of that kind
const ETH_HLEN = 14;

/** A MAC address as a 48-bit number (for sets and comparisons without strings). */
function macNum(b: Uint8Array, off = 0): number {
  return ((b[off] ?? 0) * 0x100 + (b[off + 1] ?? 0)) * 0x1_0000_0000 + ((((b[off + 2] ?? 0) << 24) | ((b[off + 3] ?? 0) << 16) | ((b[off + 4] ?? 0) << 8) | (b[off + 5] ?? 0)) >>> 0);
}
const BROADCAST = 0xffff_ffff_ffff;
/**
 * Receive-queue choice with several pairs active: a hash of the flow (addresses, and for IPv4
 * the IP addresses and the first four transport bytes, i.e. the ports), so a flow stays on one
 * queue and in order. FNV-1a over those bytes.
 */
function flowHash(f: Uint8Array): number {
  let h = 0x811c9dc5;
  const mix = (from: number, to: number): void => {
    for (let i = from; i < to && i < f.length; i++) h = Math.imul(h ^ (f[i] ?? 0), 0x01000193);
  };
  mix(0, 14);
  if (f[12] === 0x08 && f[13] === 0x00 && f.length >= 34) {
    const ihl = ((f[14] ?? 0) & 0x0f) * 4;
    mix(26, 34);
    mix(14 + ihl, 14 + ihl + 4);
  }
  return h >>> 0;
}

/** struct virtio_net_hdr_v1 for received frames: no offloads, num_buffers = 1 (§5.1.6.4). */
const RX_HDR = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0);

export class VirtioNet implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly configSize = NET_CFG_SIZE;
  readonly maxPairs: number;
  readonly mtu: number;
  readonly queueSize: number;
  readonly stats: VirtioNetStats = {
    txFrames: 0, txBytes: 0, txErrors: 0, rxFrames: 0, rxBytes: 0, rxDroppedNoBuffer: 0, rxDroppedTooBig: 0,
    rxDroppedFiltered: 0, rxDroppedNotReady: 0, ctrlCommands: 0, ctrlErrors: 0,
  };
  /** With vDPA the NIC serves receive/transmit rings itself; the device keeps the control queue. */
  externalDataPlane = false;
  /** Consulted before a control command takes effect; false answers VIRTIO_NET_ERR. */
  controlPolicy: ((req: NetControlRequest) => boolean) | undefined;
  readonly #controlListeners: ((req: NetControlRequest) => void)[] = [];
  readonly #permanentMac: Uint8Array;
  readonly #mac: Uint8Array;
  readonly #backlogLimit: number;
  #backend: NetBackend | undefined;
  #hooks: TransportHooks | undefined;
  #ctx: ActivateContext | undefined;
  #linkUp: boolean;
  // Receive filter (§5.1.6.5.1, .2, .3).
  #promisc = false;
  #allmulti = false;
  #uc = new Set<number>();
  #mc = new Set<number>();
  #macNum: number;
  #mqOn = false;
  #ctrlOn = false;
  #ucOverflow = false;
  #mcOverflow = false;
  #vlans = new Uint8Array(4096);
  #vlanFilter = false;
  #pairs = 1;
  #backlog: Uint8Array[] = [];

  constructor(opts: VirtioNetOptions) {
    if (opts.mac.length !== 6) throw new VirtioNetError("NET_BAD_OPTION", "a MAC address is 6 bytes");
    this.#permanentMac = Uint8Array.from(opts.mac);
    this.#mac = Uint8Array.from(opts.mac);
    this.#macNum = macNum(this.#mac);
    this.mtu = opts.mtu ?? 1500;
    this.maxPairs = opts.queuePairs ?? 1;
    this.queueSize = opts.queueSize ?? 256;
    if (!Number.isInteger(this.mtu) || this.mtu < 68 || this.mtu > 65535) throw new VirtioNetError("NET_BAD_OPTION", `MTU ${this.mtu} is not 68..65535`);
    if (!Number.isInteger(this.maxPairs) || this.maxPairs < 1 || this.maxPairs > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX) {
      throw new VirtioNetError("NET_BAD_OPTION", `queue pairs ${this.maxPairs} is not 1..0x8000`);
    }
    this.#backlogLimit = opts.rxBacklog ?? 256;
    this.#linkUp = opts.linkUp ?? true;
    if (opts.backend !== undefined) this.setBackend(opts.backend);
  }

  setBackend(b: NetBackend): void {
    this.#backend = b;
    b.attach((f) => this.receive(f));
  }

  /** Called with every control request that took effect. */
  onControl(listener: (req: NetControlRequest) => void): void {
    this.#controlListeners.push(listener);
  }

  get mac(): Uint8Array {
    return Uint8Array.from(this.#mac);
  }
  get linkUp(): boolean {
    return this.#linkUp;
  }
  get promiscuous(): boolean {
    return this.#promisc;
  }
  get allMulticast(): boolean {
    return this.#allmulti;
  }
  /** Frames waiting for a receive buffer. */
  get backlogLength(): number {
    return this.#backlog.length;
  }
  get activePairs(): number {
    return this.#pairs;
  }
  vlanAllowed(vid: number): boolean {
    return !this.#vlanFilter || this.#vlans[vid] === 1;
  }
  /** The negotiated features once active. */
  get features(): bigint {
    return this.#ctx?.features ?? 0n;
  }

  /**
   * The administrator sets the device's MAC (the hypervisor applying `ip link set ... vf N mac`):
   * it becomes the permanent address, survives resets, and the configuration-change interrupt
   * tells the driver. Throws NET_BAD_OPTION for a length other than 6.
   */
  setMac(mac: Uint8Array): void {
    if (mac.length !== 6) throw new VirtioNetError("NET_BAD_OPTION", "a MAC address is 6 bytes");
    this.#permanentMac.set(mac);
    this.#mac.set(mac);
    this.#macNum = macNum(this.#mac);
    this.#hooks?.configChanged();
  }

  /** Link status change (§5.1.4): updates the status field and raises a config interrupt. */
  setLink(up: boolean): void {
    if (up === this.#linkUp) return;
    this.#linkUp = up;
    this.#hooks?.configChanged();
  }

  // ------------------------------------------------------------------ VirtioDevice

  get numQueues(): number {
    return 2 * this.maxPairs + 1;
  }
  queueMaxSize(): number {
    return this.queueSize;
  }
  offeredFeatures(): bigint {
    let f = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_CTRL_VQ) |
      bit(VIRTIO_NET_F_CTRL_RX) | bit(VIRTIO_NET_F_CTRL_VLAN) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR);
    if (this.maxPairs > 1) f |= bit(VIRTIO_NET_F_MQ);
    return f;
  }
  validateFeatures(f: bigint): string | undefined {
    const has = (b: number): boolean => (f & bit(b)) !== 0n;
    // §5.1.3.1: these need the control queue; CTRL_RX_EXTRA needs CTRL_RX.
    for (const b of [VIRTIO_NET_F_CTRL_RX, VIRTIO_NET_F_CTRL_VLAN, VIRTIO_NET_F_GUEST_ANNOUNCE, VIRTIO_NET_F_MQ, VIRTIO_NET_F_CTRL_MAC_ADDR]) {
      if (has(b) && !has(VIRTIO_NET_F_CTRL_VQ)) return `virtio-net feature ${b} needs VIRTIO_NET_F_CTRL_VQ`;
    }
    if (has(VIRTIO_NET_F_CTRL_RX_EXTRA) && !has(VIRTIO_NET_F_CTRL_RX)) return "VIRTIO_NET_F_CTRL_RX_EXTRA needs VIRTIO_NET_F_CTRL_RX";
    return undefined;
  }
  readConfig(offset: number, width: 1 | 2 | 4): number {
    const b = new Uint8Array(NET_CFG_SIZE);
    b.set(this.#mac, NET_CFG_MAC);
    const dv = new DataView(b.buffer);
    dv.setUint16(NET_CFG_STATUS, this.#linkUp ? VIRTIO_NET_S_LINK_UP : 0, true);
    dv.setUint16(NET_CFG_MAX_VQ_PAIRS, this.maxPairs, true);
    dv.setUint16(NET_CFG_MTU, this.mtu, true);
    if (offset < 0 || offset + width > NET_CFG_SIZE) return 0;
    return width === 1 ? dv.getUint8(offset) : width === 2 ? dv.getUint16(offset, true) : dv.getUint32(offset, true);
  }
  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void {
    // §5.1.4.1: with VERSION_1 the configuration is read-only for the driver (the MAC changes
    // through VIRTIO_NET_CTRL_MAC_ADDR_SET); writes are ignored.
    void offset;
    void width;
    void value;
  }
  bind(hooks: TransportHooks): void {
    this.#hooks = hooks;
  }
  activate(ctx: ActivateContext): void {
    this.#ctx = ctx;
    this.#mqOn = (ctx.features & bit(VIRTIO_NET_F_MQ)) !== 0n;
    this.#ctrlOn = (ctx.features & bit(VIRTIO_NET_F_CTRL_VQ)) !== 0n;
    // QEMU: without CTRL_VLAN every VLAN passes; with it the table starts empty.
    this.#vlanFilter = (ctx.features & bit(VIRTIO_NET_F_CTRL_VLAN)) !== 0n;
    this.#vlans.fill(0);
  }
  queueEnabled(queue: number): void {
    if (queue % 2 === 0 && queue < 2 * this.maxPairs) this.#flushBacklog();
  }
  queueNotify(queue: number): void {
    const ctx = this.#ctx;
    if (ctx === undefined) return;
    if (queue === this.#ctrlIndex()) {
      this.#serveControl(ctx);
      return;
    }
    if (this.externalDataPlane || queue >= 2 * this.#usablePairs()) return;
    if (queue % 2 === 1) this.#serveTx(ctx, queue);
    else this.#flushBacklog();
  }
  reset(): void {
    // Negotiated state goes; cumulative counters stay (accounting survives a reset). Frames held
    // for the guest are dropped and counted.
    this.#ctx = undefined;
    this.stats.rxDroppedNotReady += this.#backlog.length;
    this.#backlog = [];
    this.#mac.set(this.#permanentMac);
    this.#macNum = macNum(this.#mac);
    this.#mqOn = false;
    this.#ctrlOn = false;
    this.#promisc = false;
    this.#allmulti = false;
    this.#uc.clear();
    this.#mc.clear();
    this.#ucOverflow = false;
    this.#mcOverflow = false;
    this.#vlans.fill(0);
    this.#vlanFilter = false;
    this.#pairs = 1;
  }

  // ------------------------------------------------------------------ data path

  #ctrlIndex(): number {
    if (!this.#ctrlOn) return -1;
    return this.#mqOn ? 2 * this.maxPairs : 2;
  }
  #usablePairs(): number {
    return this.#mqOn ? this.#pairs : 1;
  }

  #serveTx(ctx: ActivateContext, queue: number): void {
    const q = ctx.queues[queue];
    if (q === undefined) return;
    const backend = this.#backend;
    for (;;) {
      q.disableNotification();
      let n = 0;
      for (let c = q.pop(); c !== undefined; c = q.pop()) {
        this.#transmitChain(ctx, q, c, backend);
        q.addUsed(c.head, 0);
        n++;
      }
      if (n > 0) {
        q.publishUsed();
        ctx.signalUsed(queue);
      }
      // Re-arm notifications; if the driver added buffers meanwhile, go round again.
      if (!q.enableNotification()) break;
    }
  }

  #transmitChain(ctx: ActivateContext, q: SplitQueueDevice, c: DescChain, backend: NetBackend | undefined): void {
    if (c.readableLen < VIRTIO_NET_HDR_LEN) {
      this.stats.txErrors++;
      return;
    }
    // gso_type is byte 1 of the header; no GSO feature is offered, so it must be NONE (§5.1.6.2.1).
    const first = c.readable[0];
    const gso = first !== undefined && first.len >= 2 ? ctx.memory.readU8(first.addr + 1) : (q.readChain(c)[1] ?? 0);
    if (gso !== VIRTIO_NET_HDR_GSO_NONE) {
      this.stats.txErrors++;
      return;
    }
    const len = c.readableLen - VIRTIO_NET_HDR_LEN;
    if (len < ETH_HLEN || len > this.mtu + ETH_HLEN + 4) {
      this.stats.txErrors++;
      return;
    }
    // Zero-copy when the frame is one segment; the chain goes back only after transmit() returns.
    const frame = q.readChainView(c, VIRTIO_NET_HDR_LEN);
    this.stats.txFrames++;
    this.stats.txBytes += len;
    backend?.transmit(frame);
  }

  /**
   * A frame for the guest. Filtered by the receive mode, MAC tables and VLAN table; held in a
   * small backlog while the guest has no receive buffer posted; dropped (and counted) otherwise.
   */
  receive(frame: Uint8Array): RxOutcome {
    const ctx = this.#ctx;
    if (ctx === undefined || !this.#linkUp || this.externalDataPlane || !ctx.dmaAllowed()) {
      this.stats.rxDroppedNotReady++;
      return "dropped";
    }
    if (frame.length < ETH_HLEN || !this.#accept(frame)) {
      this.stats.rxDroppedFiltered++;
      return "dropped";
    }
    if (this.#backlog.length > 0) {
      this.#flushBacklog();
      if (this.#backlog.length > 0) return this.#hold(frame);
    }
    const r = this.#deliver(ctx, frame);
    if (r === "no-buffer") return this.#hold(frame);
    return r === "delivered" ? "delivered" : "dropped";
  }

  #hold(frame: Uint8Array): RxOutcome {
    if (this.#backlog.length >= this.#backlogLimit) {
      this.stats.rxDroppedNoBuffer++;
      return "dropped";
    }
    // The frame may be a view into another guest's memory (a loopback or cable): keep a copy.
    this.#backlog.push(frame.slice());
    return "queued";
  }

  #flushBacklog(): void {
    const ctx = this.#ctx;
    if (ctx === undefined) return;
    while (this.#backlog.length > 0) {
      const f = this.#backlog[0];
      if (f === undefined) break;
      const r = this.#deliver(ctx, f);
      if (r === "no-buffer") break;
      this.#backlog.shift();
    }
  }

  #deliver(ctx: ActivateContext, frame: Uint8Array): "delivered" | "no-buffer" | "dropped" {
    const pairs = this.#usablePairs();
    const rxIndex = pairs > 1 ? 2 * (flowHash(frame) % pairs) : 0;
    const q = ctx.queues[rxIndex];
    if (q === undefined) {
      this.stats.rxDroppedNotReady++;
      return "dropped";
    }
    const c = q.pop();
    if (c === undefined) return "no-buffer";
    const total = VIRTIO_NET_HDR_LEN + frame.length;
    if (c.writableLen < total) {
      // Without VIRTIO_NET_F_MRG_RXBUF a frame must fit one buffer (§5.1.6.3.1); the buffer
      // goes back unused.
      this.stats.rxDroppedTooBig++;
      q.pushUsed(c.head, 0);
      ctx.signalUsed(rxIndex);
      return "dropped";
    }
    q.writeChain(c, RX_HDR);
    q.writeChain(c, frame, VIRTIO_NET_HDR_LEN);
    q.pushUsed(c.head, total);
    ctx.signalUsed(rxIndex);
    this.stats.rxFrames++;
    this.stats.rxBytes += frame.length;
    return "delivered";
  }

  #accept(frame: Uint8Array): boolean {
    // VLAN filter (§5.1.6.5.3) on 802.1Q-tagged frames.
    if (this.#vlanFilter && frame[12] === 0x81 && frame[13] === 0x00 && frame.length >= 16) {
      const vid = (((frame[14] ?? 0) << 8) | (frame[15] ?? 0)) & 0xfff;
      if (this.#vlans[vid] !== 1) return false;
    }
    if (this.#promisc) return true;
    const dst = macNum(frame);
    if (dst === BROADCAST) return true;
    if (((frame[0] ?? 0) & 1) !== 0) return this.#allmulti || this.#mcOverflow || this.#mc.has(dst);
    return dst === this.#macNum || this.#ucOverflow || this.#uc.has(dst);
  }

  // ------------------------------------------------------------------ control queue (§5.1.6.5)

  #serveControl(ctx: ActivateContext): void {
    const idx = this.#ctrlIndex();
    const q = ctx.queues[idx];
    if (q === undefined) return;
    let n = 0;
    for (let c = q.pop(); c !== undefined; c = q.pop()) {
      const cmd = q.readChain(c);
      const ack = this.#control(ctx.features, cmd);
      this.stats.ctrlCommands++;
      if (ack !== VIRTIO_NET_OK) this.stats.ctrlErrors++;
      const written = q.writeChain(c, Uint8Array.of(ack));
      q.addUsed(c.head, written);
      n++;
    }
    if (n > 0) {
      q.publishUsed();
      ctx.signalUsed(idx);
    }
  }

  #control(features: bigint, cmd: Uint8Array): number {
    const has = (b: number): boolean => (features & bit(b)) !== 0n;
    if (cmd.length < 2) return VIRTIO_NET_ERR;
    const cls = cmd[0] ?? 0;
    const op = cmd[1] ?? 0;
    const data = cmd.subarray(2);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let req: NetControlRequest | undefined;
    if (cls === VIRTIO_NET_CTRL_RX && has(VIRTIO_NET_F_CTRL_RX) && data.length >= 1) {
      // PROMISC and ALLMULTI; the other modes need VIRTIO_NET_F_CTRL_RX_EXTRA, not offered.
      const on = (data[0] ?? 0) !== 0;
      if (op === VIRTIO_NET_CTRL_RX_PROMISC) req = { kind: "rx-mode", promisc: on, allmulti: this.#allmulti };
      else if (op === VIRTIO_NET_CTRL_RX_ALLMULTI) req = { kind: "rx-mode", promisc: this.#promisc, allmulti: on };
    } else if (cls === VIRTIO_NET_CTRL_MAC) {
      if (op === VIRTIO_NET_CTRL_MAC_ADDR_SET && has(VIRTIO_NET_F_CTRL_MAC_ADDR) && data.length >= 6) {
        req = { kind: "mac-address", mac: data.slice(0, 6) };
      } else if (op === VIRTIO_NET_CTRL_MAC_TABLE_SET && has(VIRTIO_NET_F_CTRL_RX)) {
        // Two struct virtio_net_ctrl_mac { le32 entries; u8 macs[entries][6]; }: unicast, multicast.
        if (data.length < 4) return VIRTIO_NET_ERR;
        const nu = dv.getUint32(0, true);
        if (nu > (data.length - 4) / 6) return VIRTIO_NET_ERR;
        const mOff = 4 + nu * 6;
        if (data.length < mOff + 4) return VIRTIO_NET_ERR;
        const nm = dv.getUint32(mOff, true);
        if (nm > (data.length - mOff - 4) / 6) return VIRTIO_NET_ERR;
        const unicast: Uint8Array[] = [];
        const multicast: Uint8Array[] = [];
        for (let i = 0; i < nu; i++) unicast.push(data.slice(4 + i * 6, 10 + i * 6));
        for (let i = 0; i < nm; i++) multicast.push(data.slice(mOff + 4 + i * 6, mOff + 10 + i * 6));
        req = { kind: "mac-table", unicast, multicast };
      }
    } else if (cls === VIRTIO_NET_CTRL_VLAN && has(VIRTIO_NET_F_CTRL_VLAN) && data.length >= 2) {
      const vid = dv.getUint16(0, true);
      if (vid >= 4096) return VIRTIO_NET_ERR;
      if (op === VIRTIO_NET_CTRL_VLAN_ADD) req = { kind: "vlan", vid, add: true };
      else if (op === VIRTIO_NET_CTRL_VLAN_DEL) req = { kind: "vlan", vid, add: false };
    } else if (cls === VIRTIO_NET_CTRL_MQ && op === VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET && has(VIRTIO_NET_F_MQ) && data.length >= 2) {
      const pairs = dv.getUint16(0, true);
      // §5.1.6.5.6.1: the device MUST reject a value outside 1..max_virtqueue_pairs.
      if (pairs < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > this.maxPairs) return VIRTIO_NET_ERR;
      req = { kind: "queue-pairs", pairs };
    }
    if (req === undefined) return VIRTIO_NET_ERR;
    try {
      if (this.controlPolicy !== undefined && !this.controlPolicy(req)) return VIRTIO_NET_ERR;
    } catch (e) {
      // A host policy that fails refuses the request; the guest sees VIRTIO_NET_ERR.
      if (e instanceof VpfError) return VIRTIO_NET_ERR;
      throw e;
    }
    this.#apply(req);
    for (const l of this.#controlListeners) l(req);
    return VIRTIO_NET_OK;
  }

  #apply(req: NetControlRequest): void {
    switch (req.kind) {
      case "rx-mode":
        this.#promisc = req.promisc;
        this.#allmulti = req.allmulti;
        return;
      case "mac-address":
        this.#mac.set(req.mac);
        this.#macNum = macNum(this.#mac);
        // The MAC in the configuration space follows (§5.1.4: mac is the device's address).
        this.#hooks?.configChanged();
        return;
      case "mac-table":
        this.#uc = new Set(req.unicast.slice(0, MAC_TABLE_ENTRIES).map((m) => macNum(m)));
        this.#mc = new Set(req.multicast.slice(0, MAC_TABLE_ENTRIES).map((m) => macNum(m)));
        this.#ucOverflow = req.unicast.length > MAC_TABLE_ENTRIES;
        this.#mcOverflow = req.multicast.length > MAC_TABLE_ENTRIES;
        return;
      case "vlan":
        this.#vlans[req.vid] = req.add ? 1 : 0;
        return;
      case "queue-pairs":
        this.#pairs = req.pairs;
        return;
    }
  }
}
