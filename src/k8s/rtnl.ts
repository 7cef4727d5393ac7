import { K8sError } from "./errors.js";

/**
 * The rtnetlink messages the CNI plugin sends and a guest kernel answers (netlink-vf.md §2-7):
 * nlmsghdr framing, ifinfomsg/ifaddrmsg/rtmsg, nlattr with 4-byte padding, and the VF structs
 * of IFLA_VFINFO_LIST. Host byte order is little-endian (x86), except `vlan_proto`, which is
 * big-endian on the wire (§5). Parsers check every length before reading and throw K8S_NETLINK.
 */
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;

export const RTM_NEWLINK = 16;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_OPERSTATE = 16;
export const IFLA_NUM_VF = 21;
export const IFLA_VFINFO_LIST = 22;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
export const RTEXT_FILTER_VF = 1;
export const RTEXT_FILTER_SKIP_STATS = 8;
export const IFF_UP = 0x1;

export const IFLA_VF_INFO = 1;
export const IFLA_VF_MAC = 1;
export const IFLA_VF_VLAN = 2;
export const IFLA_VF_TX_RATE = 3;
export const IFLA_VF_SPOOFCHK = 4;
export const IFLA_VF_LINK_STATE = 5;
export const IFLA_VF_RATE = 6;
export const IFLA_VF_RSS_QUERY_EN = 7;
export const IFLA_VF_TRUST = 9;
export const IFLA_VF_VLAN_LIST = 12;
export const IFLA_VF_VLAN_INFO = 1;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const AF_INET = 2;
export const AF_INET6 = 10;

const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
const NLA_TYPE_MASK = 0x3fff; // clears NLA_F_NESTED and NLA_F_NET_BYTEORDER (§2)

export interface NlAttr {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface NlMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  readonly payload: Uint8Array;
}

function bad(message: string, details?: Record<string, unknown>): K8sError {
  return new K8sError("K8S_NETLINK", message, details === undefined ? undefined : { details });
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function u32Bytes(v: number): Uint8Array {
  const b = new Uint8Array(4);
  dv(b).setUint32(0, v >>> 0, true);
  return b;
}

export function attr(type: number, data: Uint8Array): NlAttr {
  return { type, data };
}
export function attrU32(type: number, v: number): NlAttr {
  return { type, data: u32Bytes(v) };
}
export function attrStr(type: number, s: string): NlAttr {
  const enc = new TextEncoder().encode(s);
  const b = new Uint8Array(enc.length + 1);
  b.set(enc);
  return { type, data: b };
}
export function attrNest(type: number, children: readonly NlAttr[]): NlAttr {
  return { type, data: encodeAttrs(children) };
}

export function encodeAttrs(attrs: readonly NlAttr[]): Uint8Array {
  let len = 0;
  for (const a of attrs) len += align4(NLA_HDRLEN + a.data.length);
  const out = new Uint8Array(len);
  const v = dv(out);
  let o = 0;
  for (const a of attrs) {
    v.setUint16(o, NLA_HDRLEN + a.data.length, true);
    v.setUint16(o + 2, a.type, true);
    out.set(a.data, o + NLA_HDRLEN);
    o += align4(NLA_HDRLEN + a.data.length);
  }
  return out;
}

/** Parses a run of attributes; the last one may omit its trailing padding, as the kernel allows. */
export function parseAttrs(b: Uint8Array): NlAttr[] {
  const out: NlAttr[] = [];
  const v = dv(b);
  let o = 0;
  while (o < b.length) {
    if (b.length - o < NLA_HDRLEN) throw bad("attribute header truncated", { offset: o });
    const len = v.getUint16(o, true);
    if (len < NLA_HDRLEN || o + len > b.length) throw bad("attribute length out of bounds", { offset: o, len });
    out.push({ type: v.getUint16(o + 2, true) & NLA_TYPE_MASK, data: b.subarray(o + NLA_HDRLEN, o + len) });
    o += align4(len);
  }
  return out;
}

export function findAttr(attrs: readonly NlAttr[], type: number): NlAttr | undefined {
  return attrs.find((a) => a.type === type);
}

export function attrAsU32(a: NlAttr): number {
  if (a.data.length < 4) throw bad("u32 attribute too short", { type: a.type });
  return dv(a.data).getUint32(0, true);
}

export function attrAsString(a: NlAttr): string {
  const nul = a.data.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? a.data : a.data.subarray(0, nul));
}

