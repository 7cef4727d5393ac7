import { put16be, put32le, u16be, u16le, u32le } from "./bytes.js";
import { needBytes, WireError } from "./errors.js";
import { Ipv4Address, Ipv6Address, type IpAddress } from "./ip.js";
import { MacAddress } from "./mac.js";
import {
  attrType,
  beginNlMessage,
  endNlMessage,
  nla,
  nlaGet,
  parseAttrs,
  type NlAttr,
  type NlAttrSpec,
  type NlHeader,
  type NlMessage,
  type NlWriter,
} from "./netlink.js";

/**
 * rtnetlink link, address and route messages (include/uapi/linux/rtnetlink.h, if_link.h, if_addr.h;
 * every number below checked against the Linux 6.1 UAPI headers), including the SR-IOV VF
 * attributes exactly as netlink-vf.md §3–§5 lays them out.
 */
export const Rtm = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

export const AddressFamily = { UNSPEC: 0, INET: 2, BRIDGE: 7, INET6: 10, PACKET: 17 } as const;
export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;

/** net_device_flags (include/uapi/linux/if.h). */
export const Iff = {
  UP: 0x1,
  BROADCAST: 0x2,
  DEBUG: 0x4,
  LOOPBACK: 0x8,
  POINTOPOINT: 0x10,
  RUNNING: 0x40,
  NOARP: 0x80,
  PROMISC: 0x100,
  ALLMULTI: 0x200,
  MULTICAST: 0x1000,
  LOWER_UP: 0x10000,
  DORMANT: 0x20000,
} as const;

/** RFC 2863 operational states carried in IFLA_OPERSTATE. */
export const IfOper = { UNKNOWN: 0, NOTPRESENT: 1, DOWN: 2, LOWERLAYERDOWN: 3, TESTING: 4, DORMANT: 5, UP: 6 } as const;

export const Ifla = {
  ADDRESS: 1,
  BROADCAST: 2,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  QDISC: 6,
  STATS: 7,
  MASTER: 10,
  TXQLEN: 13,
  OPERSTATE: 16,
  LINKMODE: 17,
  LINKINFO: 18,
  NET_NS_PID: 19,
  IFALIAS: 20,
  NUM_VF: 21,
  VFINFO_LIST: 22,
  STATS64: 23,
  VF_PORTS: 24,
  PORT_SELF: 25,
  AF_SPEC: 26,
  GROUP: 27,
  NET_NS_FD: 28,
  EXT_MASK: 29,
  PROMISCUITY: 30,
  NUM_TX_QUEUES: 31,
  NUM_RX_QUEUES: 32,
  CARRIER: 33,
  PHYS_PORT_ID: 34,
  CARRIER_CHANGES: 35,
  PHYS_SWITCH_ID: 36,
  LINK_NETNSID: 37,
  PHYS_PORT_NAME: 38,
  PROTO_DOWN: 39,
  GSO_MAX_SEGS: 40,
  GSO_MAX_SIZE: 41,
  PAD: 42,
  XDP: 43,
  EVENT: 44,
  NEW_NETNSID: 45,
  TARGET_NETNSID: 46,
  CARRIER_UP_COUNT: 47,
  CARRIER_DOWN_COUNT: 48,
  NEW_IFINDEX: 49,
  MIN_MTU: 50,
  MAX_MTU: 51,
  PROP_LIST: 52,
  ALT_IFNAME: 53,
  PERM_ADDRESS: 54,
  PROTO_DOWN_REASON: 55,
  PARENT_DEV_NAME: 56,
  PARENT_DEV_BUS_NAME: 57,
} as const;

/** IFLA_EXT_MASK bits. */
export const RtextFilter = { VF: 1, BRVLAN: 2, BRVLAN_COMPRESSED: 4, SKIP_STATS: 8 } as const;

