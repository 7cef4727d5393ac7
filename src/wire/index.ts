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
  pushVlanTagInto,
  popVlanTagInto,
  outerVlanTci,
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
export {
  NLMSG_HDRLEN,
  NLA_HDRLEN,
  NETLINK_ROUTE,
  NETLINK_GENERIC,
  nlAlign,
  NlMsgType,
  NlmF,
  NLA_F_NESTED,
  NLA_F_NET_BYTEORDER,
  NLA_TYPE_MASK,
  NlmsgerrAttr,
  attrType,
  attrIsNested,
  NlWriter,
  nla,
  nlaGet,
  emitAttrs,
  parseAttrs,
  findAttr,
  attrMap,
  parseNlMessages,
  parseNlMessagesPrefix,
  beginNlMessage,
  endNlMessage,
  emitNlMessage,
  concatMessages,
  NlErrorRepr,
  NlDoneRepr,
  collectDump,
  emitDump,
  finishDump,
} from "./netlink.js";
export type { NlMessage, NlAttr, NlAttrSpec, NlHeader, NlExtAck, DumpResult } from "./netlink.js";
export {
  Rtm,
  AddressFamily,
  ARPHRD_ETHER,
  ARPHRD_LOOPBACK,
  Iff,
  IfOper,
  Ifla,
  RtextFilter,
  IFLA_VF_INFO,
  IflaVf,
  IFLA_VF_VLAN_INFO,
  MAX_VLAN_LIST_LEN,
  IflaVfStats,
  IflaVfLinkState,
  Ifa,
  IfaF,
  RtScope,
  VF_STRUCT_SIZE,
  IFINFOMSG_LEN,
  IFADDRMSG_LEN,
  parseVfInfo,
  vfInfoSpec,
  defaultVfInfo,
  LinkRepr,
  AddrRepr,
  Rta,
  RtTable,
  RtProt,
  Rtn,
  RTMSG_LEN,
  RouteRepr,
  routeTable,
} from "./rtnetlink.js";
export type { IfInfoMsg, VfInfo, VfStats, IfAddrMsg, IfaCacheInfo, RtMsg } from "./rtnetlink.js";
export {
  GENL_HDRLEN,
  GENL_ID_CTRL,
  CtrlCmd,
  CtrlAttr,
  CtrlAttrOp,
  CtrlAttrMcastGrp,
  GenlOpFlag,
  VDPA_GENL_NAME,
  VDPA_GENL_VERSION,
  VdpaCmd,
  VdpaAttr,
  GenlRepr,
  ctrlGetFamilyRequest,
  ctrlFamilyReply,
  parseCtrlFamily,
} from "./genetlink.js";
export type { GenlFamily } from "./genetlink.js";
export { tsharkFields, TSHARK_CHECKSUM_FIELDS } from "./tshark.js";
export { u16be, u32be, put16be, put32be, u16le, u32le, put16le, put32le, u64le, put64le, bytesEqual, hex } from "./bytes.js";
