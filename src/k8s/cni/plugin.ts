import { KernelError } from "../../base/index.js";
import { GuestEndpointClient } from "../endpoint.js";
import { K8sError } from "../errors.js";
import { locateVf, netdevsOf, type VfLocation } from "../pci.js";
import * as nl from "../rtnl.js";
import { SUPPORTED_VERSIONS, netnsName, parseConf, parseEnv, type CniEnv, type NetConf, type VlanConf } from "./conf.js";
import { CNI_CODES, CniError } from "./errors.js";
import { execDelegateNegotiated as execDelegate, execDelegate as execDelegateOnce, type DelegateEnv } from "./ipam.js";
import { networkOf, parseCidr, ipBytes } from "./ip.js";
import { Rtnl } from "./netlink.js";
import { allocPath, cachePath, listCacheEntries, readJson, removeFile, withLock, writeAtomic } from "./state.js";

/**
 * vpf-sriov, the CNI plugin (CNI spec 1.0.0 and 1.1.0) that gives a pod a VF of a guest's virtual
 * PF, doing what SR-IOV CNI does (kubernetes.md §5) through the guest endpoint: sysfs lookups
 * that know the virtio layout, VF configuration with RTM_SETLINK IFLA_VFINFO_LIST on the PF's
 * netdev, the move into the pod's namespace with the rename in the same request, IPAM by the
 * delegate named in `ipam.type`, and a cache that lets DEL restore everything and repeat.
 */
export interface CniOutcome {
  readonly stdout: string;
  readonly exitCode: number;
}

export const LOCK_TIMEOUT_MS = 10_000;

/** What ADD changed on the VF, and what it found there first. */
interface CacheEntry {
  readonly kind: "vpf-sriov-cache";
  readonly version: 1;
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
  readonly netns: string;
  readonly guestEndpoint: string;
  readonly deviceID: string;
  readonly pfNetdev: string;
  readonly vfIndex: number;
  readonly vfNetdev: string;
  readonly vfMac: string | null;
  readonly vfMtu: number | null;
  readonly orig: nl.VfInfo;
  readonly applied: Applied;
  readonly ipamType: string | null;
  readonly conf: string;
}

interface Applied {
  readonly vlan?: VlanConf;
  readonly mac?: string;
  readonly rate?: { min: number; max: number };
  readonly spoofchk?: boolean;
  readonly trust?: boolean;
  readonly linkState?: number;
}

function isCacheEntry(v: unknown): v is CacheEntry {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return o.kind === "vpf-sriov-cache" && o.version === 1 && typeof o.containerId === "string" && typeof o.ifname === "string" && typeof o.netns === "string" &&
    typeof o.guestEndpoint === "string" && typeof o.deviceID === "string" && typeof o.vfNetdev === "string" && typeof o.vfIndex === "number" &&
    typeof o.orig === "object" && o.orig !== null && typeof o.applied === "object" && o.applied !== null;
}

/**
 * An IPAM call the caller started before the plugin was loaded (main.ts does, to overlap the two
 * process starts): the delegate's ADD for ADD, its DEL for DEL.
 */
export interface RunOptions {
  readonly ipam?: { readonly type: string; readonly command: "ADD" | "DEL"; readonly call: Promise<unknown> };
}