/** Inside IFLA_VFINFO_LIST: one IFLA_VF_INFO nest per VF. */
export const IFLA_VF_INFO = 1;
export const IflaVf = {
  MAC: 1,
  VLAN: 2,
  TX_RATE: 3,
  SPOOFCHK: 4,
  LINK_STATE: 5,
  RATE: 6,
  RSS_QUERY_EN: 7,
  STATS: 8,
  TRUST: 9,
  IB_NODE_GUID: 10,
  IB_PORT_GUID: 11,
  VLAN_LIST: 12,
  BROADCAST: 13,
} as const;
/** Inside IFLA_VF_VLAN_LIST. */
export const IFLA_VF_VLAN_INFO = 1;
/** MAX_VLAN_LIST_LEN: the kernel accepts one entry. */
export const MAX_VLAN_LIST_LEN = 1;
export const IflaVfStats = {
  RX_PACKETS: 0,
  TX_PACKETS: 1,
  RX_BYTES: 2,
  TX_BYTES: 3,
  BROADCAST: 4,
  MULTICAST: 5,
  PAD: 6,
  RX_DROPPED: 7,
  TX_DROPPED: 8,
} as const;
export const IflaVfLinkState = { AUTO: 0, ENABLE: 1, DISABLE: 2 } as const;

export const Ifa = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  ANYCAST: 5,
  CACHEINFO: 6,
  MULTICAST: 7,
  FLAGS: 8,
  RT_PRIORITY: 9,
  TARGET_NETNSID: 10,
  PROTO: 11,
} as const;
export const IfaF = { SECONDARY: 0x01, NODAD: 0x02, OPTIMISTIC: 0x04, DADFAILED: 0x08, HOMEADDRESS: 0x10, DEPRECATED: 0x20, TENTATIVE: 0x40, PERMANENT: 0x80, MANAGETEMPADDR: 0x100, NOPREFIXROUTE: 0x200 } as const;
/** rt_scope_t values used in ifa_scope. */
export const RtScope = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;

/** Struct sizes (x86-64) from if_link.h. */
export const VF_STRUCT_SIZE = { mac: 36, vlan: 12, vlanInfo: 16, txRate: 8, rate: 12, setting: 8, broadcast: 32, guid: 16 } as const;

// ---------------------------------------------------------------- ifinfomsg

/** struct ifinfomsg, 16 bytes: family, pad, type (ARPHRD_*), index, flags (IFF_*), change mask. */
export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}
export const IFINFOMSG_LEN = 16;

function writeIfInfo(w: NlWriter, i: IfInfoMsg): void {
  w.u8(i.family);
  w.u8(0);
  w.u16(i.type);
  w.u32(i.index >>> 0);
  w.u32(i.flags >>> 0);
  w.u32(i.change >>> 0);
}

/** One VF's configuration as IFLA_VF_INFO carries it. Absent fields were not in the message. */
export interface VfInfo {
  vf: number;
  mac?: MacAddress;
  /** IFLA_VF_BROADCAST: the first 6 of its 32 bytes. */
  broadcast?: MacAddress;
  vlan?: { vlan: number; qos: number };
  rate?: { minTxRate: number; maxTxRate: number };
  txRate?: number;
  /** −1 means "unsupported" (the kernel's default before the driver fills it in). */
  spoofchk?: number;
  linkState?: number;
  rssQueryEn?: number;
  trust?: number;
  /** IFLA_VF_VLAN_LIST entries; `proto` is 0x8100 or 0x88A8 (sent big-endian). */
  vlanList?: { vlan: number; qos: number; proto: number }[];
  stats?: VfStats;
  ibNodeGuid?: bigint;
  ibPortGuid?: bigint;
  /** Attributes inside IFLA_VF_INFO that vpf does not model, raw. */
  extra: NlAttr[];
}

export interface VfStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  broadcast: bigint;
  multicast: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

/** A link message (RTM_NEWLINK/DELLINK/GETLINK/SETLINK) with its attributes decoded. */
export interface LinkRepr {
  ifi: IfInfoMsg;
  ifname?: string;
  /** Raw hardware address (6 bytes for Ethernet). */
  address?: Uint8Array;
  broadcast?: Uint8Array;
  mtu?: number;
  link?: number;
  master?: number;
  txqlen?: number;
  operstate?: number;
  linkmode?: number;
  netNsPid?: number;
  netNsFd?: number;
  ifalias?: string;
  numVf?: number;
  vfInfoList?: VfInfo[];
  extMask?: number;
  parentDevName?: string;
  parentDevBusName?: string;
  /** Every other attribute, raw, in message order. */
  extra: NlAttr[];
}

