import type { VirtualClock } from "../base/index.js";
import { macKeyAt, macKeyIsMulticast } from "../wire/index.js";
import { NicError } from "./errors.js";
import type { Eswitch } from "./eswitch.js";
import type { PciAddress } from "./pci-address.js";
import { EswitchPort } from "./port.js";
import type { VstTag } from "./port.js";
import { TokenBucket, Wakeup } from "./shaper.js";
import type { TxArbiter } from "./arbiter.js";

/** IFLA_VF_LINK_STATE values (if_link.h). */
export const VfLinkState = { AUTO: 0, ENABLE: 1, DISABLE: 2 } as const;
export type VfLinkState = (typeof VfLinkState)[keyof typeof VfLinkState];

export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

/**
 * Where a VF's received frames go: the driver bound to the VF (a host netdev in tests, or the
 * NIC's own virtio engine serving a vDPA device's rings). `receive` gets a frame that is valid
 * only during the call and returns false when it has no buffer for it (counted as rx_dropped).
 */
export interface VfReceiver {
  receive(frame: Uint8Array): boolean;
}

/**
 * A source of frames for a VF to transmit: the driver's TX queue. `pull` takes at most one frame
 * and hands it to `vf.transmit`; it returns false when it had none. The VF pulls only while its
 * shaper allows, so a rate-limited VF leaves frames in the queue (in the ring, for vDPA), as a
 * hardware shaper does.
 */
export interface VfTxSource {
  pull(): boolean;
  /** Called when the VF stops pulling for now (queue empty or shaper out of credit): return used buffers. */
  flush?(): void;
}

/** Extra unicast addresses one VF may program (the eswitch's FDB is large; a bound keeps it so). */
export const VF_UC_LIST_MAX = 4096;

/**
 * Size of a VF's scratch buffers for VST push and pop: a jumbo frame (9216 B) plus two tags.
 * Frames are valid only during the call that carries them (the eswitch reads, receivers and
 * taps copy), so the tagged or untagged copy is built in a buffer the VF reuses instead of a new
 * Uint8Array per frame: V8 keeps typed arrays above 64 bytes off the heap, and allocating one
 * per frame costs more than the whole forwarding decision.
 */
const VST_SCRATCH_BYTES = 9216 + 8;

/** Bound on frames queued through `send` (the host-netdev path) before tx_dropped counts. */
export const VF_SEND_QUEUE_LIMIT = 1024;

/**
 * One SR-IOV virtual function as the eswitch sees it: its vport. Holds the administrative
 * configuration the PF driver sets (the ndo_set_vf_* operations: MAC, VLAN/QoS/protocol, spoof
 * check, trust, link state, rates, RSS query), the receive filter the VF's driver requests, the
 * transmit shaper and the IFLA_VF_STATS counters.
 */
export class VirtualFunction extends EswitchPort {
  readonly kind = "vf" as const;
  readonly name: string;
  vlan = 0;
  qos = 0;
  vlanProto: number = ETH_P_8021Q;
  /** Two-tag VST (vpf extension): the C-tag under the 802.1ad S-tag; 0 = none. */
  innerVlan = 0;
  innerQos = 0;
  spoofchk = false;
  trusted = false;
  linkState: VfLinkState = VfLinkState.AUTO;
  minTxRate = 0;
  maxTxRate = 0;
  rssQueryEn = false;
  /** The MAC was set by the administrator (ip link set ... vf N mac): the VF may not change it unless trusted. */
  adminMac = false;
  #vst: VstTag | null = null;
  /** VST scratch buffers (allocated on first use) and whether a call up the stack holds them. */
  #txScratch: Uint8Array | null = null;
  #rxScratch: Uint8Array | null = null;
  #txScratchBusy = false;
  #rxScratchBusy = false;
  #receiver: VfReceiver | null = null;
  readonly #shaper: TokenBucket;
  readonly #minBucket: TokenBucket;
  readonly #wakeup: Wakeup;
  readonly #sendQueue: Uint8Array[] = [];
  readonly #sources: VfTxSource[] = [];
  #pumping = false;
  #repump = false;
  #lastLinkUp: boolean;
  readonly #linkListeners: ((up: boolean) => void)[] = [];
  readonly #queueSource: VfTxSource;

