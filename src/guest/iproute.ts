/**
 * A user-space rtnetlink client, as iproute2's `ip` encodes its requests (netlink-vf.md §8):
 * builds request bytes and parses reply bytes. It never calls into the kernel objects; tests,
 * benchmarks and the demo send its bytes through `GuestKernel.netlink`, the same path a real
 * program's bytes take.
 */
import { MacAddress } from "../wire/mac.js";
import { Ipv4Address } from "../wire/ip.js";
import { NlErrorRepr, NlMsgType, NlmF, beginNlMessage, endNlMessage, nla, parseNlMessagesPrefix, type NlAttrSpec } from "../wire/netlink.js";
import { AddrRepr, AddressFamily, Ifa, Ifla, LinkRepr, RouteRepr, Rta, RtProt, RtScope, RtTable, Rtm, Rtn, RtextFilter, type IfInfoMsg, type VfInfo } from "../wire/rtnetlink.js";

export interface LinkVf {
  vf: number;
  mac: string;
  vlan: number;
  qos: number;
  vlanProto: number;
  minTxRate: number;
  maxTxRate: number;
  spoofchk: number;
  trust: number;
  linkState: number;
  stats?: { rxPackets: bigint; txPackets: bigint; rxBytes: bigint; txBytes: bigint; rxDropped: bigint; txDropped: bigint };
}

export interface LinkInfo {
  ifindex: number;
  name: string;
  flags: number;
  mtu: number;
  mac: string;
  operstate: number;
  numVf: number | undefined;
  vfs: LinkVf[] | undefined;
}

export interface NlReply {
  /** 0 for success, negative errno from NLMSG_ERROR otherwise. */
  error: number;
  links: LinkInfo[];
  addrs: { ifindex: number; address: string; prefixLen: number }[];
  routes: { dst: string; oif: number; gateway: string | undefined; protocol: number }[];
  done: boolean;
}

let seq = 1;

function ifinfo(index: number, flags = 0, change = 0): IfInfoMsg {
  return { family: AddressFamily.UNSPEC, type: 0, index, flags, change };
}

/** Hex pairs to 6 bytes, as leniently as before: a bad pair reads as 0, missing ones stay 0. */
function macBytes(text: string): Uint8Array {
  const parts = text.split(":");
  const b = new Uint8Array(6);
  parts.forEach((p, i) => {
    if (i < 6) b[i] = Number.parseInt(p, 16) & 0xff;
  });
  return b;
}

function macText(b: Uint8Array): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Dotted quad to bytes without validation (the kernel refuses a wrong length with EINVAL). */
function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

/** A request: nlmsghdr (a fresh seq, pid 0), a fixed header's bytes, attributes in the given order. */
function request(type: number, flags: number, header: Uint8Array, attrs: readonly NlAttrSpec[]): Uint8Array {
  const w = beginNlMessage({ type, flags, seq: seq++, pid: 0 });
  w.bytes(header);
  w.attrs(attrs);
  return endNlMessage(w);
}

function ifinfoBytes(i: IfInfoMsg): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setInt32(4, i.index, true);
  v.setUint32(8, i.flags, true);
  v.setUint32(12, i.change, true);
  return b;
}

/** `ip link show` (dump, or one link by name), with RTEXT_FILTER_VF as iproute2 asks. */
export function getLinkRequest(name?: string, vf = true, skipStats = false): Uint8Array {
  const r: LinkRepr = { ifi: ifinfo(0), extra: [] };
  if (name !== undefined) r.ifname = name;
  if (vf) r.extMask = RtextFilter.VF | (skipStats ? RtextFilter.SKIP_STATS : 0);
  return LinkRepr.emit(r, { type: Rtm.GETLINK, flags: NlmF.REQUEST | (name === undefined ? NlmF.DUMP : 0), seq: seq++, pid: 0 });
}

export type VfSetting =
  | { mac: string }
  | { vlan: number; qos?: number; proto?: number }
  | { spoofchk: boolean }
  | { trust: boolean }
  | { state: 0 | 1 | 2 }
  | { minTxRate: number; maxTxRate: number };