function short(what: string, have: number, need: number): never {
  throw new WireError("WIRE_TRUNCATED", `${what}: ${have} bytes, need ${need}`, { format: "rtnetlink", what, have, need });
}
function structAt(a: NlAttr, need: number, what: string): Uint8Array {
  if (a.payload.length < need) short(what, a.payload.length, need);
  return a.payload;
}

function parseVfStats(a: NlAttr): VfStats {
  const s: VfStats = { rxPackets: 0n, txPackets: 0n, rxBytes: 0n, txBytes: 0n, broadcast: 0n, multicast: 0n, rxDropped: 0n, txDropped: 0n };
  const key: Record<number, keyof VfStats> = {
    [IflaVfStats.RX_PACKETS]: "rxPackets",
    [IflaVfStats.TX_PACKETS]: "txPackets",
    [IflaVfStats.RX_BYTES]: "rxBytes",
    [IflaVfStats.TX_BYTES]: "txBytes",
    [IflaVfStats.BROADCAST]: "broadcast",
    [IflaVfStats.MULTICAST]: "multicast",
    [IflaVfStats.RX_DROPPED]: "rxDropped",
    [IflaVfStats.TX_DROPPED]: "txDropped",
  };
  for (const c of parseAttrs(a.payload)) {
    const k = key[attrType(c)];
    if (k !== undefined) s[k] = nlaGet.u64(c);
  }
  return s;
}

/**
 * Decodes one IFLA_VF_INFO nest. Each struct carries its own `vf`; they must agree (a message
 * mixing VFs inside one IFLA_VF_INFO is refused with WIRE_BAD_VALUE), and at least one must be
 * present. Struct payloads shorter than their C size are WIRE_TRUNCATED.
 */
export function parseVfInfo(info: NlAttr): VfInfo {
  let vf: number | undefined;
  const setVf = (v: number): void => {
    if (vf !== undefined && vf !== v) throw new WireError("WIRE_BAD_VALUE", `IFLA_VF_INFO mixes VF ${vf} and VF ${v}`, { format: "rtnetlink", vf, other: v });
    vf = v;
  };
  const r: Omit<VfInfo, "vf"> = { extra: [] };
  for (const a of parseAttrs(info.payload)) {
    switch (attrType(a)) {
      case IflaVf.MAC: {
        const p = structAt(a, VF_STRUCT_SIZE.mac, "ifla_vf_mac");
        setVf(u32le(p, 0));
        r.mac = MacAddress.fromBytes(p, 4);
        break;
      }
      case IflaVf.BROADCAST:
        r.broadcast = MacAddress.fromBytes(structAt(a, VF_STRUCT_SIZE.broadcast, "ifla_vf_broadcast"), 0);
        break;
      case IflaVf.VLAN: {
        const p = structAt(a, VF_STRUCT_SIZE.vlan, "ifla_vf_vlan");
        setVf(u32le(p, 0));
        r.vlan = { vlan: u32le(p, 4), qos: u32le(p, 8) };
        break;
      }
      case IflaVf.TX_RATE: {
        const p = structAt(a, VF_STRUCT_SIZE.txRate, "ifla_vf_tx_rate");
        setVf(u32le(p, 0));
        r.txRate = u32le(p, 4);
        break;
      }
      case IflaVf.RATE: {
        const p = structAt(a, VF_STRUCT_SIZE.rate, "ifla_vf_rate");
        setVf(u32le(p, 0));
        r.rate = { minTxRate: u32le(p, 4), maxTxRate: u32le(p, 8) };
        break;
      }
      case IflaVf.SPOOFCHK:
      case IflaVf.LINK_STATE:
      case IflaVf.RSS_QUERY_EN:
      case IflaVf.TRUST: {
        const p = structAt(a, VF_STRUCT_SIZE.setting, "ifla_vf setting");
        setVf(u32le(p, 0));
        const v = u32le(p, 4) | 0;
        const t = attrType(a);
        if (t === IflaVf.SPOOFCHK) r.spoofchk = v;
        else if (t === IflaVf.LINK_STATE) r.linkState = v >>> 0;
        else if (t === IflaVf.RSS_QUERY_EN) r.rssQueryEn = v;
        else r.trust = v;
        break;
      }
      case IflaVf.IB_NODE_GUID:
      case IflaVf.IB_PORT_GUID: {
        // x86-64 lays out {u32 vf; 4 pad; u64 guid} (16 bytes); i386 packs it into 12.
        const p = structAt(a, 12, "ifla_vf_guid");
        setVf(u32le(p, 0));
        const off = p.length >= 16 ? 8 : 4;
        const g = (BigInt(u32le(p, off + 4)) << 32n) | BigInt(u32le(p, off));
        if (attrType(a) === IflaVf.IB_NODE_GUID) r.ibNodeGuid = g;
        else r.ibPortGuid = g;
        break;
      }
      case IflaVf.VLAN_LIST: {
        const list: { vlan: number; qos: number; proto: number }[] = [];
        for (const e of parseAttrs(a.payload)) {
          if (attrType(e) !== IFLA_VF_VLAN_INFO) continue;
          const p = structAt(e, VF_STRUCT_SIZE.vlanInfo, "ifla_vf_vlan_info");
          setVf(u32le(p, 0));
          list.push({ vlan: u32le(p, 4), qos: u32le(p, 8), proto: u16be(p, 12) });
        }
        r.vlanList = list;
        break;
      }
      case IflaVf.STATS:
        r.stats = parseVfStats(a);
        break;
      default:
        r.extra.push(a);
    }
  }
  if (vf === undefined) throw new WireError("WIRE_BAD_VALUE", "IFLA_VF_INFO without any struct naming its VF", { format: "rtnetlink" });
  return { vf, ...r };
}

