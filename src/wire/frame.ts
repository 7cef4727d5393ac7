import { ArpPacket, ArpRepr } from "./arp.js";
import { WireError } from "./errors.js";
import { EtherType, EthernetFrame, EthernetRepr, type VlanTag } from "./ethernet.js";
import { IcmpPacket, IcmpRepr } from "./icmp.js";
import { Icmpv6Packet, Icmpv6Repr } from "./icmpv6.js";
import { IpProtocol, type IpAddress, type Ipv4Address, type Ipv6Address } from "./ip.js";
import { Ipv4Packet, Ipv4Repr, ipv4Repr } from "./ipv4.js";
import { Ipv6Packet, Ipv6Repr, ipv6Repr } from "./ipv6.js";
import type { MacAddress } from "./mac.js";
import { TcpPacket, TcpRepr, tcpRepr } from "./tcp.js";
import { UdpPacket, UdpRepr } from "./udp.js";

/** Smallest Ethernet frame without FCS (IEEE 802.3 §4.4.2: 64 bytes with the 4-byte FCS). */
export const ETHERNET_MIN_FRAME = 60;

/** The link-layer part of a frame to build. `pad` zero-fills to 60 bytes as a NIC does on transmit. */
export interface L2Spec {
  dst: MacAddress;
  src: MacAddress;
  vlans?: VlanTag[];
  pad?: boolean;
}

/** The transport part of an IP frame to build. */
export type L4Spec =
  | { proto: "udp"; srcPort: number; dstPort: number; payload?: Uint8Array }
  | ({ proto: "tcp" } & Pick<TcpRepr, "srcPort" | "dstPort"> & Partial<TcpRepr>)
  | { proto: "icmp"; repr: IcmpRepr }
  | { proto: "icmpv6"; repr: Icmpv6Repr }
  | { proto: "raw"; protocol: number; payload: Uint8Array };

/** IP header fields beyond the addresses; IPv4 or IPv6 is chosen by the address family. */
export interface IpSpec {
  src: IpAddress;
  dst: IpAddress;
  /** TTL or hop limit; default 64. */
  ttl?: number;
  dscp?: number;
  ident?: number;
  flowLabel?: number;
}

function finish(l2: L2Spec, etherType: number, l3len: number, write: (buf: Uint8Array) => void): Uint8Array {
  const eth: EthernetRepr = { dst: l2.dst, src: l2.src, vlans: l2.vlans ?? [], etherType };
  const hl = EthernetRepr.bufferLen(eth);
  const total = hl + l3len;
  const frame = new Uint8Array(l2.pad === true ? Math.max(total, ETHERNET_MIN_FRAME) : total);
  EthernetRepr.emit(eth, frame);
  write(frame.subarray(hl, total));
  return frame;
}

/** Any EtherType with an opaque payload. */
export function buildEthernetFrame(l2: L2Spec, etherType: number, payload: Uint8Array): Uint8Array {
  return finish(l2, etherType, payload.length, (b) => b.set(payload));
}

export function buildArpFrame(l2: L2Spec, arp: ArpRepr): Uint8Array {
  return finish(l2, EtherType.ARP, ArpRepr.bufferLen(arp), (b) => ArpRepr.emit(arp, b));
}

/**
 * An IPv4 or IPv6 frame with a UDP, TCP, ICMP, ICMPv6 or raw payload, every checksum filled in:
 * what tests and traffic generators hand to a NIC.
 */
export function buildIpFrame(l2: L2Spec, ip: IpSpec, l4: L4Spec): Uint8Array {
  let protocol: number;
  let l4len: number;
  let writeL4: (b: Uint8Array) => void;
  switch (l4.proto) {
    case "udp": {
      const r: UdpRepr = { srcPort: l4.srcPort, dstPort: l4.dstPort, payload: l4.payload ?? new Uint8Array(0) };
      protocol = IpProtocol.UDP;
      l4len = UdpRepr.bufferLen(r);
      writeL4 = (b) => UdpRepr.emit(r, b, ip.src, ip.dst);
      break;
    }
    case "tcp": {
      const { proto: _p, ...rest } = l4;
      const r = tcpRepr(rest);
      protocol = IpProtocol.TCP;
      l4len = TcpRepr.bufferLen(r);
      writeL4 = (b) => TcpRepr.emit(r, b, ip.src, ip.dst);
      break;
    }
    case "icmp":
      protocol = IpProtocol.ICMP;
      l4len = IcmpRepr.bufferLen(l4.repr);
      writeL4 = (b) => IcmpRepr.emit(l4.repr, b);
      break;
    case "icmpv6":
      protocol = IpProtocol.ICMPV6;
      l4len = Icmpv6Repr.bufferLen(l4.repr);
      writeL4 = (b) => Icmpv6Repr.emit(l4.repr, b, ip.src, ip.dst);
      break;
    case "raw":
      protocol = l4.protocol;
      l4len = l4.payload.length;
      writeL4 = (b) => b.set(l4.payload);
      break;
  }
  if (ip.src.family === 4 && ip.dst.family === 4) {
    const r = ipv4Repr({ src: ip.src, dst: ip.dst, protocol, payloadLen: l4len, ttl: ip.ttl ?? 64, dscp: ip.dscp ?? 0, ident: ip.ident ?? 0 });
    const hl = Ipv4Repr.bufferLen(r);
    return finish(l2, EtherType.IPV4, hl + l4len, (b) => {
      Ipv4Repr.emit(r, b);
      writeL4(b.subarray(hl));
    });
  }
  if (ip.src.family === 6 && ip.dst.family === 6) {
    const r = ipv6Repr({ src: ip.src, dst: ip.dst, nextHeader: protocol, payloadLen: l4len, hopLimit: ip.ttl ?? 64, trafficClass: (ip.dscp ?? 0) << 2, flowLabel: ip.flowLabel ?? 0 });
    return finish(l2, EtherType.IPV6, 40 + l4len, (b) => {
      Ipv6Repr.emit(r, b);
      writeL4(b.subarray(40));
    });
  }
  throw new WireError("WIRE_BAD_VALUE", "source and destination addresses must be of one family", { format: "ip" });
}

