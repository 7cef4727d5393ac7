import { put16be, u16be } from "./bytes.js";
import { needBytes, needRoom, WireError } from "./errors.js";
import { EtherType } from "./ethernet.js";
import { Ipv4Address } from "./ip.js";
import { MacAddress } from "./mac.js";

export const ArpOperation = { REQUEST: 1, REPLY: 2 } as const;
/** ARP hardware type for Ethernet (RFC 826; IANA "Hardware Types"). */
export const ARP_HTYPE_ETHERNET = 1;

/**
 * A checked view of an ARP packet (RFC 826): the 8-byte fixed part, then sender and target
 * hardware and protocol addresses whose sizes come from HLEN and PLEN; `check` validates that
 * all four fit in the buffer (Ethernet padding may follow).
 */
export class ArpPacket {
  private constructor(readonly buffer: Uint8Array) {}
  static check(buffer: Uint8Array): ArpPacket {
    needBytes("arp", buffer.length, 8);
    needBytes("arp addresses", buffer.length, 8 + 2 * (buffer[4]! + buffer[5]!));
    return new ArpPacket(buffer);
  }
  get htype(): number {
    return u16be(this.buffer, 0);
  }
  get ptype(): number {
    return u16be(this.buffer, 2);
  }
  get hlen(): number {
    return this.buffer[4]!;
  }
  get plen(): number {
    return this.buffer[5]!;
  }
  get operation(): number {
    return u16be(this.buffer, 6);
  }
  get len(): number {
    return 8 + 2 * (this.hlen + this.plen);
  }
  senderHw(): Uint8Array {
    return this.buffer.subarray(8, 8 + this.hlen);
  }
  senderProto(): Uint8Array {
    return this.buffer.subarray(8 + this.hlen, 8 + this.hlen + this.plen);
  }
  targetHw(): Uint8Array {
    const o = 8 + this.hlen + this.plen;
    return this.buffer.subarray(o, o + this.hlen);
  }
  targetProto(): Uint8Array {
    const o = 8 + 2 * this.hlen + this.plen;
    return this.buffer.subarray(o, o + this.plen);
  }
}

/** ARP for IPv4 over Ethernet; `operation` keeps unknown opcodes as numbers. */
export interface ArpRepr {
  operation: number;
  senderMac: MacAddress;
  senderIp: Ipv4Address;
  targetMac: MacAddress;
  targetIp: Ipv4Address;
}

export const ArpRepr = {
  /** Throws WIRE_BAD_VALUE for anything but Ethernet (1, length 6) / IPv4 (0x0800, length 4). */
  parse(p: ArpPacket): ArpRepr {
    if (p.htype !== ARP_HTYPE_ETHERNET || p.ptype !== EtherType.IPV4 || p.hlen !== 6 || p.plen !== 4) {
      throw new WireError("WIRE_BAD_VALUE", `ARP for hardware ${p.htype}/${p.hlen} protocol 0x${p.ptype.toString(16)}/${p.plen} is not Ethernet/IPv4`, { format: "arp", htype: p.htype, ptype: p.ptype });
    }
    return {
      operation: p.operation,
      senderMac: MacAddress.fromBytes(p.buffer, 8),
      senderIp: Ipv4Address.fromBytes(p.buffer, 14),
      targetMac: MacAddress.fromBytes(p.buffer, 18),
      targetIp: Ipv4Address.fromBytes(p.buffer, 24),
    };
  },
  bufferLen(_r: ArpRepr): number {
    return 28;
  },
  emit(r: ArpRepr, buf: Uint8Array): void {
    needRoom("arp", buf.length, 28);
    if (!Number.isInteger(r.operation) || r.operation < 0 || r.operation > 0xffff) throw new WireError("WIRE_BAD_VALUE", `ARP operation ${r.operation} outside 0..65535`, { format: "arp", field: "operation", value: r.operation });
    put16be(buf, 0, ARP_HTYPE_ETHERNET);
    put16be(buf, 2, EtherType.IPV4);
    buf[4] = 6;
    buf[5] = 4;
    put16be(buf, 6, r.operation);
    r.senderMac.writeTo(buf, 8);
    r.senderIp.writeTo(buf, 14);
    r.targetMac.writeTo(buf, 18);
    r.targetIp.writeTo(buf, 24);
  },
};
