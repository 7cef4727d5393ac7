/**
 * The model guest kernel (DESIGN.md §2, issue 5 item 3). `GuestKernel.boot(machine)` does what
 * firmware and Linux do at boot on the given machine: enumerate PCI through configuration cycles,
 * assign BARs, run sriov_init, bind virtio_pci and virtio_net (one netdev per function, eth%d in
 * probe order), and bring up the loopback device. Afterwards it is driven like a Linux box: sysfs
 * reads and writes, rtnetlink bytes, network namespaces, ping.
 *
 * The machine is only `{ platform, memory }`: registers, guest RAM and MSI messages (§3.1).
 */
import type { GuestMemory } from "../memory/index.js";
import { GuestAllocator } from "../memory/index.js";
import type { PciPlatform } from "../pci/platform.js";
import { SysError, sysErr } from "./errors.js";
import { InterruptController } from "./irq.js";
import { ARPHRD_LOOPBACK, IFF_LOOPBACK, IFF_UP, NetDevice, NetNamespace, validIfname } from "./netdev.js";
import type { PciDev } from "./pci.js";
import { PciCore, type Uevent } from "./pci-core.js";
import { RtnetlinkEndpoint, type NetlinkContext, type RtnlKernel } from "./rtnetlink.js";
import { IpStack, parseIpv4 } from "./stack.js";
import { buildSysfs } from "./sysfs-tree.js";
import { SysfsView } from "./sysfs.js";
import { VirtioNetDriver, type VirtNet } from "./virtio-net.js";
import { VirtioPciDriver, type VirtioPciDevice } from "./virtio-pci.js";

export interface GuestMachine {
  readonly platform: PciPlatform;
  readonly memory: GuestMemory;
}

export interface GuestKernelOptions {
  /** Guest RAM the kernel may allocate rings and buffers from; default: the first region above 1 MiB. */
  readonly dmaBase?: number;
  readonly dmaSize?: number;
}

export class GuestKernel implements RtnlKernel {
  readonly memory: GuestMemory;
  readonly platform: PciPlatform;
  readonly alloc: GuestAllocator;
  readonly irq: InterruptController;
  readonly pci: PciCore;
  readonly virtioPci: VirtioPciDriver;
  readonly virtioNet: VirtioNetDriver;
  readonly rtnl: RtnetlinkEndpoint;
  readonly initNs: NetNamespace;
  readonly #namespaces = new Map<string, NetNamespace>();
  readonly #stacks = new Map<NetNamespace, IpStack>();
  readonly #nsById = new Map<NetNamespace, number>();
  readonly uevents: Uevent[] = [];
  readonly #ueventListeners: ((e: Uevent) => void)[] = [];
  /** netdev → its virtio device, for sysfs nesting. */
  readonly netdevParent = new Map<NetDevice, VirtioPciDevice>();
  #nextPid = 100;
  #pingId = 0x1233;
  #halted = false;
  /** Bumped by every uevent and namespace change: sysfs rebuilds its directories only then. */
  generation = 0;
  readonly #sysfsRoots = new Map<NetNamespace, SysfsView>();

  private constructor(machine: GuestMachine, opts: GuestKernelOptions) {
    this.memory = machine.memory;
    this.platform = machine.platform;
    const region = machine.memory.regions().find((r) => r.base + r.size > 0x100000);
    const base = opts.dmaBase ?? Math.max(region?.base ?? 0, 0x100000);
    const size = opts.dmaSize ?? (region === undefined ? 0 : region.base + region.size - base);
    if (size <= 0) throw sysErr("ENOMEM", "guest memory has no room above 1 MiB for DMA");
    this.alloc = new GuestAllocator(machine.memory, base, size);
    this.irq = new InterruptController(machine.platform);
    this.pci = new PciCore(machine.platform, (e) => {
      this.#emit(e);
    });
    this.initNs = this.#newNs(null, 1);
    this.virtioNet = new VirtioNetDriver({
      core: this.pci,
      memory: this.memory,
      alloc: this.alloc,
      register: (nd, vdev) => {
        this.#registerNetdev(nd, vdev);
      },
      unregister: (nd) => {
        this.#unregisterNetdev(nd);
      },
    });
    this.virtioPci = new VirtioPciDriver(this.pci, this.memory, this.alloc, this.irq, {
      onVirtioAdd: (v) => {
        this.#emit({ action: "add", devpath: `/${v.pci.devpath}/${v.name}`, subsystem: "virtio", env: {} });
      },
      onVirtioRemove: (v) => {
        this.#emit({ action: "remove", devpath: `/${v.pci.devpath}/${v.name}`, subsystem: "virtio", env: {} });
      },
    });
    this.virtioPci.registerVirtioDriver(this.virtioNet);
    this.pci.registerDriver(this.virtioPci);
    this.rtnl = new RtnetlinkEndpoint(this);
  }

