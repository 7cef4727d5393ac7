/**
 * `vpfctl`, a node command in every model-guest VM that plays the parts of kubectl and the
 * cluster a user would otherwise need: pod networks (what a NetworkAttachmentDefinition holds)
 * and pods with one SR-IOV VF each, run by the VM's kubelet stand-in (kubelet.ts).
 *
 *   vpfctl net add NAME --subnet A.B.C.D/P [--vlan V] [--range FIRST-LAST]
 *   vpfctl net del NAME | net list
 *   vpfctl pod add NAME --network NET [--vlan V] [--ip A.B.C.D] [--mac MAC]
 *   vpfctl pod del NAME | pod list [-o json]
 *   vpfctl devices [-o json]
 *
 * The command line is untrusted input: parseVpfctl() turns any argv into a command or a usage
 * error and never throws.
 */
import { VpfError } from "../base/errors.js";
import type { ExecResult } from "./daemon.js";
import { PodError, VF_RESOURCE, checkPodName } from "./kubelet.js";
import type { NodeKubelet, PodNetwork } from "./kubelet.js";

export const VPFCTL_USAGE = `Usage: vpfctl COMMAND
  net add NAME --subnet A.B.C.D/P [--vlan V] [--range FIRST-LAST]   define a pod network (cluster-wide)
  net del NAME                                                       remove a network no pod uses
  net list                                                           list networks
  pod add NAME --network NET [--vlan V] [--ip A.B.C.D] [--mac MAC]   run a pod with one VF of this VM
  pod del NAME                                                       delete a pod; its VF is free again
  pod list [-o json]                                                 this VM's pods
  devices [-o json]                                                  the device plugin's ${VF_RESOURCE} list
`;

export type VpfctlCommand =
  | { readonly op: "net-add"; readonly network: PodNetwork }
  | { readonly op: "net-del"; readonly name: string }
  | { readonly op: "net-list" }
  | { readonly op: "pod-add"; readonly name: string; readonly network: string; readonly vlan?: number; readonly ip?: string; readonly mac?: string }
  | { readonly op: "pod-del"; readonly name: string }
  | { readonly op: "pod-list"; readonly json: boolean }
  | { readonly op: "devices"; readonly json: boolean };

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function ipToInt(ip: string): number {
  return ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
}

function label(what: string, name: string | undefined): string {
  if (name === undefined || name.startsWith("-")) throw new PodError("POD_USAGE", `${what} NAME is required`);
  if (what === "pod") checkPodName(name);
  else if (name.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) throw new PodError("POD_USAGE", `invalid network name '${name.slice(0, 80)}': a lowercase RFC 1123 label`);
  return name;
}

function vlanOf(v: string): number {
  const n = /^\d{1,4}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 4094)) throw new PodError("POD_USAGE", `invalid --vlan '${v.slice(0, 40)}': 0 to 4094`);
  return n;
}

/** Flags after the positional words: `--name value` pairs, each at most once. */
function flags(args: readonly string[], allowed: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const f = args[i] ?? "";
    const v = args[i + 1];
    if (!allowed.includes(f)) throw new PodError("POD_USAGE", `unknown flag '${f.slice(0, 40)}' (allowed: ${allowed.join(" ")})`);
    if (v === undefined) throw new PodError("POD_USAGE", `flag needs an argument: ${f}`);
    if (m.has(f)) throw new PodError("POD_USAGE", `flag given twice: ${f}`);
    m.set(f, v);
  }
  return m;
}

