/**
 * Topology files: which hosts, NICs, VMs and external endpoints a world holds. YAML in the
 * spirit of containerlab's topology files; validated field by field, and every error names the
 * file, the line and column, and the field path, so a user can go straight to the mistake.
 */
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument, isMap, isSeq, isScalar } from "yaml";
import type { Node as YamlNode, Document } from "yaml";
import { VpfError } from "../base/errors.js";

export type GuestKind = "model" | "linux";

export type VlanPolicySpec =
  | { readonly mode: "allow-list"; readonly allow: readonly number[] }
  | { readonly mode: "qinq"; readonly outer: number };

export interface PoolSpec {
  readonly name: string;
  /** Host VFs reserved in advance as vhost-vdpa backends for vVFs. */
  readonly size: number;
}

export interface VmSpec {
  readonly name: string;
  readonly guest: GuestKind;
  /** NIC port whose VFs back this VM's vPF and vVFs. */
  readonly port: number;
  /** The pool this VM's vVFs draw from (a host pool name). */
  readonly pool: string;
  /** Most vVFs the VM may hold at once; TotalVFs of its vPF. */
  readonly quota: number;
  readonly vlan: VlanPolicySpec;
  readonly macPrefix: string | undefined;
  readonly allowTrust: boolean;
  readonly allowSpoofchkOff: boolean;
  /** Ceiling on a VF's max_tx_rate, Mbit/s; 0 means no ceiling. */
  readonly maxTxRateMbps: number;
  readonly memoryMiB: number;
}

export interface NicSpec {
  readonly ports: 1 | 2;
  readonly totalVfs: number;
}

export interface HostSpec {
  readonly name: string;
  readonly nic: NicSpec;
  readonly pools: readonly PoolSpec[];
  readonly vms: readonly VmSpec[];
}

export interface ExternalSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly mac: string;
  /** Address with prefix length, e.g. 192.0.2.100/24. */
  readonly ipv4: string;
  /** 802.1Q VLAN the external host's frames carry on the wire, if any. */
  readonly vlan: number | undefined;
}

export interface Topology {
  readonly name: string;
  readonly hosts: readonly HostSpec[];
  readonly externals: readonly ExternalSpec[];
}

/** A topology file that cannot be used; `file:line:col: path: reason`. */
export class TopologyError extends VpfError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly field: string,
    reason: string,
  ) {
    super("TOPOLOGY_INVALID", `${file}:${line}:${column}: ${field === "" ? "" : `${field}: `}${reason}`, {
      details: { file, line, column, field },
    });
  }
}

/** The built-in default topology (issue 6): host1 with one NIC, vm1 and vm2 with pools of 8, ext1. */
export const DEFAULT_TOPOLOGY_YAML = `# vpf default topology
name: default
hosts:
  - name: host1
    nic:
      ports: 1
      totalVfs: 127
    pools:
      - { name: vm1-pool, size: 8 }
      - { name: vm2-pool, size: 8 }
    vms:
      - name: vm1
        guest: model
        pool: vm1-pool
        vlan: { mode: allow-list, allow: [100, 200, 300] }
        macPrefix: "52:54:00:01"
      - name: vm2
        guest: model
        pool: vm2-pool
        vlan: { mode: allow-list, allow: [100, 300] }
        macPrefix: "52:54:00:02"
externals:
  - name: ext1
    host: host1
    port: 0
    mac: "02:00:00:00:ee:01"
    ipv4: 10.0.100.100/24
    vlan: 100
`;

const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAC_PREFIX = /^[0-9a-f]{2}(:[0-9a-f]{2}){0,4}$/;

class Reader {
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  fail(node: YamlNode | null | undefined, field: string, reason: string): never {
    const offset = node?.range?.[0] ?? 0;
    const pos = this.lines.linePos(offset);
    throw new TopologyError(this.file, pos.line, pos.col, field, reason);
  }
}

type Fields = Map<string, YamlNode | null>;