function u32s(...vs: number[]): Uint8Array {
  const b = new Uint8Array(4 * vs.length);
  vs.forEach((v, i) => put32le(b, 4 * i, v >>> 0));
  return b;
}
function macField(m: MacAddress, vfPrefix: number | undefined): Uint8Array {
  const off = vfPrefix === undefined ? 0 : 4;
  const b = new Uint8Array(off + 32);
  if (vfPrefix !== undefined) put32le(b, 0, vfPrefix);
  m.writeTo(b, off);
  return b;
}

/**
 * Attribute specs of one IFLA_VF_INFO, in the order rtnl_fill_vfinfo emits them. The IFLA_VF_STATS
 * counters are nla_put_u64_64bit values: 8-byte aligned through IFLA_VF_STATS_PAD by default, or
 * plain with `{ alignU64: false }`, as a kernel with efficient unaligned access (x86) writes them.
 */
export function vfInfoSpec(v: VfInfo, opts?: { alignU64?: boolean }): NlAttrSpec {
  const c: NlAttrSpec[] = [];
  if (v.mac !== undefined) c.push(nla.raw(IflaVf.MAC, macField(v.mac, v.vf)));
  if (v.broadcast !== undefined) c.push(nla.raw(IflaVf.BROADCAST, macField(v.broadcast, undefined)));
  if (v.vlan !== undefined) c.push(nla.raw(IflaVf.VLAN, u32s(v.vf, v.vlan.vlan, v.vlan.qos)));
  if (v.rate !== undefined) c.push(nla.raw(IflaVf.RATE, u32s(v.vf, v.rate.minTxRate, v.rate.maxTxRate)));
  if (v.txRate !== undefined) c.push(nla.raw(IflaVf.TX_RATE, u32s(v.vf, v.txRate)));
  if (v.spoofchk !== undefined) c.push(nla.raw(IflaVf.SPOOFCHK, u32s(v.vf, v.spoofchk)));
  if (v.linkState !== undefined) c.push(nla.raw(IflaVf.LINK_STATE, u32s(v.vf, v.linkState)));
  if (v.rssQueryEn !== undefined) c.push(nla.raw(IflaVf.RSS_QUERY_EN, u32s(v.vf, v.rssQueryEn)));
  if (v.trust !== undefined) c.push(nla.raw(IflaVf.TRUST, u32s(v.vf, v.trust)));
  for (const [t, g] of [[IflaVf.IB_NODE_GUID, v.ibNodeGuid], [IflaVf.IB_PORT_GUID, v.ibPortGuid]] as const) {
    if (g === undefined) continue;
    const x = BigInt.asUintN(64, g);
    c.push(nla.raw(t, u32s(v.vf, 0, Number(x & 0xffffffffn), Number(x >> 32n))));
  }
  if (v.vlanList !== undefined) {
    c.push(
      nla.nest(
        IflaVf.VLAN_LIST,
        v.vlanList.map((e) => {
          const p = new Uint8Array(VF_STRUCT_SIZE.vlanInfo);
          p.set(u32s(v.vf, e.vlan, e.qos));
          put16be(p, 12, e.proto); // vlan_proto is __be16
          return nla.raw(IFLA_VF_VLAN_INFO, p);
        }),
      ),
    );
  }
  if (v.stats !== undefined) {
    const s = v.stats;
    const u = opts?.alignU64 === false ? (t: number, x: bigint) => nla.u64(t, x) : (t: number, x: bigint) => nla.u64Aligned(t, x, IflaVfStats.PAD);
    c.push(
      nla.nest(IflaVf.STATS, [
        u(IflaVfStats.RX_PACKETS, s.rxPackets),
        u(IflaVfStats.TX_PACKETS, s.txPackets),
        u(IflaVfStats.RX_BYTES, s.rxBytes),
        u(IflaVfStats.TX_BYTES, s.txBytes),
        u(IflaVfStats.BROADCAST, s.broadcast),
        u(IflaVfStats.MULTICAST, s.multicast),
        u(IflaVfStats.RX_DROPPED, s.rxDropped),
        u(IflaVfStats.TX_DROPPED, s.txDropped),
      ]),
    );
  }
  c.push(...v.extra);
  // rtnl_fill_vfinfo opens these nests with nla_nest_start_noflag: no NLA_F_NESTED.
  return nla.nest(IFLA_VF_INFO, c);
}

