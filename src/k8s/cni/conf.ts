import { CniError } from "./errors.js";

/**
 * CNI input: environment (CNI spec §"Parameters") and the network configuration on stdin, with
 * SR-IOV CNI's fields (kubernetes.md §4) and vpf's two additions, `guestEndpoint` and
 * `dataDir`. All of it is untrusted: every rule broken gives a CniError with the spec's code.
 */
export const SUPPORTED_VERSIONS = ["1.0.0", "1.1.0"] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export type CniCommand = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION";
const COMMANDS = new Set<string>(["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"]);

export const DEFAULT_DATA_DIR = "/var/lib/cni/vpf-sriov";
export const ENDPOINT_ENV = "VPF_GUEST_ENDPOINT";

export interface CniEnv {
  readonly command: CniCommand;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: ReadonlyMap<string, string>;
  readonly path: readonly string[];
  readonly endpointEnv: string | undefined;
}

export interface VlanConf {
  readonly vlan: number;
  readonly qos: number;
  /** 0x8100 or 0x88a8 */
  readonly proto: number;
}

export interface NetConf {
  readonly cniVersion: CniVersion;
  readonly name: string;
  readonly type: string;
  readonly deviceID: string | undefined;
  readonly vlan: VlanConf | undefined;
  readonly mac: string | undefined;
  readonly spoofchk: boolean | undefined;
  readonly trust: boolean | undefined;
  /** 0 auto, 1 enable, 2 disable (IFLA_VF_LINK_STATE values). */
  readonly linkState: number | undefined;
  readonly minTxRate: number | undefined;
  readonly maxTxRate: number | undefined;
  readonly ipamType: string | undefined;
  readonly guestEndpoint: string | undefined;
  readonly dataDir: string;
  readonly prevResult: Record<string, unknown> | undefined;
  /** cni.dev/valid-attachments (or cni.dev/attachments) for GC. */
  readonly validAttachments: readonly { containerID: string; ifname: string }[] | undefined;
  /** The raw object, passed on to the IPAM plugin as is. */
  readonly raw: Record<string, unknown>;
}

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const BDF_RE = /^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;
const MAX_ID = 1024;

function env4(msg: string): CniError {
  return new CniError("CNI_INVALID_ENV", msg);
}
function conf7(field: string, msg: string): CniError {
  return new CniError("CNI_INVALID_CONFIG", `${field}: ${msg}`, { details: { field } });
}

/** Linux interface name rules (dev_valid_name): 1-15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function validIfname(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && s !== "." && s !== ".." && !/[/:\s]/.test(s);
}

export function parseCniArgs(text: string): Map<string, string> {
  const m = new Map<string, string>();
  if (text === "") return m;
  for (const kv of text.split(";")) {
    if (kv === "") continue;
    const i = kv.indexOf("=");
    if (i <= 0) throw env4(`CNI_ARGS: ${JSON.stringify(kv.slice(0, 40))} is not KEY=VALUE`);
    m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!COMMANDS.has(command)) throw env4(`CNI_COMMAND ${JSON.stringify(command.slice(0, 20))} is not one of ADD, DEL, CHECK, STATUS, GC, VERSION`);
  const c = command as CniCommand;
  const perContainer = c === "ADD" || c === "DEL" || c === "CHECK";
  const containerId = env.CNI_CONTAINERID ?? "";
  const netns = env.CNI_NETNS ?? "";
  const ifname = env.CNI_IFNAME ?? "";
  if (perContainer) {
    // libcni's skel answers a missing container id with code 3 (kubernetes.md §2, skel quirks).
    if (containerId === "") throw new CniError("CNI_UNKNOWN_CONTAINER", "missing containerID");
    if (containerId.length > MAX_ID || !CONTAINER_ID_RE.test(containerId)) throw env4("CNI_CONTAINERID must start alphanumeric, then [A-Za-z0-9_.-]");
    if (ifname === "") throw env4("missing CNI_IFNAME");
    if (!validIfname(ifname)) throw env4(`CNI_IFNAME ${JSON.stringify(ifname.slice(0, 20))} is not a valid interface name`);
    if (c !== "DEL" && netns === "") throw env4("missing CNI_NETNS");
  }
  const pathText = env.CNI_PATH ?? "";
  if (c === "GC" && pathText === "") throw env4("missing CNI_PATH");
  return {
    command: c,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ""),
    path: pathText.split(":").filter((p) => p !== ""),
    endpointEnv: env[ENDPOINT_ENV],
  };
}

/** "/run/netns/pod1" or "/var/run/netns/pod1" → "pod1"; undefined for anything else. */
export function netnsName(path: string): string | undefined {
  const m = /^(?:\/var)?\/run\/netns\/([A-Za-z0-9_.-]{1,64})$/.exec(path);
  return m === null || m[1] === "." || m[1] === ".." ? undefined : m[1];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function intField(o: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw conf7(key, `must be an integer in ${min}..${max}`);
  return v;
}

function onOff(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (v === "on") return true;
  if (v === "off") return false;
  throw conf7(key, 'must be "on" or "off"');
}

function macField(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string" || !MAC_RE.test(v)) throw conf7(field, "must be a MAC address like 02:00:00:00:00:01");
  const first = Number.parseInt(v.slice(0, 2), 16);
  if ((first & 1) !== 0) throw conf7(field, "must be a unicast address");
  return v.toLowerCase();
}

function absPath(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || !v.startsWith("/") || v.length > 4096 || v.includes("\0")) throw conf7(field, "must be an absolute path");
  return v;
}

