import { put16be, u16be } from "./bytes.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { MacAddress, macKeyAt } from "./mac.js";

/**
 * EtherType values vpf names (IEEE Registration Authority). Any other 16-bit value is carried
 * as a plain number, so unknown types survive parse and emit unchanged; values below 0x0600
 * are IEEE 802.3 length fields and are carried the same way.
 */
export const EtherType = {
  IPV4: 0x0800,
  ARP: 0x0806,
  /** IEEE 802.1Q customer VLAN tag (C-tag). */
  VLAN: 0x8100,
  IPV6: 0x86dd,
  /** IEEE 802.1ad service VLAN tag (S-tag), the outer tag of QinQ. */
  QINQ: 0x88a8,
  /** Pre-standard QinQ S-tag some switches still send; recognised as a tag, never emitted by vpf itself. */
  QINQ_LEGACY: 0x9100,
} as const;

/** TPIDs that mark a VLAN tag after the source MAC. */
export function isVlanTpid(t: number): boolean {
  return t === 0x8100 || t === 0x88a8 || t === 0x9100;
}

/**
 * One VLAN tag: TPID then the TCI (IEEE 802.1Q-2018 §9.6): PCP (3 bits), DEI (1 bit),
 * VID (12 bits). VID 0 is a priority tag, 4095 is reserved but representable.
 */
export interface VlanTag {
  tpid: number;
  pcp: number;
  dei: boolean;
  vid: number;
}

export function vlanTag(vid: number, opts?: { pcp?: number; dei?: boolean; tpid?: number }): VlanTag {
  const t: VlanTag = { tpid: opts?.tpid ?? EtherType.VLAN, pcp: opts?.pcp ?? 0, dei: opts?.dei ?? false, vid };
  checkVlanTag(t);
  return t;
}

/** Throws WIRE_BAD_VALUE unless the tag's fields fit their bit widths and the TPID is a tag TPID. */
export function checkVlanTag(t: VlanTag): void {
  if (!Number.isInteger(t.vid) || t.vid < 0 || t.vid > 4095) throw new WireError("WIRE_BAD_VALUE", `VLAN ID ${t.vid} outside 0..4095`, { format: "vlan", field: "vid", value: t.vid });
  if (!Number.isInteger(t.pcp) || t.pcp < 0 || t.pcp > 7) throw new WireError("WIRE_BAD_VALUE", `VLAN PCP ${t.pcp} outside 0..7`, { format: "vlan", field: "pcp", value: t.pcp });
  if (!isVlanTpid(t.tpid)) throw new WireError("WIRE_BAD_VALUE", `TPID 0x${t.tpid.toString(16)} is not a VLAN TPID`, { format: "vlan", field: "tpid", value: t.tpid });
}

export function tciOf(t: VlanTag): number {
  return ((t.pcp & 7) << 13) | (t.dei ? 0x1000 : 0) | (t.vid & 0xfff);
}

export function tagFromTci(tpid: number, tci: number): VlanTag {
  return { tpid, pcp: tci >>> 13, dei: (tci & 0x1000) !== 0, vid: tci & 0xfff };
}

/** Bound on stacked tags walked by the checked constructor (QinQ uses 2; real stacks stay small). */
export const MAX_VLAN_TAGS = 8;

/**
 * A checked view of an Ethernet II frame with zero or more VLAN tags between the source MAC and
 * the EtherType (IEEE 802.3 §3.1.1, 802.1Q §9). `check` validates once that the MACs, every tag
 * and the inner EtherType are inside the buffer; accessors then read without checks.
 * The frame check sequence is not part of the buffer (as in pcap LINKTYPE_ETHERNET captures).
 */
export class EthernetFrame {
  static readonly HEADER_LEN = 14;

  private constructor(
    readonly buffer: Uint8Array,
    /** Number of VLAN tags, outermost first. */
    readonly tagCount: number,
  ) {}