function mapOf(r: Reader, node: YamlNode | null | undefined, field: string, allowed: readonly string[]): Fields {
  if (!isMap(node)) r.fail(node, field, "must be a mapping");
  const out: Fields = new Map();
  for (const pair of node.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
    const at = field === "" ? String(key) : `${field}.${String(key)}`;
    if (key === undefined) r.fail(pair.key as YamlNode, field, "keys must be plain names");
    if (!allowed.includes(key)) r.fail(pair.key as YamlNode, at, `unknown field (expected one of: ${allowed.join(", ")})`);
    if (out.has(key)) r.fail(pair.key as YamlNode, at, "appears twice");
    out.set(key, (pair.value as YamlNode | null) ?? null);
  }
  return out;
}

function scalar(r: Reader, node: YamlNode | null | undefined, field: string): unknown {
  if (!isScalar(node)) r.fail(node, field, "must be a single value");
  return node.value;
}

function str(r: Reader, f: Fields, key: string, field: string, parent: YamlNode | null | undefined, opts: { required?: boolean; pattern?: RegExp; hint?: string; oneOf?: readonly string[] } = {}): string | undefined {
  const node = f.get(key);
  const at = `${field}.${key}`.replace(/^\./, "");
  if (node === undefined || node === null) {
    if (opts.required === true) r.fail(parent, at, "is required");
    return undefined;
  }
  const v = scalar(r, node, at);
  if (typeof v !== "string") r.fail(node, at, "must be a string");
  if (opts.oneOf !== undefined && !opts.oneOf.includes(v)) r.fail(node, at, `must be one of: ${opts.oneOf.join(", ")}`);
  if (opts.pattern !== undefined && !opts.pattern.test(v)) r.fail(node, at, `must be ${opts.hint ?? `like ${String(opts.pattern)}`}`);
  return v;
}

function int(r: Reader, f: Fields, key: string, field: string, min: number, max: number, fallback: number | undefined, parent: YamlNode | null | undefined): number {
  const node = f.get(key);
  const at = `${field}.${key}`.replace(/^\./, "");
  if (node === undefined || node === null) {
    if (fallback === undefined) r.fail(parent, at, "is required");
    return fallback;
  }
  const v = scalar(r, node, at);
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) r.fail(node, at, `must be an integer from ${min} to ${max}`);
  return v;
}

function bool(r: Reader, f: Fields, key: string, field: string, fallback: boolean): boolean {
  const node = f.get(key);
  if (node === undefined || node === null) return fallback;
  const at = `${field}.${key}`;
  const v = scalar(r, node, at);
  if (typeof v !== "boolean") r.fail(node, at, "must be true or false");
  return v;
}

function seq(r: Reader, node: YamlNode | null | undefined, field: string): YamlNode[] {
  if (node === undefined || node === null) return [];
  if (!isSeq(node)) r.fail(node, field, "must be a list");
  return node.items as YamlNode[];
}

function vlanPolicy(r: Reader, node: YamlNode | null | undefined, field: string): VlanPolicySpec {
  if (node === undefined || node === null) return { mode: "allow-list", allow: [] };
  const f = mapOf(r, node, field, ["mode", "allow", "outer"]);
  const mode = str(r, f, "mode", field, node, { required: true, oneOf: ["allow-list", "qinq"] });
  if (mode === "qinq") {
    if (f.has("allow")) r.fail(f.get("allow"), `${field}.allow`, "is only for mode allow-list");
    return { mode, outer: int(r, f, "outer", field, 1, 4094, undefined, node) };
  }
  if (f.has("outer")) r.fail(f.get("outer"), `${field}.outer`, "is only for mode qinq");
  const allow: number[] = [];
  seq(r, f.get("allow"), `${field}.allow`).forEach((n, i) => {
    const v = scalar(r, n, `${field}.allow[${i}]`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 4094) r.fail(n, `${field}.allow[${i}]`, "must be a VLAN ID from 1 to 4094");
    if (allow.includes(v)) r.fail(n, `${field}.allow[${i}]`, `VLAN ${v} is listed twice`);
    allow.push(v);
  });
  return { mode: "allow-list", allow };
}

