import { put16be, u16be } from "./bytes.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { Ipv6Address } from "./ip.js";

/**
 * A checked view of an IPv6 packet (RFC 8200 §3): version 6, the 40-byte fixed header and
 * Payload Length bytes after it inside the buffer. Extension headers are not walked: `nextHeader`
 * names the first one and `payload` starts right after the fixed header.
 */
export class Ipv6Packet {
  static readonly HEADER_LEN = 40;
  private constructor(readonly buffer: Uint8Array) {}

  static check(buffer: Uint8Array): Ipv6Packet {
    needBytes("ipv6", buffer.length, 40);
    const version = buffer[0]! >>> 4;
    if (version !== 6) throw new WireError("WIRE_BAD_VERSION", `IPv6 version field is ${version}`, { format: "ipv6", version });
    needBytes("ipv6 payload length", buffer.length, 40 + u16be(buffer, 4));
    return new Ipv6Packet(buffer);
  }
  get trafficClass(): number {
    return ((this.buffer[0]! & 0x0f) << 4) | (this.buffer[1]! >>> 4);
  }
  get flowLabel(): number {
    return ((this.buffer[1]! & 0x0f) << 16) | u16be(this.buffer, 2);
  }
  get payloadLen(): number {
    return u16be(this.buffer, 4);
  }
  get nextHeader(): number {
    return this.buffer[6]!;
  }
  get hopLimit(): number {
    return this.buffer[7]!;
  }
  get src(): Ipv6Address {
    return Ipv6Address.fromBytes(this.buffer, 8);
  }
  get dst(): Ipv6Address {
    return Ipv6Address.fromBytes(this.buffer, 24);
  }
  get payload(): Uint8Array {
    return this.buffer.subarray(40, 40 + this.payloadLen);
  }
}

export interface Ipv6Repr {
  src: Ipv6Address;
  dst: Ipv6Address;
  nextHeader: number;
  hopLimit: number;
  payloadLen: number;
  trafficClass: number;
  flowLabel: number;
}

export function ipv6Repr(r: Pick<Ipv6Repr, "src" | "dst" | "nextHeader" | "payloadLen"> & Partial<Ipv6Repr>): Ipv6Repr {
  return { hopLimit: 64, trafficClass: 0, flowLabel: 0, ...r };
}

export const Ipv6Repr = {
  parse(p: Ipv6Packet): Ipv6Repr {
    return { src: p.src, dst: p.dst, nextHeader: p.nextHeader, hopLimit: p.hopLimit, payloadLen: p.payloadLen, trafficClass: p.trafficClass, flowLabel: p.flowLabel };
  },
  bufferLen(_r: Ipv6Repr): number {
    return 40;
  },
  emit(r: Ipv6Repr, buf: Uint8Array): void {
    needRoom("ipv6", buf.length, 40);
    range("payloadLen", r.payloadLen, 0xffff);
    range("nextHeader", r.nextHeader, 255);
    range("hopLimit", r.hopLimit, 255);
    range("trafficClass", r.trafficClass, 255);
    range("flowLabel", r.flowLabel, 0xfffff);
    buf[0] = 0x60 | (r.trafficClass >>> 4);
    buf[1] = ((r.trafficClass & 0x0f) << 4) | (r.flowLabel >>> 16);
    put16be(buf, 2, r.flowLabel & 0xffff);
    put16be(buf, 4, r.payloadLen);
    buf[6] = r.nextHeader;
    buf[7] = r.hopLimit;
    r.src.writeTo(buf, 8);
    r.dst.writeTo(buf, 24);
  },
};

function range(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `IPv6 ${field} ${v} outside 0..${max}`, { format: "ipv6", field, value: v });
}