/** `ip link set DEV vf N ...`: one IFLA_VF_INFO with the attributes iproute2 would send. */
export function setVfRequest(ifindex: number, vf: number, s: VfSetting): Uint8Array {
  const v: VfInfo = { vf, extra: [] };
  if ("mac" in s) v.mac = MacAddress.fromBytes(macBytes(s.mac));
  else if ("vlan" in s) {
    // 802.1Q goes as the legacy IFLA_VF_VLAN, anything else as IFLA_VF_VLAN_LIST (netlink-vf.md §8).
    const proto = s.proto ?? 0x8100;
    if (proto === 0x8100) v.vlan = { vlan: s.vlan, qos: s.qos ?? 0 };
    else v.vlanList = [{ vlan: s.vlan, qos: s.qos ?? 0, proto }];
  } else if ("spoofchk" in s) v.spoofchk = s.spoofchk ? 1 : 0;
  else if ("trust" in s) v.trust = s.trust ? 1 : 0;
  else if ("state" in s) v.linkState = s.state;
  else v.rate = { minTxRate: s.minTxRate, maxTxRate: s.maxTxRate };
  return LinkRepr.emit({ ifi: ifinfo(ifindex), vfInfoList: [v], extra: [] }, { type: Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: seq++, pid: 0 });
}

export type LinkChange = { up: boolean } | { name: string } | { mac: string } | { mtu: number } | { netnsFd: number; name?: string } | { netnsPid: number };

/** `ip link set DEV up|down|name N|address A|mtu M|netns NS`. */
export function setLinkRequest(ifindex: number, c: LinkChange): Uint8Array {
  const up = "up" in c;
  const a: NlAttrSpec[] = [];
  if ("name" in c && !("netnsFd" in c)) a.push(nla.str(Ifla.IFNAME, c.name));
  if ("mac" in c) a.push(nla.raw(Ifla.ADDRESS, macBytes(c.mac)));
  if ("mtu" in c) a.push(nla.u32(Ifla.MTU, c.mtu));
  if ("netnsFd" in c) {
    a.push(nla.u32(Ifla.NET_NS_FD, c.netnsFd));
    if (c.name !== undefined) a.push(nla.str(Ifla.IFNAME, c.name));
  }
  if ("netnsPid" in c) a.push(nla.u32(Ifla.NET_NS_PID, c.netnsPid));
  return request(Rtm.NEWLINK, NlmF.REQUEST | NlmF.ACK, ifinfoBytes(up ? ifinfo(ifindex, c.up ? 1 : 0, 1) : ifinfo(ifindex)), a);
}

/** struct ifaddrmsg for an IPv4 request. */
function ifaddr(prefixLen: number, index: number): Uint8Array {
  const ifa = new Uint8Array(8);
  ifa[0] = AddressFamily.INET;
  ifa[1] = prefixLen;
  new DataView(ifa.buffer).setUint32(4, index, true);
  return ifa;
}

/** `ip addr add|del A/P dev D` (IFA_LOCAL before IFA_ADDRESS, as iproute2 sends them). */
export function addrRequest(add: boolean, ifindex: number, address: string, prefixLen: number): Uint8Array {
  const ip = ipv4Bytes(address);
  const flags = NlmF.REQUEST | NlmF.ACK | (add ? NlmF.CREATE | NlmF.EXCL : 0);
  return request(add ? Rtm.NEWADDR : Rtm.DELADDR, flags, ifaddr(prefixLen, ifindex), [nla.raw(Ifa.LOCAL, ip), nla.raw(Ifa.ADDRESS, ip)]);
}

export function getAddrRequest(): Uint8Array {
  return AddrRepr.emit({ ifa: { family: AddressFamily.INET, prefixlen: 0, flags: 0, scope: 0, index: 0 }, extra: [] }, { type: Rtm.GETADDR, flags: NlmF.REQUEST | NlmF.DUMP, seq: seq++, pid: 0 });
}

