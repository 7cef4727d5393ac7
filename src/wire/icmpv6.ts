import { put16be, put32be, u16be, u32be } from "./bytes.js";
import { checksumAdd, checksumFinish, pseudoHeaderSum } from "./checksum.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { IpProtocol, Ipv6Address, type IpAddress } from "./ip.js";
import { MacAddress } from "./mac.js";

/** ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4); others pass through as numbers. */
export const Icmpv6Type = {
  DEST_UNREACHABLE: 1,
  PACKET_TOO_BIG: 2,
  TIME_EXCEEDED: 3,
  PARAMETER_PROBLEM: 4,
  ECHO_REQUEST: 128,
  ECHO_REPLY: 129,
  ROUTER_SOLICIT: 133,
  ROUTER_ADVERT: 134,
  NEIGHBOR_SOLICIT: 135,
  NEIGHBOR_ADVERT: 136,
  REDIRECT: 137,
} as const;

/** Neighbour Discovery option types (RFC 4861 §4.6). */
export const NdpOptionType = {
  SOURCE_LINK_ADDR: 1,
  TARGET_LINK_ADDR: 2,
  PREFIX_INFO: 3,
  REDIRECTED_HEADER: 4,
  MTU: 5,
} as const;

/** One ND option: `data` is everything after the type and length octets. */
export interface NdpOption {
  type: number;
  data: Uint8Array;
}

/** A Source/Target Link-Layer Address option for Ethernet (RFC 4861 §4.6.1). */
export function linkLayerAddressOption(type: number, mac: MacAddress): NdpOption {
  return { type, data: mac.bytes() };
}

/** The Ethernet address in the first option of `type`, if any, and if it is 6 bytes long. */
export function ndpLinkLayerAddress(options: NdpOption[], type: number): MacAddress | undefined {
  const o = options.find((x) => x.type === type);
  return o !== undefined && o.data.length >= 6 ? MacAddress.fromBytes(o.data) : undefined;
}

/**
 * A checked view of an ICMPv6 message (RFC 4443 §2.1): type, code, checksum, then the body.
 * The checksum covers an IPv6 pseudo-header with next header 58 (RFC 4443 §2.3).
 */
export class Icmpv6Packet {
  static readonly HEADER_LEN = 4;
  private constructor(readonly buffer: Uint8Array) {}
  static check(buffer: Uint8Array): Icmpv6Packet {
    needBytes("icmpv6", buffer.length, 4);
    return new Icmpv6Packet(buffer);
  }
  get type(): number {
    return this.buffer[0]!;
  }
  get code(): number {
    return this.buffer[1]!;
  }
  get checksum(): number {
    return u16be(this.buffer, 2);
  }
  /** Everything after the 4-byte header. */
  get body(): Uint8Array {
    return this.buffer.subarray(4);
  }
  verifyChecksum(src: IpAddress, dst: IpAddress): boolean {
    const n = this.buffer.length;
    return checksumFinish(checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.ICMPV6, n), this.buffer, 0, n)) === 0;
  }
}

export type Icmpv6Repr =
  | { kind: "echoRequest" | "echoReply"; ident: number; seq: number; data: Uint8Array }
  | { kind: "neighborSolicit"; target: Ipv6Address; options: NdpOption[] }
  | { kind: "neighborAdvert"; router: boolean; solicited: boolean; override: boolean; target: Ipv6Address; options: NdpOption[] }
  | { kind: "other"; type: number; code: number; body: Uint8Array };

const NA_ROUTER = 0x80000000;
const NA_SOLICITED = 0x40000000;
const NA_OVERRIDE = 0x20000000;

function parseNdpOptions(b: Uint8Array): NdpOption[] {
  const out: NdpOption[] = [];
  let o = 0;
  while (o < b.length) {
    needBytes("ndp option", b.length - o, 2);
    const len = b[o + 1]! * 8;
    // RFC 4861 §4.6: an option with length zero makes the whole message invalid.
    if (len === 0) throw new WireError("WIRE_BAD_LENGTH", "ND option with length 0", { format: "ndp", offset: o });
    needBytes("ndp option", b.length - o, len);
    out.push({ type: b[o]!, data: b.subarray(o + 2, o + len) });
    o += len;
  }
  return out;
}

function ndpOptionsLen(opts: NdpOption[]): number {
  let n = 0;
  for (const x of opts) {
    const len = x.data.length + 2;
    if (len % 8 !== 0 || len > 255 * 8) throw new WireError("WIRE_BAD_LENGTH", `ND option of ${len} bytes is not a multiple of 8 up to 2040`, { format: "ndp", value: len });
    n += len;
  }
  return n;
}