  constructor(
    readonly portIndex: number,
    readonly index: number,
    readonly pciAddress: PciAddress,
    private readonly clock: VirtualClock,
    private readonly eswitch: Eswitch,
    private readonly uplinkUp: () => boolean,
    private readonly arbiter: TxArbiter,
  ) {
    super();
    this.name = `pf${portIndex}vf${index}`;
    this.#shaper = new TokenBucket(clock);
    this.#minBucket = new TokenBucket(clock);
    this.#wakeup = new Wakeup(clock, () => this.pump());
    this.#lastLinkUp = this.linkUp;
    this.#queueSource = {
      pull: () => {
        const f = this.#sendQueue.shift();
        if (f === undefined) return false;
        this.transmit(f);
        return true;
      },
    };
    this.#sources.push(this.#queueSource);
  }

  get vst(): VstTag | null {
    return this.#vst;
  }

  /** Effective link: auto follows the uplink, enable/disable force it (IFLA_VF_LINK_STATE). */
  get linkUp(): boolean {
    return this.linkState === VfLinkState.ENABLE || (this.linkState === VfLinkState.AUTO && this.uplinkUp());
  }

  protected override get privileged(): boolean {
    return this.trusted;
  }

  /** Below the min_tx_rate guarantee (the arbiter serves such VFs first). */
  get belowMinRate(): boolean {
    return this.#minBucket.active && this.#minBucket.ready();
  }

  // ---- administrative configuration (the PF driver's ndo_set_vf_* operations) ----

  /** Sets the VF's MAC (vport context). `admin` marks it as set by the administrator. */
  setMac(macKey: number, admin: boolean): void {
    if (!Number.isInteger(macKey) || macKey < 0 || macKey > 0xffffffffffff || macKeyIsMulticast(macKey)) {
      throw new NicError("NIC_BAD_ARGUMENT", "VF MAC must be a unicast 48-bit address", { vf: this.index, macKey });
    }
    this.macKey = macKey;
    this.adminMac = admin && macKey !== 0;
    this.eswitch.rebuild();
  }

  /**
   * VST VLAN: vlan 0 and qos 0 turn it off (the VF may then tag itself, VGT). `inner` (a vpf
   * extension, "two-tag VST") adds a C-tag (VID 1..4094, PCP 0..7) under an 802.1ad S-tag with
   * a VID of 1..4094: the VF's frames get the C-tag, then the S-tag pushed, and only frames
   * carrying exactly that S-VID and C-VID reach it, with both tags popped. An inner VID of 0
   * with PCP 0 means no inner tag. Every call replaces the whole VLAN setting.
   */
  setVlan(vlan: number, qos: number, proto: number, inner?: { vlan: number; qos: number } | null): void {
    if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095 || !Number.isInteger(qos) || qos < 0 || qos > 7 || (proto !== ETH_P_8021Q && proto !== ETH_P_8021AD)) {
      throw new NicError("NIC_BAD_ARGUMENT", "VF VLAN needs vlan 0..4095, qos 0..7, proto 0x8100 or 0x88a8", { vf: this.index, vlan, qos, proto });
    }
    const iv = inner?.vlan ?? 0;
    const iq = inner?.qos ?? 0;
    if (!Number.isInteger(iv) || iv < 0 || iv > 4094 || !Number.isInteger(iq) || iq < 0 || iq > 7 || (iv === 0 && iq !== 0)) {
      throw new NicError("NIC_BAD_ARGUMENT", "VF inner VLAN needs vlan 1..4094 (0 = none, then qos 0) and qos 0..7", { vf: this.index, inner: { vlan: iv, qos: iq } });
    }
    if (iv !== 0 && (proto !== ETH_P_8021AD || vlan < 1 || vlan > 4094)) {
      throw new NicError("NIC_BAD_ARGUMENT", "an inner VLAN needs an 802.1ad outer tag with VID 1..4094", { vf: this.index, vlan, proto, inner: { vlan: iv, qos: iq } });
    }
    this.vlan = vlan;
    this.qos = qos;
    this.vlanProto = proto;
    this.innerVlan = iv;
    this.innerQos = iq;
    // As mlx5 does: VST is on when either the VID or the priority is non-zero.
    this.#vst = vlan !== 0 || qos !== 0 ? (iv !== 0 ? { vid: vlan, pcp: qos, tpid: proto, inner: { vid: iv, pcp: iq } } : { vid: vlan, pcp: qos, tpid: proto }) : null;
    this.eswitch.rebuild();
  }

  setSpoofchk(on: boolean): void {
    this.spoofchk = on;
  }

  setTrust(on: boolean): void {
    this.trusted = on;
  }

  setRssQueryEn(on: boolean): void {
    this.rssQueryEn = on;
  }

  setLinkState(state: VfLinkState): void {
    if (state !== 0 && state !== 1 && state !== 2) throw new NicError("NIC_BAD_ARGUMENT", `link state ${String(state)} is not 0, 1 or 2`, { vf: this.index, state });
    this.linkState = state;
    this.checkLink();
  }

  /**
   * Rates in Mbit/s, 0 = none. max_tx_rate is this VF's shaper; min_tx_rate is a guarantee the
   * port's TxArbiter honours when the VFs together would exceed the line rate.
   */
  setRate(minMbps: number, maxMbps: number): void {
    for (const v of [minMbps, maxMbps]) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NicError("NIC_BAD_ARGUMENT", `rate ${v} is not a u32`, { vf: this.index });
    }
    this.minTxRate = minMbps;
    this.maxTxRate = maxMbps;
    this.#shaper.setRateMbps(maxMbps);
    this.#minBucket.setRateMbps(minMbps);
    this.arbiter.setMinRate(this, minMbps > 0);
    this.pump();
  }

  // ---- the VF's own driver ----

  /**
   * The VF driver asks for a new MAC (virtio-net VIRTIO_NET_CTRL_MAC_ADDR_SET, or a VF netdev's
   * ndo_set_mac_address). Refused when the administrator set the MAC and the VF is not trusted,
   * and for group addresses. Returns whether it took effect.
   */
  driverSetMac(macKey: number): boolean {
    if (!Number.isInteger(macKey) || macKey <= 0 || macKey > 0xffffffffffff || macKeyIsMulticast(macKey)) return false;
    if (this.adminMac && !this.trusted && macKey !== this.macKey) return false;
    this.macKey = macKey;
    this.eswitch.rebuild();
    return true;
  }

  /**
   * Receive mode the VF driver requests; promisc and allmulti take effect only while trusted.
   * `unicast` replaces the extra unicast addresses (at most VF_UC_LIST_MAX, group addresses
   * ignored); they enter the FDB but never displace another function's primary MAC.
   */
  setRxMode(mode: { promisc?: boolean; allmulti?: boolean; multicast?: readonly number[] | null; unicast?: readonly number[] }): boolean {
    if (mode.unicast !== undefined && mode.unicast.length > VF_UC_LIST_MAX) return false;
    if (mode.promisc !== undefined) this.promiscRequested = mode.promisc;
    if (mode.allmulti !== undefined) this.allmultiRequested = mode.allmulti;
    if (mode.multicast !== undefined) this.multicastFilter = mode.multicast === null ? null : new Set(mode.multicast);
    if (mode.unicast !== undefined) {
      const uc = mode.unicast.filter((k) => Number.isInteger(k) && k > 0 && k <= 0xffffffffffff && !macKeyIsMulticast(k));
      this.unicastFilter = uc.length === 0 ? null : new Set(uc);
      this.eswitch.rebuild();
    }
    return true;
  }

  /** Binds the receive side of the VF's driver; null unbinds it. */
  setReceiver(r: VfReceiver | null): void {
    this.#receiver = r;
  }

  get receiver(): VfReceiver | null {
    return this.#receiver;
  }

  addTxSource(s: VfTxSource): void {
    this.#sources.push(s);
  }

  removeTxSource(s: VfTxSource): void {
    const i = this.#sources.indexOf(s);
    if (i >= 0) this.#sources.splice(i, 1);
  }

  /** Listens for changes of the effective link (virtio config-change interrupts come from here). */
  onLinkChange(listener: (up: boolean) => void): () => void {
    this.#linkListeners.push(listener);
    return () => {
      const i = this.#linkListeners.indexOf(listener);
      if (i >= 0) this.#linkListeners.splice(i, 1);
    };
  }

  /** Re-evaluates the effective link and tells listeners when it changed. */
  checkLink(): void {
    const up = this.linkUp;
    if (up === this.#lastLinkUp) return;
    this.#lastLinkUp = up;
    for (const l of [...this.#linkListeners]) l(up);
  }

  /**
   * The host-netdev transmit path (a VF bound to a host driver, and tests): queues a copy and
   * lets the shaper send it; beyond VF_SEND_QUEUE_LIMIT queued frames the frame is dropped.
   */
  send(frame: Uint8Array): void {
    if (this.#sendQueue.length >= VF_SEND_QUEUE_LIMIT) {
      this.counters.txDropped++;
      return;
    }
    this.#sendQueue.push(frame.slice());
    this.pump();
  }

  /** Frames waiting in the send queue (shaped). */
  get queuedFrames(): number {
    return this.#sendQueue.length;
  }

  /**
   * Pulls frames from the TX sources, one per source in turn, while the shaper allows; when it
   * does not, schedules itself on the virtual clock for when it will. Re-entrant calls (a
   * delivery that runs a receiver which kicks this VF) fold into the running loop.
   */
  pump(): void {
    if (this.#pumping) {
      this.#repump = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#repump = false;
        let progress = true;
        while (progress) {
          progress = false;
          for (let i = 0; i < this.#sources.length; i++) {
            if (!this.#shaper.ready()) {
              this.#wakeup.schedule(this.#shaper.nsUntilReady());
              return;
            }
            if (!this.arbiter.admit(this)) return;
            if (this.#sources[i]!.pull()) progress = true;
          }
        }
      } while (this.#repump);
    } finally {
      this.#pumping = false;
      for (const s of this.#sources) s.flush?.();
    }
  }

  /**
   * Ingress policy for one frame the VF sends (valid only during the call): link, runt, spoof
   * check, VST push; then the eswitch forwards it. Tagging rules: with 802.1Q VST the VF may not
   * send tagged frames (dropped); with 802.1ad VST its 802.1Q-tagged frames become QinQ, but an
   * S-tag from the VF is dropped, so a tenant cannot leave its service VLAN. With two-tag VST
   * the VF may send no tagged frame at all (it would leave its C-VLAN), and C-tag then S-tag are
   * pushed (IEEE 802.1Q-2018 §6.9: the S-tag is the outermost).
   */
  transmit(frame: Uint8Array): void {
    const c = this.counters;
    const len = frame.length;
    if (!this.linkUp || len < 14) {
      c.txDropped++;
      return;
    }
    if (this.spoofchk && this.macKey !== 0 && macKeyAt(frame, 6) !== this.macKey) {
      c.txDropped++;
      return;
    }
    const vst = this.#vst;
    let out = frame;
    let scratch = false;
    if (vst !== null) {
      const outer = (frame[12]! << 8) | frame[13]!;
      const inner = vst.inner;
      if (outer === ETH_P_8021AD || outer === 0x9100 || (outer === ETH_P_8021Q && (vst.tpid === ETH_P_8021Q || inner !== undefined))) {
        c.txDropped++;
        return;
      }
      const push = inner === undefined ? 4 : 8;
      const n = len + push;
      // A re-entrant transmit (a receiver sending on this VF while our frame is still being
      // forwarded) gets a fresh buffer: the scratch one is in use up the stack.
      if (this.#txScratchBusy || n > VST_SCRATCH_BYTES) out = new Uint8Array(n);
      else {
        out = (this.#txScratch ??= new Uint8Array(VST_SCRATCH_BYTES)).subarray(0, n);
        scratch = true;
      }
      for (let i = 0; i < 12; i++) out[i] = frame[i]!;
      out[12] = vst.tpid >>> 8;
      out[13] = vst.tpid & 0xff;
      out[14] = (vst.pcp << 5) | (vst.vid >>> 8);
      out[15] = vst.vid & 0xff;
      if (inner !== undefined) {
        out[16] = 0x81;
        out[17] = 0x00;
        out[18] = (inner.pcp << 5) | (inner.vid >>> 8);
        out[19] = inner.vid & 0xff;
      }
      out.set(frame.subarray(12), 12 + push);
    }
    this.#shaper.consume(len);
    this.#minBucket.consume(len);
    this.arbiter.consume(len);
    c.txPackets++;
    c.txBytes += len;
    if (this.taps.length > 0) this.tap(frame, "tx", this.clock.now());
    if (!scratch) {
      this.eswitch.forward(this, out);
      return;
    }
    this.#txScratchBusy = true;
    try {
      this.eswitch.forward(this, out);
    } finally {
      this.#txScratchBusy = false;
    }
  }

  /** Eswitch egress towards the VF: link, VST pop, the driver's receive buffer. */
  egress(frame: Uint8Array): void {
    const c = this.counters;
    const r = this.#receiver;
    if (r === null || !this.linkUp) {
      c.rxDropped++;
      return;
    }
    let f = frame;
    const vst = this.#vst;
    let pop = 0;
    if (vst !== null) {
      const inner = vst.inner;
      if (inner === undefined) {
        if (frame.length >= 18 && ((frame[12]! << 8) | frame[13]!) === vst.tpid) pop = 4;
      } else {
        // Two-tag VST: exactly this S-VID over this C-VID (PCP and DEI may differ), else dropped.
        if (
          frame.length < 22 ||
          ((frame[12]! << 8) | frame[13]!) !== ETH_P_8021AD ||
          (((frame[14]! << 8) | frame[15]!) & 0xfff) !== vst.vid ||
          ((frame[16]! << 8) | frame[17]!) !== ETH_P_8021Q ||
          (((frame[18]! << 8) | frame[19]!) & 0xfff) !== inner.vid
        ) {
          c.rxDropped++;
          return;
        }
        pop = 8;
      }
    }
    if (pop !== 0) {
      const n = frame.length - pop;
      // As on transmit: a nested delivery to this VF (its receiver's own sends coming back)
      // must not overwrite the frame the outer delivery is still handing over.
      const scratch = !this.#rxScratchBusy && n <= VST_SCRATCH_BYTES;
      f = scratch ? (this.#rxScratch ??= new Uint8Array(VST_SCRATCH_BYTES)).subarray(0, n) : new Uint8Array(n);
      for (let i = 0; i < 12; i++) f[i] = frame[i]!;
      f.set(frame.subarray(12 + pop), 12);
      if (!scratch) {
        this.#deliver(r, f);
        return;
      }
      this.#rxScratchBusy = true;
      try {
        this.#deliver(r, f);
      } finally {
        this.#rxScratchBusy = false;
      }
      return;
    }
    this.#deliver(r, f);
  }

  #deliver(r: VfReceiver, f: Uint8Array): void {
    const c = this.counters;
    if (!r.receive(f)) {
      c.rxDropped++;
      return;
    }
    this.countRx(f);
    if (this.taps.length > 0) this.tap(f, "rx", this.clock.now());
  }

  /** Back to the power-on state (VFs disabled and enabled again start clean, as in netdevsim). */
  destroy(): void {
    this.#wakeup.cancel();
    this.arbiter.remove(this);
    this.#sendQueue.length = 0;
    this.#sources.length = 0;
    this.#sources.push(this.#queueSource);
    this.#receiver = null;
    this.#linkListeners.length = 0;
    this.unicastFilter = null;
  }
}
