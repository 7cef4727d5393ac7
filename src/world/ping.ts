/**
 * `ping` as iputils prints it, over any IpStack (a guest namespace or an external host). Time is
 * virtual: each echo is one settle() of the world, and the printed round-trip time is the
 * virtual time it took.
 */
import type { IpStack } from "../guest/index.js";
import { parseIpv4 } from "../guest/index.js";
import type { Clock } from "../base/clock.js";
import type { ExecResult } from "./daemon.js";

export interface PingOptions {
  readonly count: number;
  readonly size: number;
  readonly id: number;
}

/** Parses ping's arguments: `[-c COUNT] [-s SIZE] [-I IFACE] DEST`. */
export function parsePingArgs(args: readonly string[]): { opts: PingOptions; dst: string } | string {
  let count = 3;
  let size = 56;
  let dst: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    const v = (): string | undefined => args[++i];
    if (a === "-c") {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 1 || n > 1000) return "ping: invalid argument: bad number of packets to transmit.";
      count = n;
    } else if (a === "-s") {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 0 || n > 1472) return "ping: invalid argument: packet size out of range: 0 <= value <= 1472";
      size = n;
    } else if (a === "-I" || a === "-W" || a === "-i") {
      v(); // interface, timeout and interval: routing picks the interface; time is virtual
    } else if (a.startsWith("-")) {
      return `ping: invalid option -- '${a.slice(1)}'\nUsage: ping [-c count] [-s packetsize] [-I interface] destination`;
    } else if (dst === undefined) dst = a;
    else return "ping: only one destination is supported";
  }
  if (dst === undefined) return "ping: usage error: Destination address required";
  return { opts: { count, size, id: 0x5650 }, dst };
}

/** Sends `count` echoes from `stack`, settling the world after each; prints like iputils ping. */
export function runPing(stack: IpStack, clock: Clock, settle: () => void, dst: string, opts: PingOptions): ExecResult {
  let ip: number;
  try {
    ip = parseIpv4(dst);
  } catch {
    return { stdout: "", stderr: `ping: ${dst}: Name or service not known\n`, exitCode: 2 };
  }
  const lines = [`PING ${dst} (${dst}) ${opts.size}(${opts.size + 28}) bytes of data.`];
  let received = 0;
  const t0 = clock.now();
  for (let seq = 1; seq <= opts.count; seq++) {
    const before = stack.replies.length;
    const sent = clock.now();
    try {
      stack.sendEcho(ip, opts.id, seq, opts.size);
    } catch (e) {
      return { stdout: `${lines.join("\n")}\n`, stderr: `ping: connect: ${e instanceof Error && e.message.includes("route") ? "Network is unreachable" : e instanceof Error ? e.message : String(e)}\n`, exitCode: 2 };
    }
    settle();
    const reply = stack.replies.slice(before).find((r) => r.from === ip && r.id === opts.id && r.seq === seq);
    if (reply !== undefined) {
      received++;
      const us = Number((clock.now() - sent) / 1000n);
      lines.push(`${reply.bytes} bytes from ${dst}: icmp_seq=${seq} ttl=${reply.ttl} time=${(us / 1000).toFixed(3)} ms`);
    }
  }
  const loss = Math.round(((opts.count - received) / opts.count) * 100);
  const ms = Number((clock.now() - t0) / 1_000_000n);
  lines.push("", `--- ${dst} ping statistics ---`, `${opts.count} packets transmitted, ${received} received, ${loss}% packet loss, time ${ms}ms`);
  return { stdout: `${lines.join("\n")}\n`, stderr: "", exitCode: received === 0 ? 1 : 0 };
}
