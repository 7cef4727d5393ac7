import { FdbTable } from "./fdb.js";
import type { EswitchPort, VstTag } from "./port.js";
import { vstDomain } from "./port.js";

/** FDB domain of trunk ports (beyond the 8192 tag domains). */
const TRUNK_DOMAIN = 8192;
/**
 * First FDB domain number for (S-VID, C-VID) pairs of two-tag VST ports, numbered at rebuild in
 * port order. The FDB keeps a domain in 16 bits, and a port holds one pair, so at most
 * 65536 - 8193 pairs exist, far above any port's VF count.
 */
const PAIR_DOMAIN_BASE = TRUNK_DOMAIN + 1;

/** Eswitch-level counters of one NIC port (beyond the per-function counters). */
export class EswitchCounters {
  /** Unicast frames whose destination was found in the FDB. */
  fdbHits = 0;
  /** Unicast frames with an unknown destination (sent to the uplink and promiscuous functions). */
  unknownUnicast = 0;
  /** Broadcast and multicast frames flooded in their VLAN. */
  flooded = 0;
  /** Frames dropped because they are too short to carry an Ethernet (and tag) header. */
  runts = 0;
  /** Frames addressed back to the port they came from (a VEB does not hairpin). */
  hairpin = 0;
}

/**
 * The legacy-mode embedded switch of one NIC port: a VEB (IEEE 802.1Qbg §40 "virtual Ethernet
 * bridge") among the uplink, the PF and the VFs. It does not learn: as in mlx5's legacy mode
 * (MPFS, the multi-physical-function switch), the FDB holds the MACs the functions own, per
 * forwarding domain (see vstDomain). A unicast frame goes to the FDB entry for its destination in
 * its domain; an unknown destination goes to the uplink and to promiscuous functions in the
 * domain; broadcast and multicast go to every port in the domain whose receive filter accepts them.
 * Frames never go back out of the port they came in on.
 */
export class Eswitch {
  readonly counters = new EswitchCounters();
  /** FDB: (domain, MAC) → index into #ports. Trunk ports (PF, VFs without VST) sit in TRUNK_DOMAIN. */
  #fdb = new FdbTable();
  #vstMembers = new Map<number, EswitchPort[]>();
  /** (S-VID << 12 | C-VID) → pair domain, for the pairs some two-tag VST port uses. */
  #pairDomains = new Map<number, number>();
  #trunkMembers: EswitchPort[] = [];
  #ports: EswitchPort[] = [];

  /** Replaces the set of ports (uplink first) and rebuilds the FDB. */
  setPorts(ports: EswitchPort[]): void {
    this.#ports = [...ports];
    this.rebuild();
  }

  get ports(): readonly EswitchPort[] {
    return this.#ports;
  }

