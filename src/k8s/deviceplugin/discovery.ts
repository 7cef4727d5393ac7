import { PCI_DEVICES, deviceDir, driverOf, netdevsAt, netdevsOf, physfnOf, readHexId, readOptional, vfIndexOf } from "../pci.js";
import type { SysfsReader } from "../sysfs.js";
import type { PfNameSelector, ResourcePool, Selector } from "./config.js";

/**
 * What the device plugin knows about one network PCI function, read from sysfs the way the
 * SR-IOV device plugin reads it (kubernetes.md §7), with every netdev lookup going through the
 * virtio nesting (`<BDF>/virtioN/net/<if>`), which is what makes pfNames and linkTypes work for
 * virtio VFs.
 */
export interface NetDevice {
  readonly bdf: string;
  readonly vendor: string;
  readonly device: string;
  readonly driver: string | undefined;
  /** The PF's address for a VF, undefined for a function that is not a VF. */
  readonly pf: string | undefined;
  readonly vfIndex: number | undefined;
  readonly pfNetdevs: readonly string[];
  /** Netdevs visible in the plugin's (initial) namespace; empty while the VF is in a pod. */
  readonly netdevs: readonly string[];
  readonly linkType: string | undefined;
  readonly numaNode: number | undefined;
  readonly healthy: boolean;
}

/** ARPHRD numbers of /sys/class/net/<if>/type that selectors name (if_arp.h). */
const LINK_TYPES: Record<string, string> = { "1": "ether", "32": "infiniband", "772": "loopback" };

/** Operational states that mean the device itself is broken, not merely without carrier (RFC 2863). */
const UNHEALTHY_OPERSTATES = new Set(["notpresent", "lowerlayerdown"]);

/**
 * Scans /sys/bus/pci/devices for network functions (class 0x02). PFs that have VFs enabled are
 * left out, as the SR-IOV device plugin does: their VFs are the resource.
 */
export async function discoverNetDevices(sysfs: SysfsReader): Promise<NetDevice[]> {
  let names: string[];
  try {
    names = await sysfs.listDir(PCI_DEVICES);
  } catch {
    return [];
  }
  const out: NetDevice[] = [];
  for (const bdf of names) {
    const cls = await readHexId(sysfs, `${deviceDir(bdf)}/class`);
    if (cls === undefined || !cls.padStart(6, "0").startsWith("02")) continue;
    const numVfs = await readOptional(sysfs, `${deviceDir(bdf)}/sriov_numvfs`);
    if (numVfs !== undefined && numVfs !== "0") continue;
    const pf = await physfnOf(sysfs, bdf);
    const vfIndex = pf === undefined ? undefined : await vfIndexOf(sysfs, pf, bdf);
    const netdevs = await netdevsOf(sysfs, bdf);
    const first = netdevs[0];
    const typeText = first === undefined ? undefined : await readNetAttr(sysfs, bdf, first, "type");
    const oper = first === undefined ? undefined : await readNetAttr(sysfs, bdf, first, "operstate");
    const numaText = await readOptional(sysfs, `${deviceDir(bdf)}/numa_node`);
    const numa = numaText === undefined ? undefined : Number.parseInt(numaText, 10);
    out.push({
      bdf,
      vendor: (await readHexId(sysfs, `${deviceDir(bdf)}/vendor`)) ?? "",
      device: (await readHexId(sysfs, `${deviceDir(bdf)}/device`)) ?? "",
      driver: await driverOf(sysfs, bdf),
      pf,
      vfIndex: vfIndex === undefined || vfIndex < 0 ? undefined : vfIndex,
      pfNetdevs: pf === undefined ? [] : await netdevsAt(sysfs, `${deviceDir(bdf)}/physfn`),
      netdevs,
      linkType: typeText === undefined ? undefined : (LINK_TYPES[typeText] ?? typeText),
      numaNode: numa !== undefined && Number.isInteger(numa) && numa >= 0 ? numa : undefined,
      // "No operstate file means up" (kubernetes.md §7): a VF whose netdev sits in a pod stays healthy.
      healthy: oper === undefined || !UNHEALTHY_OPERSTATES.has(oper),
    });
  }
  return out;
}

async function readNetAttr(sysfs: SysfsReader, bdf: string, netdev: string, attr: string): Promise<string | undefined> {
  const direct = await readOptional(sysfs, `${deviceDir(bdf)}/net/${netdev}/${attr}`);
  if (direct !== undefined) return direct;
  return readOptional(sysfs, `/sys/class/net/${netdev}/${attr}`);
}

function pfNameMatches(sel: readonly PfNameSelector[], d: NetDevice): boolean {
  if (d.pf === undefined) return false;
  return sel.some((s) => d.pfNetdevs.includes(s.pfName) && (s.vfIndexes === undefined || (d.vfIndex !== undefined && s.vfIndexes.has(d.vfIndex))));
}

/** All present fields of a selector must match (the device plugin's AND across fields, OR within). */
export function selectorMatches(s: Selector, d: NetDevice): boolean {
  if (s.vendors !== undefined && !s.vendors.includes(d.vendor)) return false;
  if (s.devices !== undefined && !s.devices.includes(d.device)) return false;
  if (s.drivers !== undefined && (d.driver === undefined || !s.drivers.includes(d.driver))) return false;
  if (s.pciAddresses !== undefined && !s.pciAddresses.includes(d.bdf)) return false;
  if (s.pfNames !== undefined && !pfNameMatches(s.pfNames, d)) return false;
  if (s.rootDevices !== undefined && (d.pf === undefined || !s.rootDevices.includes(d.pf))) return false;
  if (s.linkTypes !== undefined && (d.linkType === undefined || !s.linkTypes.includes(d.linkType))) return false;
  return true;
}

export function poolMatches(p: ResourcePool, d: NetDevice): boolean {
  return p.selectors.some((s) => selectorMatches(s, d));
}

/**
 * Assigns each device to the first pool that selects it, so no VF is offered under two resource
 * names (two pools could otherwise hand the same VF to two pods).
 */
export function assignPools(pools: readonly ResourcePool[], devices: readonly NetDevice[]): Map<ResourcePool, NetDevice[]> {
  const out = new Map<ResourcePool, NetDevice[]>(pools.map((p) => [p, []]));
  for (const d of devices) {
    const p = pools.find((q) => poolMatches(q, d));
    if (p !== undefined) out.get(p)!.push(d);
  }
  return out;
}