  /** Boots on the machine: enumeration, drivers, netdevs. */
  static boot(machine: GuestMachine, opts: GuestKernelOptions = {}): GuestKernel {
    const k = new GuestKernel(machine, opts);
    k.pci.scan();
    return k;
  }

  /** Stops using the machine (the VM was reset or stopped): drivers unbind, devices go away. */
  shutdown(): void {
    if (this.#halted) return;
    this.#halted = true;
    this.pci.removeAll();
    this.generation++;
  }

  onUevent(fn: (e: Uevent) => void): void {
    this.#ueventListeners.push(fn);
  }

  #emit(e: Uevent): void {
    this.generation++;
    this.uevents.push(e);
    // Keep the last 4096..8192 events; trimming in one go keeps emit O(1) amortised.
    if (this.uevents.length > 8192) this.uevents.splice(0, this.uevents.length - 4096);
    for (const l of this.#ueventListeners) l(e);
  }

  // -------------------------------------------------------------------------------------------
  // Namespaces

  #newNs(name: string | null, pid: number): NetNamespace {
    const ns = new NetNamespace(name, pid);
    const lo = new NetDevice("lo", new Uint8Array(6), { xmit: () => false }, { mtu: 65536, type: ARPHRD_LOOPBACK, flags: IFF_LOOPBACK });
    ns.attach(lo);
    lo.addrs.push({ address: 0x7f000001, prefixLen: 8, label: "lo" });
    lo.flags |= IFF_UP;
    this.#stacks.set(ns, new IpStack(ns));
    if (name !== null) this.#namespaces.set(name, ns);
    this.#nsById.set(ns, this.#nsById.size);
    return ns;
  }

  namespace(name: string | null): NetNamespace {
    if (name === null) return this.initNs;
    const ns = this.#namespaces.get(name);
    if (ns === undefined) throw sysErr("ENOENT", `no network namespace ${name}`);
    return ns;
  }

  namespaceByPid(pid: number): NetNamespace | undefined {
    if (pid === this.initNs.pid) return this.initNs;
    for (const ns of this.#namespaces.values()) if (ns.pid === pid) return ns;
    return undefined;
  }

  netnsList(): string[] {
    return [...this.#namespaces.keys()].sort();
  }

  /** `ip netns add`: EEXIST for a taken name, EINVAL for one `ip` would refuse. */
  netnsAdd(name: string): void {
    toKernelError(() => {
      this.#netnsAdd(name);
    });
  }

  #netnsAdd(name: string): void {
    if (name.length === 0 || name.length > 255 || name.includes("/") || name === "." || name === "..") throw sysErr("EINVAL", `invalid netns name ${JSON.stringify(name)}`);
    if (this.#namespaces.has(name)) throw sysErr("EEXIST", `network namespace ${name} exists`);
    this.#newNs(name, this.#nextPid++);
    this.generation++;
  }

  /**
   * `ip netns del`: physical devices return to the initial namespace (default_device_exit),
   * renamed to dev%d if their name is taken there; addresses are flushed.
   */
  netnsDel(name: string): void {
    toKernelError(() => {
      this.#netnsDel(name);
    });
  }

  #netnsDel(name: string): void {
    const ns = this.namespace(name);
    if (ns === this.initNs) throw sysErr("EINVAL");
    for (const dev of ns.list()) {
      if (dev.type === ARPHRD_LOOPBACK) continue;
      const clash = this.initNs.byName(dev.name) !== undefined;
      this.moveDevice(dev, this.initNs, clash ? "dev%d" : undefined);
    }
    this.#namespaces.delete(name);
    this.#stacks.delete(ns);
    this.#sysfsRoots.delete(ns);
    this.generation++;
  }

  stack(ns: string | null = null): IpStack {
    const s = this.#stacks.get(this.namespace(ns));
    if (s === undefined) throw sysErr("ENOENT");
    return s;
  }

  // -------------------------------------------------------------------------------------------
  // Netdevs

  #registerNetdev(nd: NetDevice, vdev: VirtioPciDevice): void {
    nd.name = this.initNs.allocName(nd.name);
    nd.parentBus = "virtio";
    nd.parentName = vdev.name;
    nd.parentPath = `/sys/${vdev.pci.devpath}/${vdev.name}`;
    nd.rxHandler = (d, f) => {
      this.#stacks.get(d.ns)?.input(d, f);
    };
    this.initNs.attach(nd);
    this.netdevParent.set(nd, vdev);
    this.#emit({ action: "add", devpath: `${nd.parentPath.slice(4)}/net/${nd.name}`, subsystem: "net", env: { INTERFACE: nd.name, IFINDEX: String(nd.ifindex) } });
  }