/** The VF defaults rtnl_fill_vfinfo starts from before the driver fills in its config (netlink-vf.md §6). */
export function defaultVfInfo(vf: number): VfInfo {
  return { vf, mac: MacAddress.ZERO, vlan: { vlan: 0, qos: 0 }, rate: { minTxRate: 0, maxTxRate: 0 }, txRate: 0, spoofchk: -1, linkState: IflaVfLinkState.AUTO, rssQueryEn: -1, trust: -1, vlanList: [{ vlan: 0, qos: 0, proto: 0x8100 }], extra: [] };
}

export const LinkRepr = {
  /** Decodes a link message; WIRE_BAD_VALUE for other message types. */
  parse(m: NlMessage): LinkRepr {
    if (m.type < Rtm.NEWLINK || m.type > Rtm.SETLINK) throw new WireError("WIRE_BAD_VALUE", `message type ${m.type} is not a link message`, { format: "rtnetlink", value: m.type });
    const p = m.payload;
    needBytes("ifinfomsg", p.length, IFINFOMSG_LEN);
    const r: LinkRepr = {
      ifi: { family: p[0]!, type: u16le(p, 2), index: u32le(p, 4) | 0, flags: u32le(p, 8), change: u32le(p, 12) },
      extra: [],
    };
    for (const a of parseAttrs(p.subarray(IFINFOMSG_LEN))) {
      switch (attrType(a)) {
        case Ifla.IFNAME:
          r.ifname = nlaGet.str(a);
          break;
        case Ifla.ADDRESS:
          r.address = a.payload.slice();
          break;
        case Ifla.BROADCAST:
          r.broadcast = a.payload.slice();
          break;
        case Ifla.MTU:
          r.mtu = nlaGet.u32(a);
          break;
        case Ifla.LINK:
          r.link = nlaGet.u32(a);
          break;
        case Ifla.MASTER:
          r.master = nlaGet.u32(a);
          break;
        case Ifla.TXQLEN:
          r.txqlen = nlaGet.u32(a);
          break;
        case Ifla.OPERSTATE:
          r.operstate = nlaGet.u8(a);
          break;
        case Ifla.LINKMODE:
          r.linkmode = nlaGet.u8(a);
          break;
        case Ifla.NET_NS_PID:
          r.netNsPid = nlaGet.u32(a);
          break;
        case Ifla.NET_NS_FD:
          r.netNsFd = nlaGet.u32(a);
          break;
        case Ifla.IFALIAS:
          r.ifalias = nlaGet.str(a);
          break;
        case Ifla.NUM_VF:
          r.numVf = nlaGet.u32(a);
          break;
        case Ifla.VFINFO_LIST:
          r.vfInfoList = parseAttrs(a.payload)
            .filter((x) => attrType(x) === IFLA_VF_INFO)
            .map(parseVfInfo);
          break;
        case Ifla.EXT_MASK:
          r.extMask = nlaGet.u32(a);
          break;
        case Ifla.PARENT_DEV_NAME:
          r.parentDevName = nlaGet.str(a);
          break;
        case Ifla.PARENT_DEV_BUS_NAME:
          r.parentDevBusName = nlaGet.str(a);
          break;
        default:
          r.extra.push(a);
      }
    }
    return r;
  },
  /** Attribute specs in the order rtnl_fill_ifinfo emits them (request-only ones last), then `extra`. */
  attrSpecs(r: LinkRepr): NlAttrSpec[] {
    const s: NlAttrSpec[] = [];
    if (r.ifname !== undefined) s.push(nla.str(Ifla.IFNAME, r.ifname));
    if (r.txqlen !== undefined) s.push(nla.u32(Ifla.TXQLEN, r.txqlen));
    if (r.operstate !== undefined) s.push(nla.u8(Ifla.OPERSTATE, r.operstate));
    if (r.linkmode !== undefined) s.push(nla.u8(Ifla.LINKMODE, r.linkmode));
    if (r.mtu !== undefined) s.push(nla.u32(Ifla.MTU, r.mtu));
    if (r.link !== undefined) s.push(nla.u32(Ifla.LINK, r.link));
    if (r.master !== undefined) s.push(nla.u32(Ifla.MASTER, r.master));
    if (r.ifalias !== undefined) s.push(nla.str(Ifla.IFALIAS, r.ifalias));
    if (r.address !== undefined) s.push(nla.raw(Ifla.ADDRESS, r.address));
    if (r.broadcast !== undefined) s.push(nla.raw(Ifla.BROADCAST, r.broadcast));
    if (r.numVf !== undefined) s.push(nla.u32(Ifla.NUM_VF, r.numVf));
    if (r.vfInfoList !== undefined) s.push(nla.nest(Ifla.VFINFO_LIST, r.vfInfoList.map((v) => vfInfoSpec(v))));
    if (r.parentDevName !== undefined) s.push(nla.str(Ifla.PARENT_DEV_NAME, r.parentDevName));
    if (r.parentDevBusName !== undefined) s.push(nla.str(Ifla.PARENT_DEV_BUS_NAME, r.parentDevBusName));
    if (r.extMask !== undefined) s.push(nla.u32(Ifla.EXT_MASK, r.extMask));
    if (r.netNsPid !== undefined) s.push(nla.u32(Ifla.NET_NS_PID, r.netNsPid));
    if (r.netNsFd !== undefined) s.push(nla.u32(Ifla.NET_NS_FD, r.netNsFd));
    s.push(...r.extra);
    return s;
  },
  /** A whole message: nlmsghdr, ifinfomsg, attributes (u64 VF counters 8-byte aligned from the message start). */
  emit(r: LinkRepr, h: NlHeader): Uint8Array {
    const w = beginNlMessage(h);
    writeIfInfo(w, r.ifi);
    w.attrs(LinkRepr.attrSpecs(r));
    return endNlMessage(w);
  },
};

