/**
 * Text as the real tools print it: iproute2's `ip link show` VF lines (ip/ipaddress.c
 * print_vfinfo), `devlink dev eswitch show`, and the `vdpa` tool (vdpa/vdpa.c). Structured
 * results come from Host; these only render them.
 */
import { featureNames } from "../nic/index.js";
import type { EswitchInfo, LinkVfInfo, MgmtdevInfo, VdpaConfigInfo, VdpaDevInfo, VfInfo } from "./host.js";

const LINK_STATE = ["auto", "enable", "disable"] as const;

/** One VF line (with -s, followed by the RX/TX statistics lines). */
export function formatVfLine(v: VfInfo, withStats = false): string {
  let s = `    vf ${v.vf}     link/ether ${v.mac.toString()} brd ${v.broadcast.toString()}`;
  if (v.vlan !== 0) s += `, vlan ${v.vlan}`;
  if (v.qos !== 0) s += `, qos ${v.qos}`;
  if (v.vlanProto !== 0x8100) s += `, vlan protocol ${v.vlanProto === 0x88a8 ? "802.1ad" : `0x${v.vlanProto.toString(16)}`}`;
  // vpf extension (two-tag VST): iproute2 has no such field; printed only when set.
  if (v.innerVlan !== undefined) s += `, vpf inner vlan ${v.innerVlan.vlan}${v.innerVlan.qos !== 0 ? `, vpf inner qos ${v.innerVlan.qos}` : ""}`;
  if (v.txRate !== 0) s += `, tx rate ${v.txRate} (Mbps)`;
  if (v.maxTxRate !== 0) s += `, max_tx_rate ${v.maxTxRate}Mbps`;
  if (v.minTxRate !== 0) s += `, min_tx_rate ${v.minTxRate}Mbps`;
  s += `, spoof checking ${v.spoofchk ? "on" : "off"}`;
  s += `, link-state ${LINK_STATE[v.linkState]}`;
  s += `, trust ${v.trust ? "on" : "off"}`;
  s += `, query_rss ${v.rssQueryEn ? "on" : "off"}`;
  if (withStats && v.stats !== undefined) {
    const st = v.stats;
    const col = (n: bigint, w: number): string => String(n).padEnd(w) + " ";
    s += `\n    RX: bytes  packets  mcast   bcast   dropped\n    ${col(st.rxBytes, 10)}${col(st.rxPackets, 8)}${col(st.multicast, 7)}${col(st.broadcast, 7)}${col(st.rxDropped, 7)}`.trimEnd();
    s += `\n    TX: bytes  packets  dropped\n    ${col(st.txBytes, 10)}${col(st.txPackets, 8)}${col(st.txDropped, 7)}`.trimEnd();
  }
  return s;
}

/** `ip link show DEV` (with `-s`: VF statistics) for a PF. */
export function formatIpLinkShow(l: LinkVfInfo, withStats = false): string {
  const flags = l.operstateUp ? "<BROADCAST,MULTICAST,UP,LOWER_UP>" : "<NO-CARRIER,BROADCAST,MULTICAST,UP>";
  const lines = [
    `${l.ifindex}: ${l.ifname}: ${flags} mtu ${l.mtu} qdisc mq state ${l.operstateUp ? "UP" : "DOWN"} mode DEFAULT group default qlen 1000`,
    `    link/ether ${l.address.toString()} brd ff:ff:ff:ff:ff:ff`,
    ...l.vfs.map((v) => formatVfLine(v, withStats)),
  ];
  return lines.join("\n") + "\n";
}

export function formatEswitchShow(e: EswitchInfo): string {
  return `${e.dev}: mode ${e.mode} inline-mode ${e.inlineMode} encap-mode ${e.encapMode}\n`;
}

export function formatMgmtdevShow(list: MgmtdevInfo[]): string {
  return list
    .map((m) => `${m.name}: \n  supported_classes ${m.supportedClasses.join(" ")}\n  max_supported_vqs ${m.maxSupportedVqs}\n  dev_features ${featureNames(m.devFeatures).join(" ")}\n`)
    .join("");
}

export function formatVdpaDevShow(list: VdpaDevInfo[]): string {
  return list
    .map((d) => `${d.name}: type ${d.type} mgmtdev ${d.mgmtdev} vendor_id ${d.vendorId} max_vqs ${d.maxVqs} max_vq_size ${d.maxVqSize}${d.minVqSize !== 1 ? ` min_vq_size ${d.minVqSize}` : ""}\n`)
    .join("");
}

export function formatVdpaConfigShow(list: VdpaConfigInfo[]): string {
  return list
    .map((c) => {
      let s = `${c.name}: mac ${c.mac.toString()} link ${c.linkUp ? "up" : "down"} link_announce ${c.linkAnnounce} max_vq_pairs ${c.maxVqPairs} mtu ${c.mtu}\n`;
      if (c.negotiatedFeatures !== undefined) s += `  negotiated_features ${featureNames(c.negotiatedFeatures).join(" ")}\n`;
      return s;
    })
    .join("");
}