function parseNetwork(name: string, f: Map<string, string>): PodNetwork {
  const subnet = f.get("--subnet");
  if (subnet === undefined) throw new PodError("POD_USAGE", "net add needs --subnet A.B.C.D/P");
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(subnet);
  const prefix = Number(m?.[2] ?? NaN);
  if (m === null || !IPV4.test(m[1] ?? "") || !(prefix >= 8 && prefix <= 30)) throw new PodError("POD_USAGE", `invalid --subnet '${subnet.slice(0, 40)}': A.B.C.D/P with P from 8 to 30`);
  const base = ipToInt(m[1] ?? "");
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if (((base & ~mask) >>> 0) !== 0) throw new PodError("POD_USAGE", `invalid --subnet '${subnet}': host bits set`);
  const vlan = vlanOf(f.get("--vlan") ?? "0");
  const range = f.get("--range");
  if (range === undefined) return { name, subnet, vlan };
  const [first, last, ...more] = range.split("-");
  const inSubnet = (ip: string | undefined): ip is string => ip !== undefined && IPV4.test(ip) && ((ipToInt(ip) & mask) >>> 0) === base;
  if (more.length > 0 || !inSubnet(first) || !inSubnet(last) || ipToInt(first) > ipToInt(last)) {
    throw new PodError("POD_USAGE", `invalid --range '${range.slice(0, 40)}': FIRST-LAST, both inside ${subnet}, FIRST not after LAST`);
  }
  return { name, subnet, vlan, rangeStart: first, rangeEnd: last };
}

function outputJson(args: readonly string[]): boolean {
  if (args.length === 0) return false;
  if (args.length === 2 && args[0] === "-o" && (args[1] === "json" || args[1] === "wide")) return args[1] === "json";
  throw new PodError("POD_USAGE", `unexpected '${args.join(" ").slice(0, 40)}' (only -o json)`);
}

/** Any argv to a command, or a PodError with code POD_USAGE (or POD_BAD_NAME). */
export function parseVpfctl(argv: readonly string[]): VpfctlCommand {
  const [obj, verb, ...rest] = argv;
  if (obj === "devices") return { op: "devices", json: outputJson(argv.slice(1)) };
  if (obj === "net" || obj === "network") {
    if (verb === "list" || verb === "ls") {
      outputJson(rest);
      return { op: "net-list" };
    }
    if (verb === "add") {
      const name = label("network", rest[0]);
      return { op: "net-add", network: parseNetwork(name, flags(rest.slice(1), ["--subnet", "--vlan", "--range"])) };
    }
    if (verb === "del" || verb === "delete") {
      if (rest.length !== 1) throw new PodError("POD_USAGE", "net del takes exactly one NAME");
      return { op: "net-del", name: label("network", rest[0]) };
    }
  }
  if (obj === "pod" || obj === "pods") {
    if (verb === "list" || verb === "ls" || verb === "get") return { op: "pod-list", json: outputJson(rest) };
    if (verb === "add" || verb === "create") {
      const name = label("pod", rest[0]);
      const f = flags(rest.slice(1), ["--network", "--vlan", "--ip", "--mac"]);
      const network = f.get("--network");
      if (network === undefined) throw new PodError("POD_USAGE", "pod add needs --network NET");
      const ip = f.get("--ip");
      if (ip !== undefined && !IPV4.test(ip)) throw new PodError("POD_USAGE", `invalid --ip '${ip.slice(0, 40)}': A.B.C.D`);
      const mac = f.get("--mac")?.toLowerCase();
      if (mac !== undefined && (!MAC.test(mac) || (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1)) throw new PodError("POD_USAGE", `invalid --mac '${mac.slice(0, 40)}': a unicast MAC`);
      const vlan = f.get("--vlan");
      return {
        op: "pod-add",
        name,
        network: label("network", network),
        ...(vlan === undefined ? {} : { vlan: vlanOf(vlan) }),
        ...(ip === undefined ? {} : { ip }),
        ...(mac === undefined ? {} : { mac }),
      };
    }
    if (verb === "del" || verb === "delete") {
      if (rest.length !== 1) throw new PodError("POD_USAGE", "pod del takes exactly one NAME");
      return { op: "pod-del", name: label("pod", rest[0]) };
    }
  }
  throw new PodError("POD_USAGE", obj === undefined ? "a command is required" : `unknown command '${[obj, verb ?? ""].join(" ").trim().slice(0, 60)}'`);
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 2))).join("").trimEnd()).map((l) => `${l}\n`).join("");
}

/** What the world gives vpfctl: the cluster's networks and this VM's kubelet. */
export interface VpfctlContext {
  readonly networks: Map<string, PodNetwork>;
  /** Every pod of the world using a network, for `net del`. */
  readonly podsUsing: (network: string) => Promise<string[]>;
  readonly kubelet: () => Promise<NodeKubelet>;
}

