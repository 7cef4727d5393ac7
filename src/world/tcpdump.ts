/**
 * `tcpdump` for the world's nodes: one line per frame in tcpdump's own text format (default
 * verbosity; `-e` adds the link-level header), or a pcap file with `-w`. Timestamps are the
 * virtual clock's. A capture ends after `-c COUNT` frames, or after `--timeout` seconds of wall
 * time (default 10), since the traffic it waits for comes from other `vpf exec` calls.
 */
import { writeFileSync } from "node:fs";
import { dissectFrame, PcapWriter, EtherType } from "../wire/index.js";
import type { DissectedFrame } from "../wire/index.js";
import type { Clock } from "../base/clock.js";
import type { ExecResult } from "./daemon.js";

export interface TcpdumpArgs {
  readonly iface: string | undefined;
  readonly count: number | undefined;
  readonly file: string | undefined;
  readonly link: boolean;
  readonly timeoutMs: number;
}

export const TCPDUMP_USAGE = "Usage: tcpdump [-e] [-c count] [-i interface] [-w file] [--timeout seconds]\n";

export function parseTcpdumpArgs(args: readonly string[]): TcpdumpArgs | string {
  let iface: string | undefined;
  let count: number | undefined;
  let file: string | undefined;
  let link = false;
  let timeoutMs = 10_000;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a === "-i") iface = args[++i];
    else if (a === "-c") {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) return "tcpdump: invalid packet count";
      count = n;
    } else if (a === "-w") file = args[++i];
    else if (a === "-e") link = true;
    else if (a === "-n" || a === "-nn" || a === "-l" || a === "-q") continue; // names are never resolved here
    else if (a === "--timeout") {
      const s = Number(args[++i]);
      if (!Number.isFinite(s) || s <= 0 || s > 3600) return "tcpdump: invalid --timeout (seconds, 0 < s <= 3600)";
      timeoutMs = s * 1000;
    } else return `tcpdump: unknown option ${a}\n${TCPDUMP_USAGE.trimEnd()}`;
  }
  if (file === "") return "tcpdump: -w needs a file name";
  return { iface, count, file, link, timeoutMs };
}

function ts(ns: bigint): string {
  const us = ns / 1000n;
  const s = us / 1_000_000n;
  const frac = String(us % 1_000_000n).padStart(6, "0");
  const hh = String((s / 3600n) % 24n).padStart(2, "0");
  const mm = String((s / 60n) % 60n).padStart(2, "0");
  const ss = String(s % 60n).padStart(2, "0");
  return `${hh}:${mm}:${ss}.${frac}`;
}

function ethertypeName(t: number): string {
  switch (t) {
    case EtherType.IPV4:
      return "IPv4";
    case EtherType.ARP:
      return "ARP";
    case EtherType.IPV6:
      return "IPv6";
    case EtherType.VLAN:
      return "802.1Q";
    case EtherType.QINQ:
      return "802.1Q-QinQ";
    default:
      return `Unknown (0x${t.toString(16).padStart(4, "0")})`;
  }
}

/** One frame as tcpdump prints it. */
export function formatFrame(tsNs: bigint, frame: Uint8Array, link: boolean): string {
  let d: DissectedFrame;
  try {
    d = dissectFrame(frame, { verifyChecksums: false });
  } catch {
    return `${ts(tsNs)} [|ether]`;
  }
  let head = ts(tsNs);
  if (link) {
    head += ` ${d.eth.src.toString()} > ${d.eth.dst.toString()}`;
    let inner = d.eth.etherType;
    if (d.eth.vlans.length > 0) {
      const first = d.eth.vlans[0];
      head += `, ethertype ${ethertypeName(first?.tpid ?? 0)} (0x${(first?.tpid ?? 0).toString(16).padStart(4, "0")}), length ${frame.length}:`;
      d.eth.vlans.forEach((v, i) => {
        const next = d.eth.vlans[i + 1]?.tpid ?? inner;
        head += ` vlan ${v.vid}, p ${v.pcp}, ethertype ${ethertypeName(next)} (0x${next.toString(16).padStart(4, "0")}),`;
      });
      inner = d.eth.etherType;
    } else {
      head += `, ethertype ${ethertypeName(inner)} (0x${inner.toString(16).padStart(4, "0")}), length ${frame.length}:`;
    }
  } else if (d.eth.vlans.length > 0) {
    head += d.eth.vlans.map((v) => ` vlan ${v.vid}, p ${v.pcp},`).join("");
  }
  return `${head} ${body(d, frame.length)}`;
}

