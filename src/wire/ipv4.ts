import { put16be, u16be } from "./bytes.js";
import { checksumAdd, checksumFinish } from "./checksum.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { Ipv4Address } from "./ip.js";

/**
 * A checked view of an IPv4 packet (RFC 791 §3.1). `check` validates version 4, IHL ≥ 5, the
 * header inside the buffer and Total Length between the header length and the buffer length;
 * bytes past Total Length (Ethernet padding) are outside `payload`.
 */
export class Ipv4Packet {
  static readonly MIN_HEADER_LEN = 20;

  private constructor(readonly buffer: Uint8Array) {}

  static check(buffer: Uint8Array): Ipv4Packet {
    needBytes("ipv4", buffer.length, 20);
    const version = buffer[0]! >>> 4;
    if (version !== 4) throw new WireError("WIRE_BAD_VERSION", `IPv4 version field is ${version}`, { format: "ipv4", version });
    const hl = (buffer[0]! & 0x0f) * 4;
    if (hl < 20) throw new WireError("WIRE_BAD_LENGTH", `IPv4 header length ${hl} < 20`, { format: "ipv4", field: "ihl", value: hl });
    needBytes("ipv4 header", buffer.length, hl);
    const total = u16be(buffer, 2);
    if (total < hl) throw new WireError("WIRE_BAD_LENGTH", `IPv4 total length ${total} < header length ${hl}`, { format: "ipv4", field: "total_length", value: total });
    needBytes("ipv4 total length", buffer.length, total);
    return new Ipv4Packet(buffer);
  }

  get headerLen(): number {
    return (this.buffer[0]! & 0x0f) * 4;
  }
  get dscp(): number {
    return this.buffer[1]! >>> 2;
  }
  get ecn(): number {
    return this.buffer[1]! & 3;
  }
  get totalLen(): number {
    return u16be(this.buffer, 2);
  }
  get ident(): number {
    return u16be(this.buffer, 4);
  }
  get dontFrag(): boolean {
    return (this.buffer[6]! & 0x40) !== 0;
  }
  get moreFrags(): boolean {
    return (this.buffer[6]! & 0x20) !== 0;
  }
  /** Fragment offset in 8-byte units. */
  get fragOffset(): number {
    return u16be(this.buffer, 6) & 0x1fff;
  }
  get ttl(): number {
    return this.buffer[8]!;
  }
  get protocol(): number {
    return this.buffer[9]!;
  }
  get checksum(): number {
    return u16be(this.buffer, 10);
  }
  get src(): Ipv4Address {
    return Ipv4Address.fromBytes(this.buffer, 12);
  }
  get dst(): Ipv4Address {
    return Ipv4Address.fromBytes(this.buffer, 16);
  }
  get options(): Uint8Array {
    return this.buffer.subarray(20, this.headerLen);
  }
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLen, this.totalLen);
  }
  verifyChecksum(): boolean {
    return checksumFinish(checksumAdd(0, this.buffer, 0, this.headerLen)) === 0;
  }
}

export interface Ipv4Repr {
  src: Ipv4Address;
  dst: Ipv4Address;
  protocol: number;
  ttl: number;
  /** Raw option bytes, a multiple of 4 long, at most 40 (RFC 791: IHL ≤ 15). */
  options: Uint8Array;
  payloadLen: number;
  dscp: number;
  ecn: number;
  ident: number;
  dontFrag: boolean;
  moreFrags: boolean;
  fragOffset: number;
}

/** Defaults for the fields a test or traffic generator rarely sets. */
export function ipv4Repr(r: Pick<Ipv4Repr, "src" | "dst" | "protocol" | "payloadLen"> & Partial<Ipv4Repr>): Ipv4Repr {
  return { ttl: 64, options: new Uint8Array(0), dscp: 0, ecn: 0, ident: 0, dontFrag: true, moreFrags: false, fragOffset: 0, ...r };
}

export const Ipv4Repr = {
  /** Throws WIRE_BAD_CHECKSUM unless the header checksum verifies (skip with `verifyChecksum: false`). */
  parse(p: Ipv4Packet, opts?: { verifyChecksum?: boolean }): Ipv4Repr {
    if (opts?.verifyChecksum !== false && !p.verifyChecksum()) {
      throw new WireError("WIRE_BAD_CHECKSUM", "IPv4 header checksum does not verify", { format: "ipv4", checksum: p.checksum });
    }
    return {
      src: p.src,
      dst: p.dst,
      protocol: p.protocol,
      ttl: p.ttl,
      options: p.headerLen === 20 ? new Uint8Array(0) : p.options.slice(),
      payloadLen: p.totalLen - p.headerLen,
      dscp: p.dscp,
      ecn: p.ecn,
      ident: p.ident,
      dontFrag: p.dontFrag,
      moreFrags: p.moreFrags,
      fragOffset: p.fragOffset,
    };
  },
  bufferLen(r: Ipv4Repr): number {
    return 20 + r.options.length;
  },
  /** Writes the header (with its checksum) into the first bufferLen(r) bytes of buf. */
  emit(r: Ipv4Repr, buf: Uint8Array): void {
    const hl = Ipv4Repr.bufferLen(r);
    needRoom("ipv4", buf.length, hl);
    if (r.options.length % 4 !== 0 || r.options.length > 40) throw new WireError("WIRE_BAD_LENGTH", `IPv4 options length ${r.options.length} not a multiple of 4 up to 40`, { format: "ipv4", field: "options", value: r.options.length });
    const total = hl + r.payloadLen;
    if (!Number.isInteger(r.payloadLen) || r.payloadLen < 0 || total > 0xffff) throw new WireError("WIRE_BAD_LENGTH", `IPv4 total length ${total} outside ${hl}..65535`, { format: "ipv4", field: "total_length", value: total });
    range("ttl", r.ttl, 255);
    range("protocol", r.protocol, 255);
    range("dscp", r.dscp, 63);
    range("ecn", r.ecn, 3);
    range("ident", r.ident, 0xffff);
    range("fragOffset", r.fragOffset, 0x1fff);
    buf[0] = 0x40 | (hl / 4);
    buf[1] = (r.dscp << 2) | r.ecn;
    put16be(buf, 2, total);
    put16be(buf, 4, r.ident);
    put16be(buf, 6, (r.dontFrag ? 0x4000 : 0) | (r.moreFrags ? 0x2000 : 0) | r.fragOffset);
    buf[8] = r.ttl;
    buf[9] = r.protocol;
    put16be(buf, 10, 0);
    r.src.writeTo(buf, 12);
    r.dst.writeTo(buf, 16);
    buf.set(r.options, 20);
    put16be(buf, 10, checksumFinish(checksumAdd(0, buf, 0, hl)));
  },
};

function range(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `IPv4 ${field} ${v} outside 0..${max}`, { format: "ipv4", field, value: v });
}