export function encodeMessage(type: number, flags: number, seq: number, payload: Uint8Array, pid = 0): Uint8Array {
  const out = new Uint8Array(NLMSG_HDRLEN + payload.length);
  const v = dv(out);
  v.setUint32(0, out.length, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  v.setUint32(12, pid, true);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/** Splits a buffer into netlink messages (a datagram may carry several, each 4-aligned). */
export function parseMessages(b: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const v = dv(b);
  let o = 0;
  while (o < b.length) {
    if (b.length - o < NLMSG_HDRLEN) throw bad("nlmsghdr truncated", { offset: o });
    const len = v.getUint32(o, true);
    if (len < NLMSG_HDRLEN || o + len > b.length) throw bad("nlmsg_len out of bounds", { offset: o, len });
    out.push({ type: v.getUint16(o + 4, true), flags: v.getUint16(o + 6, true), seq: v.getUint32(o + 8, true), pid: v.getUint32(o + 12, true), payload: b.subarray(o + NLMSG_HDRLEN, o + len) });
    o += align4(len);
  }
  return out;
}

/** NLMSG_ERROR payload: i32 error (negative errno, 0 = ACK) and the request's header. */
export function encodeError(errno: number, request: NlMessage): Uint8Array {
  const p = new Uint8Array(4 + NLMSG_HDRLEN);
  const v = dv(p);
  v.setInt32(0, -Math.abs(errno), true);
  v.setUint32(4, NLMSG_HDRLEN + request.payload.length, true);
  v.setUint16(8, request.type, true);
  v.setUint16(10, request.flags, true);
  v.setUint32(12, request.seq, true);
  v.setUint32(16, request.pid, true);
  return encodeMessage(NLMSG_ERROR, 0, request.seq, p, request.pid);
}

/** The (positive) errno of an NLMSG_ERROR message; 0 for an ACK. */
export function errorOf(m: NlMessage): number {
  if (m.payload.length < 4) throw bad("NLMSG_ERROR payload truncated");
  return -dv(m.payload).getInt32(0, true);
}

export interface IfInfo {
  readonly family: number;
  readonly type: number;
  readonly index: number;
  readonly flags: number;
  readonly change: number;
}

export function encodeIfInfo(i: IfInfo, attrs: readonly NlAttr[]): Uint8Array {
  const a = encodeAttrs(attrs);
  const out = new Uint8Array(16 + a.length);
  const v = dv(out);
  out[0] = i.family;
  v.setUint16(2, i.type, true);
  v.setInt32(4, i.index, true);
  v.setUint32(8, i.flags >>> 0, true);
  v.setUint32(12, i.change >>> 0, true);
  out.set(a, 16);
  return out;
}

export function parseIfInfo(payload: Uint8Array): { info: IfInfo; attrs: NlAttr[] } {
  if (payload.length < 16) throw bad("ifinfomsg truncated", { have: payload.length });
  const v = dv(payload);
  return {
    info: { family: payload[0]!, type: v.getUint16(2, true), index: v.getInt32(4, true), flags: v.getUint32(8, true), change: v.getUint32(12, true) },
    attrs: parseAttrs(payload.subarray(16)),
  };
}

export interface IfAddr {
  readonly family: number;
  readonly prefixlen: number;
  readonly flags: number;
  readonly scope: number;
  readonly index: number;
}

export function encodeIfAddr(a: IfAddr, attrs: readonly NlAttr[]): Uint8Array {
  const body = encodeAttrs(attrs);
  const out = new Uint8Array(8 + body.length);
  out[0] = a.family;
  out[1] = a.prefixlen;
  out[2] = a.flags;
  out[3] = a.scope;
  dv(out).setUint32(4, a.index, true);
  out.set(body, 8);
  return out;
}

export function parseIfAddr(payload: Uint8Array): { addr: IfAddr; attrs: NlAttr[] } {
  if (payload.length < 8) throw bad("ifaddrmsg truncated", { have: payload.length });
  return {
    addr: { family: payload[0]!, prefixlen: payload[1]!, flags: payload[2]!, scope: payload[3]!, index: dv(payload).getUint32(4, true) },
    attrs: parseAttrs(payload.subarray(8)),
  };
}

export interface RtMsg {
  readonly family: number;
  readonly dstLen: number;
  readonly table: number;
  readonly protocol: number;
  readonly scope: number;
  readonly type: number;
}

export function encodeRtMsg(r: RtMsg, attrs: readonly NlAttr[]): Uint8Array {
  const body = encodeAttrs(attrs);
  const out = new Uint8Array(12 + body.length);
  out[0] = r.family;
  out[1] = r.dstLen;
  out[4] = r.table;
  out[5] = r.protocol;
  out[6] = r.scope;
  out[7] = r.type;
  out.set(body, 12);
  return out;
}

export function parseRtMsg(payload: Uint8Array): { rt: RtMsg; attrs: NlAttr[] } {
  if (payload.length < 12) throw bad("rtmsg truncated", { have: payload.length });
  return {
    rt: { family: payload[0]!, dstLen: payload[1]!, table: payload[4]!, protocol: payload[5]!, scope: payload[6]!, type: payload[7]! },
    attrs: parseAttrs(payload.subarray(12)),
  };
}

/** One VF's configuration as IFLA_VF_INFO reports it (netlink-vf.md §5-6). */
export interface VfInfo {
  readonly vf: number;
  readonly mac: string;
  readonly vlan: number;
  readonly qos: number;
  /** 0x8100 (802.1Q) or 0x88a8 (802.1ad). */
  readonly vlanProto: number;
  /** -1 when the driver does not report it. */
  readonly spoofchk: number;
  readonly trust: number;
  /** 0 auto, 1 enable, 2 disable. */
  readonly linkState: number;
  readonly minTxRate: number;
  readonly maxTxRate: number;
}

export function macText(b: Uint8Array): string {
  return Array.from(b.subarray(0, 6), (x) => x.toString(16).padStart(2, "0")).join(":");
}

export function macBytes(text: string): Uint8Array {
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/.exec(text);
  if (m === null) throw bad(`not a MAC address: ${text.slice(0, 40)}`);
  return Uint8Array.from(m.slice(1, 7), (h) => Number.parseInt(h, 16));
}

function structU32(data: Uint8Array, i: number, what: string): number {
  if (data.length < 4 * (i + 1)) throw bad(`${what} struct truncated`, { have: data.length });
  return dv(data).getUint32(4 * i, true);
}

function structI32(data: Uint8Array, i: number, what: string): number {
  if (data.length < 4 * (i + 1)) throw bad(`${what} struct truncated`, { have: data.length });
  return dv(data).getInt32(4 * i, true);
}

/** Decodes the IFLA_VFINFO_LIST nest of a link reply into per-VF records. */
export function parseVfInfoList(list: NlAttr): VfInfo[] {
  const out: VfInfo[] = [];
  for (const info of parseAttrs(list.data)) {
    if (info.type !== IFLA_VF_INFO) continue;
    const at = parseAttrs(info.data);
    const mac = findAttr(at, IFLA_VF_MAC);
    if (mac === undefined) throw bad("IFLA_VF_INFO without IFLA_VF_MAC");
    if (mac.data.length < 10) throw bad("ifla_vf_mac truncated");
    const vf = structU32(mac.data, 0, "ifla_vf_mac");
    const vlanA = findAttr(at, IFLA_VF_VLAN);
    let vlan = vlanA === undefined ? 0 : structU32(vlanA.data, 1, "ifla_vf_vlan");
    let qos = vlanA === undefined ? 0 : structU32(vlanA.data, 2, "ifla_vf_vlan");
    let vlanProto = ETH_P_8021Q;
    const list2 = findAttr(at, IFLA_VF_VLAN_LIST);
    if (list2 !== undefined) {
      const vi = findAttr(parseAttrs(list2.data), IFLA_VF_VLAN_INFO);
      if (vi !== undefined) {
        if (vi.data.length < 14) throw bad("ifla_vf_vlan_info truncated");
        vlan = structU32(vi.data, 1, "ifla_vf_vlan_info");
        qos = structU32(vi.data, 2, "ifla_vf_vlan_info");
        vlanProto = (vi.data[12]! << 8) | vi.data[13]!;
      }
    }
    const rate = findAttr(at, IFLA_VF_RATE);
    const tx = findAttr(at, IFLA_VF_TX_RATE);
    const sp = findAttr(at, IFLA_VF_SPOOFCHK);
    const tr = findAttr(at, IFLA_VF_TRUST);
    const ls = findAttr(at, IFLA_VF_LINK_STATE);
    out.push({
      vf,
      mac: macText(mac.data.subarray(4, 10)),
      vlan,
      qos,
      vlanProto,
      spoofchk: sp === undefined ? -1 : structI32(sp.data, 1, "ifla_vf_spoofchk"),
      trust: tr === undefined ? -1 : structI32(tr.data, 1, "ifla_vf_trust"),
      linkState: ls === undefined ? 0 : structU32(ls.data, 1, "ifla_vf_link_state"),
      minTxRate: rate === undefined ? 0 : structU32(rate.data, 1, "ifla_vf_rate"),
      maxTxRate: rate !== undefined ? structU32(rate.data, 2, "ifla_vf_rate") : tx === undefined ? 0 : structU32(tx.data, 1, "ifla_vf_tx_rate"),
    });
  }
  return out;
}

function u32s(...vals: number[]): Uint8Array {
  const b = new Uint8Array(4 * vals.length);
  const v = dv(b);
  vals.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true));
  return b;
}