function parseIpv4Cidr(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (m === null) return false;
  const parts = m.slice(1, 5).map(Number);
  return parts.every((p) => p <= 255) && Number(m[5]) <= 32;
}

/** Parses and validates topology text; `file` names it in error messages. */
export function parseTopology(text: string, file = "<topology>"): Topology {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const r: Reader = new Reader(file, doc, lines);
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = lines.linePos(first.pos[0]);
    throw new TopologyError(file, pos.line, pos.col, "", `YAML syntax error: ${first.message.split("\n")[0] ?? ""}`);
  }
  const root = doc.contents as YamlNode | null;
  const top = mapOf(r, root, "", ["name", "hosts", "externals"]);
  const name = str(r, top, "name", "", root, { pattern: NAME, hint: "a lowercase name" }) ?? "topology";

  const hostNames = new Set<string>();
  const vmNames = new Set<string>();
  const hosts: HostSpec[] = [];
  const hostNodes = seq(r, top.get("hosts"), "hosts");
  if (hostNodes.length === 0) r.fail(top.get("hosts") ?? root, "hosts", "at least one host is required");
  hostNodes.forEach((hn, hi) => {
    const hf = `hosts[${hi}]`;
    const h = mapOf(r, hn, hf, ["name", "nic", "pools", "vms"]);
    const hname = str(r, h, "name", hf, hn, { required: true, pattern: NAME, hint: "a lowercase name (letters, digits, '-')" }) ?? "";
    if (hostNames.has(hname)) r.fail(h.get("name"), `${hf}.name`, `host '${hname}' is defined twice`);
    hostNames.add(hname);
    const nicNode = h.get("nic");
    const nf = mapOf(r, nicNode ?? null, `${hf}.nic`, ["ports", "totalVfs"]);
    const ports = int(r, nf, "ports", `${hf}.nic`, 1, 2, 1, nicNode) as 1 | 2;
    const totalVfs = int(r, nf, "totalVfs", `${hf}.nic`, 1, 255, 127, nicNode);

    const pools: PoolSpec[] = [];
    let reserved = 0;
    seq(r, h.get("pools"), `${hf}.pools`).forEach((pn, pi) => {
      const pf = `${hf}.pools[${pi}]`;
      const p = mapOf(r, pn, pf, ["name", "size"]);
      const pname = str(r, p, "name", pf, pn, { required: true, pattern: NAME, hint: "a lowercase name" }) ?? "";
      if (pools.some((x) => x.name === pname)) r.fail(p.get("name"), `${pf}.name`, `pool '${pname}' is defined twice`);
      const size = int(r, p, "size", pf, 1, 255, undefined, pn);
      reserved += size;
      pools.push({ name: pname, size });
    });

    const vms: VmSpec[] = [];
    seq(r, h.get("vms"), `${hf}.vms`).forEach((vn, vi) => {
      const vf = `${hf}.vms[${vi}]`;
      const v = mapOf(r, vn, vf, ["name", "guest", "port", "pool", "quota", "vlan", "macPrefix", "allowTrust", "allowSpoofchkOff", "maxTxRateMbps", "memoryMiB"]);
      const vname = str(r, v, "name", vf, vn, { required: true, pattern: NAME, hint: "a lowercase name (letters, digits, '-')" }) ?? "";
      if (vmNames.has(vname) || hostNames.has(vname)) r.fail(v.get("name"), `${vf}.name`, `node name '${vname}' is already used`);
      vmNames.add(vname);
      const guest = (str(r, v, "guest", vf, vn, { oneOf: ["model", "linux"] }) ?? "model") as GuestKind;
      const port = int(r, v, "port", vf, 0, ports - 1, 0, vn);
      const poolName = str(r, v, "pool", vf, vn, { required: true });
      const pool = pools.find((p) => p.name === poolName);
      if (pool === undefined) r.fail(v.get("pool"), `${vf}.pool`, `no pool named '${String(poolName)}' on host '${hname}'`);
      const quota = int(r, v, "quota", vf, 1, 255, pool.size, vn);
      const macPrefix = str(r, v, "macPrefix", vf, vn, { pattern: MAC_PREFIX, hint: "1 to 5 lowercase hex octets like 52:54:00" });
      if (macPrefix !== undefined && ((Number.parseInt(macPrefix.slice(0, 2), 16) & 1) === 1)) r.fail(v.get("macPrefix"), `${vf}.macPrefix`, "must be a unicast prefix (first octet even)");
      vms.push({
        name: vname,
        guest,
        port,
        pool: pool.name,
        quota,
        vlan: vlanPolicy(r, v.get("vlan"), `${vf}.vlan`),
        macPrefix,
        allowTrust: bool(r, v, "allowTrust", vf, false),
        allowSpoofchkOff: bool(r, v, "allowSpoofchkOff", vf, false),
        maxTxRateMbps: int(r, v, "maxTxRateMbps", vf, 0, 400_000, 0, vn),
        memoryMiB: int(r, v, "memoryMiB", vf, 16, 65536, 256, vn),
      });
    });
    // Every VM holds one host VF for its vPF, and every pool reserves its size up front.
    if (reserved + vms.length > totalVfs * ports) {
      r.fail(nicNode ?? hn, `${hf}.nic.totalVfs`, `${totalVfs * ports} VFs cannot hold ${vms.length} vPFs plus ${reserved} pool VFs`);
    }
    hosts.push({ name: hname, nic: { ports, totalVfs }, pools, vms });
  });

  const externals: ExternalSpec[] = [];
  seq(r, top.get("externals"), "externals").forEach((en, ei) => {
    const ef = `externals[${ei}]`;
    const e = mapOf(r, en, ef, ["name", "host", "port", "mac", "ipv4", "vlan"]);
    const ename = str(r, e, "name", ef, en, { required: true, pattern: NAME, hint: "a lowercase name" }) ?? "";
    if (vmNames.has(ename) || hostNames.has(ename) || externals.some((x) => x.name === ename)) r.fail(e.get("name"), `${ef}.name`, `node name '${ename}' is already used`);
    const hostName = str(r, e, "host", ef, en, { required: true }) ?? "";
    const host = hosts.find((h) => h.name === hostName);
    if (host === undefined) r.fail(e.get("host"), `${ef}.host`, `no host named '${hostName}'`);
    const port = int(r, e, "port", ef, 0, host.nic.ports - 1, 0, en);
    const mac = str(r, e, "mac", ef, en, { required: true, pattern: MAC, hint: "a lowercase MAC like 02:00:00:00:00:01" }) ?? "";
    if ((Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) r.fail(e.get("mac"), `${ef}.mac`, "must be a unicast address");
    const ipv4 = str(r, e, "ipv4", ef, en, { required: true }) ?? "";
    if (!parseIpv4Cidr(ipv4)) r.fail(e.get("ipv4"), `${ef}.ipv4`, "must be an IPv4 address with prefix length, like 192.0.2.1/24");
    const vlanNode = e.get("vlan");
    const vlan = vlanNode === undefined || vlanNode === null ? undefined : int(r, e, "vlan", ef, 1, 4094, undefined, en);
    externals.push({ name: ename, host: host.name, port, mac, ipv4, vlan });
  });

  return { name, hosts, externals };
}

/** Reads and validates a topology file; errors name the file, line and field. */
export function loadTopology(path: string): Topology {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new VpfError("TOPOLOGY_UNREADABLE", `${path}: cannot read topology file: ${(cause as Error).message}`, { cause });
  }
  return parseTopology(text, path);
}

export function defaultTopology(): Topology {
  return parseTopology(DEFAULT_TOPOLOGY_YAML, "<default topology>");
}
