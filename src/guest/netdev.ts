/**
 * Network devices and namespaces of the model guest (Linux net/core/dev.c, net_namespace.c):
 * ifindex and name allocation per namespace, flags, addresses, statistics, moving a device
 * between namespaces, renaming. A netdev's driver is reached through `NetDeviceOps`.
 */
import { sysErr } from "./errors.js";

export const IFF_UP = 0x1;
export const IFF_BROADCAST = 0x2;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;
export const IFF_MULTICAST = 0x1000;
export const IFF_LOWER_UP = 0x10000;

export const ARPHRD_ETHER = 1;
export const ARPHRD_LOOPBACK = 772;

/** IF_OPER_* (RFC 2863 as Linux encodes it in IFLA_OPERSTATE). */
export const IF_OPER_UNKNOWN = 0;
export const IF_OPER_DOWN = 2;
export const IF_OPER_UP = 6;

export const IFNAMSIZ = 16;

export type VfLinkState = 0 | 1 | 2; // IFLA_VF_LINK_STATE_AUTO, _ENABLE, _DISABLE

/** ndo_get_vf_config's struct ifla_vf_info. */
export interface VfInfo {
  readonly vf: number;
  readonly mac: Uint8Array; // 6 bytes
  readonly vlan: number;
  readonly qos: number;
  readonly vlanProto: number; // 0x8100 or 0x88a8
  readonly spoofchk: boolean;
  readonly trusted: boolean;
  readonly linkState: VfLinkState;
  readonly minTxRate: number;
  readonly maxTxRate: number;
}

export interface VfStats {
  readonly rxPackets: bigint;
  readonly txPackets: bigint;
  readonly rxBytes: bigint;
  readonly txBytes: bigint;
  readonly broadcast: bigint;
  readonly multicast: bigint;
  readonly rxDropped: bigint;
  readonly txDropped: bigint;
}

/** The driver side of a netdev: net_device_ops, reduced. VF ops are present on SR-IOV PFs. */
export interface NetDeviceOps {
  /** ndo_start_xmit: takes one Ethernet frame; false when it was dropped. */
  xmit(frame: Uint8Array): boolean;
  /** Several frames with one doorbell (xmit_more); per frame whether it was queued. */
  xmitBatch?(frames: readonly Uint8Array[]): boolean[];
  open?(): void;
  stop?(): void;
  setMac?(mac: Uint8Array): void;
  /** Number of VFs of the parent device (the bus's .num_vf), for IFLA_NUM_VF. */
  numVf?(): number;
  getVfConfig?(vf: number): VfInfo;
  getVfStats?(vf: number): VfStats;
  setVfMac?(vf: number, mac: Uint8Array): void;
  setVfVlan?(vf: number, vlan: number, qos: number, proto: number): void;
  setVfRate?(vf: number, minTxRate: number, maxTxRate: number): void;
  setVfSpoofchk?(vf: number, on: boolean): void;
  setVfTrust?(vf: number, on: boolean): void;
  setVfLinkState?(vf: number, state: number): void;
}

export interface NetStats {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
  multicast: number;
}

export interface Ipv4Addr {
  /** Host-order 32-bit address. */
  readonly address: number;
  readonly prefixLen: number;
  readonly label: string;
}

export class NetDevice {
  ifindex = 0;
  name: string;
  mac: Uint8Array;
  readonly permAddr: Uint8Array;
  mtu: number;
  readonly minMtu: number;
  readonly maxMtu: number;
  flags: number;
  /** Carrier from the device (virtio-net link status). */
  carrier = true;
  readonly type: number;
  ns!: NetNamespace;
  readonly addrs: Ipv4Addr[] = [];
  readonly stats: NetStats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, rxDropped: 0, txDropped: 0, multicast: 0 };
  /** sysfs path (under /sys) of the parent device, e.g. ".../0000:01:00.0/virtio1"; "" for virtual. */
  parentPath = "";
  /** Parent's bus and device name for IFLA_PARENT_DEV_*; undefined for virtual devices. */
  parentBus: string | undefined;
  parentName: string | undefined;
  /** Set by the stack: frames the driver received. */
  rxHandler: (dev: NetDevice, frame: Uint8Array) => void = () => undefined;

  constructor(
    name: string,
    mac: Uint8Array,
    readonly ops: NetDeviceOps,
    opts: { mtu?: number; minMtu?: number; maxMtu?: number; type?: number; flags?: number } = {},
  ) {
    this.name = name;
    this.mac = mac.slice();
    this.permAddr = mac.slice();
    this.mtu = opts.mtu ?? 1500;
    this.minMtu = opts.minMtu ?? 68;
    this.maxMtu = opts.maxMtu ?? 65535;
    this.type = opts.type ?? ARPHRD_ETHER;
    this.flags = opts.flags ?? IFF_BROADCAST | IFF_MULTICAST;
  }

  get isUp(): boolean {
    return (this.flags & IFF_UP) !== 0;
  }

  /** Flags as dev_get_flags reports them: RUNNING and LOWER_UP follow the carrier while up. */
  get reportedFlags(): number {
    let f = this.flags & ~(IFF_RUNNING | IFF_LOWER_UP);
    if (this.isUp && this.carrier) f |= IFF_RUNNING | IFF_LOWER_UP;
    return f;
  }

  get operstate(): number {
    if (this.type === ARPHRD_LOOPBACK) return this.isUp ? IF_OPER_UNKNOWN : IF_OPER_DOWN;
    return this.isUp && this.carrier ? IF_OPER_UP : IF_OPER_DOWN;
  }

  get operstateText(): string {
    const s = this.operstate;
    return s === IF_OPER_UP ? "up" : s === IF_OPER_DOWN ? "down" : "unknown";
  }

  /** Called by the driver for every received frame. */
  receive(frame: Uint8Array): void {
    if (!this.isUp) {
      this.stats.rxDropped++;
      return;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += frame.length;
    if (((frame[0] ?? 0) & 1) === 1) this.stats.multicast++;
    this.rxHandler(this, frame);
  }

  /** dev_queue_xmit: a down device drops (-ENETDOWN at the socket). */
  transmit(frame: Uint8Array): boolean {
    if (!this.isUp) {
      this.stats.txDropped++;
      return false;
    }
    const ok = this.ops.xmit(frame);
    if (ok) {
      this.stats.txPackets++;
      this.stats.txBytes += frame.length;
    } else this.stats.txDropped++;
    return ok;
  }

  /**
   * Sends a burst as the qdisc's bulk dequeue does (xmit_more on all but the last frame): the
   * driver rings the doorbell once. Returns how many frames were queued.
   */
  transmitBatch(frames: readonly Uint8Array[]): number {
    if (!this.isUp) {
      this.stats.txDropped += frames.length;
      return 0;
    }
    const res = this.ops.xmitBatch?.(frames) ?? frames.map((f) => this.ops.xmit(f));
    let n = 0;
    res.forEach((ok, i) => {
      if (ok) {
        n++;
        this.stats.txPackets++;
        this.stats.txBytes += frames[i]!.length;
      } else this.stats.txDropped++;
    });
    return n;
  }
}

