import type { VfInfo as WireVfInfo } from "../wire/index.js";
import type { VfInfo } from "./host.js";

/**
 * The IFLA_VF_INFO content the kernel's rtnl_fill_vfinfo emits for one VF of this host's PF
 * driver, as wire's rtnetlink representation (encode it with `vfInfoSpec`): MAC, broadcast,
 * legacy VLAN (vlan, qos), rate, tx rate, spoof check, link state, RSS query, trust as the u32s
 * the driver fills in (0/1, never the −1 "unsupported" default: mlx5 implements them all), the
 * one-entry VLAN list with the protocol, and the statistics unless they were skipped.
 */
export function rtnlVfInfo(v: VfInfo): WireVfInfo {
  const w: WireVfInfo = {
    vf: v.vf,
    mac: v.mac,
    broadcast: v.broadcast,
    vlan: { vlan: v.vlan, qos: v.qos },
    rate: { minTxRate: v.minTxRate, maxTxRate: v.maxTxRate },
    txRate: v.txRate,
    spoofchk: v.spoofchk ? 1 : 0,
    linkState: v.linkState,
    rssQueryEn: v.rssQueryEn ? 1 : 0,
    trust: v.trust ? 1 : 0,
    vlanList: [{ vlan: v.vlan, qos: v.qos, proto: v.vlanProto }],
    extra: [],
  };
  if (v.stats !== undefined) w.stats = { ...v.stats };
  return w;
}
