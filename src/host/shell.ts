import { KernelError, VpfError, strerror } from "../base/index.js";
import type { Host, VfSetRequest } from "./host.js";
import { formatEswitchShow, formatIpLinkShow, formatMgmtdevShow, formatVdpaConfigShow, formatVdpaDevShow } from "./text.js";

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** A malformed command line, refused before anything reaches the kernel (the tools' usage errors). */
export class HostUsageError extends VpfError {
  constructor(message: string) {
    super("HOST_USAGE", message);
  }
}

/**
 * Runs one administrator command against the host, the way the real tools parse and report it:
 * `ip link set DEV vf N ...`, `ip [-s] link show DEV`, `devlink dev eswitch show|set`,
 * `vdpa mgmtdev show`, `vdpa dev add|del|show|config show`, `cat FILE`, `echo VALUE > FILE`.
 * Kernel refusals print as the tools print them ("RTNETLINK answers: Invalid argument",
 * "kernel answers: No such device", "echo: write error: ..."); usage errors exit 255 (ip) or 1.
 */
export function runCommand(host: Host, line: string | readonly string[]): CommandResult {
  const argv = typeof line === "string" ? line.trim().split(/\s+/).filter((a) => a !== "") : [...line];
  const tool = argv[0] ?? "";
  try {
    return { status: 0, stdout: dispatch(host, tool, argv.slice(1)), stderr: "" };
  } catch (e) {
    if (e instanceof HostUsageError) return { status: tool === "ip" ? 255 : 1, stdout: "", stderr: `${e.message}\n` };
    if (e instanceof KernelError) {
      const text = strerror(e.errno);
      if (tool === "ip") return { status: 2, stdout: "", stderr: e.errno === "ENODEV" ? `Cannot find device "${argv[3] ?? ""}"\n` : `RTNETLINK answers: ${text}\n` };
      if (tool === "echo" || tool === "cat") return { status: 1, stdout: "", stderr: `${tool}: ${tool === "echo" ? "write error" : (argv[1] ?? "")}: ${text}\n` };
      const detail = e.message !== text ? `Error: ${e.message}\n` : "";
      return { status: 1, stdout: "", stderr: `${detail}kernel answers: ${text}\n` };
    }
    throw e;
  }
}

function dispatch(host: Host, tool: string, a: string[]): string {
  switch (tool) {
    case "ip":
      return ip(host, a);
    case "devlink":
      return devlink(host, a);
    case "vdpa":
      return vdpa(host, a);
    case "cat":
      if (a.length !== 1) throw new HostUsageError("usage: cat FILE");
      return host.readFile(a[0]!);
    case "echo": {
      const gt = a.indexOf(">");
      if (gt !== a.length - 2 || gt < 1) throw new HostUsageError("usage: echo VALUE > FILE");
      host.writeFile(a[gt + 1]!, `${a.slice(0, gt).join(" ")}\n`);
      return "";
    }
    default:
      throw new HostUsageError(`${tool}: command not found`);
  }
}

function num(v: string | undefined, what: string): number {
  if (v === undefined || !/^(0|[1-9][0-9]*)$/.test(v)) throw new HostUsageError(`Invalid "${what}" value`);
  return Number(v);
}

function onOff(v: string | undefined, what: string): boolean {
  if (v === "on") return true;
  if (v === "off") return false;
  throw new HostUsageError(`Error: argument of "${what}" must be "on" or "off", not "${v ?? ""}"`);
}

function ip(host: Host, a: string[]): string {
  let stats = false;
  while (a[0] === "-s" || a[0] === "-stats") {
    stats = true;
    a = a.slice(1);
  }
  if (a[0] !== "link") throw new HostUsageError(`Object "${a[0] ?? ""}" is unknown, try "ip help".`);
  if (a[1] === "show" || a[1] === undefined) {
    const dev = a[2] === "dev" ? a[3] : a[2];
    const names = dev === undefined ? host.pfNames() : [dev];
    return names.map((n) => formatIpLinkShow(host.getVfInfo(n, { skipStats: !stats }), stats)).join("");
  }
  if (a[1] !== "set") throw new HostUsageError(`Command "${a[1]}" is unknown, try "ip link help".`);
  const dev = a[2] === "dev" ? a[3] : a[2];
  let i = a[2] === "dev" ? 4 : 3;
  if (dev === undefined || a[i] !== "vf") throw new HostUsageError("usage: ip link set DEV vf N ...");
  const vf = num(a[i + 1], "vf");
  i += 2;
  const req: VfSetRequest = {};
  while (i < a.length) {
    const k = a[i]!;
    const v = a[i + 1];
    i += 2;
    switch (k) {
      case "mac":
        req.mac = v ?? "";
        break;
      case "vlan": {
        const vlan = num(v, "vlan");
        let qos: number | undefined;
        let proto: "802.1Q" | "802.1ad" | undefined;
        let innerVlan: number | undefined;
        let innerQos: number | undefined;
        // inner_vlan / inner_qos: vpf's two-tag VST extension (not in iproute2).
        while (a[i] === "qos" || a[i] === "proto" || a[i] === "inner_vlan" || a[i] === "inner_qos") {
          if (a[i] === "qos") qos = num(a[i + 1], "qos");
          else if (a[i] === "inner_vlan") innerVlan = num(a[i + 1], "inner_vlan");
          else if (a[i] === "inner_qos") innerQos = num(a[i + 1], "inner_qos");
          else {
            const p = a[i + 1]?.toLowerCase();
            if (p === "802.1q") proto = "802.1Q";
            else if (p === "802.1ad") proto = "802.1ad";
            else throw new HostUsageError(`Invalid "proto" value`);
          }
          i += 2;
        }
        if (innerQos !== undefined && innerVlan === undefined) throw new HostUsageError(`"inner_qos" needs "inner_vlan"`);
        const inner = innerVlan === undefined ? {} : { inner: { vlan: innerVlan, ...(innerQos !== undefined ? { qos: innerQos } : {}) } };
        req.vlan = { vlan, ...(qos !== undefined ? { qos } : {}), ...(proto !== undefined ? { proto } : {}), ...inner };
        break;
      }
      case "rate":
        req.txRate = num(v, "rate");
        break;
      case "max_tx_rate":
        req.maxTxRate = num(v, "max tx rate");
        break;
      case "min_tx_rate":
        req.minTxRate = num(v, "min tx rate");
        break;
      case "spoofchk":
        req.spoofchk = onOff(v, "spoofchk");
        break;
      case "trust":
        req.trust = onOff(v, "trust");
        break;
      case "query_rss":
        req.queryRss = onOff(v, "query_rss");
        break;
      case "state":
        if (v !== "auto" && v !== "enable" && v !== "disable") throw new HostUsageError(`Invalid "state" value`);
        req.state = v;
        break;
      default:
        throw new HostUsageError(`Error: argument "${k}" is wrong: unknown vf parameter`);
    }
  }
  if (req.minTxRate !== undefined && req.maxTxRate !== undefined && req.maxTxRate !== 0 && req.minTxRate > req.maxTxRate) {
    // iproute2 refuses this itself before sending (ip/iplink.c).
    throw new HostUsageError(`Invalid min_tx_rate ${req.minTxRate} - must be <= max_tx_rate ${req.maxTxRate}`);
  }
  host.setVf(dev, vf, req);
  return "";
}

function devlink(host: Host, a: string[]): string {
  if (a[0] !== "dev" || a[1] !== "eswitch") throw new HostUsageError("usage: devlink dev eswitch show|set DEV ...");
  const dev = a[3];
  if (dev === undefined) throw new HostUsageError("devlink: device name expected");
  if (a[2] === "show") return formatEswitchShow(host.devlinkEswitchShow(dev));
  if (a[2] === "set") {
    if (a[4] !== "mode" || a[5] === undefined) throw new HostUsageError("usage: devlink dev eswitch set DEV mode { legacy | switchdev }");
    if (a[5] !== "legacy" && a[5] !== "switchdev") throw new HostUsageError(`Unknown eswitch mode "${a[5]}"`);
    host.devlinkEswitchSet(dev, { mode: a[5] });
    return "";
  }
  throw new HostUsageError("usage: devlink dev eswitch show|set DEV ...");
}

function vdpa(host: Host, a: string[]): string {
  if (a[0] === "mgmtdev" && a[1] === "show") return formatMgmtdevShow(host.vdpaMgmtdevShow(a[2]));
  if (a[0] !== "dev") throw new HostUsageError(`Object "${a[0] ?? ""}" not found`);
  switch (a[1]) {
    case "show":
      return formatVdpaDevShow(host.vdpaDevShow(a[2]));
    case "config":
      if (a[2] !== "show") throw new HostUsageError("usage: vdpa dev config show [DEV]");
      return formatVdpaConfigShow(host.vdpaDevConfigShow(a[3]));
    case "del":
      if (a[2] === undefined) throw new HostUsageError("vdpa: device name expected");
      host.vdpaDevDel(a[2]);
      return "";
    case "add": {
      let name: string | undefined;
      let mgmtdev: string | undefined;
      let mac: string | undefined;
      let maxVqp: number | undefined;
      let mtu: number | undefined;
      for (let i = 2; i < a.length; i += 2) {
        const v = a[i + 1];
        if (v === undefined) throw new HostUsageError(`Option "${a[i]}" requires an argument`);
        if (a[i] === "name") name = v;
        else if (a[i] === "mgmtdev") mgmtdev = v;
        else if (a[i] === "mac") mac = v;
        else if (a[i] === "max_vqp") maxVqp = num(v, "max_vqp");
        else if (a[i] === "mtu") mtu = num(v, "mtu");
        else throw new HostUsageError(`Unknown option "${a[i]}"`);
      }
      if (name === undefined || mgmtdev === undefined) throw new HostUsageError("Option \"name\" and \"mgmtdev\" are required");
      host.vdpaDevAdd({ name, mgmtdev, ...(mac !== undefined ? { mac } : {}), ...(maxVqp !== undefined ? { maxVqp } : {}), ...(mtu !== undefined ? { mtu } : {}) });
      return "";
    }
    default:
      throw new HostUsageError(`Command "${a[1] ?? ""}" not found`);
  }
}
