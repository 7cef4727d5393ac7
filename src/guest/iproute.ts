/**
 * A user-space rtnetlink client, as iproute2's `ip` encodes its requests (netlink-vf.md §8):
 * builds request bytes and parses reply bytes. It never calls into the kernel objects; tests,
 * benchmarks and the demo send its bytes through `GuestKernel.netlink`, the same path a real
 * program's bytes take.
 */
import { attrList, getString, getU32, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NlBuilder, parseAttrs, readI32At, readU32At, splitMessages } from "./nl.js";
import {
  AF_INET,
  IFA_LOCAL,
  IFA_ADDRESS,
  IFLA_ADDRESS,
  IFLA_EXT_MASK,
  IFLA_IFNAME,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_NET_NS_PID,
  IFLA_NUM_VF,
  IFLA_OPERSTATE,
  IFLA_VFINFO_LIST,
  IFLA_VF_INFO,
  IFLA_VF_LINK_STATE,
  IFLA_VF_MAC,
  IFLA_VF_RATE,
  IFLA_VF_SPOOFCHK,
  IFLA_VF_STATS,
  IFLA_VF_TRUST,
  IFLA_VF_VLAN,
  IFLA_VF_VLAN_INFO,
  IFLA_VF_VLAN_LIST,
  RTEXT_FILTER_VF,
  RTEXT_FILTER_SKIP_STATS,
  RTM_DELADDR,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_SETLINK,
  RTM_NEWROUTE,
  RTM_DELROUTE,
  RTM_GETROUTE,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
} from "./rtnetlink.js";

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

function ifinfo(index: number, flags = 0, change = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setInt32(4, index, true);
  v.setUint32(8, flags, true);
  v.setUint32(12, change, true);
  return b;
}

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

function u32s(...vals: number[]): Uint8Array {
  const b = new Uint8Array(vals.length * 4);
  const v = new DataView(b.buffer);
  vals.forEach((x, i) => v.setUint32(i * 4, x >>> 0, true));
  return b;
}

/** `ip link show` (dump, or one link by name), with RTEXT_FILTER_VF as iproute2 asks. */
export function getLinkRequest(name?: string, vf = true, skipStats = false): Uint8Array {
  const b = new NlBuilder().header(RTM_GETLINK, NLM_F_REQUEST | (name === undefined ? NLM_F_DUMP : 0), seq++, 0).bytes(ifinfo(0));
  if (name !== undefined) b.str(IFLA_IFNAME, name);
  if (vf) b.u32(IFLA_EXT_MASK, RTEXT_FILTER_VF | (skipStats ? RTEXT_FILTER_SKIP_STATS : 0));
  return b.finish();
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
  const b = new NlBuilder().header(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq++, 0).bytes(ifinfo(ifindex));
  b.begin(IFLA_VFINFO_LIST).begin(IFLA_VF_INFO);
  if ("mac" in s) {
    const d = new Uint8Array(36);
    new DataView(d.buffer).setUint32(0, vf, true);
    d.set(macBytes(s.mac), 4);
    b.attr(IFLA_VF_MAC, d);
  } else if ("vlan" in s) {
    const proto = s.proto ?? 0x8100;
    if (proto === 0x8100) b.attr(IFLA_VF_VLAN, u32s(vf, s.vlan, s.qos ?? 0));
    else {
      const d = new Uint8Array(16);
      const v = new DataView(d.buffer);
      v.setUint32(0, vf, true);
      v.setUint32(4, s.vlan, true);
      v.setUint32(8, s.qos ?? 0, true);
      v.setUint16(12, proto, false);
      b.begin(IFLA_VF_VLAN_LIST).attr(IFLA_VF_VLAN_INFO, d).end();
    }
  } else if ("spoofchk" in s) b.attr(IFLA_VF_SPOOFCHK, u32s(vf, s.spoofchk ? 1 : 0));
  else if ("trust" in s) b.attr(IFLA_VF_TRUST, u32s(vf, s.trust ? 1 : 0));
  else if ("state" in s) b.attr(IFLA_VF_LINK_STATE, u32s(vf, s.state));
  else b.attr(IFLA_VF_RATE, u32s(vf, s.minTxRate, s.maxTxRate));
  b.end().end();
  return b.finish();
}

export type LinkChange = { up: boolean } | { name: string } | { mac: string } | { mtu: number } | { netnsFd: number; name?: string } | { netnsPid: number };

/** `ip link set DEV up|down|name N|address A|mtu M|netns NS`. */
export function setLinkRequest(ifindex: number, c: LinkChange): Uint8Array {
  const up = "up" in c;
  const b = new NlBuilder().header(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq++, 0).bytes(up ? ifinfo(ifindex, c.up ? 1 : 0, 1) : ifinfo(ifindex));
  if ("name" in c && !("netnsFd" in c)) b.str(IFLA_IFNAME, c.name);
  if ("mac" in c) b.attr(IFLA_ADDRESS, macBytes(c.mac));
  if ("mtu" in c) b.u32(IFLA_MTU, c.mtu);
  if ("netnsFd" in c) {
    b.u32(IFLA_NET_NS_FD, c.netnsFd);
    if (c.name !== undefined) b.str(IFLA_IFNAME, c.name);
  }
  if ("netnsPid" in c) b.u32(IFLA_NET_NS_PID, c.netnsPid);
  return b.finish();
}

/** `ip addr add|del A/P dev D`. */
export function addrRequest(add: boolean, ifindex: number, address: string, prefixLen: number): Uint8Array {
  const ifa = new Uint8Array(8);
  ifa[0] = AF_INET;
  ifa[1] = prefixLen;
  new DataView(ifa.buffer).setUint32(4, ifindex, true);
  const ip = Uint8Array.from(address.split(".").map(Number));
  return new NlBuilder()
    .header(add ? RTM_NEWADDR : RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK | (add ? 0x400 | 0x200 : 0), seq++, 0)
    .bytes(ifa)
    .attr(IFA_LOCAL, ip)
    .attr(IFA_ADDRESS, ip)
    .finish();
}

