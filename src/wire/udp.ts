import { put16be, u16be } from "./bytes.js";
import { checksumAdd, checksumFinish, pseudoHeaderSum } from "./checksum.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { IpProtocol, type IpAddress } from "./ip.js";

/**
 * A checked view of a UDP datagram (RFC 768): 8-byte header, Length ≥ 8 and inside the buffer.
 * Over IPv4 a zero checksum means "none" (RFC 768); over IPv6 it is invalid (RFC 8200 §8.1).
 */
export class UdpPacket {
  static readonly HEADER_LEN = 8;
  private constructor(readonly buffer: Uint8Array) {}

  static check(buffer: Uint8Array): UdpPacket {
    needBytes("udp", buffer.length, 8);
    const len = u16be(buffer, 4);
    if (len < 8) throw new WireError("WIRE_BAD_LENGTH", `UDP length ${len} < 8`, { format: "udp", field: "length", value: len });
    needBytes("udp length", buffer.length, len);
    return new UdpPacket(buffer);
  }
  get srcPort(): number {
    return u16be(this.buffer, 0);
  }
  get dstPort(): number {
    return u16be(this.buffer, 2);
  }
  get length(): number {
    return u16be(this.buffer, 4);
  }
  get checksum(): number {
    return u16be(this.buffer, 6);
  }
  get payload(): Uint8Array {
    return this.buffer.subarray(8, this.length);
  }
  verifyChecksum(src: IpAddress, dst: IpAddress): boolean {
    if (this.checksum === 0) return src.family === 4;
    const sum = checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.UDP, this.length), this.buffer, 0, this.length);
    return checksumFinish(sum) === 0;
  }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

export const UdpRepr = {
  /** Throws WIRE_BAD_CHECKSUM unless the checksum verifies against the pseudo-header (skip with `verifyChecksum: false`). */
  parse(p: UdpPacket, src: IpAddress, dst: IpAddress, opts?: { verifyChecksum?: boolean }): UdpRepr {
    if (opts?.verifyChecksum !== false && !p.verifyChecksum(src, dst)) {
      throw new WireError("WIRE_BAD_CHECKSUM", "UDP checksum does not verify", { format: "udp", checksum: p.checksum });
    }
    return { srcPort: p.srcPort, dstPort: p.dstPort, payload: p.payload };
  },
  bufferLen(r: UdpRepr): number {
    return 8 + r.payload.length;
  },
  /** Writes header, payload and checksum (never 0: a computed 0 is sent as 0xffff, RFC 768). */
  emit(r: UdpRepr, buf: Uint8Array, src: IpAddress, dst: IpAddress): void {
    const len = UdpRepr.bufferLen(r);
    needRoom("udp", buf.length, len);
    if (len > 0xffff) throw new WireError("WIRE_BAD_LENGTH", `UDP length ${len} > 65535`, { format: "udp", field: "length", value: len });
    port(r.srcPort);
    port(r.dstPort);
    put16be(buf, 0, r.srcPort);
    put16be(buf, 2, r.dstPort);
    put16be(buf, 4, len);
    put16be(buf, 6, 0);
    buf.set(r.payload, 8);
    const c = checksumFinish(checksumAdd(pseudoHeaderSum(src, dst, IpProtocol.UDP, len), buf, 0, len));
    put16be(buf, 6, c === 0 ? 0xffff : c);
  },
};

export function port(v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new WireError("WIRE_BAD_VALUE", `port ${v} outside 0..65535`, { format: "port", value: v });
}