export function buildUdpFrame(l2: L2Spec, src: IpAddress, dst: IpAddress, srcPort: number, dstPort: number, payload: Uint8Array, ttl = 64): Uint8Array {
  return buildIpFrame(l2, { src, dst, ttl }, { proto: "udp", srcPort, dstPort, payload });
}

export function buildIcmpEchoFrame(l2: L2Spec, src: Ipv4Address, dst: Ipv4Address, kind: "echoRequest" | "echoReply", ident: number, seq: number, data: Uint8Array): Uint8Array {
  return buildIpFrame(l2, { src, dst }, { proto: "icmp", repr: { kind, ident, seq, data } });
}

/** ICMPv6 frames go out with hop limit 255, as ND requires (RFC 4861 §7.1.1) and echo allows. */
export function buildIcmpv6Frame(l2: L2Spec, src: Ipv6Address, dst: Ipv6Address, repr: Icmpv6Repr): Uint8Array {
  return buildIpFrame(l2, { src, dst, ttl: 255 }, { proto: "icmpv6", repr });
}

/** What `dissectFrame` found, layer by layer; absent layers are undefined. */
export interface DissectedFrame {
  eth: EthernetRepr;
  arp?: ArpRepr;
  ipv4?: Ipv4Repr;
  ipv6?: Ipv6Repr;
  udp?: UdpRepr;
  tcp?: TcpRepr;
  icmp?: IcmpRepr;
  icmpv6?: Icmpv6Repr;
  /** Bytes after the last layer understood (L4 payload, or the L3 payload of an unknown protocol). */
  payload: Uint8Array;
}

/**
 * Parses a whole frame as deep as vpf understands it, verifying every checksum (unless
 * `verifyChecksums: false`); throws WireError on the first malformed layer.
 */
export function dissectFrame(frame: Uint8Array, opts?: { verifyChecksums?: boolean }): DissectedFrame {
  const v = { verifyChecksum: opts?.verifyChecksums !== false };
  const ef = EthernetFrame.check(frame);
  const out: DissectedFrame = { eth: EthernetRepr.parse(ef), payload: ef.payload };
  let l4: Uint8Array;
  let proto: number;
  let src: IpAddress;
  let dst: IpAddress;
  switch (ef.etherType) {
    case EtherType.ARP:
      out.arp = ArpRepr.parse(ArpPacket.check(ef.payload));
      out.payload = new Uint8Array(0);
      return out;
    case EtherType.IPV4: {
      const p = Ipv4Packet.check(ef.payload);
      out.ipv4 = Ipv4Repr.parse(p, v);
      l4 = p.payload;
      out.payload = l4;
      // Non-first fragments carry no transport header.
      if (p.fragOffset !== 0 || p.moreFrags) return out;
      ({ protocol: proto, src, dst } = out.ipv4);
      break;
    }
    case EtherType.IPV6: {
      const p = Ipv6Packet.check(ef.payload);
      out.ipv6 = Ipv6Repr.parse(p);
      l4 = p.payload;
      out.payload = l4;
      ({ nextHeader: proto, src, dst } = out.ipv6);
      break;
    }
    default:
      return out;
  }
  switch (proto) {
    case IpProtocol.UDP:
      out.udp = UdpRepr.parse(UdpPacket.check(l4), src, dst, v);
      out.payload = out.udp.payload;
      break;
    case IpProtocol.TCP:
      out.tcp = TcpRepr.parse(TcpPacket.check(l4), src, dst, v);
      out.payload = out.tcp.payload;
      break;
    case IpProtocol.ICMP:
      if (src.family === 4) {
        out.icmp = IcmpRepr.parse(IcmpPacket.check(l4), v);
        out.payload = new Uint8Array(0);
      }
      break;
    case IpProtocol.ICMPV6:
      if (src.family === 6) {
        out.icmpv6 = Icmpv6Repr.parse(Icmpv6Packet.check(l4), src, dst, v);
        out.payload = new Uint8Array(0);
      }
      break;
  }
  return out;
}