  static check(buffer: Uint8Array): EthernetFrame {
    needBytes("ethernet", buffer.length, 14);
    let off = 12;
    let n = 0;
    while (isVlanTpid(u16be(buffer, off))) {
      if (n === MAX_VLAN_TAGS) throw new WireError("WIRE_BAD_VALUE", `more than ${MAX_VLAN_TAGS} stacked VLAN tags`, { format: "ethernet", limit: MAX_VLAN_TAGS });
      n++;
      off += 4;
      needBytes("ethernet vlan tag", buffer.length, off + 2);
    }
    return new EthernetFrame(buffer, n);
  }

  get headerLen(): number {
    return 14 + 4 * this.tagCount;
  }
  get dst(): MacAddress {
    return MacAddress.fromKey(macKeyAt(this.buffer, 0));
  }
  get src(): MacAddress {
    return MacAddress.fromKey(macKeyAt(this.buffer, 6));
  }
  /** Destination as a 48-bit integer, without allocating. */
  get dstKey(): number {
    return macKeyAt(this.buffer, 0);
  }
  get srcKey(): number {
    return macKeyAt(this.buffer, 6);
  }
  /** The EtherType after all tags (what the payload is). */
  get etherType(): number {
    return u16be(this.buffer, 12 + 4 * this.tagCount);
  }
  /** The 16 bits right after the source MAC: a TPID when tagged. */
  get outerType(): number {
    return u16be(this.buffer, 12);
  }
  /** Tag i, 0 = outermost. */
  tag(i: number): VlanTag {
    if (!Number.isInteger(i) || i < 0 || i >= this.tagCount) throw new WireError("WIRE_BAD_VALUE", `no VLAN tag ${i}`, { format: "ethernet", index: i, tagCount: this.tagCount });
    const o = 12 + 4 * i;
    return tagFromTci(u16be(this.buffer, o), u16be(this.buffer, o + 2));
  }
  tags(): VlanTag[] {
    const out: VlanTag[] = [];
    for (let i = 0; i < this.tagCount; i++) out.push(this.tag(i));
    return out;
  }
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLen);
  }
}

/** The plain-object form of an Ethernet header: MACs, tags outermost first, inner EtherType. */
export interface EthernetRepr {
  dst: MacAddress;
  src: MacAddress;
  vlans: VlanTag[];
  etherType: number;
}

export const EthernetRepr = {
  parse(frame: EthernetFrame): EthernetRepr {
    return { dst: frame.dst, src: frame.src, vlans: frame.tags(), etherType: frame.etherType };
  },
  bufferLen(repr: EthernetRepr): number {
    return 14 + 4 * repr.vlans.length;
  },
  /** Writes exactly bufferLen(repr) bytes at the start of `buf`; the payload follows. */
  emit(repr: EthernetRepr, buf: Uint8Array): void {
    const len = EthernetRepr.bufferLen(repr);
    needRoom("ethernet", buf.length, len);
    if (repr.vlans.length > MAX_VLAN_TAGS) throw new WireError("WIRE_BAD_VALUE", `more than ${MAX_VLAN_TAGS} VLAN tags`, { format: "ethernet", limit: MAX_VLAN_TAGS });
    repr.dst.writeTo(buf, 0);
    repr.src.writeTo(buf, 6);
    let o = 12;
    for (const t of repr.vlans) {
      checkVlanTag(t);
      put16be(buf, o, t.tpid);
      put16be(buf, o + 2, tciOf(t));
      o += 4;
    }
    put16be(buf, o, repr.etherType & 0xffff);
  },
};

/**
 * Inserts `tag` as the new outermost tag (right after the source MAC), returning a new frame 4
 * bytes longer: what a VST-mode eswitch does to a frame leaving a VF, and how an 802.1ad S-tag
 * goes on top of a C-tag for QinQ. Throws WIRE_TRUNCATED for a frame shorter than 14 bytes.
 */