/** Parses every reply message of one request. */
export function parseReplies(replies: readonly Uint8Array[]): NlReply {
  const r: NlReply = { error: 0, links: [], addrs: [], routes: [], done: false };
  for (const dgram of replies) {
    for (const m of parseNlMessagesPrefix(dgram)) {
      if (m.type === NlMsgType.ERROR) r.error = NlErrorRepr.parse(m).error;
      else if (m.type === NlMsgType.DONE) r.done = true;
      else if (m.type === Rtm.NEWLINK) r.links.push(linkInfo(LinkRepr.parse(m)));
      else if (m.type === Rtm.NEWROUTE) {
        const rt = RouteRepr.parse(m);
        r.routes.push({ dst: `${rt.dst?.toString() ?? "0.0.0.0"}/${rt.rtm.dstLen}`, oif: rt.oif ?? 0, gateway: rt.gateway?.toString(), protocol: rt.rtm.protocol });
      } else if (m.type === Rtm.NEWADDR) {
        const a = AddrRepr.parse(m);
        r.addrs.push({ ifindex: a.ifa.index, address: (a.local ?? Ipv4Address.UNSPECIFIED).toString(), prefixLen: a.ifa.prefixlen });
      }
    }
  }
  return r;
}

/** The flat per-VF view `ip link show` prints; absent structs read as zeros. */
function linkVf(v: VfInfo): LinkVf {
  const out: LinkVf = {
    vf: v.vf,
    mac: (v.mac ?? MacAddress.ZERO).toString(),
    vlan: v.vlan?.vlan ?? 0,
    qos: v.vlan?.qos ?? 0,
    vlanProto: v.vlanList?.[0]?.proto ?? 0x8100,
    minTxRate: v.rate?.minTxRate ?? 0,
    maxTxRate: v.rate?.maxTxRate ?? 0,
    spoofchk: v.spoofchk ?? 0,
    trust: v.trust ?? 0,
    linkState: v.linkState ?? 0,
  };
  const s = v.stats;
  if (s !== undefined) out.stats = { rxPackets: s.rxPackets, txPackets: s.txPackets, rxBytes: s.rxBytes, txBytes: s.txBytes, rxDropped: s.rxDropped, txDropped: s.txDropped };
  return out;
}

function linkInfo(l: LinkRepr): LinkInfo {
  return {
    ifindex: l.ifi.index,
    flags: l.ifi.flags,
    name: l.ifname ?? "",
    mtu: l.mtu ?? 0,
    mac: macText(l.address ?? new Uint8Array(6)),
    operstate: l.operstate ?? 0,
    numVf: l.numVf,
    vfs: l.vfInfoList?.map(linkVf),
  };
}

/** `ip route add|del DST/LEN [via GW] dev OIF` in table main. */
export function routeRequest(add: boolean, dst: string, dstLen: number, oif: number, gateway?: string): Uint8Array {
  // struct rtmsg: INET, dst_len, src_len, tos, table main, protocol boot, scope universe, unicast, flags.
  const rtm = Uint8Array.of(AddressFamily.INET, dstLen, 0, 0, RtTable.MAIN, RtProt.BOOT, RtScope.UNIVERSE, Rtn.UNICAST, 0, 0, 0, 0);
  const a: NlAttrSpec[] = [];
  if (dstLen > 0) a.push(nla.raw(Rta.DST, ipv4Bytes(dst)));
  if (gateway !== undefined) a.push(nla.raw(Rta.GATEWAY, ipv4Bytes(gateway)));
  a.push(nla.u32(Rta.OIF, oif));
  return request(add ? Rtm.NEWROUTE : Rtm.DELROUTE, NlmF.REQUEST | NlmF.ACK | (add ? NlmF.CREATE | NlmF.EXCL : 0), rtm, a);
}

export function getRouteRequest(): Uint8Array {
  return RouteRepr.emit(
    { rtm: { family: AddressFamily.INET, dstLen: 0, srcLen: 0, tos: 0, table: RtTable.UNSPEC, protocol: RtProt.UNSPEC, scope: RtScope.UNIVERSE, type: Rtn.UNSPEC, flags: 0 }, extra: [] },
    { type: Rtm.GETROUTE, flags: NlmF.REQUEST | NlmF.DUMP, seq: seq++, pid: 0 },
  );
}