  #unregisterNetdev(nd: NetDevice): void {
    nd.ns.detach(nd);
    this.netdevParent.delete(nd);
    this.#emit({ action: "remove", devpath: `${nd.parentPath.slice(4)}/net/${nd.name}`, subsystem: "net", env: { INTERFACE: nd.name } });
  }

  /** Every netdev of every namespace. */
  allNetdevs(): NetDevice[] {
    const out = this.initNs.list();
    for (const ns of this.#namespaces.values()) out.push(...ns.list());
    return out;
  }

  /** The netdev a PCI function's virtio device registered, wherever it lives now. */
  netdevOf(pci: PciDev | string): NetDevice | undefined {
    const dev = typeof pci === "string" ? this.pci.find(pci) : pci;
    if (dev === undefined) return undefined;
    const vdev = this.virtioPci.devices.get(dev);
    if (vdev === undefined) return undefined;
    return this.virtioNet.instances.get(vdev)?.netdev;
  }

  virtnetOf(nd: NetDevice): VirtNet | undefined {
    const v = this.netdevParent.get(nd);
    return v === undefined ? undefined : this.virtioNet.instances.get(v);
  }

  moveDevice(dev: NetDevice, to: NetNamespace, newName: string | undefined): void {
    if (dev.type === ARPHRD_LOOPBACK) throw sysErr("EINVAL", "lo cannot change namespace");
    if (dev.ns === to) return;
    let name = dev.name;
    if (newName !== undefined) {
      if (!validIfname(newName.replace("%d", "0"))) throw sysErr("EINVAL");
      name = to.allocName(newName);
    }
    if (to.byName(name) !== undefined) throw sysErr("EEXIST", `${name} exists in the target namespace`);
    const from = dev.ns;
    // dev_close, then unlist; IPv4 addresses go with NETDEV_UNREGISTER in the old namespace.
    dev.flags &= ~IFF_UP;
    dev.addrs.length = 0;
    this.#emit({ action: "remove", devpath: `${dev.parentPath.slice(4)}/net/${dev.name}`, subsystem: "net", env: { INTERFACE: dev.name } });
    from.detach(dev);
    dev.name = name;
    to.attach(dev, dev.ifindex);
    this.#emit({ action: "add", devpath: `${dev.parentPath.slice(4)}/net/${dev.name}`, subsystem: "net", env: { INTERFACE: dev.name } });
  }

  renameDevice(dev: NetDevice, name: string): void {
    if (name === dev.name) return;
    if (dev.isUp) throw sysErr("EBUSY", `${dev.name} is up`);
    const n = name.includes("%d") ? dev.ns.allocName(name) : name;
    if (!validIfname(n)) throw sysErr("EINVAL", `invalid interface name ${JSON.stringify(name)}`);
    if (dev.ns.byName(n) !== undefined) throw sysErr("EEXIST", `${n} exists`);
    const old = dev.name;
    dev.ns.rename(dev, n);
    this.#emit({ action: "move", devpath: `${dev.parentPath.slice(4)}/net/${n}`, subsystem: "net", env: { INTERFACE: n, DEVPATH_OLD: old } });
  }

  setUp(dev: NetDevice, up: boolean): void {
    if (up === dev.isUp) return;
    if (up) {
      dev.ops.open?.();
      dev.flags |= IFF_UP;
    } else {
      dev.ops.stop?.();
      dev.flags &= ~IFF_UP;
    }
  }

  setMac(dev: NetDevice, mac: Uint8Array): void {
    // eth_prepare_mac_addr_change: is_valid_ether_addr, else -EADDRNOTAVAIL.
    if (mac.length !== 6 || ((mac[0] ?? 0) & 1) !== 0 || mac.every((b) => b === 0)) throw sysErr("EADDRNOTAVAIL");
    dev.ops.setMac?.(mac);
    dev.mac = mac.slice();
  }

  setMtu(dev: NetDevice, mtu: number): void {
    if (mtu < dev.minMtu || mtu > dev.maxMtu) throw sysErr("EINVAL", `MTU ${mtu} outside ${dev.minMtu}..${dev.maxMtu}`);
    dev.mtu = mtu;
  }

  addAddress(dev: NetDevice, address: number, prefixLen: number, label: string, exclusive: boolean): void {
    const existing = dev.addrs.find((a) => a.address === address && a.prefixLen === prefixLen);
    if (existing !== undefined) {
      if (exclusive) throw sysErr("EEXIST");
      return;
    }
    dev.addrs.push({ address, prefixLen, label });
  }

  delAddress(dev: NetDevice, address: number, prefixLen: number): void {
    const i = dev.addrs.findIndex((a) => a.address === address && (prefixLen === 0 || a.prefixLen === prefixLen));
    if (i < 0) throw sysErr("EADDRNOTAVAIL");
    dev.addrs.splice(i, 1);
  }

  // -------------------------------------------------------------------------------------------
  // The user's interfaces: sysfs, rtnetlink, ping

  /** sysfs as a process in namespace `ns` sees it. */
  sysfs(ns: string | null = null): SysfsView {
    const n = this.namespace(ns);
    let v = this.#sysfsRoots.get(n);
    if (v === undefined) {
      v = new SysfsView(buildSysfs(this, n));
      this.#sysfsRoots.set(n, v);
    }
    return v;
  }

  sysfsRead(path: string): string {
    return toKernelError(() => this.sysfs().read(path));
  }
  sysfsReadBytes(path: string): string | Uint8Array {
    return toKernelError(() => this.sysfs().readBytes(path));
  }
  sysfsWrite(path: string, data: string): void {
    toKernelError(() => {
      this.sysfs().write(path, data);
    });
  }
  sysfsReadlink(path: string): string {
    return toKernelError(() => this.sysfs().readlink(path));
  }
  sysfsList(path: string): string[] {
    return toKernelError(() => this.sysfs().list(path));
  }

  /** One rtnetlink request datagram in, the reply messages out. */
  netlink(request: Uint8Array, ctx: NetlinkContext = {}): Uint8Array[] {
    try {
      return this.rtnl.handle(request, ctx);
    } finally {
      this.generation++;
    }
  }

  /** Reaps every receive queue (a platform that raises MSI-X never needs this). */
  poll(): number {
    return this.virtioNet.pollAll();
  }

  /**
   * `ping -c count dst` from namespace `ns`: sends echo requests and returns how many of them
   * were answered. Each call uses its own ICMP identifier (iputils uses one per process), so late
   * replies to an earlier ping are not counted. Replies land synchronously when the data plane
   * delivers inside the send; otherwise the caller advances its clock and polls.
   */
  ping(ns: string | null, dst: string, count = 1, id?: number): number {
    const st = this.stack(ns);
    const ip = parseIpv4(dst);
    const ident = id ?? (this.#pingId = (this.#pingId + 1) & 0xffff);
    const answered = new Set<number>();
    const before = st.replies.length;
    for (let seq = 1; seq <= count; seq++) {
      st.sendEcho(ip, ident, seq);
      this.poll();
      // An ARP exchange may have been needed first; the queued echo leaves when it resolves.
      this.poll();
    }
    for (const r of st.replies.slice(before)) if (r.from === ip && r.id === ident && r.seq >= 1 && r.seq <= count) answered.add(r.seq);
    return answered.size;
  }
}

/**
 * Errors leave the sysfs API as base KernelErrors when the errno is one the base layer knows
 * (the guest endpoint maps those to errno names), else as SysError (its code is still the errno).
 */
function toKernelError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SysError) throw e.toKernelError();
    throw e;
  }
}