function body(d: DissectedFrame, frameLen: number): string {
  if (d.arp !== undefined) {
    const a = d.arp;
    if (a.operation === 1) return `ARP, Request who-has ${a.targetIp.toString()} tell ${a.senderIp.toString()}, length ${frameLen - 14 - 4 * d.eth.vlans.length}`;
    if (a.operation === 2) return `ARP, Reply ${a.senderIp.toString()} is-at ${a.senderMac.toString()}, length ${frameLen - 14 - 4 * d.eth.vlans.length}`;
    return `ARP, op ${a.operation}`;
  }
  const ip = d.ipv4 ?? d.ipv6;
  if (ip === undefined) return `ethertype ${ethertypeName(d.eth.etherType)}, length ${frameLen}`;
  const fam = d.ipv4 !== undefined ? "IP" : "IP6";
  const src = ip.src.toString();
  const dst = ip.dst.toString();
  if (d.icmp !== undefined) {
    const i = d.icmp;
    const len = 8 + i.data.length;
    if (i.kind === "other") return `${fam} ${src} > ${dst}: ICMP type ${i.type} code ${i.code}, length ${len}`;
    return `${fam} ${src} > ${dst}: ICMP echo ${i.kind === "echoRequest" ? "request" : "reply"}, id ${i.ident}, seq ${i.seq}, length ${len}`;
  }
  if (d.icmpv6 !== undefined) {
    const i = d.icmpv6;
    switch (i.kind) {
      case "echoRequest":
      case "echoReply":
        return `${fam} ${src} > ${dst}: ICMP6, echo ${i.kind === "echoRequest" ? "request" : "reply"}, id ${i.ident}, seq ${i.seq}, length ${8 + i.data.length}`;
      case "neighborSolicit":
        return `${fam} ${src} > ${dst}: ICMP6, neighbor solicitation, who has ${i.target.toString()}, length ${d.ipv6?.payloadLen ?? 0}`;
      case "neighborAdvert":
        return `${fam} ${src} > ${dst}: ICMP6, neighbor advertisement, tgt is ${i.target.toString()}, length ${d.ipv6?.payloadLen ?? 0}`;
      default:
        return `${fam} ${src} > ${dst}: ICMP6, type ${i.type}, length ${d.ipv6?.payloadLen ?? 0}`;
    }
  }
  if (d.udp !== undefined) return `${fam} ${src}.${d.udp.srcPort} > ${dst}.${d.udp.dstPort}: UDP, length ${d.udp.payload.length}`;
  if (d.tcp !== undefined) {
    const t = d.tcp;
    const f = [t.flags & 0x02 ? "S" : "", t.flags & 0x01 ? "F" : "", t.flags & 0x04 ? "R" : "", t.flags & 0x08 ? "P" : "", t.flags & 0x10 ? "." : ""].join("");
    return `${fam} ${src}.${t.srcPort} > ${dst}.${t.dstPort}: Flags [${f === "" ? "none" : f}], seq ${t.seq}, win ${t.window}, length ${t.payload.length}`;
  }
  return `${fam} ${src} > ${dst}: ip-proto-${d.ipv4?.protocol ?? d.ipv6?.nextHeader ?? 0} ${d.payload.length}`;
}

/**
 * Runs a capture: `attach` installs a frame listener and returns its detach function. Resolves
 * when `count` frames were seen or the wall-clock timeout passed.
 */
export async function capture(
  clock: Clock,
  args: TcpdumpArgs,
  ifaceLabel: string,
  attach: (onFrame: (frame: Uint8Array) => void) => () => void,
): Promise<ExecResult> {
  const lines: string[] = [];
  const pcap = args.file === undefined ? undefined : new PcapWriter({ resolution: "us" });
  let seen = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((res) => { done = res; });
  const detach = attach((frame) => {
    if (args.count !== undefined && seen >= args.count) return;
    seen++;
    const t = clock.now();
    if (pcap !== undefined) pcap.write(t, frame);
    else lines.push(formatFrame(t, frame, args.link));
    if (args.count !== undefined && seen >= args.count) done();
  });
  const timer = setTimeout(done, args.timeoutMs);
  await finished;
  clearTimeout(timer);
  detach();
  const header = `tcpdump: ${args.file === undefined ? "verbose output suppressed, use -v[v]... for full protocol decode\n" : ""}listening on ${ifaceLabel}, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n`;
  if (pcap !== undefined && args.file !== undefined) {
    try {
      writeFileSync(args.file, pcap.bytes());
    } catch (e) {
      return { stdout: "", stderr: `tcpdump: ${args.file}: ${(e as Error).message}\n`, exitCode: 1 };
    }
  }
  const tail = `${seen} packet${seen === 1 ? "" : "s"} captured\n${seen} packet${seen === 1 ? "" : "s"} received by filter\n0 packets dropped by kernel\n`;
  return { stdout: lines.length === 0 ? "" : `${lines.join("\n")}\n`, stderr: header + tail, exitCode: 0 };
}
