import { put16be, put32be, u16be, u32be } from "./bytes.js";
import { checksumAdd, checksumFinish, pseudoHeaderSum } from "./checksum.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { IpProtocol, type IpAddress } from "./ip.js";
import { port } from "./udp.js";

/** TCP control bits (RFC 9293 §3.1; AE from RFC 3168's former NS bit position). */
export const TcpFlags = {
  FIN: 0x001,
  SYN: 0x002,
  RST: 0x004,
  PSH: 0x008,
  ACK: 0x010,
  URG: 0x020,
  ECE: 0x040,
  CWR: 0x080,
  AE: 0x100,
} as const;

/**
 * A checked view of a TCP segment (RFC 9293 §3.1). The buffer is exactly the segment (the IP
 * payload): TCP has no length field of its own. `check` validates Data Offset ≥ 5 and the header
 * inside the buffer.
 */
export class TcpPacket {
  static readonly MIN_HEADER_LEN = 20;
  private constructor(readonly buffer: Uint8Array) {}

  static check(buffer: Uint8Array): TcpPacket {
    needBytes("tcp", buffer.length, 20);
    const hl = (buffer[12]! >>> 4) * 4;
    if (hl < 20) throw new WireError("WIRE_BAD_LENGTH", `TCP data offset ${hl} < 20`, { format: "tcp", field: "data_offset", value: hl });
    needBytes("tcp header", buffer.length, hl);
    return new TcpPacket(buffer);
  }
  get srcPort(): number {
    return u16be(this.buffer, 0);
  }
  get dstPort(): number {
    return u16be(this.buffer, 2);
  }
  get seq(): number {
    return u32be(this.buffer, 4);
  }
  get ack(): number {
    return u32be(this.buffer, 8);
  }
  get headerLen(): number {
    return (this.buffer[12]! >>> 4) * 4;
  }
  /** The 12 bits after Data Offset: 3 reserved bits, AE, CWR, ..., FIN. */
  get flags(): number {
    return ((this.buffer[12]! & 0x0f) << 8) | this.buffer[13]!;
  }
  get window(): number {
    return u16be(this.buffer, 14);
  }
  get checksum(): number {
    return u16be(this.buffer, 16);
  }
  get urgent(): number {
    return u16be(this.buffer, 18);
  }
  get options(): Uint8Array {
    return this.buffer.subarray(20, this.headerLen);
  }
  get payload(): Uint8Array {
    return this.buffer.subarray(this.headerLen);
  }
  verifyChecksum(src: IpAddress, dst: IpAddress): boolean {
    const n = this.buffer.length;
    return checksumFinish(checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.TCP, n), this.buffer, 0, n)) === 0;
  }
}

export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  /** Raw option bytes, a multiple of 4 long, at most 40. */
  options: Uint8Array;
  payload: Uint8Array;
}

export function tcpRepr(r: Pick<TcpRepr, "srcPort" | "dstPort"> & Partial<TcpRepr>): TcpRepr {
  return { seq: 0, ack: 0, flags: TcpFlags.ACK, window: 65535, urgent: 0, options: new Uint8Array(0), payload: new Uint8Array(0), ...r };
}

export const TcpRepr = {
  parse(p: TcpPacket, src: IpAddress, dst: IpAddress, opts?: { verifyChecksum?: boolean }): TcpRepr {
    if (opts?.verifyChecksum !== false && !p.verifyChecksum(src, dst)) {
      throw new WireError("WIRE_BAD_CHECKSUM", "TCP checksum does not verify", { format: "tcp", checksum: p.checksum });
    }
    return { srcPort: p.srcPort, dstPort: p.dstPort, seq: p.seq, ack: p.ack, flags: p.flags, window: p.window, urgent: p.urgent, options: p.options.slice(), payload: p.payload };
  },
  bufferLen(r: TcpRepr): number {
    return 20 + r.options.length + r.payload.length;
  },
  emit(r: TcpRepr, buf: Uint8Array, src: IpAddress, dst: IpAddress): void {
    const len = TcpRepr.bufferLen(r);
    needRoom("tcp", buf.length, len);
    if (r.options.length % 4 !== 0 || r.options.length > 40) throw new WireError("WIRE_BAD_LENGTH", `TCP options length ${r.options.length} not a multiple of 4 up to 40`, { format: "tcp", field: "options", value: r.options.length });
    port(r.srcPort);
    port(r.dstPort);
    for (const [f, v, max] of [["seq", r.seq, 0xffffffff], ["ack", r.ack, 0xffffffff], ["flags", r.flags, 0xfff], ["window", r.window, 0xffff], ["urgent", r.urgent, 0xffff]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `TCP ${f} ${v} outside 0..${max}`, { format: "tcp", field: f, value: v });
    }
    const hl = 20 + r.options.length;
    put16be(buf, 0, r.srcPort);
    put16be(buf, 2, r.dstPort);
    put32be(buf, 4, r.seq);
    put32be(buf, 8, r.ack);
    buf[12] = ((hl / 4) << 4) | (r.flags >>> 8);
    buf[13] = r.flags & 0xff;
    put16be(buf, 14, r.window);
    put16be(buf, 16, 0);
    put16be(buf, 18, r.urgent);
    buf.set(r.options, 20);
    buf.set(r.payload, hl);
    put16be(buf, 16, checksumFinish(checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.TCP, len), buf, 0, len)));
  },
};
