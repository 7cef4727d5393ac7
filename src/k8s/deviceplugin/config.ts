import { K8sError } from "../errors.js";
import { isBdf } from "../pci.js";

/**
 * Resource pools, configured as the SR-IOV network device plugin's /etc/pcidp/config.json
 * (kubernetes.md §7): `{"resourceList":[{resourceName, resourcePrefix?, deviceType?,
 * excludeTopology?, selectors, additionalInfo?}]}`. Selectors are an object or a list of objects
 * tried in order (first match wins). The parser takes untrusted JSON and throws only
 * K8S_BAD_CONFIG, naming the offending field.
 */
export interface Selector {
  readonly vendors?: readonly string[];
  readonly devices?: readonly string[];
  readonly drivers?: readonly string[];
  readonly pciAddresses?: readonly string[];
  readonly rootDevices?: readonly string[];
  readonly pfNames?: readonly PfNameSelector[];
  readonly linkTypes?: readonly string[];
}

/** "eth0" or "eth0#0-3,5": a PF netdev name and, optionally, which VF indexes. */
export interface PfNameSelector {
  readonly pfName: string;
  /** Undefined: every VF of that PF. */
  readonly vfIndexes?: ReadonlySet<number>;
}

export interface ResourcePool {
  readonly resourceName: string;
  readonly resourcePrefix: string;
  readonly deviceType: "netDevice";
  readonly excludeTopology: boolean;
  readonly selectors: readonly Selector[];
  /** Keyed by "*" or by PCI address; fed into the `_INFO` environment variable. */
  readonly additionalInfo: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export interface DevicePluginConfig {
  readonly resourceList: readonly ResourcePool[];
}

export const DEFAULT_RESOURCE_PREFIX = "intel.com";
const NAME_RE = /^[a-zA-Z0-9_]{1,63}$/;
const PREFIX_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_RANGE_VF = 65535;

function fail(where: string, what: string): never {
  throw new K8sError("K8S_BAD_CONFIG", `${where}: ${what}`, { details: { field: where } });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, where: string, check?: (s: string) => string): string[] {
  if (!Array.isArray(v)) fail(where, "must be a list of strings");
  if (v.length > 4096) fail(where, "too many entries");
  return v.map((x, i) => {
    if (typeof x !== "string" || x.length === 0 || x.length > 256) fail(`${where}[${i}]`, "must be a non-empty string");
    return check === undefined ? x : check(x);
  });
}

function hexId(where: string): (s: string) => string {
  return (s) => {
    const t = s.toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{4}$/.test(t)) fail(where, `${JSON.stringify(s)} is not a 4-digit hex id`);
    return t;
  };
}

function bdfCheck(where: string): (s: string) => string {
  return (s) => {
    const t = s.toLowerCase();
    if (!isBdf(t)) fail(where, `${JSON.stringify(s)} is not a PCI address`);
    return t;
  };
}

