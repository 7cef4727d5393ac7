import { KernelError } from "../base/index.js";
import { MacAddress } from "../wire/index.js";
import {
  ETH_P_8021AD,
  ETH_P_8021Q,
  MAX_VQ_PAIRS,
  MAX_VQ_SIZE,
  VDPA_MTU,
  VdpaNetEngine,
  VDPA_NET_FEATURES,
  featureNames,
  STATUS_FEATURES_OK,
} from "../nic/index.js";
import type { Nic, NicPort, PortStats, VirtualFunction, VfLinkState } from "../nic/index.js";
import { VhostVdpaHandle } from "./vhost.js";

/** One VF as rtnetlink reports it in IFLA_VF_INFO (rtnl_fill_vfinfo), ready to be encoded. */
export interface VfInfo {
  vf: number;
  /** IFLA_VF_MAC (first 6 of the 32 bytes). */
  mac: MacAddress;
  /** IFLA_VF_BROADCAST: the PF's broadcast address. */
  broadcast: MacAddress;
  /** IFLA_VF_VLAN / IFLA_VF_VLAN_INFO */
  vlan: number;
  qos: number;
  /** 0x8100 or 0x88a8 (big-endian on the wire). */
  vlanProto: number;
  /**
   * vpf extension, not part of rtnetlink: the C-tag the VF pushes under its 802.1ad S-tag
   * (two-tag VST). Present only when set; `rtnlVfInfo` leaves it out (the kernel's
   * IFLA_VF_VLAN_LIST holds one entry), so rtnetlink readers see the outer tag alone.
   */
  innerVlan?: { vlan: number; qos: number };
  /** IFLA_VF_TX_RATE: equals maxTxRate. */
  txRate: number;
  /** IFLA_VF_RATE, Mbit/s. */
  minTxRate: number;
  maxTxRate: number;
  /** IFLA_VF_SPOOFCHK, IFLA_VF_TRUST, IFLA_VF_RSS_QUERY_EN as the u32 0/1 the driver fills. */
  spoofchk: boolean;
  trust: boolean;
  rssQueryEn: boolean;
  /** IFLA_VF_LINK_STATE: 0 auto, 1 enable, 2 disable. */
  linkState: VfLinkState;
  /** IFLA_VF_STATS, absent when RTEXT_FILTER_SKIP_STATS was asked. */
  stats?: PortStats;
}

/** The VF part of a PF's RTM_NEWLINK: IFLA_NUM_VF and IFLA_VFINFO_LIST. */
export interface LinkVfInfo {
  ifname: string;
  ifindex: number;
  address: MacAddress;
  mtu: number;
  operstateUp: boolean;
  numVf: number;
  vfs: VfInfo[];
}

/** `ip link set DEV vf N ...`: one or more attributes; each is applied in iproute2's order. */
export interface VfSetRequest {
  mac?: string | MacAddress;
  /**
   * vlan VID [qos Q] [proto 802.1Q|802.1ad]; `inner` is the vpf extension beyond
   * IFLA_VF_VLAN_LIST (MAX_VLAN_LIST_LEN = 1): a C-tag VID 1..4094 [qos] under an 802.1ad S-tag
   * (two-tag VST). Every `vlan` replaces the whole setting, so one without `inner` drops it.
   */
  vlan?: { vlan: number; qos?: number; proto?: number | "802.1Q" | "802.1ad"; inner?: { vlan: number; qos?: number } };
  /** Legacy `rate TX` (IFLA_VF_TX_RATE): sets max, keeps min. */
  txRate?: number;
  /** min_tx_rate / max_tx_rate (IFLA_VF_RATE); a missing one keeps its current value, as iproute2 fills it in. */
  minTxRate?: number;
  maxTxRate?: number;
  spoofchk?: boolean;
  trust?: boolean;
  state?: "auto" | "enable" | "disable" | number;
  queryRss?: boolean;
}

export interface EswitchInfo {
  dev: string;
  mode: "legacy" | "switchdev";
  inlineMode: "none" | "link" | "network" | "transport";
  encapMode: "none" | "basic";
}

