import { macKeyIsMulticast } from "../wire/index.js";

export type PortKind = "uplink" | "pf" | "vf";

/**
 * Direction of a captured frame relative to the function behind the port: "tx" is a frame the
 * function (or, on the uplink, the NIC) sends, "rx" one it receives. On the uplink, "rx" is a
 * frame arriving from the wire and "tx" one leaving onto it.
 */
export type TapDirection = "rx" | "tx";

/** Receives a copy of every frame crossing a port, as that port's side sees it. */
export interface FrameTap {
  capture(frame: Uint8Array, direction: TapDirection, timeNs: bigint): void;
}

/**
 * Per-port counters. For a VF these are exactly the IFLA_VF_STATS counters (rtnetlink, see
 * if_link.h): rx is what the eswitch delivered to the function, tx what the function sent;
 * broadcast and multicast count received frames; rx_dropped counts frames the eswitch meant for
 * the function but could not hand over (link down, no receive buffer), tx_dropped frames the
 * function sent that the eswitch refused (spoof check, link down, VLAN policy, runt).
 * Counters are numbers (exact to 2^53); reporting turns them into u64 bigints.
 */
export class PortCounters {
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  broadcast = 0;
  multicast = 0;
  rxDropped = 0;
  txDropped = 0;

  snapshot(): PortStats {
    return {
      rxPackets: BigInt(this.rxPackets),
      txPackets: BigInt(this.txPackets),
      rxBytes: BigInt(this.rxBytes),
      txBytes: BigInt(this.txBytes),
      broadcast: BigInt(this.broadcast),
      multicast: BigInt(this.multicast),
      rxDropped: BigInt(this.rxDropped),
      txDropped: BigInt(this.txDropped),
    };
  }

  reset(): void {
    this.rxPackets = this.rxBytes = this.txPackets = this.txBytes = 0;
    this.broadcast = this.multicast = this.rxDropped = this.txDropped = 0;
  }
}

/** IFLA_VF_STATS as u64 values, in the order if_link.h numbers them. */
export interface PortStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  broadcast: bigint;
  multicast: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

/** A VLAN the eswitch pushes on frames from a port and pops towards it (VST). */
export interface VstTag {
  readonly vid: number;
  readonly pcp: number;
  /** 0x8100 (802.1Q) or 0x88a8 (802.1ad). */
  readonly tpid: number;
  /**
   * Two-tag VST (a vpf extension): a C-tag (0x8100) pushed under the 802.1ad S-tag above, so
   * frames from the port leave with S-tag then C-tag and frames towards it must carry both.
   * Only with tpid 0x88a8; absent for ordinary one-tag VST.
   */
  readonly inner?: { readonly vid: number; readonly pcp: number };
}

/**
 * The eswitch's forwarding domain of a frame: 0 for untagged or priority-tagged frames, the VID
 * for an outer 802.1Q C-tag, 4096 + VID for an outer 802.1ad S-tag. A VST port belongs to one
 * domain; trunk ports (uplink, PF, VFs without VST) belong to all. A two-tag VST port's domain
 * is the (S-VID, C-VID) pair, which the eswitch numbers itself (Eswitch.rebuild); this function
 * gives the S-VLAN domain such a pair lies in.
 */
export function vstDomain(tag: VstTag): number {
  return (tag.tpid === 0x88a8 ? 4096 : 0) + tag.vid;
}

/** One eswitch port: the uplink, the PF or a VF. */
export abstract class EswitchPort {
  abstract readonly kind: PortKind;
  abstract readonly name: string;
  readonly counters = new PortCounters();
  readonly taps: FrameTap[] = [];
  /** Primary unicast MAC as a 48-bit key; 0 = none. */
  macKey = 0;
  /** Promiscuous / all-multicast as requested by the function's driver (VFs also need trust). */
  promiscRequested = false;
  allmultiRequested = false;
  /** Extra unicast addresses the driver programmed (virtio MAC table, a netdev's UC list). */
  unicastFilter: Set<number> | null = null;
  /** Multicast groups the driver programmed; null = no filter programmed, all multicast accepted. */
  multicastFilter: Set<number> | null = null;

  /** The VST tag, or null for a trunk port. */
  abstract get vst(): VstTag | null;
  abstract get linkUp(): boolean;
  /** Whether promisc/allmulti requests take effect (VFs: only when trusted). */
  protected get privileged(): boolean {
    return true;
  }

  /** Receive filter (what the function's MAC filter lets in). */
  accepts(dstKey: number): boolean {
    if (this.promiscRequested && this.privileged) return true;
    if (!macKeyIsMulticast(dstKey)) return dstKey === this.macKey || (this.unicastFilter !== null && this.unicastFilter.has(dstKey));
    if (dstKey === 0xffffffffffff) return true;
    if (this.allmultiRequested && this.privileged) return true;
    return this.multicastFilter === null || this.multicastFilter.has(dstKey);
  }

  /** Accepts unknown unicast (flooded): only a promiscuous function or the uplink. */
  acceptsFlood(): boolean {
    return this.promiscRequested && this.privileged;
  }

  /** Hands a frame to the function behind the port (after VST pop); false when it could not. */
  abstract egress(frame: Uint8Array): void;

  protected tap(frame: Uint8Array, dir: TapDirection, nowNs: bigint): void {
    for (const t of this.taps) t.capture(frame.slice(), dir, nowNs);
  }

  /** Adds a tap; returns a function that removes it. */
  addTap(tap: FrameTap): () => void {
    this.taps.push(tap);
    return () => {
      const i = this.taps.indexOf(tap);
      if (i >= 0) this.taps.splice(i, 1);
    };
  }

  protected countRx(frame: Uint8Array): void {
    const c = this.counters;
    c.rxPackets++;
    c.rxBytes += frame.length;
    if (frame[0]! & 1) {
      if (frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff) c.broadcast++;
      else c.multicast++;
    }
  }
}