/** IFLA_VF_MAC payload: u32 vf then 32 bytes of address (the first 6 used). */
export function vfMacAttr(vf: number, mac: string): NlAttr {
  const b = new Uint8Array(36);
  dv(b).setUint32(0, vf, true);
  b.set(macBytes(mac), 4);
  return attr(IFLA_VF_MAC, b);
}

/**
 * VLAN setting for one VF. 802.1Q goes as the legacy IFLA_VF_VLAN and 802.1ad as
 * IFLA_VF_VLAN_LIST/IFLA_VF_VLAN_INFO, as iproute2 encodes `ip link set ... vf N vlan` (§8).
 */
export function vfVlanAttr(vf: number, vlan: number, qos: number, proto: number): NlAttr {
  if (proto === ETH_P_8021Q) return attr(IFLA_VF_VLAN, u32s(vf, vlan, qos));
  const info = new Uint8Array(16);
  info.set(u32s(vf, vlan, qos), 0);
  info[12] = (proto >>> 8) & 0xff; // __be16 vlan_proto (§5)
  info[13] = proto & 0xff;
  return attrNest(IFLA_VF_VLAN_LIST, [attr(IFLA_VF_VLAN_INFO, info.subarray(0, 16))]);
}

export function vfRateAttr(vf: number, min: number, max: number): NlAttr {
  return attr(IFLA_VF_RATE, u32s(vf, min, max));
}
export function vfSpoofchkAttr(vf: number, on: boolean): NlAttr {
  return attr(IFLA_VF_SPOOFCHK, u32s(vf, on ? 1 : 0));
}
export function vfTrustAttr(vf: number, on: boolean): NlAttr {
  return attr(IFLA_VF_TRUST, u32s(vf, on ? 1 : 0));
}
export function vfLinkStateAttr(vf: number, state: number): NlAttr {
  return attr(IFLA_VF_LINK_STATE, u32s(vf, state));
}

/** IFLA_VFINFO_LIST { IFLA_VF_INFO { settings } } for RTM_SETLINK on the PF (§7). */
export function vfInfoListAttr(settings: readonly NlAttr[]): NlAttr {
  return attrNest(IFLA_VFINFO_LIST, [attrNest(IFLA_VF_INFO, settings)]);
}
