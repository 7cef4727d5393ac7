import { MacAddress } from "../wire/mac.js";
import { Ipv4Address, Ipv6Address, type IpAddress } from "../wire/ip.js";
import {
  NlErrorRepr, NlDoneRepr, NlmF, NlMsgType, beginNlMessage, endNlMessage, parseNlMessages,
  type NlAttr, type NlAttrSpec, type NlMessage,
} from "../wire/netlink.js";
import { AddressFamily, Iff, Ifla, IflaVfLinkState, RouteRepr, Rta, RtProt, RtScope, RtTable, Rtm, Rtn, RtextFilter, type RtMsg, type VfInfo as WireVfInfo } from "../wire/rtnetlink.js";

/**
 * The rtnetlink vocabulary of the Kubernetes programs, on top of src/wire's netlink and rtnetlink
 * encoders (LinkRepr, AddrRepr, NlErrorRepr, parseVfInfo): the flat per-VF record the CNI plugin
 * caches and compares and the VF settings it sends (netlink-vf.md §5, §7, §8); routes are
 * src/wire's RouteRepr. The modules are imported one by one rather than through
 * src/wire/index.js, because the CNI plugin is a short-lived process whose start-up time counts.
 */
export type { NlAttr, NlAttrSpec, NlMessage, RtMsg };
export { AddressFamily, Iff, Ifla, NlmF, NlMsgType, RouteRepr, Rta, RtProt, RtScope, RtTable, Rtm, Rtn, RtextFilter };

/** Earlier names of src/wire's `Rtm.NEWROUTE` and `Rta.*`, kept for users of `rtnl` from src/k8s's index. */
export const RTM_NEWROUTE = Rtm.NEWROUTE;
export const RTA_DST = Rta.DST;
export const RTA_OIF = Rta.OIF;
export const RTA_GATEWAY = Rta.GATEWAY;

export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

/** One VF's configuration as IFLA_VF_INFO reports it, flattened (netlink-vf.md §5-6). */
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

/** Flattens a decoded IFLA_VF_INFO; the VLAN list entry, when present, wins over IFLA_VF_VLAN (it carries the protocol). */
export function flattenVf(v: WireVfInfo): VfInfo {
  const listed = v.vlanList?.[0];
  return {
    vf: v.vf,
    mac: (v.mac ?? MacAddress.ZERO).toString(),
    vlan: listed?.vlan ?? v.vlan?.vlan ?? 0,
    qos: listed?.qos ?? v.vlan?.qos ?? 0,
    vlanProto: listed?.proto ?? ETH_P_8021Q,
    spoofchk: v.spoofchk ?? -1,
    trust: v.trust ?? -1,
    linkState: v.linkState ?? IflaVfLinkState.AUTO,
    minTxRate: v.rate?.minTxRate ?? 0,
    maxTxRate: v.rate?.maxTxRate ?? v.txRate ?? 0,
  };
}

/** VF settings to send; each present field becomes one IFLA_VF_* attribute. */
export interface VfSettings {
  readonly vlan?: { vlan: number; qos: number; proto: number };
  readonly mac?: string;
  readonly rate?: { min: number; max: number };
  readonly spoofchk?: boolean;
  readonly trust?: boolean;
  readonly linkState?: number;
}

/**
 * The IFLA_VF_INFO record of a set request. 802.1Q goes as the legacy IFLA_VF_VLAN and 802.1ad
 * as IFLA_VF_VLAN_LIST/IFLA_VF_VLAN_INFO, as iproute2 encodes `ip link set ... vf N vlan` (§8).
 */
export function vfSetInfo(vf: number, s: VfSettings): WireVfInfo {
  const v: WireVfInfo = { vf, extra: [] };
  if (s.mac !== undefined) v.mac = MacAddress.parse(s.mac);
  if (s.vlan !== undefined) {
    if (s.vlan.proto === ETH_P_8021Q) v.vlan = { vlan: s.vlan.vlan, qos: s.vlan.qos };
    else v.vlanList = [{ vlan: s.vlan.vlan, qos: s.vlan.qos, proto: s.vlan.proto }];
  }
  if (s.rate !== undefined) v.rate = { minTxRate: s.rate.min, maxTxRate: s.rate.max };
  if (s.spoofchk !== undefined) v.spoofchk = s.spoofchk ? 1 : 0;
  if (s.trust !== undefined) v.trust = s.trust ? 1 : 0;
  if (s.linkState !== undefined) v.linkState = s.linkState;
  return v;
}

/** A whole netlink message with a ready payload. */
export function encodeMessage(type: number, flags: number, seq: number, payload: Uint8Array, pid = 0): Uint8Array {
  const w = beginNlMessage({ type, flags, seq, pid });
  w.bytes(payload);
  return endNlMessage(w);
}

export function parseMessages(b: Uint8Array): NlMessage[] {
  return parseNlMessages(b);
}

/** NLMSG_ERROR answering `request` with a positive errno (0 = ACK). */
export function encodeError(errno: number, request: NlMessage): Uint8Array {
  return NlErrorRepr.emit({ error: -Math.abs(errno), request, capped: false }, { seq: request.seq, pid: request.pid });
}

/** The (positive) errno of an NLMSG_ERROR message; 0 for an ACK. */
export function errorOf(m: NlMessage): number {
  const e = NlErrorRepr.parse(m).error;
  return e === 0 ? 0 : -e;
}

export function encodeDone(seq: number, pid = 0): Uint8Array {
  return NlDoneRepr.emit({ error: 0 }, { seq, pid });
}

export function ipAddress(bytes: Uint8Array): IpAddress {
  return bytes.length === 4 ? Ipv4Address.fromBytes(bytes) : Ipv6Address.fromBytes(bytes);
}

export function macText(b: Uint8Array): string {
  return MacAddress.fromBytes(b).toString();
}

export function macBytes(text: string): Uint8Array {
  return MacAddress.parse(text).bytes();
}