export async function runVpfctl(argv: readonly string[], ctx: VpfctlContext): Promise<ExecResult> {
  let cmd: VpfctlCommand;
  try {
    cmd = parseVpfctl(argv);
  } catch (e) {
    if (e instanceof PodError) return { stdout: "", stderr: `error: ${e.message}\n${VPFCTL_USAGE}`, exitCode: 2 };
    throw e;
  }
  try {
    return await run(cmd, ctx);
  } catch (e) {
    // Refusals of the kubelet, the device plugin, the guest kernel (errno) or the world.
    if (e instanceof VpfError) return { stdout: "", stderr: `Error: ${e.message} [${e.code}]\n`, exitCode: 1 };
    throw e;
  }
}

async function run(cmd: VpfctlCommand, ctx: VpfctlContext): Promise<ExecResult> {
  const ok = (stdout: string): ExecResult => ({ stdout, stderr: "", exitCode: 0 });
  switch (cmd.op) {
    case "net-add": {
      if (ctx.networks.has(cmd.network.name)) throw new PodError("POD_EXISTS", `networks "${cmd.network.name}" already exists`);
      ctx.networks.set(cmd.network.name, cmd.network);
      return ok(`network/${cmd.network.name} created\n`);
    }
    case "net-del": {
      if (!ctx.networks.has(cmd.name)) throw new PodError("POD_NOT_FOUND", `networks "${cmd.name}" not found`);
      const users = await ctx.podsUsing(cmd.name);
      if (users.length > 0) throw new PodError("POD_IN_USE", `networks "${cmd.name}" is used by pods ${users.join(", ")}`);
      ctx.networks.delete(cmd.name);
      return ok(`network/${cmd.name} deleted\n`);
    }
    case "net-list": {
      const rows = [["NAME", "VLAN", "SUBNET", "RANGE"], ...[...ctx.networks.values()].map((n) => [n.name, String(n.vlan), n.subnet, n.rangeStart === undefined ? "-" : `${n.rangeStart}-${n.rangeEnd ?? ""}`])];
      return ok(table(rows));
    }
    case "pod-add": {
      const network = ctx.networks.get(cmd.network);
      if (network === undefined) throw new PodError("POD_NOT_FOUND", `networks "${cmd.network}" not found (define it: vpfctl net add ${cmd.network} --subnet A.B.C.D/P [--vlan V])`);
      const k = await ctx.kubelet();
      const pod = await k.addPod(cmd.name, network, {
        ...(cmd.vlan === undefined ? {} : { vlan: cmd.vlan }),
        ...(cmd.ip === undefined ? {} : { ip: cmd.ip }),
        ...(cmd.mac === undefined ? {} : { mac: cmd.mac }),
      });
      return ok(`pod/${pod.name} created: ${VF_RESOURCE} ${pod.deviceId}, net1 ${pod.mac} vlan ${pod.vlan} ${pod.ip === "" ? "(no address)" : pod.ip}\n`);
    }
    case "pod-del": {
      const k = await ctx.kubelet();
      const pod = await k.delPod(cmd.name);
      return ok(`pod/${pod.name} deleted: ${VF_RESOURCE} ${pod.deviceId} is free\n`);
    }
    case "pod-list": {
      const pods = (await ctx.kubelet()).pods();
      if (cmd.json) return ok(`${JSON.stringify(pods)}\n`);
      if (pods.length === 0) return ok("No resources found.\n");
      return ok(table([["NAME", "NETWORK", "VF", "VLAN", "MAC", "IP"], ...pods.map((p) => [p.name, p.network, p.deviceId, String(p.vlan), p.mac, p.ip === "" ? "-" : p.ip])]));
    }
    case "devices": {
      const devices = await (await ctx.kubelet()).devices();
      if (cmd.json) return ok(`${JSON.stringify(devices.map((d) => ({ resource: VF_RESOURCE, ...d, pod: d.pod ?? null })))}\n`);
      return ok(table([["RESOURCE", "DEVICE", "HEALTH", "POD"], ...devices.map((d) => [VF_RESOURCE, d.id, d.health, d.pod ?? "-"])]));
    }
  }
}
