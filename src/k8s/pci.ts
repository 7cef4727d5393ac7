import { KernelError } from "../base/index.js";
import { K8sError } from "./errors.js";
import { basename, type SysfsReader } from "./sysfs.js";

/**
 * PCI lookups in a guest's sysfs that work on the virtio layout as well as on a classic NIC's.
 * A virtio-net function's netdev hangs under the virtio bus device, `<BDF>/virtioN/net/<if>`,
 * not `<BDF>/net/<if>` (kubernetes.md §6; the fix host-device made with its `virtio*\/net` glob),
 * so every "netdev of a PCI function" question asks both places.
 */
export const PCI_DEVICES = "/sys/bus/pci/devices";

const BDF_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/** Normalises a PCI address to lower-case domain:bus:device.function; throws K8S_BAD_PCI_ADDRESS. */
export function parseBdf(text: unknown): string {
  if (typeof text !== "string") throw new K8sError("K8S_BAD_PCI_ADDRESS", "PCI address must be a string");
  const t = text.toLowerCase();
  const full = /^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(t) ? `0000:${t}` : t;
  if (!BDF_RE.test(full)) throw new K8sError("K8S_BAD_PCI_ADDRESS", `not a PCI address: ${JSON.stringify(text).slice(0, 64)}`, { details: { text: String(text).slice(0, 64) } });
  return full;
}

export function isBdf(text: string): boolean {
  return BDF_RE.test(text);
}

export function deviceDir(bdf: string): string {
  return `${PCI_DEVICES}/${bdf}`;
}

/** True if the error says "no such file" (an absent attribute, an empty net/ directory). */
export function isNotFound(e: unknown): boolean {
  return e instanceof KernelError && e.errno === "ENOENT";
}