// ---------------------------------------------------------------- ifaddrmsg

/** struct ifaddrmsg, 8 bytes. */
export interface IfAddrMsg {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  index: number;
}
export const IFADDRMSG_LEN = 8;

export interface IfaCacheInfo {
  preferred: number;
  valid: number;
  cstamp: number;
  tstamp: number;
}

/** An address message (RTM_NEWADDR/DELADDR/GETADDR). Addresses decode per ifa_family. */
export interface AddrRepr {
  ifa: IfAddrMsg;
  address?: IpAddress;
  local?: IpAddress;
  broadcast?: IpAddress;
  label?: string;
  /** IFA_FLAGS: the full 32-bit flags (ifa_flags holds only the low 8). */
  flags?: number;
  cacheInfo?: IfaCacheInfo;
  extra: NlAttr[];
}

function ipFromAttr(a: NlAttr, family: number): IpAddress | undefined {
  if (family === AddressFamily.INET) {
    if (a.payload.length !== 4) throw new WireError("WIRE_BAD_LENGTH", `IPv4 address attribute of ${a.payload.length} bytes`, { format: "rtnetlink", type: attrType(a), value: a.payload.length });
    return Ipv4Address.fromBytes(a.payload);
  }
  if (family === AddressFamily.INET6) {
    if (a.payload.length !== 16) throw new WireError("WIRE_BAD_LENGTH", `IPv6 address attribute of ${a.payload.length} bytes`, { format: "rtnetlink", type: attrType(a), value: a.payload.length });
    return Ipv6Address.fromBytes(a.payload);
  }
  return undefined;
}

