import { put16be, put32be, u16be, u32be } from "./bytes.js";
import { checksumAdd, checksumFinish } from "./checksum.js";
import { needBytes, needRoom, WireError } from "./errors.js";

/** ICMP message types vpf names (RFC 792); others pass through as numbers. */
export const IcmpType = {
  ECHO_REPLY: 0,
  DEST_UNREACHABLE: 3,
  ECHO_REQUEST: 8,
  TIME_EXCEEDED: 11,
} as const;

/**
 * A checked view of an ICMP (v4) message (RFC 792): type, code, checksum, 4 bytes of
 * type-specific header (identifier and sequence number for echo), then data. The checksum
 * covers the whole message, no pseudo-header.
 */
export class IcmpPacket {
  static readonly HEADER_LEN = 8;
  private constructor(readonly buffer: Uint8Array) {}
  static check(buffer: Uint8Array): IcmpPacket {
    needBytes("icmp", buffer.length, 8);
    return new IcmpPacket(buffer);
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
  /** The 32-bit type-specific word after the checksum. */
  get restOfHeader(): number {
    return u32be(this.buffer, 4);
  }
  get echoIdent(): number {
    return u16be(this.buffer, 4);
  }
  get echoSeq(): number {
    return u16be(this.buffer, 6);
  }
  get data(): Uint8Array {
    return this.buffer.subarray(8);
  }
  verifyChecksum(): boolean {
    return checksumFinish(checksumAdd(0, this.buffer)) === 0;
  }
}

/** Echo messages carry identifier and sequence; any other type keeps its raw 32-bit word. */
export type IcmpRepr =
  | { kind: "echoRequest" | "echoReply"; ident: number; seq: number; data: Uint8Array }
  | { kind: "other"; type: number; code: number; restOfHeader: number; data: Uint8Array };

export const IcmpRepr = {
  parse(p: IcmpPacket, opts?: { verifyChecksum?: boolean }): IcmpRepr {
    if (opts?.verifyChecksum !== false && !p.verifyChecksum()) {
      throw new WireError("WIRE_BAD_CHECKSUM", "ICMP checksum does not verify", { format: "icmp", checksum: p.checksum });
    }
    if (p.code === 0 && (p.type === IcmpType.ECHO_REQUEST || p.type === IcmpType.ECHO_REPLY)) {
      return { kind: p.type === IcmpType.ECHO_REQUEST ? "echoRequest" : "echoReply", ident: p.echoIdent, seq: p.echoSeq, data: p.data };
    }
    return { kind: "other", type: p.type, code: p.code, restOfHeader: p.restOfHeader, data: p.data };
  },
  bufferLen(r: IcmpRepr): number {
    return 8 + r.data.length;
  },
  emit(r: IcmpRepr, buf: Uint8Array): void {
    const len = IcmpRepr.bufferLen(r);
    needRoom("icmp", buf.length, len);
    if (r.kind === "other") {
      check("type", r.type, 255);
      check("code", r.code, 255);
      check("restOfHeader", r.restOfHeader, 0xffffffff);
      buf[0] = r.type;
      buf[1] = r.code;
      put32be(buf, 4, r.restOfHeader);
    } else {
      check("ident", r.ident, 0xffff);
      check("seq", r.seq, 0xffff);
      buf[0] = r.kind === "echoRequest" ? IcmpType.ECHO_REQUEST : IcmpType.ECHO_REPLY;
      buf[1] = 0;
      put16be(buf, 4, r.ident);
      put16be(buf, 6, r.seq);
    }
    put16be(buf, 2, 0);
    buf.set(r.data, 8);
    put16be(buf, 2, checksumFinish(checksumAdd(0, buf, 0, len)));
  },
};

function check(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `ICMP ${field} ${v} outside 0..${max}`, { format: "icmp", field, value: v });
}
