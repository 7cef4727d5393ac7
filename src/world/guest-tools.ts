/**
 * User-space tools inside a model guest. Like their real counterparts they reach the kernel only
 * through its user interfaces: sysfs paths (ls, cat, readlink, echo >, lspci's config reads) and
 * rtnetlink datagrams (ip). `lspci` hands the configuration bytes it read from sysfs to the real
 * pciutils (`lspci -F`), so its output is pciutils' own decoding of what the guest sees.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { KernelError, strerror } from "../base/errors.js";
import { SysError, iproute as ipr } from "../guest/index.js";
import type { GuestKernel, NetDevice } from "../guest/index.js";
import { formatVfLine } from "../host/index.js";
import { MacAddress } from "../wire/index.js";
import type { ExecResult } from "./daemon.js";
import type { SimpleCommand } from "./shell.js";
import type { VmNode, World } from "./world.js";
import { parsePingArgs, runPing } from "./ping.js";
import { capture, parseTcpdumpArgs } from "./tcpdump.js";
import { runVpfctl } from "./pods.js";

const ok = (stdout: string): ExecResult => ({ stdout, stderr: "", exitCode: 0 });
const fail = (stderr: string, exitCode = 1): ExecResult => ({ stdout: "", stderr: stderr.endsWith("\n") ? stderr : `${stderr}\n`, exitCode });

function errText(e: unknown): string {
  if (e instanceof SysError) return new SysError(e.errno).message;
  if (e instanceof KernelError) return strerror(e.errno);
  throw e;
}

function errnoOf(e: unknown): string | undefined {
  return e instanceof SysError || e instanceof KernelError ? e.errno : undefined;
}

export async function runGuestCommand(world: World, node: VmNode, c: SimpleCommand): Promise<ExecResult> {
  const k = node.kernel;
  const [tool, ...args] = c.argv;
  const out = await run(world, node, tool ?? "", args, c);
  if (c.redirect === undefined || tool === "echo") return out;
  // Output redirected to a file: only sysfs files exist in the model guest.
  try {
    k.sysfsWrite(c.redirect.path, out.stdout);
    return { stdout: "", stderr: out.stderr, exitCode: out.exitCode };
  } catch (e) {
    return fail(`sh: ${c.redirect.path}: ${errText(e)}`);
  }
}

async function run(world: World, node: VmNode, tool: string, args: string[], c: SimpleCommand): Promise<ExecResult> {
  const k = node.kernel;
  switch (tool) {
    case "echo": {
      let newline = true;
      let words = args;
      if (words[0] === "-n") {
        newline = false;
        words = words.slice(1);
      }
      const text = words.join(" ") + (newline ? "\n" : "");
      if (c.redirect === undefined) return ok(text);
      try {
        k.sysfsWrite(c.redirect.path, text);
        world.settle(2);
        return ok("");
      } catch (e) {
        // bash: "echo: write error: Device or resource busy"; a missing file fails at open.
        const errno = errnoOf(e);
        if (errno === "ENOENT" || errno === "EACCES" || errno === "EISDIR") return fail(`sh: ${c.redirect.path}: ${errText(e)}`);
        return fail(`sh: echo: write error: ${errText(e)}`);
      }
    }
    case "cat": {
      if (args.length === 0) return fail("cat: reading standard input is not supported here");
      let s = "";
      for (const p of args) {
        try {
          const v = k.sysfsReadBytes(p);
          s += typeof v === "string" ? v : Buffer.from(v).toString("latin1");
        } catch (e) {
          return { stdout: s, stderr: `cat: ${p}: ${errText(e)}\n`, exitCode: 1 };
        }
      }
      return ok(s);
    }
    case "readlink": {
      const follow = args[0] === "-f";
      const paths = follow ? args.slice(1) : args;
      if (paths.length === 0) return fail("readlink: missing operand");
      let s = "";
      for (const p of paths) {
        try {
          s += `${follow ? k.sysfs().realpath(p) : k.sysfsReadlink(p)}\n`;
        } catch {
          return { stdout: s, stderr: "", exitCode: 1 }; // readlink prints nothing for non-links
        }
      }
      return ok(s);
    }
    case "ls":
      return ls(k, args);
    case "lspci":
      return lspci(k, args);
    case "ip":
      return ip(world, node, args);
    case "ping": {
      const p = parsePingArgs(args);
      if (typeof p === "string") return fail(p, 2);
      return runPing(k.stack(null), world.clock, () => world.settle(), p.dst, p.opts);
    }
    case "tcpdump": {
      const a = parseTcpdumpArgs(args);
      if (typeof a === "string") return fail(a);
      const name = a.iface ?? k.allNetdevs().find((d) => d.name !== "lo" && d.ns === k.initNs)?.name ?? "eth0";
      const dev = k.initNs.byName(name);
      if (dev === undefined) return fail(`tcpdump: ${name}: No such device exists\n(SIOCGIFHWADDR: No such device)`);
      return capture(world.clock, a, name, (onFrame) => tapNetdev(dev, onFrame));
    }
    case "vpfctl":
      return runVpfctl(args, world.vpfctlContext(node.spec.name));
    case "true":
      return ok("");
    case "false":
      return { stdout: "", stderr: "", exitCode: 1 };
    default:
      return fail(`sh: ${tool}: not found`, 127);
  }
}

/**
 * A packet socket on one netdev (AF_PACKET's tap in dev_queue_xmit_nit and netif_receive_skb):
 * sees every frame the device transmits and receives.
 */