/** Parses and validates stdin; `env` supplies CNI_ARGS (MAC=) and the endpoint fallback. */
export function parseConf(stdin: string, env: CniEnv): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new CniError("CNI_DECODE_FAILURE", `network configuration is not JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError("CNI_DECODE_FAILURE", "network configuration must be a JSON object");
  const version = raw.cniVersion;
  if (typeof version !== "string") throw conf7("cniVersion", "required string");
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError("CNI_INCOMPATIBLE_VERSION", `cniVersion ${JSON.stringify(version.slice(0, 20))} is not supported; supported: ${SUPPORTED_VERSIONS.join(", ")}`, { details: { supportedVersions: [...SUPPORTED_VERSIONS] } });
  }
  const name = raw.name;
  if (typeof name !== "string" || name.length > 256 || !NAME_RE.test(name)) throw conf7("name", "required; starts alphanumeric, then [A-Za-z0-9_.-]");
  const type = raw.type;
  if (typeof type !== "string" || type === "") throw conf7("type", "required string");

  const rc = isObject(raw.runtimeConfig) ? raw.runtimeConfig : {};
  let deviceID: string | undefined;
  const dev = rc.deviceID ?? raw.deviceID;
  if (dev !== undefined && dev !== null) {
    if (typeof dev !== "string" || !BDF_RE.test(dev)) throw conf7("deviceID", "must be a VF PCI address like 0000:00:04.1");
    deviceID = (dev.length === 7 ? `0000:${dev}` : dev).toLowerCase();
  }

  const vlanN = intField(raw, "vlan", 0, 4094);
  const qos = intField(raw, "vlanQoS", 0, 7);
  const protoText = raw.vlanProto;
  if (protoText !== undefined && protoText !== null && (typeof protoText !== "string" || !["802.1q", "802.1ad"].includes(protoText.toLowerCase()))) throw conf7("vlanProto", 'must be "802.1q" or "802.1ad"');
  const proto = typeof protoText === "string" && protoText.toLowerCase() === "802.1ad" ? 0x88a8 : 0x8100;
  if (vlanN === undefined) {
    if (qos !== undefined) throw conf7("vlanQoS", "needs vlan");
    if (protoText !== undefined && protoText !== null) throw conf7("vlanProto", "needs vlan");
  } else {
    if (qos !== undefined && qos !== 0 && vlanN === 0) throw conf7("vlanQoS", "a non-zero QoS needs a non-zero vlan");
    if (proto === 0x88a8 && vlanN === 0) throw conf7("vlanProto", "802.1ad needs a non-zero vlan");
  }

  // runtimeConfig.mac overrides MAC= in CNI_ARGS, which overrides the config's mac.
  const mac = macField(rc.mac, "runtimeConfig.mac") ?? macField(env.args.get("MAC"), "CNI_ARGS MAC") ?? macField(raw.mac, "mac");

  let linkState: number | undefined;
  const ls = raw.link_state;
  if (ls !== undefined && ls !== null && ls !== "") {
    const i = ["auto", "enable", "disable"].indexOf(typeof ls === "string" ? ls : "");
    if (i < 0) throw conf7("link_state", 'must be "auto", "enable" or "disable"');
    linkState = i;
  }
  const minTx = intField(raw, "min_tx_rate", 0, 0xffffffff);
  const maxTx = intField(raw, "max_tx_rate", 0, 0xffffffff);
  if (minTx !== undefined && maxTx !== undefined && maxTx !== 0 && minTx > maxTx) throw conf7("min_tx_rate", "must be <= max_tx_rate");

  let ipamType: string | undefined;
  if (raw.ipam !== undefined && raw.ipam !== null) {
    if (!isObject(raw.ipam)) throw conf7("ipam", "must be an object");
    const t = raw.ipam.type;
    if (t !== undefined) {
      if (typeof t !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(t)) throw conf7("ipam.type", "must name a plugin binary");
      ipamType = t;
    }
  }
  const prev = raw.prevResult;
  if (prev !== undefined && prev !== null && !isObject(prev)) throw conf7("prevResult", "must be an object");

  let validAttachments: { containerID: string; ifname: string }[] | undefined;
  const va = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"];
  if (va !== undefined && va !== null) {
    if (!Array.isArray(va) || va.length > 100000) throw conf7("cni.dev/valid-attachments", "must be a list");
    validAttachments = va.map((a, i) => {
      if (!isObject(a) || typeof a.containerID !== "string" || typeof a.ifname !== "string") throw conf7(`cni.dev/valid-attachments[${i}]`, "needs containerID and ifname strings");
      return { containerID: a.containerID, ifname: a.ifname };
    });
  }

  return {
    cniVersion: version as CniVersion,
    name,
    type,
    deviceID,
    vlan: vlanN === undefined ? undefined : { vlan: vlanN, qos: qos ?? 0, proto },
    mac,
    spoofchk: onOff(raw, "spoofchk"),
    trust: onOff(raw, "trust"),
    linkState,
    minTxRate: minTx,
    maxTxRate: maxTx,
    ipamType,
    guestEndpoint: absPath(raw.guestEndpoint, "guestEndpoint") ?? absPath(env.endpointEnv, ENDPOINT_ENV),
    dataDir: absPath(raw.dataDir, "dataDir") ?? DEFAULT_DATA_DIR,
    prevResult: isObject(prev) ? prev : undefined,
    validAttachments,
    raw,
  };
}