export function pushVlanTag(frame: Uint8Array, tag: VlanTag): Uint8Array {
  const out = new Uint8Array(frame.length + 4);
  pushVlanTagInto(frame, tag, out);
  return out;
}

/**
 * pushVlanTag without allocating: writes the tagged frame at the start of `out` (at least 4 bytes
 * longer than `frame`) and returns its length. `out` may be the very buffer `frame` starts at
 * (frame = out.subarray(0, n)), which tags in place. Fresh typed arrays above 64 bytes cost
 * hundreds of nanoseconds in V8, so per-packet paths should use this form with a scratch buffer.
 */
export function pushVlanTagInto(frame: Uint8Array, tag: VlanTag, out: Uint8Array): number {
  needBytes("ethernet", frame.length, 14);
  checkVlanTag(tag);
  const n = frame.length;
  needRoom("ethernet", out.length, n + 4);
  if (out.buffer === frame.buffer && out.byteOffset === frame.byteOffset) {
    out.copyWithin(16, 12, n);
  } else {
    out.set(frame.subarray(12), 16);
    for (let i = 0; i < 12; i++) out[i] = frame[i]!;
  }
  const tci = tciOf(tag);
  out[12] = tag.tpid >>> 8;
  out[13] = tag.tpid & 0xff;
  out[14] = tci >>> 8;
  out[15] = tci & 0xff;
  return n + 4;
}

/**
 * Removes the outermost tag, returning it and the frame 4 bytes shorter, or null when the frame
 * is untagged. Throws WIRE_TRUNCATED when a TPID is there but the tag and the next EtherType are not.
 */
export function popVlanTag(frame: Uint8Array): { tag: VlanTag; frame: Uint8Array } | null {
  const tag = outerVlanTag(frame);
  if (tag === null) return null;
  // slice() is cheaper than a fresh array plus set(); then move the MACs over the old tag.
  const out = frame.slice(4);
  for (let i = 0; i < 12; i++) out[i] = frame[i]!;
  return { tag, frame: out };
}

/**
 * popVlanTag without allocating: writes the frame minus its outermost tag at the start of `out`
 * and returns the new length, or -1 (writing nothing) when the frame is untagged. `out` may be
 * the buffer `frame` starts at, which untags in place. Read the tag first with outerVlanTci.
 */
export function popVlanTagInto(frame: Uint8Array, out: Uint8Array): number {
  needBytes("ethernet", frame.length, 14);
  if (!isVlanTpid(u16be(frame, 12))) return -1;
  needBytes("ethernet vlan tag", frame.length, 18);
  const n = frame.length - 4;
  needRoom("ethernet", out.length, n);
  if (out.buffer === frame.buffer && out.byteOffset === frame.byteOffset) {
    out.copyWithin(12, 16, n + 4);
  } else {
    out.set(frame.subarray(16), 12);
    for (let i = 0; i < 12; i++) out[i] = frame[i]!;
  }
  return n;
}

/**
 * The outermost tag as a number without allocating: (TPID << 16 | TCI), or -1 when untagged.
 * Throws WIRE_TRUNCATED like popVlanTag.
 */
export function outerVlanTci(frame: Uint8Array): number {
  needBytes("ethernet", frame.length, 14);
  const tpid = u16be(frame, 12);
  if (!isVlanTpid(tpid)) return -1;
  needBytes("ethernet vlan tag", frame.length, 18);
  return tpid * 0x10000 + u16be(frame, 14);
}

/** The outermost tag without copying, or null when untagged. Throws WIRE_TRUNCATED like popVlanTag. */
export function outerVlanTag(frame: Uint8Array): VlanTag | null {
  needBytes("ethernet", frame.length, 14);
  const tpid = u16be(frame, 12);
  if (!isVlanTpid(tpid)) return null;
  needBytes("ethernet vlan tag", frame.length, 18);
  return tagFromTci(tpid, u16be(frame, 14));
}