/** Parses "eth0#0-3,5,7-8" (device plugin range syntax). */
export function parsePfName(text: string, where = "pfNames"): PfNameSelector {
  const hash = text.indexOf("#");
  if (hash < 0) return { pfName: text };
  const pfName = text.slice(0, hash);
  if (pfName.length === 0) fail(where, `${JSON.stringify(text)} has no interface name`);
  const set = new Set<number>();
  for (const part of text.slice(hash + 1).split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (m === null) fail(where, `${JSON.stringify(text)}: bad VF range ${JSON.stringify(part)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo || hi > MAX_RANGE_VF) fail(where, `${JSON.stringify(text)}: bad VF range ${JSON.stringify(part)}`);
    for (let i = lo; i <= hi; i++) set.add(i);
  }
  return { pfName, vfIndexes: set };
}

const SELECTOR_KEYS = new Set(["vendors", "devices", "drivers", "pciAddresses", "rootDevices", "pfNames", "linkTypes", "isRdma", "needVhostNet"]);

function parseSelector(v: unknown, where: string): Selector {
  if (!isObject(v)) fail(where, "must be an object");
  for (const k of Object.keys(v)) {
    if (!SELECTOR_KEYS.has(k)) fail(`${where}.${k}`, "selector not supported by vpf (see docs/k8s.md)");
  }
  // These two only widen what a device brings along; vpf's VFs are plain netdevs, so true cannot be honoured.
  if (v.isRdma !== undefined && v.isRdma !== false) fail(`${where}.isRdma`, "only false is supported");
  if (v.needVhostNet !== undefined && v.needVhostNet !== false) fail(`${where}.needVhostNet`, "only false is supported");
  const s: {
    vendors?: string[]; devices?: string[]; drivers?: string[]; pciAddresses?: string[];
    rootDevices?: string[]; pfNames?: PfNameSelector[]; linkTypes?: string[];
  } = {};
  if (v.vendors !== undefined) s.vendors = stringList(v.vendors, `${where}.vendors`, hexId(`${where}.vendors`));
  if (v.devices !== undefined) s.devices = stringList(v.devices, `${where}.devices`, hexId(`${where}.devices`));
  if (v.drivers !== undefined) s.drivers = stringList(v.drivers, `${where}.drivers`);
  if (v.pciAddresses !== undefined) s.pciAddresses = stringList(v.pciAddresses, `${where}.pciAddresses`, bdfCheck(`${where}.pciAddresses`));
  if (v.rootDevices !== undefined) s.rootDevices = stringList(v.rootDevices, `${where}.rootDevices`, bdfCheck(`${where}.rootDevices`));
  if (v.pfNames !== undefined) s.pfNames = stringList(v.pfNames, `${where}.pfNames`).map((p) => parsePfName(p, `${where}.pfNames`));
  if (v.linkTypes !== undefined) s.linkTypes = stringList(v.linkTypes, `${where}.linkTypes`).map((t) => t.toLowerCase());
  return s;
}

function parsePool(v: unknown, i: number, defaultPrefix: string): ResourcePool {
  const where = `resourceList[${i}]`;
  if (!isObject(v)) fail(where, "must be an object");
  const name = v.resourceName;
  if (typeof name !== "string" || !NAME_RE.test(name)) fail(`${where}.resourceName`, "required; letters, digits and _ only, at most 63");
  const prefix = v.resourcePrefix ?? defaultPrefix;
  if (typeof prefix !== "string" || prefix.length > 253 || !PREFIX_RE.test(prefix)) fail(`${where}.resourcePrefix`, "must be a DNS subdomain such as intel.com");
  const deviceType = v.deviceType ?? "netDevice";
  if (deviceType !== "netDevice") fail(`${where}.deviceType`, `${JSON.stringify(deviceType)} is not supported; only netDevice`);
  const excl = v.excludeTopology ?? false;
  if (typeof excl !== "boolean") fail(`${where}.excludeTopology`, "must be a boolean");
  let selectors: Selector[];
  if (v.selectors === undefined) selectors = [{}];
  else if (Array.isArray(v.selectors)) {
    if (v.selectors.length === 0) fail(`${where}.selectors`, "must not be an empty list");
    selectors = v.selectors.map((s, j) => parseSelector(s, `${where}.selectors[${j}]`));
  } else selectors = [parseSelector(v.selectors, `${where}.selectors`)];
  const info: Record<string, Record<string, string>> = {};
  if (v.additionalInfo !== undefined) {
    if (!isObject(v.additionalInfo)) fail(`${where}.additionalInfo`, "must be an object");
    for (const [key, val] of Object.entries(v.additionalInfo)) {
      if (key !== "*" && !isBdf(key.toLowerCase())) fail(`${where}.additionalInfo`, `key ${JSON.stringify(key)} is neither "*" nor a PCI address`);
      if (!isObject(val)) fail(`${where}.additionalInfo.${key}`, "must be an object of strings");
      const m: Record<string, string> = {};
      for (const [k2, s] of Object.entries(val)) {
        if (typeof s !== "string") fail(`${where}.additionalInfo.${key}.${k2}`, "must be a string");
        m[k2] = s;
      }
      info[key === "*" ? key : key.toLowerCase()] = m;
    }
  }
  return { resourceName: name, resourcePrefix: prefix, deviceType: "netDevice", excludeTopology: excl, selectors, additionalInfo: info };
}

/** Parses the configuration text; throws K8S_BAD_CONFIG. */
export function parseDevicePluginConfig(text: string, defaultPrefix = DEFAULT_RESOURCE_PREFIX): DevicePluginConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new K8sError("K8S_BAD_CONFIG", `configuration is not JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(v)) fail("(top)", "must be an object with resourceList");
  if (!Array.isArray(v.resourceList)) fail("resourceList", "required list");
  if (v.resourceList.length > 256) fail("resourceList", "too many resources");
  const list = v.resourceList.map((p, i) => parsePool(p, i, defaultPrefix));
  const seen = new Set<string>();
  for (const p of list) {
    const full = `${p.resourcePrefix}/${p.resourceName}`;
    if (seen.has(full)) fail("resourceList", `duplicate resource ${full}`);
    seen.add(full);
  }
  return { resourceList: list };
}

/** "intel.com/sriov_net" → "PCIDEVICE_INTEL_COM_SRIOV_NET", as the SR-IOV device plugin names it. */
export function resourceEnvName(prefix: string, name: string): string {
  return `PCIDEVICE_${`${prefix}/${name}`.toUpperCase().replace(/[./]/g, "_")}`;
}