export async function readOptional(sysfs: SysfsReader, path: string): Promise<string | undefined> {
  try {
    return (await sysfs.readFile(path)).trim();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

async function listOptional(sysfs: SysfsReader, path: string): Promise<string[]> {
  try {
    return await sysfs.listDir(path);
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

async function readlinkOptional(sysfs: SysfsReader, path: string): Promise<string | undefined> {
  try {
    return await sysfs.readlink(path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/**
 * Netdev names of the PCI function at `dir` (a device directory or a path through links, such as
 * `<VF>/physfn`): `dir/net/*`, else `dir/virtio<N>/net/*` for every virtio child.
 */
export async function netdevsAt(sysfs: SysfsReader, dir: string): Promise<string[]> {
  // Both listings go out at once: over the guest endpoint each is a round trip.
  const [direct, entries] = await Promise.all([listOptional(sysfs, `${dir}/net`), listOptional(sysfs, dir)]);
  if (direct.length > 0) return direct;
  const virtio = entries.filter((e) => /^virtio\d+$/.test(e));
  return (await Promise.all(virtio.map((v) => listOptional(sysfs, `${dir}/${v}/net`)))).flat();
}

export function netdevsOf(sysfs: SysfsReader, bdf: string): Promise<string[]> {
  return netdevsAt(sysfs, deviceDir(bdf));
}

/** The PF's address of a VF (from its `physfn` link), or undefined for a function that is no VF. */
export async function physfnOf(sysfs: SysfsReader, bdf: string): Promise<string | undefined> {
  const t = await readlinkOptional(sysfs, `${deviceDir(bdf)}/physfn`);
  return t === undefined ? undefined : basename(t);
}

/** The VF addresses of a PF, by VF index, from its `virtfn<N>` links (sriov_numvfs of them). */
export async function vfsOf(sysfs: SysfsReader, pf: string): Promise<string[]> {
  const numText = await readOptional(sysfs, `${deviceDir(pf)}/sriov_numvfs`);
  const num = numText === undefined ? 0 : Number.parseInt(numText, 10);
  if (!Number.isInteger(num) || num <= 0 || num > 65536) return [];
  const links = await Promise.all(Array.from({ length: num }, (_, i) => readlinkOptional(sysfs, `${deviceDir(pf)}/virtfn${i}`)));
  const out: string[] = [];
  for (const t of links) {
    if (t === undefined) break;
    out.push(basename(t));
  }
  return out;
}

/** Routing ID of an address (bus << 8 | device << 3 | function), or undefined across domains. */
function rid(bdf: string): number {
  const m = /^([0-9a-f]{4}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/.exec(bdf);
  if (m === null) return NaN;
  return (Number.parseInt(m[2]!, 16) << 8) | (Number.parseInt(m[3]!, 16) << 3) | Number(m[4]);
}

/**
 * A VF's index under its PF. The SR-IOV capability fixes VF n's routing ID at
 * PF + First VF Offset + n * VF Stride (PCIe SR-IOV spec §3.3.10-11, exposed as sriov_offset and
 * sriov_stride), so one readlink of `virtfn<n>` confirms it; without those files, or if the
 * link disagrees, every `virtfn` link is read, as SR-IOV CNI does.
 */
export async function vfIndexOf(sysfs: SysfsReader, pf: string, vf: string): Promise<number> {
  const dir = deviceDir(pf);
  const [off, stride, num] = await Promise.all([readOptional(sysfs, `${dir}/sriov_offset`), readOptional(sysfs, `${dir}/sriov_stride`), readOptional(sysfs, `${dir}/sriov_numvfs`)]);
  if (off !== undefined && stride !== undefined && num !== undefined && pf.slice(0, 4) === vf.slice(0, 4)) {
    const o = Number(off), s = Number(stride), n = Number(num);
    const i = s > 0 ? (rid(vf) - rid(pf) - o) / s : NaN;
    if (Number.isInteger(i) && i >= 0 && i < n) {
      const t = await readlinkOptional(sysfs, `${dir}/virtfn${i}`);
      if (t !== undefined && basename(t) === vf) return i;
    }
  }
  return (await vfsOf(sysfs, pf)).indexOf(vf);
}

export interface VfLocation {
  readonly vf: string;
  readonly pf: string;
  readonly vfIndex: number;
  /** The PF's netdev (through the virtio nesting), on which VF configuration goes over rtnetlink. */
  readonly pfNetdev: string;
}

/** Finds PF, VF index and PF netdev of a VF; throws K8S_NOT_A_VF with what is missing. */
export async function locateVf(sysfs: SysfsReader, vf: string): Promise<VfLocation> {
  const [pf, pfNetdevs] = await Promise.all([physfnOf(sysfs, vf), netdevsAt(sysfs, `${deviceDir(vf)}/physfn`)]);
  if (pf === undefined) {
    const exists = await readOptional(sysfs, `${deviceDir(vf)}/vendor`);
    throw new K8sError("K8S_NOT_A_VF", exists === undefined ? `no PCI function ${vf}` : `${vf} is not a VF (no physfn link)`, { details: { vf } });
  }
  const vfIndex = await vfIndexOf(sysfs, pf, vf);
  if (vfIndex < 0) throw new K8sError("K8S_NOT_A_VF", `${vf} is not among the virtfn links of ${pf}`, { details: { vf, pf } });
  const pfNetdev = pfNetdevs[0];
  if (pfNetdev === undefined) throw new K8sError("K8S_NOT_A_VF", `PF ${pf} of ${vf} has no netdev (neither net/ nor virtio*/net/)`, { details: { vf, pf } });
  return { vf, pf, vfIndex, pfNetdev };
}

/** The kernel driver bound to a function ("virtio-pci"), or undefined. */
export async function driverOf(sysfs: SysfsReader, bdf: string): Promise<string | undefined> {
  const t = await readlinkOptional(sysfs, `${deviceDir(bdf)}/driver`);
  return t === undefined ? undefined : basename(t);
}

/** A hex attribute ("0x1af4") as its digits without prefix ("1af4"), or undefined. */
export async function readHexId(sysfs: SysfsReader, path: string): Promise<string | undefined> {
  const t = await readOptional(sysfs, path);
  if (t === undefined) return undefined;
  return t.toLowerCase().replace(/^0x/, "");
}