function tapNetdev(dev: NetDevice, onFrame: (f: Uint8Array) => void): () => void {
  const rx = dev.rxHandler;
  const tx = Object.getOwnPropertyDescriptor(dev, "transmit");
  const origTransmit = dev.transmit.bind(dev);
  dev.rxHandler = (d, f) => {
    onFrame(f.slice());
    rx(d, f);
  };
  dev.transmit = (f: Uint8Array): boolean => {
    onFrame(f.slice());
    return origTransmit(f);
  };
  return () => {
    dev.rxHandler = rx;
    if (tx === undefined) Reflect.deleteProperty(dev, "transmit");
    else Object.defineProperty(dev, "transmit", tx);
  };
}

function ls(k: GuestKernel, args: string[]): ExecResult {
  const long = args.includes("-l");
  const paths = args.filter((a) => !a.startsWith("-"));
  if (paths.length === 0) paths.push("/sys");
  const s = k.sysfs();
  let stdout = "";
  let stderr = "";
  let code = 0;
  paths.forEach((p, i) => {
    try {
      let names: string[];
      let base = p;
      try {
        names = s.list(p);
      } catch (e) {
        if (e instanceof SysError && e.errno === "ENOTDIR") {
          names = [p.slice(p.lastIndexOf("/") + 1)];
          base = p.slice(0, p.lastIndexOf("/")) || "/";
        } else throw e;
      }
      if (paths.length > 1) stdout += `${i > 0 ? "\n" : ""}${p}:\n`;
      for (const n of names) {
        if (!long) {
          stdout += `${n}\n`;
          continue;
        }
        const full = `${base.replace(/\/$/, "")}/${n}`;
        if (s.isLink(full)) stdout += `lrwxrwxrwx 1 root root 0 Jan  1 00:00 ${n} -> ${s.readlink(full)}\n`;
        else {
          let isDir = false;
          try {
            s.list(full);
            isDir = true;
          } catch {
            isDir = false;
          }
          stdout += isDir ? `drwxr-xr-x 2 root root 0 Jan  1 00:00 ${n}\n` : `-rw-r--r-- 1 root root 4096 Jan  1 00:00 ${n}\n`;
        }
      }
    } catch (e) {
      stderr += `ls: cannot access '${p}': ${errText(e)}\n`;
      code = 2;
    }
  });
  return { stdout, stderr, exitCode: code };
}

/** The `lspci -xxxx` text for one function from its config bytes (pciutils lib/dump.c format). */
export function configDump(name: string, bytes: Uint8Array): string {
  const hex = (v: number, w: number): string => v.toString(16).padStart(w, "0");
  const lines = [`${name} Class ${hex((bytes[0x0b] ?? 0) * 256 + (bytes[0x0a] ?? 0), 4)}: Device ${hex((bytes[1] ?? 0) * 256 + (bytes[0] ?? 0), 4)}:${hex((bytes[3] ?? 0) * 256 + (bytes[2] ?? 0), 4)}`];
  const width = bytes.length > 256 ? 3 : 2;
  for (let off = 0; off < bytes.length; off += 16) {
    lines.push(`${hex(off, width)}: ${Array.from(bytes.subarray(off, off + 16), (b) => hex(b, 2)).join(" ")}`);
  }
  return `${lines.join("\n")}\n\n`;
}