  /**
   * Rebuilds FDB and flood lists from the ports' MACs and VLAN settings; called on every
   * configuration change (rare next to frames). When two functions own the same MAC in one
   * domain, the later port wins: host policy (src/host, vmm) keeps MACs unique.
   */
  rebuild(): void {
    this.#fdb.clear();
    this.#vstMembers.clear();
    this.#pairDomains.clear();
    this.#trunkMembers = [];
    for (const p of this.#ports) {
      const vst = p.vst;
      if (vst === null) this.#trunkMembers.push(p);
      else {
        const d = this.#domainOf(vst);
        let members = this.#vstMembers.get(d);
        if (members === undefined) this.#vstMembers.set(d, (members = []));
        members.push(p);
      }
    }
    // Extra unicast addresses first, primary MACs last: a driver's address list never takes a
    // MAC away from the function that owns it as its primary address.
    for (const primary of [false, true]) {
      this.#ports.forEach((p, idx) => {
        const keys = primary ? (p.macKey !== 0 ? [p.macKey] : []) : p.unicastFilter ?? [];
        const vst = p.vst;
        const d = vst === null ? TRUNK_DOMAIN : this.#domainOf(vst);
        for (const k of keys) this.#fdb.set(d, Math.floor(k / 2 ** 32), k % 2 ** 32, idx);
      });
    }
  }

  /** A VST port's domain; a two-tag port's (S-VID, C-VID) pair gets a number on first sight. */
  #domainOf(vst: VstTag): number {
    const inner = vst.inner;
    if (inner === undefined) return vstDomain(vst);
    const key = (vst.vid << 12) | inner.vid;
    let d = this.#pairDomains.get(key);
    if (d === undefined) this.#pairDomains.set(key, (d = PAIR_DOMAIN_BASE + this.#pairDomains.size));
    return d;
  }

  /** Number of (domain, MAC) entries in the FDB. */
  get fdbSize(): number {
    return this.#fdb.size;
  }

  /**
   * Forwards a frame that entered through `src` (already through the port's ingress policy:
   * spoof check, VST push). The frame is only read; ports copy what they keep.
   *
   * A frame with an S-tag over a C-tag whose (S-VID, C-VID) pair some two-tag VST port uses
   * belongs to that pair's domain, which lies inside the S-VLAN's: unicast is looked up in the
   * pair, then the S-VLAN (one-tag 802.1ad ports, C-VLAN trunks of their service VLAN), then the
   * trunks; flooding reaches the pair's ports, the S-VLAN's one-tag ports and the trunks, never
   * another pair. Without two-tag ports the path is the one-tag path (one size test more).
   */
  forward(src: EswitchPort, frame: Uint8Array): void {
    const len = frame.length;
    if (len < 14) {
      this.counters.runts++;
      return;
    }
    const outer = (frame[12]! << 8) | frame[13]!;
    let domain = 0;
    if (outer === 0x8100 || outer === 0x88a8) {
      if (len < 18) {
        this.counters.runts++;
        return;
      }
      domain = (((frame[14]! << 8) | frame[15]!) & 0xfff) + (outer === 0x88a8 ? 4096 : 0);
    }
    let pair = -1;
    if (outer === 0x88a8 && this.#pairDomains.size !== 0 && len >= 22 && frame[16] === 0x81 && frame[17] === 0x00) {
      pair = this.#pairDomains.get(((domain - 4096) << 12) | (((frame[18]! << 8) | frame[19]!) & 0xfff)) ?? -1;
    }
    const hi = (frame[0]! << 8) | frame[1]!;
    const lo = (frame[2]! << 24) | (frame[3]! << 16) | (frame[4]! << 8) | frame[5]!;
    const dst = hi * 2 ** 32 + (lo >>> 0);
    if ((hi & 0x100) === 0) {
      let idx = pair < 0 ? -1 : this.#fdb.get(pair, hi, lo);
      if (idx < 0) idx = this.#fdb.get(domain, hi, lo);
      if (idx < 0) idx = this.#fdb.get(TRUNK_DOMAIN, hi, lo);
      const target = idx < 0 ? undefined : this.#ports[idx];
      if (target !== undefined) {
        if (target === src) {
          this.counters.hairpin++;
          return;
        }
        this.counters.fdbHits++;
        target.egress(frame);
        return;
      }
      this.counters.unknownUnicast++;
      this.#flood(src, frame, domain, pair, dst, true);
      return;
    }
    this.counters.flooded++;
    this.#flood(src, frame, domain, pair, dst, false);
  }

  #flood(src: EswitchPort, frame: Uint8Array, domain: number, pair: number, dst: number, unknownUnicast: boolean): void {
    // Snapshot the lists: a delivery may run guest code that reconfigures the switch.
    const trunk = this.#trunkMembers;
    const vst = this.#vstMembers.get(domain);
    const pairMembers = pair < 0 ? undefined : this.#vstMembers.get(pair);
    for (const p of trunk) {
      if (p === src) continue;
      if (p.kind === "uplink" || (unknownUnicast ? p.acceptsFlood() : p.accepts(dst))) p.egress(frame);
    }
    if (vst !== undefined) {
      for (const p of vst) {
        if (p === src) continue;
        if (unknownUnicast ? p.acceptsFlood() : p.accepts(dst)) p.egress(frame);
      }
    }
    if (pairMembers !== undefined) {
      for (const p of pairMembers) {
        if (p === src) continue;
        if (unknownUnicast ? p.acceptsFlood() : p.accepts(dst)) p.egress(frame);
      }
    }
  }
}