/**
 * dev_valid_name: non-empty, shorter than IFNAMSIZ, not "." or "..", no '/', ':' or whitespace.
 */
export function validIfname(name: string): boolean {
  // Byte length, not UTF-16 length; ASCII names (all real ones) skip the encoder.
  const bytes = /^[\x20-\x7e]*$/.test(name) ? name.length : new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes >= IFNAMSIZ) return false;
  if (name === "." || name === "..") return false;
  return !/[/:\s]/.test(name);
}

/** A static IPv4 route of table main (RTM_NEWROUTE). */
export interface Ipv4Route {
  readonly dst: number;
  readonly dstLen: number;
  readonly gateway: number | undefined;
  readonly oif: number;
  readonly protocol: number;
  readonly scope: number;
  readonly priority: number;
}

export class NetNamespace {
  readonly devices = new Map<number, NetDevice>();
  readonly routes: Ipv4Route[] = [];
  readonly #names = new Map<string, NetDevice>();
  /** Per "%d" pattern: every number below this is taken (reset whenever a name is freed). */
  readonly #nameHints = new Map<string, number>();
  #nextIfindex = 1;

  constructor(
    /** null for the initial namespace (init_net), else the `ip netns` name. */
    readonly name: string | null,
    /** A process living in this namespace, for IFLA_NET_NS_PID. */
    readonly pid: number,
  ) {}

  byName(name: string): NetDevice | undefined {
    return this.#names.get(name);
  }

  /** Changes a device's name (the caller checked validity and uniqueness). */
  rename(dev: NetDevice, name: string): void {
    if (this.#names.get(dev.name) === dev) this.#names.delete(dev.name);
    this.#nameHints.clear();
    dev.name = name;
    this.#names.set(name, dev);
  }

  byIndex(ifindex: number): NetDevice | undefined {
    return this.devices.get(ifindex);
  }

  list(): NetDevice[] {
    return [...this.devices.values()].sort((a, b) => a.ifindex - b.ifindex);
  }

  /**
   * dev_alloc_name: a name with "%d" takes the lowest free number in this namespace. Throws
   * EINVAL for an invalid pattern, ENFILE-like exhaustion is reported as ENOSPC.
   */
  allocName(pattern: string): string {
    const i = pattern.indexOf("%d");
    if (i < 0) return pattern;
    const head = pattern.slice(0, i);
    const tail = pattern.slice(i + 2);
    if (head.includes("%") || tail.includes("%")) throw sysErr("EINVAL", `bad name pattern ${pattern}`);
    // Validate the pattern once with the widest number it can take, then only look names up.
    if (!validIfname(head + "0" + tail)) throw sysErr("EINVAL", `bad name pattern ${pattern}`);
    for (let n = this.#nameHints.get(pattern) ?? 0; n < 32768; n++) {
      const name = head + String(n) + tail;
      if (this.#names.has(name)) continue;
      if (!validIfname(name)) break;
      this.#nameHints.set(pattern, n);
      return name;
    }
    throw sysErr("ENOSPC");
  }

  /** register_netdevice into this namespace; keeps `preferredIndex` if free (dev_change_net_namespace). */
  attach(dev: NetDevice, preferredIndex = 0): void {
    if (!validIfname(dev.name)) throw sysErr("EINVAL", `invalid interface name ${JSON.stringify(dev.name)}`);
    if (this.byName(dev.name) !== undefined) throw sysErr("EEXIST", `${dev.name} exists`);
    let idx = preferredIndex;
    if (idx === 0 || this.devices.has(idx)) {
      while (this.devices.has(this.#nextIfindex)) this.#nextIfindex++;
      idx = this.#nextIfindex++;
    }
    dev.ifindex = idx;
    dev.ns = this;
    this.devices.set(idx, dev);
    this.#names.set(dev.name, dev);
  }

  detach(dev: NetDevice): void {
    this.devices.delete(dev.ifindex);
    // Routes through a device go with it (fib_sync_down_dev on unregister).
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]!.oif === dev.ifindex) this.routes.splice(i, 1);
    if (this.#names.get(dev.name) === dev) this.#names.delete(dev.name);
  }
}