export interface MgmtdevInfo {
  /** "pci/0000:3b:00.2" */
  name: string;
  busName: "pci";
  devName: string;
  supportedClasses: ["net"];
  maxSupportedVqs: number;
  devFeatures: bigint;
}

export interface VdpaDevInfo {
  name: string;
  type: "network";
  mgmtdev: string;
  vendorId: number;
  maxVqs: number;
  maxVqSize: number;
  minVqSize: number;
}

export interface VdpaConfigInfo {
  name: string;
  mac: MacAddress;
  linkUp: boolean;
  linkAnnounce: boolean;
  maxVqPairs: number;
  mtu: number;
  /** Present once the driver set FEATURES_OK (VDPA_ATTR_DEV_NEGOTIATED_FEATURES). */
  negotiatedFeatures?: bigint;
}

export interface VdpaDevAddRequest {
  name: string;
  /** "pci/<VF address>" (the bus name may be left out). */
  mgmtdev: string;
  mac?: string | MacAddress;
  maxVqp?: number;
  mtu?: number;
}

/** PCI vendor of the modelled NIC (Mellanox); vdpa dev show prints it as vendor_id. */
export const MELLANOX_VENDOR_ID = 0x15b3;

interface VdpaDevice {
  name: string;
  vf: VirtualFunction;
  port: NicPort;
  engine: VdpaNetEngine;
  /** The MAC this device put into the eswitch (cleared again on delete unless the admin owns it). */
  setMac: boolean;
  minor: number;
  handle: VhostVdpaHandle | null;
}

/**
 * The host OS facade over the NIC: what a host kernel with mlx5_core, mlx5_vdpa and vhost_vdpa
 * loaded offers its administrator and its hypervisor, with Linux's semantics and errno codes
 * (every refusal is a KernelError whose code is the errno name). See docs/host.md.
 */
export class Host {
  readonly #devices = new Map<string, VdpaDevice>();

  constructor(readonly nic: Nic) {}

  // ---- PF netdevs ----

  /** Predictable PF netdev name (systemd's path scheme plus mlx5's phys_port_name): enp59s0f0np0. */
  pfName(port: number): string {
    const a = this.nic.port(port).pf.pciAddress;
    return `enp${a.bus}s${a.device}f${a.function}np${port}`;
  }

  pfNames(): string[] {
    return this.nic.ports.map((p) => this.pfName(p.index));
  }

  /** ifindex of a PF netdev (1 is lo). */
  ifindex(ifname: string): number {
    return this.#port(ifname).index + 2;
  }

