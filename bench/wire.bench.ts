/**
 * wire: parse and emit rates for the frame formats the eswitch touches on every packet
 * (Ethernet with VLAN tags, IPv4, UDP), plus tag push/pop, pcap records and a rtnetlink VF dump.
 */
import { opsPerSecond, type BenchResult, type BenchSuite } from "./harness.js";
import {
  EtherType,
  EthernetFrame,
  EthernetRepr,
  Ipv4Address,
  Ipv4Packet,
  Ipv4Repr,
  LinkRepr,
  MacAddress,
  NlmF,
  Rtm,
  UdpPacket,
  UdpRepr,
  buildUdpFrame,
  defaultVfInfo,
  dissectFrame,
  parseNlMessages,
  pcapRecord,
  popVlanTag,
  popVlanTagInto,
  pushVlanTag,
  pushVlanTagInto,
  vlanTag,
} from "../src/wire/index.js";

const A = MacAddress.parse("02:00:00:00:00:0a");
const B = MacAddress.parse("02:00:00:00:00:0b");
const S = Ipv4Address.parse("10.0.0.1");
const D = Ipv4Address.parse("10.0.0.2");
const TAG = vlanTag(100, { pcp: 3 });

/** A UDP/IPv4 frame of `size` bytes (without FCS) carrying one 802.1Q tag. */
function frameOf(size: number): Uint8Array {
  const payload = new Uint8Array(size - 18 - 20 - 8);
  return buildUdpFrame({ dst: B, src: A, vlans: [TAG] }, S, D, 4000, 5000, payload);
}

function run(): BenchResult[] {
  const out: BenchResult[] = [];
  const N = 1000;
  for (const size of [64, 1500]) {
    const f = frameOf(size);
    let sink = 0;
    out.push({
      name: `ethernet+vlan check, read dst/vid/type (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) {
          const e = EthernetFrame.check(f);
          sink += e.dstKey + e.tag(0).vid + e.etherType;
        }
      }, N, 300),
      unit: "frames/s",
    });
    out.push({
      name: `parse eth/vlan/ipv4/udp with checksums (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) {
          const e = EthernetFrame.check(f);
          const ip = Ipv4Packet.check(e.payload);
          const ir = Ipv4Repr.parse(ip);
          const u = UdpRepr.parse(UdpPacket.check(ip.payload), ir.src, ir.dst);
          sink += u.dstPort;
        }
      }, N, 300),
      unit: "frames/s",
    });
    const eth: EthernetRepr = { dst: B, src: A, vlans: [TAG], etherType: EtherType.IPV4 };
    const udp: UdpRepr = { srcPort: 4000, dstPort: 5000, payload: new Uint8Array(size - 18 - 20 - 8) };
    const ip = Ipv4Repr.parse(Ipv4Packet.check(EthernetFrame.check(f).payload));
    const buf = new Uint8Array(size);
    out.push({
      name: `emit eth/vlan/ipv4/udp with checksums (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) {
          EthernetRepr.emit(eth, buf);
          Ipv4Repr.emit(ip, buf.subarray(18));
          UdpRepr.emit(udp, buf.subarray(38), S, D);
        }
      }, N, 300),
      unit: "frames/s",
    });
    out.push({
      name: `dissectFrame, full parse (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) sink += dissectFrame(f).payload.length;
      }, N, 300),
      unit: "frames/s",
    });
    const untagged = popVlanTag(f)!.frame;
    out.push({
      name: `push + pop one VLAN tag (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) sink += popVlanTag(pushVlanTag(untagged, TAG))!.frame.length;
      }, N, 300),
      unit: "pairs/s",
    });
    const scratch = new Uint8Array(2048);
    out.push({
      name: `push + pop one VLAN tag in place, no allocation (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) {
          scratch.set(untagged);
          const n = pushVlanTagInto(scratch.subarray(0, untagged.length), TAG, scratch);
          sink += popVlanTagInto(scratch.subarray(0, n), scratch);
        }
      }, N, 300),
      unit: "pairs/s",
      note: "includes copying the frame into the scratch buffer",
    });
    out.push({
      name: `pcap record, ns timestamps (${size} B)`,
      value: opsPerSecond(() => {
        for (let i = 0; i < N; i++) sink += pcapRecord(BigInt(i) * 1000n, f).length;
      }, N, 300),
      unit: "records/s",
    });
    if (sink === -1) out.push({ name: "unreachable", value: 0, unit: "" });
  }
  const link: LinkRepr = {
    ifi: { family: 0, type: 1, index: 2, flags: 0x1043, change: 0 },
    ifname: "eth0",
    numVf: 8,
    vfInfoList: Array.from({ length: 8 }, (_, i) => ({ ...defaultVfInfo(i), stats: { rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 4n, broadcast: 0n, multicast: 0n, rxDropped: 0n, txDropped: 0n } })),
    extra: [],
  };
  const h = { type: Rtm.NEWLINK, flags: NlmF.MULTI, seq: 1, pid: 1 };
  const msg = LinkRepr.emit(link, h);
  out.push({ name: "rtnetlink RTM_NEWLINK with 8 VFs: emit", value: opsPerSecond(() => void LinkRepr.emit(link, h), 1, 300), unit: "msgs/s", note: `${msg.length} B` });
  out.push({ name: "rtnetlink RTM_NEWLINK with 8 VFs: parse", value: opsPerSecond(() => void LinkRepr.parse(parseNlMessages(msg)[0]!), 1, 300), unit: "msgs/s" });
  return out;
}

export const suite: BenchSuite = { name: "wire", run };