/** Runs one CNI invocation: env and stdin in, stdout text and exit status out. Never throws. */
export async function runCni(envVars: Readonly<Record<string, string | undefined>>, stdin: string, opts: RunOptions = {}): Promise<CniOutcome> {
  let version: string = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;
  let early = opts.ipam;
  try {
    const env = parseEnv(envVars);
    if (env.command === "VERSION") return { stdout: JSON.stringify(versionReply(stdin)), exitCode: 0 };
    const conf = parseConf(stdin, env);
    version = conf.cniVersion;
    switch (env.command) {
      case "ADD": {
        const pre = early !== undefined && early.command === "ADD" && early.type === conf.ipamType ? early.call : undefined;
        if (pre !== undefined) early = undefined; // cmdAdd owns it now, failure clean-up included
        return { stdout: JSON.stringify(await cmdAdd(env, conf, stdin, pre)), exitCode: 0 };
      }
      case "DEL": {
        const pre = early !== undefined && early.command === "DEL" && early.type === conf.ipamType ? early.call : undefined;
        if (pre !== undefined) early = undefined;
        await cmdDel(env, conf, stdin, pre);
        return { stdout: "", exitCode: 0 };
      }
      case "CHECK":
        await cmdCheck(env, conf, stdin);
        return { stdout: "", exitCode: 0 };
      case "STATUS":
        await cmdStatus(env, conf, stdin);
        return { stdout: "", exitCode: 0 };
      default: // "GC", the last verb parseEnv admits
        await cmdGc(env, conf, stdin);
        return { stdout: "", exitCode: 0 };
    }
  } catch (e) {
    return { stdout: JSON.stringify(errorJson(version, e)), exitCode: 1 };
  } finally {
    // A pre-started IPAM ADD that the ADD never took over (bad input): release what it got. (A
    // pre-started DEL needs nothing more: releasing twice is what DEL allows.)
    if (early !== undefined) {
      await early.call.catch(() => undefined);
      if (early.command === "ADD") await execDelegate(early.type, rawDelegateEnv(envVars, "DEL"), stdin).catch(() => undefined);
    }
  }
}

/** Delegate env straight from the process env, for when it did not parse. */
export function rawDelegateEnv(envVars: Readonly<Record<string, string | undefined>>, command: string): DelegateEnv {
  return {
    command,
    containerId: envVars.CNI_CONTAINERID ?? "",
    netns: envVars.CNI_NETNS ?? "",
    ifname: envVars.CNI_IFNAME ?? "",
    args: envVars.CNI_ARGS ?? "",
    path: (envVars.CNI_PATH ?? "").split(":").filter((x) => x !== ""),
  };
}