  #port(ifname: string): NicPort {
    for (const p of this.nic.ports) if (this.pfName(p.index) === ifname) return p;
    throw new KernelError("ENODEV", `Cannot find device "${ifname}"`, { details: { ifname } });
  }

  #portByPci(addr: string): NicPort | undefined {
    return this.nic.ports.find((p) => p.pf.pciAddress.toString() === addr);
  }

  // ---- sysfs ----

  sriovTotalVfs(ifname: string): number {
    return this.#port(ifname).totalVfs;
  }

  sriovNumVfs(ifname: string): number {
    return this.#port(ifname).numVfs;
  }

  /**
   * A write to sriov_numvfs (drivers/pci/iov.c sriov_numvfs_store): the text is parsed as a u16
   * (EINVAL when it is not a number, ERANGE beyond 65535); above sriov_totalvfs is ERANGE; the
   * current value is a no-op; 0 disables; N → M with both non-zero is EBUSY. Disabling removes
   * the VFs' vDPA devices; while a vhost-vdpa handle on one is open it is EBUSY (the kernel would
   * block the write until the hypervisor lets go).
   */
  setSriovNumVfs(ifname: string, value: number | string): void {
    const port = this.#port(ifname);
    const n = typeof value === "number" ? value : parseKernelU16(value);
    if (!Number.isInteger(n) || n < 0) throw new KernelError("EINVAL", `invalid sriov_numvfs value ${String(value)}`);
    if (n > 0xffff) throw new KernelError("ERANGE");
    if (n > port.totalVfs) throw new KernelError("ERANGE", `${n} VFs requested; only ${port.totalVfs} are supported (sriov_totalvfs)`, { details: { requested: n, totalVfs: port.totalVfs } });
    if (n === port.numVfs) return;
    if (n === 0) {
      const devs = [...this.#devices.values()].filter((d) => d.port === port);
      const open = devs.find((d) => d.handle !== null);
      if (open !== undefined) throw new KernelError("EBUSY", `vDPA device ${open.name} on ${open.vf.pciAddress.toString()} is open (${open.handle!.path})`, { details: { device: open.name } });
      for (const d of devs) this.#removeDevice(d);
      port.disableVfs();
      return;
    }
    if (port.numVfs !== 0) throw new KernelError("EBUSY", `${port.numVfs} VFs already enabled. Disable before enabling ${n} VFs`, { details: { enabled: port.numVfs, requested: n } });
    port.enableVfs(n);
  }

  /** Paths: /sys/class/net/<pf>/device/sriov_{numvfs,totalvfs} and /sys/bus/pci/devices/<bdf>/sriov_*. */
  readFile(path: string): string {
    const { ifname, file } = this.#sysfsPath(path);
    if (file === "sriov_numvfs") return `${this.sriovNumVfs(ifname)}\n`;
    if (file === "sriov_totalvfs") return `${this.sriovTotalVfs(ifname)}\n`;
    throw new KernelError("ENOENT", `${path}: No such file or directory`);
  }

  writeFile(path: string, text: string): void {
    const { ifname, file } = this.#sysfsPath(path);
    if (file === "sriov_numvfs") return this.setSriovNumVfs(ifname, text);
    if (file === "sriov_totalvfs") throw new KernelError("EPERM", `${path} is read-only`);
    throw new KernelError("ENOENT", `${path}: No such file or directory`);
  }

  #sysfsPath(path: string): { ifname: string; file: string } {
    let m = /^\/sys\/class\/net\/([^/]+)\/device\/([a-z_]+)$/.exec(path);
    if (m !== null) {
      const ifname = m[1]!;
      if (!this.pfNames().includes(ifname)) throw new KernelError("ENOENT", `${path}: No such file or directory`);
      return { ifname, file: m[2]! };
    }
    m = /^\/sys\/bus\/pci\/devices\/([0-9a-f:.]+)\/([a-z_]+)$/.exec(path);
    if (m !== null) {
      const port = this.#portByPci(m[1]!);
      if (port === undefined) throw new KernelError("ENOENT", `${path}: No such file or directory`);
      return { ifname: this.pfName(port.index), file: m[2]! };
    }
    throw new KernelError("ENOENT", `${path}: No such file or directory`);
  }

  // ---- ip link ... vf ----

  #vf(port: NicPort, vf: number): VirtualFunction {
    // do_setvfinfo passes the index to the driver, which checks it against num_vfs (EINVAL).
    if (!Number.isInteger(vf) || vf < 0 || vf >= port.numVfs) throw new KernelError("EINVAL", `VF ${vf} does not exist (${port.numVfs} VFs enabled)`, { details: { vf, numVfs: port.numVfs } });
    return port.vf(vf);
  }

  /**
   * `ip link set DEV vf N ...`. Validation as the kernel and netdevsim/mlx5 apply it: a group MAC
   * is EINVAL (all zeros is allowed and clears the MAC), VLAN > 4095 or QoS > 7 is EINVAL, a
   * protocol other than 802.1Q/802.1ad is EINVAL (mlx5 says EPROTONOSUPPORT), min > max rate
   * (max non-zero) or a rate above the link speed is EINVAL, a link state outside
   * auto/enable/disable is EINVAL, an unknown VF is EINVAL. All attributes are validated before
   * any is applied, so a refused request changes nothing.
   */
  setVf(ifname: string, vfIndex: number, req: VfSetRequest): void {
    const port = this.#port(ifname);
    const vf = this.#vf(port, vfIndex);
    const apply: (() => void)[] = [];
    if (req.mac !== undefined) {
      const mac = toMac(req.mac);
      if (mac.isMulticast) throw new KernelError("EINVAL", `${mac.toString()} is a multicast address`, { details: { field: "mac" } });
      apply.push(() => vf.setMac(mac.key, true));
    }
    if (req.vlan !== undefined) {
      const { vlan } = req.vlan;
      const qos = req.vlan.qos ?? 0;
      const proto = req.vlan.proto === undefined || req.vlan.proto === "802.1Q" ? ETH_P_8021Q : req.vlan.proto === "802.1ad" ? ETH_P_8021AD : req.vlan.proto;
      if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095) throw new KernelError("EINVAL", `VLAN ${vlan} outside 0..4095`, { details: { field: "vlan" } });
      if (!Number.isInteger(qos) || qos < 0 || qos > 7) throw new KernelError("EINVAL", `QoS ${qos} outside 0..7`, { details: { field: "qos" } });
      if (proto !== ETH_P_8021Q && proto !== ETH_P_8021AD) throw new KernelError("EINVAL", `VLAN protocol 0x${proto.toString(16)} is neither 802.1Q nor 802.1ad`, { details: { field: "proto" } });
      let inner: { vlan: number; qos: number } | null = null;
      if (req.vlan.inner !== undefined) {
        const iv = req.vlan.inner.vlan;
        const iq = req.vlan.inner.qos ?? 0;
        // Same checks as the outer tag, plus what two-tag VST needs: VID 4095 is reserved
        // (IEEE 802.1Q-2018 Table 9-2) and a C-tag can only sit under a real S-VLAN.
        if (!Number.isInteger(iv) || iv < 0 || iv > 4094) throw new KernelError("EINVAL", `inner VLAN ${iv} outside 0..4094`, { details: { field: "inner_vlan" } });
        if (!Number.isInteger(iq) || iq < 0 || iq > 7) throw new KernelError("EINVAL", `inner QoS ${iq} outside 0..7`, { details: { field: "inner_qos" } });
        if (iv === 0 && iq !== 0) throw new KernelError("EINVAL", "inner QoS without an inner VLAN", { details: { field: "inner_qos" } });
        if (iv !== 0) {
          if (proto !== ETH_P_8021AD) throw new KernelError("EINVAL", "an inner VLAN needs the outer protocol 802.1ad", { details: { field: "proto" } });
          if (vlan < 1 || vlan > 4094) throw new KernelError("EINVAL", `an inner VLAN needs an outer VLAN 1..4094, not ${vlan}`, { details: { field: "vlan" } });
          inner = { vlan: iv, qos: iq };
        }
      }
      apply.push(() => vf.setVlan(vlan, qos, proto, inner));
    }
    if (req.txRate !== undefined || req.minTxRate !== undefined || req.maxTxRate !== undefined) {
      const max = req.maxTxRate ?? req.txRate ?? vf.maxTxRate;
      const min = req.minTxRate ?? vf.minTxRate;
      const speed = this.nic.linkSpeedMbps;
      for (const [field, v] of [["min_tx_rate", min], ["max_tx_rate", max]] as const) {
        if (!Number.isInteger(v) || v < 0) throw new KernelError("EINVAL", `${field} ${v} is not a non-negative integer`, { details: { field } });
        if (v > speed) throw new KernelError("EINVAL", `${field} ${v} Mbps exceeds the link speed ${speed} Mbps`, { details: { field, speed } });
      }
      if (max !== 0 && min > max) throw new KernelError("EINVAL", `min_tx_rate ${min} must be <= max_tx_rate ${max}`, { details: { field: "min_tx_rate" } });
      apply.push(() => vf.setRate(min, max));
    }
    if (req.spoofchk !== undefined) {
      const on = req.spoofchk;
      apply.push(() => vf.setSpoofchk(on));
    }
    if (req.trust !== undefined) {
      const on = req.trust;
      apply.push(() => vf.setTrust(on));
    }
    if (req.queryRss !== undefined) {
      const on = req.queryRss;
      apply.push(() => vf.setRssQueryEn(on));
    }
    if (req.state !== undefined) {
      const s = req.state;
      const state = s === "auto" ? 0 : s === "enable" ? 1 : s === "disable" ? 2 : s;
      if (state !== 0 && state !== 1 && state !== 2) throw new KernelError("EINVAL", `link state ${String(s)} is not auto, enable or disable`, { details: { field: "state" } });
      apply.push(() => vf.setLinkState(state));
    }
    for (const f of apply) f();
  }

  /** RTM_GETLINK with RTEXT_FILTER_VF (and optionally RTEXT_FILTER_SKIP_STATS). */
  getVfInfo(ifname: string, options?: { skipStats?: boolean }): LinkVfInfo {
    const port = this.#port(ifname);
    const vfs: VfInfo[] = port.vfs.map((vf) => {
      const info: VfInfo = {
        vf: vf.index,
        mac: MacAddress.fromKey(vf.macKey),
        broadcast: MacAddress.BROADCAST,
        vlan: vf.vlan,
        qos: vf.qos,
        vlanProto: vf.vlanProto,
        txRate: vf.maxTxRate,
        minTxRate: vf.minTxRate,
        maxTxRate: vf.maxTxRate,
        spoofchk: vf.spoofchk,
        trust: vf.trusted,
        rssQueryEn: vf.rssQueryEn,
        linkState: vf.linkState,
      };
      if (vf.innerVlan !== 0) info.innerVlan = { vlan: vf.innerVlan, qos: vf.innerQos };
      if (options?.skipStats !== true) info.stats = vf.counters.snapshot();
      return info;
    });
    return {
      ifname,
      ifindex: this.ifindex(ifname),
      address: MacAddress.fromKey(port.pf.macKey),
      mtu: 1500,
      operstateUp: port.uplink.linkUp,
      numVf: port.numVfs,
      vfs,
    };
  }

  // ---- devlink ----

  #devlinkPort(dev: string): NicPort {
    const m = /^pci\/(.+)$/.exec(dev);
    const port = m === null ? undefined : this.#portByPci(m[1]!);
    if (port === undefined) throw new KernelError("ENODEV", `devlink device ${dev} not found`, { details: { dev } });
    return port;
  }

  /** `devlink dev eswitch show pci/<PF>`. */
  devlinkEswitchShow(dev: string): EswitchInfo {
    this.#devlinkPort(dev);
    return { dev, mode: "legacy", inlineMode: "none", encapMode: "basic" };
  }

  /**
   * `devlink dev eswitch set pci/<PF> mode legacy|switchdev`. Legacy is the mode the eswitch is
   * in (a no-op). Switchdev is refused with EOPNOTSUPP: representors and flow offload arrive with
   * roadmap step 2.
   */
  devlinkEswitchSet(dev: string, req: { mode?: string }): void {
    this.#devlinkPort(dev);
    if (req.mode === undefined || req.mode === "legacy") return;
    if (req.mode === "switchdev") {
      throw new KernelError("EOPNOTSUPP", "switchdev mode is not supported yet: this eswitch runs in legacy mode only (representors and flow offload come later)", { details: { dev, mode: "switchdev" } });
    }
    throw new KernelError("EINVAL", `unknown eswitch mode "${req.mode}"`, { details: { dev, mode: req.mode } });
  }

  // ---- vdpa ----

  #mgmtdevVf(mgmtdev: string): { port: NicPort; vf: VirtualFunction } | undefined {
    const addr = mgmtdev.startsWith("pci/") ? mgmtdev.slice(4) : mgmtdev;
    for (const port of this.nic.ports) for (const vf of port.vfs) if (vf.pciAddress.toString() === addr) return { port, vf };
    return undefined;
  }

  /** `vdpa mgmtdev show [MGMTDEV]`: one management device per enabled VF (mlx5_vdpa). */
  vdpaMgmtdevShow(name?: string): MgmtdevInfo[] {
    const out: MgmtdevInfo[] = [];
    for (const port of this.nic.ports) {
      for (const vf of port.vfs) {
        const devName = vf.pciAddress.toString();
        out.push({ name: `pci/${devName}`, busName: "pci", devName, supportedClasses: ["net"], maxSupportedVqs: 2 * MAX_VQ_PAIRS + 1, devFeatures: VDPA_NET_FEATURES });
      }
    }
    if (name === undefined) return out;
    const want = name.startsWith("pci/") ? name : `pci/${name}`;
    const one = out.filter((m) => m.name === want);
    if (one.length === 0) throw new KernelError("ENODEV", `management device ${name} not found`, { details: { mgmtdev: name } });
    return one;
  }

  /**
   * `vdpa dev add name NAME mgmtdev pci/<VF> [mac MAC] [max_vqp N] [mtu MTU]`. Errors: a name in
   * use is EEXIST, an unknown management device ENODEV, a VF that already has its device ENOSPC
   * (mlx5_vdpa allows one), max_vqp outside 1..MAX_VQ_PAIRS, an MTU outside 68..9000, a group
   * MAC or a malformed name EINVAL. A MAC given here becomes the VF's MAC in the eswitch (mlx5
   * adds it to the MPFS table); without one the device uses the VF's MAC.
   */
  vdpaDevAdd(req: VdpaDevAddRequest): VdpaDevInfo {
    if (typeof req.name !== "string" || !/^[A-Za-z0-9_.:-]{1,63}$/.test(req.name)) throw new KernelError("EINVAL", `invalid vdpa device name ${JSON.stringify(req.name)}`);
    if (this.#devices.has(req.name)) throw new KernelError("EEXIST", `vdpa device ${req.name} already exists`, { details: { name: req.name } });
    const found = this.#mgmtdevVf(req.mgmtdev);
    if (found === undefined) throw new KernelError("ENODEV", `management device ${req.mgmtdev} not found`, { details: { mgmtdev: req.mgmtdev } });
    const maxVqp = req.maxVqp ?? 1;
    if (!Number.isInteger(maxVqp) || maxVqp < 1 || maxVqp > MAX_VQ_PAIRS) throw new KernelError("EINVAL", `max_vqp ${maxVqp} outside 1..${MAX_VQ_PAIRS}`, { details: { field: "max_vqp" } });
    const mtu = req.mtu ?? VDPA_MTU;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 9000) throw new KernelError("EINVAL", `mtu ${mtu} outside 68..9000`, { details: { field: "mtu" } });
    const mac = req.mac === undefined ? undefined : toMac(req.mac);
    if (mac !== undefined && (mac.isMulticast || mac.isZero)) throw new KernelError("EINVAL", `${mac.toString()} is not a unicast address`, { details: { field: "mac" } });
    for (const d of this.#devices.values()) {
      if (d.vf === found.vf) throw new KernelError("ENOSPC", `${req.mgmtdev} already has vdpa device ${d.name}`, { details: { mgmtdev: req.mgmtdev, device: d.name } });
    }
    const engine = new VdpaNetEngine(found.vf, { maxVqp, mtu });
    if (mac !== undefined) found.vf.setMac(mac.key, found.vf.adminMac && found.vf.macKey === mac.key);
    const minor = this.#freeMinor();
    this.#devices.set(req.name, { name: req.name, vf: found.vf, port: found.port, engine, setMac: mac !== undefined && !found.vf.adminMac, minor, handle: null });
    return this.vdpaDevShow(req.name)[0]!;
  }

  #freeMinor(): number {
    const used = new Set([...this.#devices.values()].map((d) => d.minor));
    let m = 0;
    while (used.has(m)) m++;
    return m;
  }

  /** `vdpa dev del NAME`: ENODEV when unknown, EBUSY while a vhost-vdpa handle is open. */
  vdpaDevDel(name: string): void {
    const d = this.#devices.get(name);
    if (d === undefined) throw new KernelError("ENODEV", `vdpa device ${name} not found`, { details: { name } });
    if (d.handle !== null) throw new KernelError("EBUSY", `vdpa device ${name} is open (${d.handle.path})`, { details: { name } });
    this.#removeDevice(d);
  }

  #removeDevice(d: VdpaDevice): void {
    d.engine.reset();
    if (d.setMac && !d.vf.adminMac) d.vf.setMac(0, false);
    this.#devices.delete(d.name);
  }

  #device(name: string): VdpaDevice {
    const d = this.#devices.get(name);
    if (d === undefined) throw new KernelError("ENODEV", `vdpa device ${name} not found`, { details: { name } });
    return d;
  }

  #sorted(name?: string): VdpaDevice[] {
    if (name !== undefined) return [this.#device(name)];
    return [...this.#devices.values()].sort((a, b) => a.minor - b.minor);
  }

  /** `vdpa dev show [NAME]` */
  vdpaDevShow(name?: string): VdpaDevInfo[] {
    return this.#sorted(name).map((d) => ({
      name: d.name,
      type: "network",
      mgmtdev: `pci/${d.vf.pciAddress.toString()}`,
      vendorId: MELLANOX_VENDOR_ID,
      maxVqs: d.engine.numQueues,
      maxVqSize: MAX_VQ_SIZE,
      minVqSize: 1,
    }));
  }

  /** `vdpa dev config show [NAME]` */
  vdpaDevConfigShow(name?: string): VdpaConfigInfo[] {
    return this.#sorted(name).map((d) => {
      const c: VdpaConfigInfo = {
        name: d.name,
        mac: MacAddress.fromKey(d.vf.macKey),
        linkUp: d.vf.linkUp,
        linkAnnounce: false,
        maxVqPairs: d.engine.maxVqp,
        mtu: d.engine.mtu,
      };
      if ((d.engine.status & STATUS_FEATURES_OK) !== 0) c.negotiatedFeatures = d.engine.driverFeatures;
      return c;
    });
  }

  /** The character device a vDPA device bound to vhost_vdpa shows up as. */
  vhostVdpaPath(name: string): string {
    return `/dev/vhost-vdpa-${this.#device(name).minor}`;
  }

  /**
   * open(/dev/vhost-vdpa-N): one opener at a time (vhost_vdpa_open answers EBUSY to a second).
   * `nameOrPath` is the vDPA device name or its /dev path.
   */
  openVhostVdpa(nameOrPath: string): VhostVdpaHandle {
    const d = [...this.#devices.values()].find((x) => x.name === nameOrPath || `/dev/vhost-vdpa-${x.minor}` === nameOrPath);
    if (d === undefined) throw new KernelError("ENOENT", `${nameOrPath}: No such file or directory`, { details: { device: nameOrPath } });
    if (d.handle !== null) throw new KernelError("EBUSY", `${d.handle.path} is already open`, { details: { device: d.name } });
    const h = new VhostVdpaHandle(d.name, `/dev/vhost-vdpa-${d.minor}`, d.engine, () => {
      if (d.handle === h) d.handle = null;
    });
    d.handle = h;
    return h;
  }

  /** Negotiated features of a device by name, as names (for text output). */
  featureNames(features: bigint): string[] {
    return featureNames(features);
  }
}

function toMac(m: string | MacAddress): MacAddress {
  if (m instanceof MacAddress) return m;
  try {
    return MacAddress.parse(m);
  } catch (e) {
    throw new KernelError("EINVAL", `invalid MAC address ${JSON.stringify(m)}`, { cause: e });
  }
}

/**
 * kstrtou16(buf, 0, ...) as sysfs stores use it: optional "+", then decimal, 0x-hex or 0-octal,
 * one optional trailing newline. Returns NaN for text that is not a number and a value > 65535
 * for one that overflows (the caller answers ERANGE).
 */
export function parseKernelU16(text: string): number {
  const t = text.endsWith("\n") ? text.slice(0, -1) : text;
  const m = /^\+?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(t);
  if (m === null) return NaN;
  const v = m[1] !== undefined ? parseInt(m[1], 16) : m[2] !== undefined ? parseInt(m[2], 8) : parseInt(m[3]!, 10);
  return Number.isSafeInteger(v) ? v : 0x10000;
}
