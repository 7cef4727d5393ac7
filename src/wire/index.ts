export { WireError } from "./errors.js";
export type { WireErrorCode } from "./errors.js";
export { MacAddress, macKeyAt, writeMacKey, macKeyIsMulticast } from "./mac.js";
export {
  EtherType,
  isVlanTpid,
  vlanTag,
  checkVlanTag,
  tciOf,
  tagFromTci,
  MAX_VLAN_TAGS,
  EthernetFrame,
  EthernetRepr,
  pushVlanTag,
  popVlanTag,
  outerVlanTag,
} from "./ethernet.js";
export type { VlanTag } from "./ethernet.js";
export { IpProtocol, Ipv4Address, Ipv6Address, parseIpAddress } from "./ip.js";
export type { IpAddress } from "./ip.js";
export { checksumAdd, checksumFinish, internetChecksum, pseudoHeaderSum } from "./checksum.js";
export { Ipv4Packet, Ipv4Repr, ipv4Repr } from "./ipv4.js";
export { Ipv6Packet, Ipv6Repr, ipv6Repr } from "./ipv6.js";
export { UdpPacket, UdpRepr } from "./udp.js";
export { TcpPacket, TcpRepr, TcpFlags, tcpRepr } from "./tcp.js";
export { IcmpPacket, IcmpRepr, IcmpType } from "./icmp.js";
export { Icmpv6Packet, Icmpv6Repr, Icmpv6Type, NdpOptionType, linkLayerAddressOption, ndpLinkLayerAddress } from "./icmpv6.js";
export type { NdpOption } from "./icmpv6.js";
export { ArpPacket, ArpRepr, ArpOperation, ARP_HTYPE_ETHERNET } from "./arp.js";
export {
  ETHERNET_MIN_FRAME,
  buildEthernetFrame,
  buildArpFrame,
  buildIpFrame,
  buildUdpFrame,
  buildIcmpEchoFrame,
  buildIcmpv6Frame,
  dissectFrame,
} from "./frame.js";
export type { L2Spec, L4Spec, IpSpec, DissectedFrame } from "./frame.js";
export {
  LINKTYPE_ETHERNET,
  PCAP_MAGIC_US,
  PCAP_MAGIC_NS,
  PCAP_GLOBAL_HEADER_LEN,
  PCAP_RECORD_HEADER_LEN,
  pcapGlobalHeader,
  pcapRecord,
  PcapWriter,
  readPcap,
} from "./pcap.js";
export type { PcapOptions, PcapResolution, PcapPacket, PcapFile } from "./pcap.js";