export const AddrRepr = {
  parse(m: NlMessage): AddrRepr {
    if (m.type < Rtm.NEWADDR || m.type > Rtm.GETADDR) throw new WireError("WIRE_BAD_VALUE", `message type ${m.type} is not an address message`, { format: "rtnetlink", value: m.type });
    const p = m.payload;
    needBytes("ifaddrmsg", p.length, IFADDRMSG_LEN);
    const ifa: IfAddrMsg = { family: p[0]!, prefixlen: p[1]!, flags: p[2]!, scope: p[3]!, index: u32le(p, 4) };
    const r: AddrRepr = { ifa, extra: [] };
    for (const a of parseAttrs(p.subarray(IFADDRMSG_LEN))) {
      const t = attrType(a);
      if (t === Ifa.ADDRESS || t === Ifa.LOCAL || t === Ifa.BROADCAST) {
        const ip = ipFromAttr(a, ifa.family);
        if (ip === undefined) r.extra.push(a);
        else if (t === Ifa.ADDRESS) r.address = ip;
        else if (t === Ifa.LOCAL) r.local = ip;
        else r.broadcast = ip;
      } else if (t === Ifa.LABEL) r.label = nlaGet.str(a);
      else if (t === Ifa.FLAGS) r.flags = nlaGet.u32(a);
      else if (t === Ifa.CACHEINFO) {
        const c = structAt(a, 16, "ifa_cacheinfo");
        r.cacheInfo = { preferred: u32le(c, 0), valid: u32le(c, 4), cstamp: u32le(c, 8), tstamp: u32le(c, 12) };
      } else r.extra.push(a);
    }
    return r;
  },
  /** Order as inet_fill_ifaddr: ADDRESS, LOCAL, BROADCAST, LABEL, FLAGS, CACHEINFO, then extra. */
  attrSpecs(r: AddrRepr): NlAttrSpec[] {
    const s: NlAttrSpec[] = [];
    if (r.address !== undefined) s.push(nla.raw(Ifa.ADDRESS, r.address.bytes()));
    if (r.local !== undefined) s.push(nla.raw(Ifa.LOCAL, r.local.bytes()));
    if (r.broadcast !== undefined) s.push(nla.raw(Ifa.BROADCAST, r.broadcast.bytes()));
    if (r.label !== undefined) s.push(nla.str(Ifa.LABEL, r.label));
    if (r.flags !== undefined) s.push(nla.u32(Ifa.FLAGS, r.flags));
    if (r.cacheInfo !== undefined) {
      const c = r.cacheInfo;
      s.push(nla.raw(Ifa.CACHEINFO, u32s(c.preferred, c.valid, c.cstamp, c.tstamp)));
    }
    s.push(...r.extra);
    return s;
  },
  emit(r: AddrRepr, h: NlHeader): Uint8Array {
    const w = beginNlMessage(h);
    w.u8(r.ifa.family);
    w.u8(r.ifa.prefixlen);
    w.u8(r.ifa.flags);
    w.u8(r.ifa.scope);
    w.u32(r.ifa.index >>> 0);
    w.attrs(AddrRepr.attrSpecs(r));
    return endNlMessage(w);
  },
};

// ---------------------------------------------------------------- rtmsg

/** Route attributes (enum rtattr_type_t). */
export const Rta = { DST: 1, SRC: 2, IIF: 3, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
/** rtm_table values (enum rt_class_t); tables above 255 go in RTA_TABLE with rtm_table RT_TABLE_COMPAT (252). */
export const RtTable = { UNSPEC: 0, COMPAT: 252, DEFAULT: 253, MAIN: 254, LOCAL: 255 } as const;
/** rtm_protocol values. */
export const RtProt = { UNSPEC: 0, REDIRECT: 1, KERNEL: 2, BOOT: 3, STATIC: 4 } as const;
/** rtm_type values. */
export const Rtn = { UNSPEC: 0, UNICAST: 1, LOCAL: 2, BROADCAST: 3, ANYCAST: 4, MULTICAST: 5, BLACKHOLE: 6, UNREACHABLE: 7, PROHIBIT: 8 } as const;

/** struct rtmsg, 12 bytes: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32). */
export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}
export const RTMSG_LEN = 12;