export const Icmpv6Repr = {
  /**
   * Checks the checksum (WIRE_BAD_CHECKSUM unless `verifyChecksum: false`). Echo, NS and NA with
   * code 0 get their own arms; NS/NA shorter than 24 bytes are WIRE_TRUNCATED (RFC 4861 §7.1).
   */
  parse(p: Icmpv6Packet, src: IpAddress, dst: IpAddress, opts?: { verifyChecksum?: boolean }): Icmpv6Repr {
    if (opts?.verifyChecksum !== false && !p.verifyChecksum(src, dst)) {
      throw new WireError("WIRE_BAD_CHECKSUM", "ICMPv6 checksum does not verify", { format: "icmpv6", checksum: p.checksum });
    }
    const b = p.buffer;
    if (p.code === 0) {
      switch (p.type) {
        case Icmpv6Type.ECHO_REQUEST:
        case Icmpv6Type.ECHO_REPLY:
          needBytes("icmpv6 echo", b.length, 8);
          return { kind: p.type === Icmpv6Type.ECHO_REQUEST ? "echoRequest" : "echoReply", ident: u16be(b, 4), seq: u16be(b, 6), data: b.subarray(8) };
        case Icmpv6Type.NEIGHBOR_SOLICIT:
          needBytes("icmpv6 neighbor solicitation", b.length, 24);
          return { kind: "neighborSolicit", target: Ipv6Address.fromBytes(b, 8), options: parseNdpOptions(b.subarray(24)) };
        case Icmpv6Type.NEIGHBOR_ADVERT: {
          needBytes("icmpv6 neighbor advertisement", b.length, 24);
          const f = u32be(b, 4);
          return {
            kind: "neighborAdvert",
            router: (f & NA_ROUTER) !== 0,
            solicited: (f & NA_SOLICITED) !== 0,
            override: (f & NA_OVERRIDE) !== 0,
            target: Ipv6Address.fromBytes(b, 8),
            options: parseNdpOptions(b.subarray(24)),
          };
        }
      }
    }
    return { kind: "other", type: p.type, code: p.code, body: p.body };
  },
  bufferLen(r: Icmpv6Repr): number {
    switch (r.kind) {
      case "echoRequest":
      case "echoReply":
        return 8 + r.data.length;
      case "neighborSolicit":
      case "neighborAdvert":
        return 24 + ndpOptionsLen(r.options);
      case "other":
        return 4 + r.body.length;
    }
  },
  emit(r: Icmpv6Repr, buf: Uint8Array, src: IpAddress, dst: IpAddress): void {
    const len = Icmpv6Repr.bufferLen(r);
    needRoom("icmpv6", buf.length, len);
    buf[1] = 0;
    switch (r.kind) {
      case "echoRequest":
      case "echoReply":
        check("ident", r.ident, 0xffff);
        check("seq", r.seq, 0xffff);
        buf[0] = r.kind === "echoRequest" ? Icmpv6Type.ECHO_REQUEST : Icmpv6Type.ECHO_REPLY;
        put16be(buf, 4, r.ident);
        put16be(buf, 6, r.seq);
        buf.set(r.data, 8);
        break;
      case "neighborSolicit":
      case "neighborAdvert": {
        if (r.kind === "neighborSolicit") {
          buf[0] = Icmpv6Type.NEIGHBOR_SOLICIT;
          put32be(buf, 4, 0);
        } else {
          buf[0] = Icmpv6Type.NEIGHBOR_ADVERT;
          put32be(buf, 4, ((r.router ? NA_ROUTER : 0) | (r.solicited ? NA_SOLICITED : 0) | (r.override ? NA_OVERRIDE : 0)) >>> 0);
        }
        r.target.writeTo(buf, 8);
        let o = 24;
        for (const x of r.options) {
          check("option type", x.type, 255);
          buf[o] = x.type;
          buf[o + 1] = (x.data.length + 2) / 8;
          buf.set(x.data, o + 2);
          o += x.data.length + 2;
        }
        break;
      }
      case "other":
        check("type", r.type, 255);
        check("code", r.code, 255);
        buf[0] = r.type;
        buf[1] = r.code;
        buf.set(r.body, 4);
        break;
    }
    put16be(buf, 2, 0);
    put16be(buf, 2, checksumFinish(checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.ICMPV6, len), buf, 0, len)));
  },
};

function check(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `ICMPv6 ${field} ${v} outside 0..${max}`, { format: "icmpv6", field, value: v });
}