const LSPCI_FLAGS = new Set(["-n", "-nn", "-D", "-v", "-vv", "-vvv", "-x", "-xxx", "-xxxx", "-t", "-tv", "-b", "-k", "-mm", "-m"]);

/**
 * lspci over the guest's sysfs: reads each function's `config` (what the guest's config reads
 * return) and lets the real pciutils decode it. Needs pciutils (`apt-get install pciutils`).
 */
async function lspci(k: GuestKernel, args: string[]): Promise<ExecResult> {
  const pass: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (a === "-s" || a === "-d") {
      const v = args[++i];
      if (v === undefined) return fail(`lspci: option requires an argument -- '${a.slice(1)}'`, 2);
      pass.push(a, v);
    } else if (LSPCI_FLAGS.has(a)) pass.push(a);
    else return fail(`lspci: invalid option -- '${a.replace(/^-+/, "")}'\nUsage: lspci [<switches>]`, 2);
  }
  // pciutils' sysfs back end takes a function's IDs from the `vendor` and `device` files, so a
  // VF (whose config space reads 0xFFFF there, SR-IOV §3.4.1.1) still shows its real IDs. With
  // -F we pass the same knowledge by patching the ID bytes, except for hex dumps (-x...), which
  // print the config bytes as they are.
  const hexDump = pass.some((a) => a.startsWith("-x"));
  let dump = "";
  for (const name of k.sysfs().list("/sys/bus/pci/devices")) {
    const dir = `/sys/bus/pci/devices/${name}`;
    const v = k.sysfsReadBytes(`${dir}/config`);
    const bytes = Uint8Array.from(typeof v === "string" ? Buffer.from(v, "latin1") : v);
    if (!hexDump) {
      const vendor = Number.parseInt(k.sysfsRead(`${dir}/vendor`), 16);
      const device = Number.parseInt(k.sysfsRead(`${dir}/device`), 16);
      if (Number.isInteger(vendor) && Number.isInteger(device)) {
        bytes[0] = vendor & 0xff;
        bytes[1] = vendor >> 8;
        bytes[2] = device & 0xff;
        bytes[3] = device >> 8;
      }
    }
    dump += configDump(name, bytes);
  }
  const dir = mkdtempSync(join(tmpdir(), "vpf-lspci-"));
  const file = join(dir, "dump");
  writeFileSync(file, dump);
  try {
    return await new Promise<ExecResult>((resolve) => {
      execFile("lspci", ["-F", file, ...pass], { encoding: "utf8" }, (err, stdout, stderr) => {
        if (err !== null && (err as NodeJS.ErrnoException).code === "ENOENT") {
          resolve(fail("sh: lspci: not found (vpf's lspci decodes with pciutils: apt-get install pciutils)", 127));
          return;
        }
        // lspci -F has no kernel to ask for modules; its libkmod warning says nothing about the guest.
        stderr = stderr.replace(/^lspci: Unable to load libkmod resources.*\n/m, "");
        resolve({ stdout, stderr, exitCode: err === null ? 0 : typeof err.code === "number" ? err.code : 1 });
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// ip (iproute2) over rtnetlink

const IFF = [
  [0x8, "LOOPBACK"], [0x2, "BROADCAST"], [0x10, "POINTOPOINT"], [0x1000, "MULTICAST"], [0x80, "NOARP"],
  [0x200, "ALLMULTI"], [0x100, "PROMISC"], [0x1, "UP"], [0x10000, "LOWER_UP"],
] as const;
const OPERSTATE = ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"];
const LINK_STATE = ["auto", "enable", "disable"] as const;

function flagNames(flags: number): string[] {
  const names: string[] = [];
  if ((flags & 0x1) !== 0 && (flags & 0x40) === 0) names.push("NO-CARRIER");
  for (const [bit, n] of IFF) if ((flags & bit) !== 0) names.push(n);
  return names;
}

function linkHead(l: ipr.LinkInfo, withMode: boolean): string[] {
  const loop = (l.flags & 0x8) !== 0;
  const qdisc = loop ? "noqueue" : (l.flags & 0x1) !== 0 ? "mq" : "noop";
  return [
    `${l.ifindex}: ${l.name}: <${flagNames(l.flags).join(",")}> mtu ${l.mtu} qdisc ${qdisc} state ${OPERSTATE[l.operstate] ?? "UNKNOWN"}${withMode ? " mode DEFAULT" : ""} group default qlen 1000`,
    `    link/${loop ? "loopback" : "ether"} ${l.mac} brd ${loop ? "00:00:00:00:00:00" : "ff:ff:ff:ff:ff:ff"}`,
  ];
}

function vfLine(v: ipr.LinkVf, stats: boolean): string {
  return formatVfLine(
    {
      vf: v.vf,
      mac: MacAddress.parse(v.mac),
      broadcast: MacAddress.BROADCAST,
      vlan: v.vlan,
      qos: v.qos,
      vlanProto: v.vlanProto,
      txRate: 0,
      maxTxRate: v.maxTxRate,
      minTxRate: v.minTxRate,
      spoofchk: v.spoofchk === 1,
      linkState: (v.linkState as 0 | 1 | 2),
      trust: v.trust === 1,
      rssQueryEn: false,
      ...(v.stats === undefined ? {} : { stats: { ...v.stats, broadcast: 0n, multicast: 0n } }),
    },
    stats,
  );
}

function linkJson(l: ipr.LinkInfo): Record<string, unknown> {
  const loop = (l.flags & 0x8) !== 0;
  const j: Record<string, unknown> = {
    ifindex: l.ifindex,
    ifname: l.name,
    flags: flagNames(l.flags),
    mtu: l.mtu,
    qdisc: loop ? "noqueue" : (l.flags & 0x1) !== 0 ? "mq" : "noop",
    operstate: OPERSTATE[l.operstate] ?? "UNKNOWN",
    linkmode: "DEFAULT",
    group: "default",
    txqlen: 1000,
    link_type: loop ? "loopback" : "ether",
    address: l.mac,
    broadcast: loop ? "00:00:00:00:00:00" : "ff:ff:ff:ff:ff:ff",
  };
  if (l.numVf !== undefined && l.numVf > 0) j.num_vf = l.numVf;
  if (l.vfs !== undefined && l.vfs.length > 0) {
    j.vfinfo_list = l.vfs.map((v) => ({
      vf: v.vf,
      link_type: "ether",
      address: v.mac,
      broadcast: "ff:ff:ff:ff:ff:ff",
      ...(v.vlan !== 0 ? { vlan_list: [{ vlan: v.vlan, ...(v.qos !== 0 ? { qos: v.qos } : {}), protocol: v.vlanProto === 0x88a8 ? "802.1ad" : "802.1Q" }] } : {}),
      rate: { max_tx: v.maxTxRate, min_tx: v.minTxRate },
      spoofchk: v.spoofchk === 1,
      link_state: LINK_STATE[v.linkState] ?? "auto",
      trust: v.trust === 1,
      query_rss_en: false,
    }));
  }
  return j;
}

const IP_USAGE = `Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }
where  OBJECT := { link | address | netns }
       OPTIONS := { -j[son] | -s[tatistics] | -d[etails] | -n[etns] name }
`;

function nlErr(code: number): string {
  return `RTNETLINK answers: ${new SysError(errnoFromNumber(-code)).message}`;
}

function errnoFromNumber(n: number): ConstructorParameters<typeof SysError>[0] {
  const table: Record<number, ConstructorParameters<typeof SysError>[0]> = { 1: "EPERM", 2: "ENOENT", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV", 22: "EINVAL", 34: "ERANGE", 95: "EOPNOTSUPP", 12: "ENOMEM", 5: "EIO", 28: "ENOSPC", 99: "EADDRNOTAVAIL" };
  return table[n] ?? "EINVAL";
}

function ip(world: World, node: VmNode, argv: string[]): ExecResult {
  const k = node.kernel;
  let json = false;
  let stats = false;
  let ns: string | null = null;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "-j" || a === "-json") json = true;
    else if (a === "-s" || a === "-stats" || a === "-statistics") stats = true;
    else if (a === "-d" || a === "-details" || a === "-p" || a === "-pretty") continue;
    else if (a === "-n" || a === "-netns") {
      ns = argv[++i] ?? "";
      if (!k.netnsList().includes(ns)) return fail(`Cannot open network namespace "${ns}": No such file or directory`, 1);
    } else if (a.startsWith("-")) return fail(`Option "${a}" is unknown, try "ip -help".`, 255);
    else break;
  }
  const obj = argv[i] ?? "";
  const rest = argv.slice(i + 1);
  const nsFd = (fd: number): string | null | undefined => (fd >= 1000 && fd - 1000 < k.netnsList().length ? (k.netnsList()[fd - 1000] ?? undefined) : undefined);
  const send = (req: Uint8Array): ipr.NlReply => ipr.parseReplies(k.netlink(req, { netns: ns, nsFd }));
  const ifindexOf = (name: string): number | undefined => send(ipr.getLinkRequest(name, false)).links[0]?.ifindex;
  if (obj === "" || obj === "help") return fail(IP_USAGE, obj === "" ? 255 : 0);
  if ("link".startsWith(obj)) return ipLink(world, k, rest, { json, stats, send, ifindexOf, ns });
  if ("address".startsWith(obj) || obj === "addr") return ipAddr(rest, { json, send, ifindexOf });
  if (obj === "netns") return ipNetns(world, node, rest);
  return fail(`Object "${obj}" is unknown, try "ip help".`, 255);
}

interface IpCtx {
  readonly json: boolean;
  readonly stats: boolean;
  readonly send: (req: Uint8Array) => ipr.NlReply;
  readonly ifindexOf: (name: string) => number | undefined;
  readonly ns: string | null;
}

function showLinks(ctx: IpCtx, dev: string | undefined): ExecResult {
  const r = ctx.send(ipr.getLinkRequest(dev, true, !ctx.stats));
  if (r.error !== 0) return fail(dev !== undefined && r.error === -19 ? `Device "${dev}" does not exist.` : nlErr(r.error), 1);
  if (ctx.json) return ok(`${JSON.stringify(r.links.map(linkJson))}\n`);
  const lines: string[] = [];
  for (const l of r.links) {
    lines.push(...linkHead(l, true));
    for (const v of l.vfs ?? []) lines.push(vfLine(v, ctx.stats));
  }
  return ok(lines.length === 0 ? "" : `${lines.join("\n")}\n`);
}

function ipLink(world: World, k: GuestKernel, a: string[], ctx: IpCtx): ExecResult {
  const cmd = a[0] ?? "show";
  if (cmd === "show" || cmd === "list" || cmd === "ls" || cmd === "sh") {
    let dev = a[1] === "dev" ? a[2] : a[1];
    if (dev === undefined && a.length > 1) return fail("Command line is not complete. Try option \"help\"", 255);
    if (a.length === 1) dev = undefined;
    return showLinks(ctx, dev);
  }
  if (cmd !== "set") return fail(`Command "${cmd}" is unknown, try "ip link help".`, 255);
  let j = 1;
  if (a[j] === "dev") j++;
  const dev = a[j++];
  if (dev === undefined) return fail("Not enough information: \"dev\" argument is required.", 255);
  const ifindex = ctx.ifindexOf(dev);
  if (ifindex === undefined) return fail(`Cannot find device "${dev}"`, 1);
  const reqs: Uint8Array[] = [];
  while (j < a.length) {
    const w = a[j++] ?? "";
    const v = (): string | undefined => a[j++];
    if (w === "up" || w === "down") reqs.push(ipr.setLinkRequest(ifindex, { up: w === "up" }));
    else if (w === "name") {
      const n = v();
      if (n === undefined) return fail("Command line is not complete. Try option \"help\"", 255);
      reqs.push(ipr.setLinkRequest(ifindex, { name: n }));
    } else if (w === "address") {
      const m = v();
      if (m === undefined || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(m)) return fail(`"${m ?? ""}" is invalid lladdr.`, 255);
      reqs.push(ipr.setLinkRequest(ifindex, { mac: m.toLowerCase() }));
    } else if (w === "mtu") {
      const n = Number(v());
      if (!Number.isInteger(n) || n < 0) return fail("Error: argument is not a valid MTU.", 255);
      reqs.push(ipr.setLinkRequest(ifindex, { mtu: n }));
    } else if (w === "netns") {
      const target = v() ?? "";
      const idx = k.netnsList().indexOf(target);
      if (idx < 0) {
        const pid = Number(target);
        if (Number.isInteger(pid) && pid > 0) reqs.push(ipr.setLinkRequest(ifindex, { netnsPid: pid }));
        else return fail(`Invalid "netns" value "${target}"`, 255);
      } else reqs.push(ipr.setLinkRequest(ifindex, { netnsFd: 1000 + idx }));
    } else if (w === "vf") {
      const r = vfArgs(ifindex, a, j);
      if (typeof r === "string") return fail(r, 255);
      reqs.push(...r.reqs);
      j = r.next;
    } else return fail(`Error: either "dev" is duplicate, or "${w}" is a garbage.`, 255);
  }
  for (const req of reqs) {
    const r = ctx.send(req);
    if (r.error !== 0) return fail(nlErr(r.error), 2);
  }
  world.settle(2);
  return ok("");
}

/** `vf N mac M | vlan V [qos Q] [proto P] | spoofchk on|off | trust on|off | state S | min_tx_rate R | max_tx_rate R`. */
function vfArgs(ifindex: number, a: string[], start: number): { reqs: Uint8Array[]; next: number } | string {
  let j = start;
  const vf = Number(a[j++]);
  if (!Number.isInteger(vf) || vf < 0) return `Invalid "vf" value "${a[j - 1] ?? ""}"`;
  const reqs: Uint8Array[] = [];
  let minRate: number | undefined;
  let maxRate: number | undefined;
  const onOff = (w: string | undefined, what: string): boolean | string => (w === "on" ? true : w === "off" ? false : `Invalid "${what}" value "${w ?? ""}"`);
  while (j < a.length) {
    const w = a[j] ?? "";
    if (w === "mac") {
      const m = a[j + 1] ?? "";
      if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(m)) return `Invalid "mac" value "${m}"`;
      reqs.push(ipr.setVfRequest(ifindex, vf, { mac: m.toLowerCase() }));
      j += 2;
    } else if (w === "vlan") {
      const vlan = Number(a[j + 1]);
      if (!Number.isInteger(vlan) || vlan < 0) return `Invalid "vlan" value "${a[j + 1] ?? ""}"`;
      j += 2;
      let qos = 0;
      let proto = 0x8100;
      for (;;) {
        if (a[j] === "qos") {
          qos = Number(a[j + 1]);
          if (!Number.isInteger(qos) || qos < 0) return `Invalid "qos" value "${a[j + 1] ?? ""}"`;
          j += 2;
        } else if (a[j] === "proto") {
          const p = a[j + 1];
          proto = p === "802.1Q" || p === "802.1q" ? 0x8100 : p === "802.1ad" || p === "802.1AD" ? 0x88a8 : -1;
          if (proto < 0) return `Invalid "proto" value "${p ?? ""}"`;
          j += 2;
        } else break;
      }
      reqs.push(ipr.setVfRequest(ifindex, vf, { vlan, qos, proto }));
    } else if (w === "spoofchk" || w === "trust") {
      const b = onOff(a[j + 1], w);
      if (typeof b === "string") return b;
      reqs.push(ipr.setVfRequest(ifindex, vf, w === "spoofchk" ? { spoofchk: b } : { trust: b }));
      j += 2;
    } else if (w === "state") {
      const s = ["auto", "enable", "disable"].indexOf(a[j + 1] ?? "");
      if (s < 0) return `Invalid "state" value "${a[j + 1] ?? ""}"`;
      reqs.push(ipr.setVfRequest(ifindex, vf, { state: s as 0 | 1 | 2 }));
      j += 2;
    } else if (w === "min_tx_rate" || w === "max_tx_rate" || w === "rate") {
      const n = Number(a[j + 1]);
      if (!Number.isInteger(n) || n < 0) return `Invalid "${w}" value "${a[j + 1] ?? ""}"`;
      if (w === "min_tx_rate") minRate = n;
      else maxRate = n;
      j += 2;
    } else break;
  }
  if (minRate !== undefined || maxRate !== undefined) {
    // iproute2 sends both rates; an omitted one is sent as 0 when it cannot read the current value.
    reqs.push(ipr.setVfRequest(ifindex, vf, { minTxRate: minRate ?? 0, maxTxRate: maxRate ?? 0 }));
  }
  if (reqs.length === 0) return "Error: vf: nothing to set (mac, vlan, spoofchk, trust, state, min_tx_rate, max_tx_rate).";
  return { reqs, next: j };
}

function ipAddr(a: string[], ctx: Omit<IpCtx, "stats" | "ns">): ExecResult {
  const cmd = a[0] ?? "show";
  if (cmd === "show" || cmd === "list" || cmd === "ls") {
    const dev = a[1] === "dev" ? a[2] : a[1];
    const links = ctx.send(ipr.getLinkRequest(dev, false));
    if (links.error !== 0) return fail(`Device "${dev ?? ""}" does not exist.`, 1);
    const addrs = ctx.send(ipr.getAddrRequest()).addrs;
    if (ctx.json) {
      return ok(`${JSON.stringify(links.links.map((l) => ({ ...linkJson(l), addr_info: addrs.filter((x) => x.ifindex === l.ifindex).map((x) => ({ family: "inet", local: x.address, prefixlen: x.prefixLen, scope: l.name === "lo" ? "host" : "global", label: l.name, valid_life_time: 4294967295, preferred_life_time: 4294967295 })) })))}\n`);
    }
    const lines: string[] = [];
    for (const l of links.links) {
      lines.push(...linkHead(l, false));
      for (const x of addrs.filter((y) => y.ifindex === l.ifindex)) {
        lines.push(`    inet ${x.address}/${x.prefixLen} scope ${l.name === "lo" ? "host" : "global"} ${l.name}`, "       valid_lft forever preferred_lft forever");
      }
    }
    return ok(lines.length === 0 ? "" : `${lines.join("\n")}\n`);
  }
  if (cmd === "add" || cmd === "del" || cmd === "delete") {
    const cidr = a[1] ?? "";
    const m = /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?$/.exec(cidr);
    if (m === null) return fail(`Error: any valid prefix is expected rather than "${cidr}".`, 1);
    if (a[2] !== "dev" || a[3] === undefined) return fail("Not enough information: \"dev\" argument is required.", 1);
    const ifindex = ctx.ifindexOf(a[3]);
    if (ifindex === undefined) return fail(`Cannot find device "${a[3]}"`, 1);
    const r = ctx.send(ipr.addrRequest(cmd === "add", ifindex, m[1] ?? "", Number(m[2] ?? 32)));
    if (r.error !== 0) return fail(nlErr(r.error), 2);
    return ok("");
  }
  return fail(`Command "${cmd}" is unknown, try "ip address help".`, 255);
}

function ipNetns(world: World, node: VmNode, a: string[]): ExecResult {
  const k = node.kernel;
  const cmd = a[0] ?? "list";
  try {
    switch (cmd) {
      case "list":
      case "ls":
      case "show":
        return ok(k.netnsList().map((n) => `${n}\n`).join(""));
      case "add":
        if (a[1] === undefined) return fail("No netns name specified", 1);
        k.netnsAdd(a[1]);
        return ok("");
      case "del":
      case "delete":
        if (a[1] === undefined) return fail("No netns name specified", 1);
        k.netnsDel(a[1]);
        world.settle(2);
        return ok("");
      case "exec": {
        const name = a[1];
        if (name === undefined || !k.netnsList().includes(name)) return fail(`Cannot open network namespace "${name ?? ""}": No such file or directory`, 1);
        const [tool, ...rest] = a.slice(2);
        if (tool === "ip") return ip(world, node, ["-n", name, ...rest]);
        if (tool === "ping") {
          const p = parsePingArgs(rest);
          if (typeof p === "string") return fail(p, 2);
          return runPing(k.stack(name), world.clock, () => world.settle(), p.dst, p.opts);
        }
        return fail(`exec of "${tool ?? ""}" failed: only ip and ping run inside a namespace here`, 1);
      }
      default:
        return fail(`Command "${cmd}" is unknown, try "ip netns help".`, 255);
    }
  } catch (e) {
    if (e instanceof SysError) return fail(`${cmd === "add" ? "Cannot create namespace file" : "Cannot remove namespace file"} "/run/netns/${a[1] ?? ""}": ${new SysError(e.errno).message}`, 1);
    throw e;
  }
}
