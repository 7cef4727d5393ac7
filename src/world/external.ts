/**
 * An external host on the wire behind a NIC uplink: one interface with an IPv4 address and an
 * optional 802.1Q VLAN (the switch port it sits on is an access port of that VLAN, so it sends
 * tagged frames onto the trunk and takes only frames of its VLAN). It answers ARP and ping, can
 * ping, and has a UDP traffic generator.
 */
import { NetNamespace, NetDevice, IpStack, parseIpv4, ipToString, IFF_UP } from "../guest/index.js";
import { MacAddress, pushVlanTag, popVlanTag, vlanTag, outerVlanTag, buildUdpFrame, Ipv4Address } from "../wire/index.js";
import type { Uplink } from "../nic/index.js";
import type { ExecResult } from "./daemon.js";
import type { SimpleCommand } from "./shell.js";
import type { ExternalSpec } from "./topology.js";
import type { World } from "./world.js";
import { parsePingArgs, runPing } from "./ping.js";

export class ExternalHost {
  readonly ns = new NetNamespace(null, 1);
  readonly dev: NetDevice;
  readonly stack: IpStack;
  readonly address: number;
  readonly prefixLen: number;
  /** Frames dropped because they carried another VLAN (or none, when the host has one). */
  foreignVlanDrops = 0;

  constructor(
    readonly spec: ExternalSpec,
    readonly uplink: Uplink,
  ) {
    const mac = MacAddress.parse(spec.mac);
    this.dev = new NetDevice("eth0", mac.bytes(), {
      xmit: (frame) => {
        uplink.send(spec.vlan === undefined ? frame : pushVlanTag(frame, vlanTag(spec.vlan)));
        return true;
      },
    });
    this.ns.attach(this.dev);
    this.dev.flags |= IFF_UP;
    const [addr, len] = spec.ipv4.split("/");
    this.address = parseIpv4(addr ?? "");
    this.prefixLen = Number(len);
    this.dev.addrs.push({ address: this.address, prefixLen: this.prefixLen, label: "eth0" });
    this.stack = new IpStack(this.ns);
    this.dev.rxHandler = (d, f) => this.stack.input(d, f);
    uplink.attach((frame) => this.#fromWire(frame));
  }

  #fromWire(frame: Uint8Array): void {
    const tag = outerVlanTag(frame);
    if (this.spec.vlan === undefined) {
      if (tag !== null) {
        this.foreignVlanDrops++;
        return;
      }
      this.dev.receive(frame);
      return;
    }
    if (tag === null || tag.vid !== this.spec.vlan || tag.tpid !== 0x8100) {
      this.foreignVlanDrops++;
      return;
    }
    const popped = popVlanTag(frame);
    if (popped !== null) this.dev.receive(popped.frame);
  }

  run(world: World, c: SimpleCommand): ExecResult {
    const [tool, ...args] = c.argv;
    const settle = (): void => world.settle();
    switch (tool) {
      case "ping": {
        const p = parsePingArgs(args);
        if (typeof p === "string") return { stdout: "", stderr: `${p}\n`, exitCode: 2 };
        return runPing(this.stack, world.clock, settle, p.dst, p.opts);
      }
      case "trafgen":
        return this.#trafgen(args, settle);
      case "ip":
        if (args[0] === "addr" || args[0] === "a" || args[0] === "address") {
          return { stdout: `1: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\n    link/ether ${this.spec.mac} brd ff:ff:ff:ff:ff:ff\n    inet ${this.spec.ipv4} scope global eth0\n`, stderr: "", exitCode: 0 };
        }
        return { stdout: "", stderr: "Usage: ip addr (an external host has one fixed interface)\n", exitCode: 255 };
      default:
        return { stdout: "", stderr: `sh: ${tool ?? ""}: not found (external hosts have: ping, trafgen, ip addr)\n`, exitCode: 127 };
    }
  }

  /** `trafgen DEST [-c COUNT] [-s PAYLOAD] [-p PORT]`: UDP datagrams to DEST, counted. */
  #trafgen(args: readonly string[], settle: () => void): ExecResult {
    let count = 100;
    let size = 18;
    let port = 9;
    let dst: string | undefined;
    for (let i = 0; i < args.length; i++) {
      const a = args[i] ?? "";
      const num = (lo: number, hi: number): number | undefined => {
        const n = Number(args[++i]);
        return Number.isInteger(n) && n >= lo && n <= hi ? n : undefined;
      };
      if (a === "-c") count = num(1, 1_000_000) ?? -1;
      else if (a === "-s") size = num(0, 1472) ?? -1;
      else if (a === "-p") port = num(1, 65535) ?? -1;
      else if (!a.startsWith("-") && dst === undefined) dst = a;
      else return { stdout: "", stderr: "usage: trafgen DEST [-c COUNT] [-s PAYLOAD_BYTES] [-p UDP_PORT]\n", exitCode: 2 };
      if (count < 0 || size < 0 || port < 0) return { stdout: "", stderr: "trafgen: bad number (-c 1..1000000, -s 0..1472, -p 1..65535)\n", exitCode: 2 };
    }
    if (dst === undefined) return { stdout: "", stderr: "usage: trafgen DEST [-c COUNT] [-s PAYLOAD_BYTES] [-p UDP_PORT]\n", exitCode: 2 };
    let ip: number;
    try {
      ip = parseIpv4(dst);
    } catch {
      return { stdout: "", stderr: `trafgen: bad address ${dst}\n`, exitCode: 2 };
    }
    // Resolve the neighbour the way a socket would: ARP through the stack (one echo).
    if (!this.stack.neighbours.has(ip)) {
      try {
        this.stack.sendEcho(ip, 0x7467, 0, 0);
      } catch {
        return { stdout: "", stderr: "trafgen: Network is unreachable\n", exitCode: 1 };
      }
      settle();
    }
    const mac = this.stack.neighbours.get(ip);
    if (mac === undefined) return { stdout: "", stderr: `trafgen: ${dst}: no ARP reply (host unreachable)\n`, exitCode: 1 };
    const payload = new Uint8Array(size);
    const l2 = { dst: MacAddress.fromBytes(mac), src: MacAddress.parse(this.spec.mac), pad: true };
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const f = buildUdpFrame(l2, Ipv4Address.fromU32(this.address), Ipv4Address.fromU32(ip), 40000 + (i % 1000), port, payload);
      this.dev.transmit(f);
      bytes += f.length;
      if (i % 64 === 63) settle();
    }
    settle();
    return { stdout: `trafgen: sent ${count} UDP datagrams (${bytes} bytes on the wire) from ${ipToString(this.address)} to ${dst}:${port}\n`, stderr: "", exitCode: 0 };
  }
}