/**
 * A route message (RTM_NEWROUTE/DELROUTE/GETROUTE). Addresses decode per rtm_family (wrong
 * length: WIRE_BAD_LENGTH); `table` is RTA_TABLE, which wins over rtm_table when present (see
 * `routeTable`).
 */
export interface RouteRepr {
  rtm: RtMsg;
  dst?: IpAddress;
  gateway?: IpAddress;
  prefsrc?: IpAddress;
  oif?: number;
  priority?: number;
  table?: number;
  extra: NlAttr[];
}

/** The route's table as the kernel resolves it: RTA_TABLE when present, else rtm_table. */
export function routeTable(r: RouteRepr): number {
  return r.table ?? r.rtm.table;
}

export const RouteRepr = {
  parse(m: NlMessage): RouteRepr {
    if (m.type < Rtm.NEWROUTE || m.type > Rtm.GETROUTE) throw new WireError("WIRE_BAD_VALUE", `message type ${m.type} is not a route message`, { format: "rtnetlink", value: m.type });
    const p = m.payload;
    needBytes("rtmsg", p.length, RTMSG_LEN);
    const rtm: RtMsg = { family: p[0]!, dstLen: p[1]!, srcLen: p[2]!, tos: p[3]!, table: p[4]!, protocol: p[5]!, scope: p[6]!, type: p[7]!, flags: u32le(p, 8) };
    const r: RouteRepr = { rtm, extra: [] };
    for (const a of parseAttrs(p.subarray(RTMSG_LEN))) {
      const t = attrType(a);
      if (t === Rta.DST || t === Rta.GATEWAY || t === Rta.PREFSRC) {
        const ip = ipFromAttr(a, rtm.family);
        if (ip === undefined) r.extra.push(a);
        else if (t === Rta.DST) r.dst = ip;
        else if (t === Rta.GATEWAY) r.gateway = ip;
        else r.prefsrc = ip;
      } else if (t === Rta.OIF) r.oif = nlaGet.u32(a);
      else if (t === Rta.PRIORITY) r.priority = nlaGet.u32(a);
      else if (t === Rta.TABLE) r.table = nlaGet.u32(a);
      else r.extra.push(a);
    }
    return r;
  },
  /** Order as fib_dump_info: TABLE, DST, PRIORITY, PREFSRC, then the nexthop's GATEWAY and OIF, then extra. */
  attrSpecs(r: RouteRepr): NlAttrSpec[] {
    const s: NlAttrSpec[] = [];
    if (r.table !== undefined) s.push(nla.u32(Rta.TABLE, r.table));
    if (r.dst !== undefined) s.push(nla.raw(Rta.DST, r.dst.bytes()));
    if (r.priority !== undefined) s.push(nla.u32(Rta.PRIORITY, r.priority));
    if (r.prefsrc !== undefined) s.push(nla.raw(Rta.PREFSRC, r.prefsrc.bytes()));
    if (r.gateway !== undefined) s.push(nla.raw(Rta.GATEWAY, r.gateway.bytes()));
    if (r.oif !== undefined) s.push(nla.u32(Rta.OIF, r.oif));
    s.push(...r.extra);
    return s;
  },
  emit(r: RouteRepr, h: NlHeader): Uint8Array {
    const w = beginNlMessage(h);
    const t = r.rtm;
    for (const [f, v] of [["family", t.family], ["dstLen", t.dstLen], ["srcLen", t.srcLen], ["tos", t.tos], ["table", t.table], ["protocol", t.protocol], ["scope", t.scope], ["type", t.type]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new WireError("WIRE_BAD_VALUE", `rtmsg ${f} ${v} outside 0..255`, { format: "rtnetlink", field: f, value: v });
    }
    w.u8(t.family);
    w.u8(t.dstLen);
    w.u8(t.srcLen);
    w.u8(t.tos);
    w.u8(t.table);
    w.u8(t.protocol);
    w.u8(t.scope);
    w.u8(t.type);
    w.u32(t.flags >>> 0);
    w.attrs(RouteRepr.attrSpecs(r));
    return endNlMessage(w);
  },
};