function versionReply(stdin: string): Record<string, unknown> {
  let asked: unknown;
  try {
    asked = (JSON.parse(stdin) as Record<string, unknown> | null)?.cniVersion;
  } catch {
    asked = undefined;
  }
  const v = typeof asked === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1];
  return { cniVersion: v, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The spec's error object: {cniVersion, code, msg, details}. */
export function errorJson(version: string, e: unknown): Record<string, unknown> {
  let code: number = CNI_CODES.CNI_INTERNAL;
  let details: Record<string, unknown> = {};
  let kind = "CNI_INTERNAL";
  if (e instanceof CniError) {
    code = e.cniCode;
    kind = e.code;
    details = { ...e.details };
  } else if (e instanceof KernelError) {
    code = CNI_CODES.VPF_KERNEL_REFUSED;
    kind = "VPF_KERNEL_REFUSED";
    details = { ...e.details, errno: e.errno };
  } else if (e instanceof K8sError) {
    kind = e.code;
    details = { ...e.details };
    code = e.code === "K8S_NOT_A_VF" || e.code === "K8S_BAD_PCI_ADDRESS" ? CNI_CODES.VPF_NOT_A_VF
      : e.code === "K8S_VF_BUSY" ? CNI_CODES.VPF_VF_BUSY
      : e.code === "K8S_ENDPOINT" ? CNI_CODES.CNI_TRY_AGAIN_LATER
      : e.code === "K8S_NETLINK" || e.code === "K8S_PROTOCOL" ? CNI_CODES.CNI_IO_FAILURE
      : CNI_CODES.CNI_INTERNAL;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { cniVersion: version, code, msg, details: JSON.stringify({ reason: kind, ...details }) };
}

function delegateEnv(env: CniEnv, command: string, containerId = env.containerId, ifname = env.ifname): DelegateEnv {
  const args = [...env.args].map(([k, v]) => `${k}=${v}`).join(";");
  return { command, containerId, netns: env.netns, ifname, args, path: env.path };
}

async function connect(path: string | undefined): Promise<GuestEndpointClient> {
  if (path === undefined) throw new CniError("CNI_INVALID_CONFIG", "guestEndpoint: required (or set VPF_GUEST_ENDPOINT)", { details: { field: "guestEndpoint" } });
  return GuestEndpointClient.connect(path);
}

function requireNetnsName(env: CniEnv): string {
  const n = netnsName(env.netns);
  if (n === undefined) throw new CniError("CNI_INVALID_ENV", `CNI_NETNS ${JSON.stringify(env.netns.slice(0, 80))} must be /run/netns/<name> or /var/run/netns/<name>`);
  return n;
}

function wanted(conf: NetConf, orig: nl.VfInfo): Applied {
  const rate = conf.minTxRate !== undefined || conf.maxTxRate !== undefined ? { min: conf.minTxRate ?? orig.minTxRate, max: conf.maxTxRate ?? orig.maxTxRate } : undefined;
  return {
    ...(conf.vlan === undefined ? {} : { vlan: conf.vlan }),
    ...(conf.mac === undefined ? {} : { mac: conf.mac }),
    ...(rate === undefined ? {} : { rate }),
    ...(conf.spoofchk === undefined ? {} : { spoofchk: conf.spoofchk }),
    ...(conf.trust === undefined ? {} : { trust: conf.trust }),
    ...(conf.linkState === undefined ? {} : { linkState: conf.linkState }),
  };
}

/**
 * What to write back on DEL or rollback: every applied field at its prior value, and the admin
 * MAC always (SR-IOV CNI resets it even when it was 00:00:00:00:00:00, kubernetes.md §5 DEL 4).
 */
function restoring(orig: nl.VfInfo, a: Applied): Applied {
  return {
    ...(a.vlan === undefined ? {} : { vlan: { vlan: orig.vlan, qos: orig.qos, proto: orig.vlanProto } }),
    mac: orig.mac,
    ...(a.rate === undefined ? {} : { rate: { min: orig.minTxRate, max: orig.maxTxRate } }),
    ...(a.spoofchk === undefined || orig.spoofchk < 0 ? {} : { spoofchk: orig.spoofchk !== 0 }),
    ...(a.trust === undefined || orig.trust < 0 ? {} : { trust: orig.trust !== 0 }),
    ...(a.linkState === undefined ? {} : { linkState: orig.linkState }),
  };
}

interface IpamResult {
  ips: { address: string; gateway?: string }[];
  routes: { dst: string; gw?: string }[];
  dns: unknown;
}

function checkIpamResult(v: unknown): IpamResult {
  const bad = (what: string): never => {
    throw new CniError("VPF_IPAM_FAILED", `IPAM result: ${what}`);
  };
  if (typeof v !== "object" || v === null) return bad("not an object");
  const o = v as Record<string, unknown>;
  const ips = o.ips ?? [];
  const routes = o.routes ?? [];
  if (!Array.isArray(ips) || !Array.isArray(routes)) return bad("ips and routes must be lists");
  return {
    ips: ips.map((x: unknown) => {
      const i = x as Record<string, unknown>;
      if (typeof i.address !== "string" || parseCidr(i.address) === undefined) return bad("bad ips[].address");
      if (i.gateway !== undefined && (typeof i.gateway !== "string" || ipBytes(i.gateway) === undefined)) return bad("bad ips[].gateway");
      return { address: i.address, ...(typeof i.gateway === "string" ? { gateway: i.gateway } : {}) };
    }),
    routes: routes.map((x: unknown) => {
      const r = x as Record<string, unknown>;
      if (typeof r.dst !== "string" || parseCidr(r.dst) === undefined) return bad("bad routes[].dst");
      if (r.gw !== undefined && (typeof r.gw !== "string" || ipBytes(r.gw) === undefined)) return bad("bad routes[].gw");
      return { dst: r.dst, ...(typeof r.gw === "string" ? { gw: r.gw } : {}) };
    }),
    dns: o.dns,
  };
}

async function cmdAdd(env: CniEnv, conf: NetConf, stdin: string, preIpam?: Promise<unknown>): Promise<Record<string, unknown>> {
  const ipamType = conf.ipamType;
  // IPAM does not depend on the VF, so the delegate (a process start) runs from the first moment,
  // alongside everything else (main.ts may have started it already); if ADD fails anywhere, its
  // DEL (idempotent) releases the address.
  let ipamP: Promise<IpamResult> | undefined = preIpam?.then(checkIpamResult);
  try {
    if (conf.deviceID === undefined) throw new CniError("CNI_INVALID_CONFIG", "deviceID: VF pci addr is required", { details: { field: "deviceID" } });
    const deviceID = conf.deviceID;
    const ns = requireNetnsName(env);
    if (conf.guestEndpoint === undefined) throw new CniError("CNI_INVALID_CONFIG", "guestEndpoint: required (or set VPF_GUEST_ENDPOINT)", { details: { field: "guestEndpoint" } });
    if (ipamP === undefined && ipamType !== undefined) ipamP = execDelegate(ipamType, delegateEnv(env, "ADD"), stdin).then(checkIpamResult);
    ipamP?.catch(() => undefined); // awaited below; this only keeps an early failure from being "unhandled"
    const client = await connect(conf.guestEndpoint);
    try {
      // Independent look-ups go out together: each is a round trip to the guest.
      const [namespaces, loc] = await Promise.all([client.netnsList(), locateVf(client, deviceID)]);
      if (!namespaces.includes(ns)) throw new CniError("CNI_INVALID_NETNS", `network namespace ${ns} does not exist in the guest`);
      const p = ipamP;
      return await withLock(`${allocPath(conf.dataDir, loc.vf)}.lock`, LOCK_TIMEOUT_MS, () => addLocked(env, conf, stdin, client, loc, ns, namespaces, p));
    } finally {
      client.close();
    }
  } catch (e) {
    if (ipamType !== undefined && ipamP !== undefined) {
      await ipamP.catch(() => undefined);
      await execDelegate(ipamType, delegateEnv(env, "DEL"), stdin).catch(() => undefined);
    }
    throw e;
  }
}

async function addLocked(env: CniEnv, conf: NetConf, stdin: string, client: GuestEndpointClient, loc: VfLocation, ns: string, namespaces: string[], ipamP: Promise<IpamResult> | undefined): Promise<Record<string, unknown>> {
  const alloc = await readAlloc(conf.dataDir, loc.vf);
  const rtnl = new Rtnl(client);
  if (alloc !== undefined) {
    const holder = netnsName(alloc.netns);
    if (holder !== undefined && namespaces.includes(holder)) {
      throw new K8sError("K8S_VF_BUSY", `VF ${loc.vf} is already allocated to namespace ${holder}`, { details: { vf: loc.vf, netns: holder } });
    }
    // Stale: that pod's namespace died before its DEL. Put the VF back as that attachment found
    // it, so what this ADD saves as "before" is the VF's own state, not the dead pod's settings.
    const stale = await loadEntry(conf, alloc.containerId, alloc.ifname);
    if (stale !== undefined && stale.deviceID === loc.vf) await restoreVf(client, rtnl, stale, undefined, undefined);
    await removeFile(allocPath(conf.dataDir, loc.vf));
  }
  const undo: (() => Promise<void>)[] = [];
  try {
    const [vfNetdevs, pf, podFd] = await Promise.all([netdevsOf(client, loc.vf), rtnl.getLink(null, { name: loc.pfNetdev }, true), client.netnsOpen(ns)]);
    const vfNetdev = vfNetdevs[0];
    if (vfNetdev === undefined) throw new K8sError("K8S_NOT_A_VF", `VF ${loc.vf} has no netdev in the initial namespace`, { details: { vf: loc.vf } });
    const orig = pf.vfs?.find((v) => v.vf === loc.vfIndex);
    if (orig === undefined) throw new KernelError("EOPNOTSUPP", `failed to find vf ${loc.vfIndex}: ${loc.pfNetdev} reports no VF information (IFLA_VFINFO_LIST)`, { details: { pf: loc.pfNetdev, vf: loc.vfIndex } });
    const vfLink = await rtnl.getLink(null, { name: vfNetdev });
    const applied = wanted(conf, orig);
    if (Object.keys(applied).length > 0) {
      undo.push(() => rtnl.setLink(null, pf.index, { vf: nl.vfSetInfo(loc.vfIndex, restoring(orig, applied)) }));
      await rtnl.setLink(null, pf.index, { vf: nl.vfSetInfo(loc.vfIndex, applied) });
    }
    // Down, into the pod's namespace, renamed to CNI_IFNAME there: one request, as do_setlink
    // renames inside dev_change_net_namespace, so the name never collides in the initial namespace.
    await rtnl.setLink(null, vfLink.index, { netNsFd: podFd, ifname: env.ifname }, 0, nl.Iff.UP);
    undo.push(async () => {
      const initFd = await client.netnsOpen(null);
      const l = await rtnl.getLink(ns, { name: env.ifname });
      await rtnl.setLink(ns, l.index, { netNsFd: initFd, ifname: vfNetdev }, 0, nl.Iff.UP);
      if (vfLink.mac !== undefined) await rtnl.setLink(null, l.index, { address: vfLink.mac });
    });
    const pod = await rtnl.getLink(ns, { name: env.ifname });
    await rtnl.setLink(ns, pod.index, conf.mac === undefined ? {} : { address: conf.mac }, nl.Iff.UP, nl.Iff.UP);
    const mac = conf.mac ?? pod.mac ?? "";

    const ipam = await ipamP;
    if (ipam !== undefined) {
      for (const ip of ipam.ips) {
        const c = parseCidr(ip.address)!;
        await rtnl.addAddress(ns, pod.index, c.addr, c.prefixlen);
      }
      for (const r of ipam.routes) {
        const c = parseCidr(r.dst)!;
        const gwText = r.gw ?? ipam.ips.find((i) => (parseCidr(i.address)?.addr.length ?? 0) === c.addr.length)?.gateway;
        const gw = gwText === undefined ? undefined : ipBytes(gwText);
        await rtnl.addRoute(ns, pod.index, networkOf(c.addr, c.prefixlen), c.prefixlen, gw);
      }
    }

    const result = buildResult(conf, env, mac, pod.mtu, loc.vf, ipam);
    const entry: CacheEntry = {
      kind: "vpf-sriov-cache", version: 1, network: conf.name, containerId: env.containerId, ifname: env.ifname, netns: env.netns,
      guestEndpoint: client.path, deviceID: loc.vf, pfNetdev: loc.pfNetdev, vfIndex: loc.vfIndex, vfNetdev,
      vfMac: vfLink.mac ?? null, vfMtu: vfLink.mtu ?? null, orig, applied, ipamType: conf.ipamType ?? null, conf: stdin,
    };
    await Promise.all([
      writeAtomic(cachePath(conf.dataDir, env.containerId, env.ifname), JSON.stringify(entry)),
      writeAtomic(allocPath(conf.dataDir, loc.vf), JSON.stringify({ netns: env.netns, containerId: env.containerId, ifname: env.ifname })),
    ]);
    return result;
  } catch (e) {
    // Roll back in reverse so no half-configured VF and no leaked address remain (DESIGN.md §3.6).
    for (const u of undo.reverse()) await u().catch(() => undefined);
    throw e;
  }
}

function buildResult(conf: NetConf, env: CniEnv, mac: string, mtu: number | undefined, pciID: string, ipam: IpamResult | undefined): Record<string, unknown> {
  const prev = conf.prevResult;
  const prevIfs = Array.isArray(prev?.interfaces) ? (prev.interfaces as unknown[]) : [];
  const iface: Record<string, unknown> = { name: env.ifname, mac, sandbox: env.netns };
  if (conf.cniVersion === "1.1.0") {
    if (mtu !== undefined) iface.mtu = mtu;
    iface.pciID = pciID;
  }
  const idx = prevIfs.length;
  const ips = [...(Array.isArray(prev?.ips) ? (prev.ips as unknown[]) : []), ...(ipam?.ips ?? []).map((i) => ({ ...i, interface: idx }))];
  const routes = [...(Array.isArray(prev?.routes) ? (prev.routes as unknown[]) : []), ...(ipam?.routes ?? [])];
  const out: Record<string, unknown> = { cniVersion: conf.cniVersion, interfaces: [...prevIfs, iface], ips, routes };
  const dns = ipam?.dns ?? prev?.dns;
  if (dns !== undefined) out.dns = dns;
  return out;
}

async function loadEntry(conf: NetConf, containerId: string, ifname: string): Promise<CacheEntry | undefined> {
  const v = await readJson(cachePath(conf.dataDir, containerId, ifname));
  return isCacheEntry(v) ? v : undefined;
}

async function cmdDel(env: CniEnv, conf: NetConf, stdin: string, preIpam?: Promise<unknown>): Promise<void> {
  const ipamType = conf.ipamType;
  // The IPAM release is independent of the VF: it starts now (or was started by main.ts).
  const ipamP = ipamType === undefined ? undefined : (preIpam ?? execDelegate(ipamType, delegateEnv(env, "DEL"), stdin));
  ipamP?.catch(() => undefined); // awaited below
  const ipamDel = async (): Promise<void> => {
    await ipamP;
  };
  const entry = await loadEntry(conf, env.containerId, env.ifname);
  // Nothing of ours is left (never added, or already deleted): DEL still succeeds, and IPAM gets
  // its DEL, which is idempotent too, so an address from a half-done ADD is freed.
  if (entry === undefined) return ipamDel();
  await release(entry, conf, ipamDel);
}

interface AllocRecord {
  readonly netns: string;
  readonly containerId: string;
  readonly ifname: string;
}

async function readAlloc(dataDir: string, bdf: string): Promise<AllocRecord | undefined> {
  const v = await readJson(allocPath(dataDir, bdf));
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  return typeof o.netns === "string" && typeof o.containerId === "string" && typeof o.ifname === "string" ? { netns: o.netns, containerId: o.containerId, ifname: o.ifname } : undefined;
}

/**
 * Puts a VF back as `entry`'s ADD found it: settings on the PF (the admin MAC always), the netdev
 * out of the pod's namespace if it is still there (`ns` live), and, wherever it came back from
 * (our move, or the kernel returning it when the namespace died), its name, MAC and MTU.
 */
async function restoreVf(client: GuestEndpointClient, rtnl: Rtnl, entry: CacheEntry, podNs: string | undefined, initFd: number | undefined): Promise<void> {
  const pf = await rtnl.getLink(null, { name: entry.pfNetdev });
  await rtnl.setLink(null, pf.index, { vf: nl.vfSetInfo(entry.vfIndex, restoring(entry.orig, entry.applied)) });
  if (podNs !== undefined && initFd !== undefined) {
    let pod: { index: number } | undefined;
    try {
      pod = await rtnl.getLink(podNs, { name: entry.ifname });
    } catch (e) {
      if (!(e instanceof KernelError && e.errno === "ENODEV")) throw e;
    }
    if (pod !== undefined) await rtnl.setLink(podNs, pod.index, { netNsFd: initFd, ifname: entry.vfNetdev }, 0, nl.Iff.UP);
  }
  const home = (await netdevsOf(client, entry.deviceID))[0];
  if (home === undefined) return;
  const l = await rtnl.getLink(null, { name: home });
  const c: { ifname?: string; address?: string; mtu?: number } = {};
  if (home !== entry.vfNetdev) c.ifname = entry.vfNetdev;
  if (entry.vfMac !== null && entry.vfMac !== l.mac) c.address = entry.vfMac;
  if (entry.vfMtu !== null && entry.vfMtu !== l.mtu) c.mtu = entry.vfMtu;
  // A rename needs the link down (dev_change_name refuses a running device).
  if (Object.keys(c).length > 0) await rtnl.setLink(null, l.index, c, 0, l.up && c.ifname !== undefined ? nl.Iff.UP : 0);
}

/** Gives a VF back (restoreVf), releases the address, removes the state files. */
async function release(entry: CacheEntry, conf: NetConf, ipamDel: () => Promise<void>): Promise<void> {
  const client = await GuestEndpointClient.connect(entry.guestEndpoint);
  try {
    await withLock(`${allocPath(conf.dataDir, entry.deviceID)}.lock`, LOCK_TIMEOUT_MS, async () => {
      // The IPAM release is independent of the VF; it runs alongside.
      const ipamP = ipamDel();
      ipamP.catch(() => undefined);
      const rtnl = new Rtnl(client);
      const ns = netnsName(entry.netns);
      const [located, namespaces, initFd, alloc] = await Promise.all([
        locateVf(client, entry.deviceID).catch((e: unknown) => {
          if (e instanceof K8sError && e.code === "K8S_NOT_A_VF") return undefined; // the VF is gone (VFs disabled)
          throw e;
        }),
        client.netnsList(),
        client.netnsOpen(null),
        readAlloc(conf.dataDir, entry.deviceID),
      ]);
      // After this attachment's pod died, another pod may have been given the VF (ADD took
      // over the stale allocation and restored the VF first); then the VF is not ours to touch.
      const ours = alloc === undefined || (alloc.containerId === entry.containerId && alloc.ifname === entry.ifname);
      if (located !== undefined && ours) await restoreVf(client, rtnl, entry, ns !== undefined && namespaces.includes(ns) ? ns : undefined, initFd);
      await ipamP;
      if (alloc !== undefined && alloc.containerId === entry.containerId && alloc.ifname === entry.ifname) await removeFile(allocPath(conf.dataDir, entry.deviceID));
      await removeFile(cachePath(conf.dataDir, entry.containerId, entry.ifname));
    });
  } finally {
    client.close();
  }
}

function checkFail(msg: string, details?: Record<string, unknown>): CniError {
  return new CniError("VPF_CHECK_FAILED", msg, details === undefined ? undefined : { details });
}

async function cmdCheck(env: CniEnv, conf: NetConf, stdin: string): Promise<void> {
  const prev = conf.prevResult;
  if (prev === undefined) throw new CniError("CNI_INVALID_CONFIG", "prevResult: required for CHECK", { details: { field: "prevResult" } });
  const entry = await loadEntry(conf, env.containerId, env.ifname);
  if (entry === undefined) throw checkFail(`no attachment of ${env.containerId}/${env.ifname} is recorded`);
  const ns = requireNetnsName(env);
  const client = await GuestEndpointClient.connect(entry.guestEndpoint);
  try {
    if (!(await client.netnsList()).includes(ns)) throw new CniError("CNI_INVALID_NETNS", `network namespace ${ns} does not exist in the guest`);
    const rtnl = new Rtnl(client);
    let link;
    try {
      link = await rtnl.getLink(ns, { name: env.ifname });
    } catch (e) {
      if (e instanceof KernelError && e.errno === "ENODEV") throw checkFail(`${env.ifname} is missing from ${ns}`);
      throw e;
    }
    const ifs = Array.isArray(prev.interfaces) ? (prev.interfaces as Record<string, unknown>[]) : [];
    const idx = ifs.findIndex((i) => typeof i === "object" && i !== null && i.name === env.ifname && i.sandbox === env.netns);
    if (idx < 0) throw checkFail(`prevResult has no interface ${env.ifname} in ${env.netns}`);
    const want = ifs[idx]!.mac;
    if (typeof want === "string" && want.toLowerCase() !== link.mac) throw checkFail(`${env.ifname} has MAC ${link.mac ?? "none"}, prevResult says ${want}`);
    const pf = await rtnl.getLink(null, { name: entry.pfNetdev }, true);
    const vf = pf.vfs?.find((v) => v.vf === entry.vfIndex);
    if (vf === undefined) throw checkFail(`VF ${entry.vfIndex} of ${entry.pfNetdev} is gone`);
    const a = entry.applied;
    const diffs: string[] = [];
    if (a.vlan !== undefined && (vf.vlan !== a.vlan.vlan || vf.qos !== a.vlan.qos || vf.vlanProto !== a.vlan.proto)) diffs.push("vlan");
    if (a.mac !== undefined && vf.mac !== a.mac) diffs.push("mac");
    if (a.rate !== undefined && (vf.minTxRate !== a.rate.min || vf.maxTxRate !== a.rate.max)) diffs.push("rate");
    if (a.spoofchk !== undefined && vf.spoofchk !== (a.spoofchk ? 1 : 0)) diffs.push("spoofchk");
    if (a.trust !== undefined && vf.trust !== (a.trust ? 1 : 0)) diffs.push("trust");
    if (a.linkState !== undefined && vf.linkState !== a.linkState) diffs.push("link_state");
    if (diffs.length > 0) throw checkFail(`VF ${entry.vfIndex} settings differ from the configuration: ${diffs.join(", ")}`, { fields: diffs });
    const have = await rtnl.addresses(ns, link.index);
    for (const ip of Array.isArray(prev.ips) ? (prev.ips as Record<string, unknown>[]) : []) {
      if (typeof ip !== "object" || ip === null || ip.interface !== idx || typeof ip.address !== "string") continue;
      const c = parseCidr(ip.address);
      if (c === undefined) throw checkFail(`prevResult address ${ip.address.slice(0, 60)} is not a CIDR`);
      if (!have.some((h) => h.prefixlen === c.prefixlen && h.addr.length === c.addr.length && h.addr.every((b, i) => b === c.addr[i]))) throw checkFail(`${env.ifname} lacks address ${ip.address}`);
    }
  } finally {
    client.close();
  }
  if (conf.ipamType !== undefined) await execDelegate(conf.ipamType, delegateEnv(env, "CHECK"), stdin);
}

/** Whether a delegate speaks CNI 1.1.0 (and so knows STATUS and GC), from its VERSION answer. */
async function delegateSpeaks11(type: string, env: CniEnv): Promise<boolean> {
  const v = await execDelegateOnce(type, delegateEnv(env, "VERSION"), JSON.stringify({ cniVersion: "1.1.0" }));
  const list = typeof v === "object" && v !== null ? (v as Record<string, unknown>).supportedVersions : undefined;
  return Array.isArray(list) && list.includes("1.1.0");
}

function need11(conf: NetConf, verb: string): void {
  if (conf.cniVersion !== "1.1.0") throw new CniError("CNI_INCOMPATIBLE_VERSION", `${verb} needs cniVersion 1.1.0, got ${conf.cniVersion}`);
}

async function cmdStatus(env: CniEnv, conf: NetConf, stdin: string): Promise<void> {
  need11(conf, "STATUS");
  try {
    const client = await connect(conf.guestEndpoint);
    try {
      await client.hello();
    } finally {
      client.close();
    }
  } catch (e) {
    if (e instanceof CniError) throw e;
    throw new CniError("CNI_NOT_AVAILABLE", `guest endpoint not available: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (conf.ipamType !== undefined && (await delegateSpeaks11(conf.ipamType, env))) await execDelegate(conf.ipamType, delegateEnv(env, "STATUS"), stdin);
}

async function cmdGc(env: CniEnv, conf: NetConf, stdin: string): Promise<void> {
  need11(conf, "GC");
  const valid = new Set((conf.validAttachments ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
  const failures: string[] = [];
  // GC goes on past errors (CNI spec GC) and reports them together at the end.
  for (const path of await listCacheEntries(conf.dataDir)) {
    const v = await readJson(path);
    if (!isCacheEntry(v) || v.network !== conf.name || valid.has(`${v.containerId}\0${v.ifname}`)) continue;
    try {
      await release(v, conf, async () => {
        if (v.ipamType !== null) await execDelegate(v.ipamType, { ...delegateEnv(env, "DEL", v.containerId, v.ifname), netns: v.netns }, v.conf);
      });
    } catch (e) {
      failures.push(`${v.containerId}/${v.ifname}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (conf.ipamType !== undefined && (await delegateSpeaks11(conf.ipamType, env))) await execDelegate(conf.ipamType, delegateEnv(env, "GC"), stdin);
  if (failures.length > 0) throw new CniError("CNI_IO_FAILURE", `GC could not release ${failures.length} attachment(s): ${failures.join("; ")}`, { details: { failures } });
}