export function getAddrRequest(): Uint8Array {
  const ifa = new Uint8Array(8);
  ifa[0] = AF_INET;
  return new NlBuilder().header(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq++, 0).bytes(ifa).finish();
}

/** Parses every reply message of one request. */
export function parseReplies(replies: readonly Uint8Array[]): NlReply {
  const r: NlReply = { error: 0, links: [], addrs: [], routes: [], done: false };
  for (const dgram of replies) {
    for (const m of splitMessages(dgram)) {
      if (m.type === NLMSG_ERROR) r.error = readI32At(m.payload, 0);
      else if (m.type === NLMSG_DONE) r.done = true;
      else if (m.type === RTM_NEWLINK) r.links.push(parseLink(m.payload));
      else if (m.type === RTM_NEWROUTE) {
        const a = parseAttrs(m.payload.subarray(12)) ?? new Map<number, Uint8Array>();
        const txt = (d: Uint8Array | undefined): string | undefined => (d === undefined ? undefined : [...d].join("."));
        r.routes.push({ dst: `${txt(a.get(RTA_DST)) ?? "0.0.0.0"}/${m.payload[1] ?? 0}`, oif: getU32(a.get(RTA_OIF)) ?? 0, gateway: txt(a.get(RTA_GATEWAY)), protocol: m.payload[5] ?? 0 });
      } else if (m.type === RTM_NEWADDR) {
        const a = parseAttrs(m.payload.subarray(8));
        const ip = a?.get(IFA_LOCAL) ?? new Uint8Array(4);
        r.addrs.push({ ifindex: readU32At(m.payload, 4), address: [...ip].join("."), prefixLen: m.payload[1] ?? 0 });
      }
    }
  }
  return r;
}

function parseLink(p: Uint8Array): LinkInfo {
  const a = parseAttrs(p.subarray(16)) ?? new Map<number, Uint8Array>();
  const info: LinkInfo = {
    ifindex: readI32At(p, 4),
    flags: readU32At(p, 8),
    name: getString(a.get(IFLA_IFNAME) ?? new Uint8Array(0)),
    mtu: getU32(a.get(IFLA_MTU)) ?? 0,
    mac: macText(a.get(IFLA_ADDRESS) ?? new Uint8Array(6)),
    operstate: a.get(IFLA_OPERSTATE)?.[0] ?? 0,
    numVf: getU32(a.get(IFLA_NUM_VF)),
    vfs: undefined,
  };
  const list = a.get(IFLA_VFINFO_LIST);
  if (list !== undefined) {
    info.vfs = [];
    for (const e of attrList(list) ?? []) {
      if (e.type !== IFLA_VF_INFO) continue;
      const t = parseAttrs(e.data) ?? new Map<number, Uint8Array>();
      const mac = t.get(IFLA_VF_MAC) ?? new Uint8Array(36);
      const vlan = t.get(IFLA_VF_VLAN) ?? new Uint8Array(12);
      const rate = t.get(IFLA_VF_RATE) ?? new Uint8Array(12);
      const vl = attrList(t.get(IFLA_VF_VLAN_LIST) ?? new Uint8Array(0))?.[0]?.data;
      const vf: LinkVf = {
        vf: readU32At(mac, 0),
        mac: macText(mac.subarray(4)),
        vlan: readU32At(vlan, 4),
        qos: readU32At(vlan, 8),
        vlanProto: vl !== undefined && vl.length >= 14 ? (vl[12]! << 8) | vl[13]! : 0x8100,
        minTxRate: readU32At(rate, 4),
        maxTxRate: readU32At(rate, 8),
        spoofchk: readI32At(t.get(4) ?? new Uint8Array(8), 4),
        trust: readI32At(t.get(IFLA_VF_TRUST) ?? new Uint8Array(8), 4),
        linkState: readU32At(t.get(IFLA_VF_LINK_STATE) ?? new Uint8Array(8), 4),
      };
      const st = t.get(IFLA_VF_STATS);
      if (st !== undefined) {
        const sa = parseAttrs(st) ?? new Map<number, Uint8Array>();
        const g = (k: number): bigint => {
          const d = sa.get(k);
          return d === undefined || d.length < 8 ? 0n : new DataView(d.buffer, d.byteOffset, 8).getBigUint64(0, true);
        };
        vf.stats = { rxPackets: g(0), txPackets: g(1), rxBytes: g(2), txBytes: g(3), rxDropped: g(7), txDropped: g(8) };
      }
      info.vfs.push(vf);
    }
  }
  return info;
}

/** `ip route add|del DST/LEN [via GW] dev OIF` in table main. */
export function routeRequest(add: boolean, dst: string, dstLen: number, oif: number, gateway?: string): Uint8Array {
  const ipb = (t: string): Uint8Array => Uint8Array.from(t.split(".").map(Number));
  const b = new NlBuilder()
    .header(add ? RTM_NEWROUTE : RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK | (add ? 0x400 | 0x200 : 0), seq++, 0)
    .bytes(Uint8Array.of(AF_INET, dstLen, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0));
  if (dstLen > 0) b.attr(RTA_DST, ipb(dst));
  if (gateway !== undefined) b.attr(RTA_GATEWAY, ipb(gateway));
  b.u32(RTA_OIF, oif);
  return b.finish();
}

export function getRouteRequest(): Uint8Array {
  return new NlBuilder().header(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq++, 0).bytes(Uint8Array.of(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).finish();
}
