import { KernelError, Errno, type ErrnoName } from "../base/index.js";
import type { GuestKernelEndpoint, NetlinkContext } from "./endpoint.js";
import { MemorySysfs } from "./sysfs.js";
import * as nl from "./rtnl.js";
import { MacAddress } from "../wire/mac.js";
import { AddrRepr, LinkRepr, type VfInfo as WireVfInfo } from "../wire/rtnetlink.js";

/**
 * A small guest kernel for tests, shipped as a public test double (STYLE.md: "ship the other
 * side"): a sysfs with Linux's virtio-net layout, sriov_numvfs that creates and removes VFs by
 * the kernel's rules, netdevs in network namespaces, and an rtnetlink responder for the messages
 * the CNI plugin sends, with netdevsim's per-op VF validation (netlink-vf.md §10). The model guest
 * of src/guest replaces it in the emulated world; both sit behind GuestKernelEndpoint.
 */
export interface FakePfSpec {
  /** PCI address of the virtio-net PF, function 0 of its device, e.g. 0000:00:04.0. */
  readonly bdf: string;
  readonly totalVfs: number;
  readonly mac?: string;
}

interface VfRecord {
  mac: string;
  vlan: number;
  qos: number;
  vlanProto: number;
  spoofchk: number;
  trust: number;
  linkState: number;
  minTxRate: number;
  maxTxRate: number;
}

interface Addr {
  family: number;
  prefixlen: number;
  local: Uint8Array;
}

export interface FakeLink {
  readonly index: number;
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  netns: string | null;
  /** The PCI function and virtio device the netdev belongs to. */
  readonly bdf: string;
  readonly virtio: string;
  addrs: Addr[];
  /** The sysfs name it is rendered under, while it is in the initial namespace. */
  rendered: string | null;
}

export interface FakeRoute {
  netns: string | null;
  family: number;
  dst: string;
  gateway: string | null;
  oif: number;
}

interface Pf {
  readonly bdf: string;
  readonly totalVfs: number;
  numVfs: number;
  vfs: VfRecord[];
  vfBdfs: string[];
  link: FakeLink;
}

/** Named fault switches a test flips, as netdevsim's fail_* files. */
export interface FakeKernelFaults {
  /** The PF driver has no VF ndo ops: sets give EOPNOTSUPP and dumps carry no VF list (an unpatched virtio_net). */
  noVfOps: boolean;
  /** RTM_NEWADDR fails with this errno. */
  failNewAddr: ErrnoName | null;
}

const DEVICES = "/sys/devices/pci0000:00";

export class FakeGuestKernel implements GuestKernelEndpoint {
  readonly sysfs = new MemorySysfs();
  readonly links = new Map<number, FakeLink>();
  readonly routes: FakeRoute[] = [];
  readonly namespaces = new Set<string>();
  readonly faults: FakeKernelFaults = { noVfOps: false, failNewAddr: null };
  /** Every rtnetlink request type seen, in order, with its namespace. */
  readonly netlinkLog: { type: number; netns: string | null }[] = [];
  #pfs = new Map<string, Pf>();
  #nextIndex = 2; // 1 is lo
  #nextVirtio = 0;
  #nextEth = 0;

  constructor(pfs: readonly FakePfSpec[]) {
    this.sysfs.mkdir("/sys/bus/pci/drivers/virtio-pci");
    this.sysfs.mkdir("/sys/class/net");
    for (const spec of pfs) {
      const link = this.#addFunction(spec.bdf, "1041", spec.mac ?? macFor(0x10000 + this.#pfs.size));
      const pf: Pf = { bdf: spec.bdf, totalVfs: spec.totalVfs, numVfs: 0, vfs: [], vfBdfs: [], link };
      this.#pfs.set(spec.bdf, pf);
      const dir = `${DEVICES}/${spec.bdf}`;
      this.sysfs.putFile(`${dir}/sriov_totalvfs`, `${spec.totalVfs}\n`);
      this.sysfs.putFile(`${dir}/sriov_offset`, "1\n");
      this.sysfs.putFile(`${dir}/sriov_stride`, "1\n");
      this.sysfs.putFile(`${dir}/sriov_numvfs`, "0\n", (data) => this.#setNumVfs(pf, data));
    }
  }

  /** The PCI address of VF `index` of a PF (same bus, functions after the PF's). */
  static vfAddress(pf: string, index: number): string {
    const m = /^([0-9a-f]{4}:[0-9a-f]{2}):([0-9a-f]{2})\.0$/.exec(pf);
    if (m === null) throw new KernelError("EINVAL", `PF address must be function 0: ${pf}`);
    const n = index + 1;
    const dev = Number.parseInt(m[2]!, 16) + Math.floor(n / 8);
    return `${m[1]}:${dev.toString(16).padStart(2, "0")}.${n % 8}`;
  }

  #addFunction(bdf: string, device: string, mac: string): FakeLink {
    const dir = `${DEVICES}/${bdf}`;
    this.sysfs.mkdir(dir);
    this.sysfs.putFile(`${dir}/vendor`, "0x1af4\n");
    this.sysfs.putFile(`${dir}/device`, `0x${device}\n`);
    this.sysfs.putFile(`${dir}/class`, "0x020000\n");
    this.sysfs.putFile(`${dir}/numa_node`, "-1\n");
    this.sysfs.putLink(`${dir}/driver`, "../../../bus/pci/drivers/virtio-pci");
    this.sysfs.putLink(`/sys/bus/pci/devices/${bdf}`, `../../../devices/pci0000:00/${bdf}`);
    const virtio = `virtio${this.#nextVirtio++}`;
    this.sysfs.mkdir(`${dir}/${virtio}/net`);
    const link: FakeLink = { index: this.#nextIndex++, name: `eth${this.#nextEth++}`, mac, mtu: 1500, up: false, netns: null, bdf, virtio, addrs: [], rendered: null };
    this.links.set(link.index, link);
    this.#render(link);
    return link;
  }

  /** Keeps the sysfs view of a netdev in step with its name and namespace. */
  #render(link: FakeLink): void {
    if (link.rendered !== null) {
      this.sysfs.remove(`${DEVICES}/${link.bdf}/${link.virtio}/net/${link.rendered}`);
      this.sysfs.remove(`/sys/class/net/${link.rendered}`);
      link.rendered = null;
    }
    if (link.netns !== null || !this.links.has(link.index)) return;
    const d = `${DEVICES}/${link.bdf}/${link.virtio}/net/${link.name}`;
    this.sysfs.mkdir(d);
    this.sysfs.putFile(`${d}/address`, `${link.mac}\n`);
    this.sysfs.putFile(`${d}/mtu`, `${link.mtu}\n`);
    this.sysfs.putFile(`${d}/ifindex`, `${link.index}\n`);
    this.sysfs.putFile(`${d}/type`, "1\n");
    this.sysfs.putFile(`${d}/operstate`, link.up ? "up\n" : "down\n");
    this.sysfs.putLink(`/sys/class/net/${link.name}`, `../../devices/pci0000:00/${link.bdf}/${link.virtio}/net/${link.name}`);
    link.rendered = link.name;
  }

  /** sriov_numvfs store rules of the PCI core (pci-sysfs.c sriov_numvfs_store). */
  #setNumVfs(pf: Pf, data: string): void {
    const t = data.trim();
    if (!/^\d+$/.test(t)) throw new KernelError("EINVAL");
    const n = Number.parseInt(t, 10);
    if (n === pf.numVfs) return;
    if (n > pf.totalVfs) throw new KernelError("ERANGE");
    if (n !== 0 && pf.numVfs !== 0) throw new KernelError("EBUSY");
    const dir = `${DEVICES}/${pf.bdf}`;
    if (n === 0) {
      pf.vfBdfs.forEach((vf, i) => {
        for (const l of [...this.links.values()]) {
          if (l.bdf !== vf) continue;
          this.links.delete(l.index);
          this.#render(l);
        }
        this.sysfs.remove(`${DEVICES}/${vf}`);
        this.sysfs.remove(`/sys/bus/pci/devices/${vf}`);
        this.sysfs.remove(`${dir}/virtfn${i}`);
      });
      pf.vfBdfs = [];
      pf.vfs = [];
    } else {
      for (let i = 0; i < n; i++) {
        const vf = FakeGuestKernel.vfAddress(pf.bdf, i);
        this.#addFunction(vf, "1041", macFor(0x20000 + this.#nextIndex));
        this.sysfs.putLink(`${DEVICES}/${vf}/physfn`, `../${pf.bdf}`);
        this.sysfs.putLink(`${dir}/virtfn${i}`, `../${vf}`);
        pf.vfBdfs.push(vf);
        pf.vfs.push({ mac: "00:00:00:00:00:00", vlan: 0, qos: 0, vlanProto: nl.ETH_P_8021Q, spoofchk: 1, trust: 0, linkState: 0, minTxRate: 0, maxTxRate: 0 });
      }
    }
    pf.numVfs = n;
    this.sysfs.putFile(`${dir}/sriov_numvfs`, `${n}\n`, (d) => this.#setNumVfs(pf, d));
  }

  /** The VF configuration record as the PF driver stores it. */
  vfConfig(pf: string, vf: number): Readonly<VfRecord> | undefined {
    return this.#pfs.get(pf)?.vfs[vf];
  }

  linkByName(name: string, netns: string | null): FakeLink | undefined {
    for (const l of this.links.values()) if (l.name === name && l.netns === netns) return l;
    return undefined;
  }

  // GuestKernelEndpoint

  sysfsRead(path: string): Promise<string> {
    return this.sysfs.readFile(path);
  }
  sysfsWrite(path: string, data: string): Promise<void> {
    return this.sysfs.writeFile(path, data);
  }
  sysfsReadlink(path: string): Promise<string> {
    return this.sysfs.readlink(path);
  }
  sysfsList(path: string): Promise<string[]> {
    return this.sysfs.listDir(path);
  }
  netnsList(): string[] {
    return [...this.namespaces].sort();
  }
  netnsAdd(name: string): void {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name === "." || name === "..") throw new KernelError("EINVAL", `bad namespace name`);
    if (this.namespaces.has(name)) throw new KernelError("EEXIST");
    this.namespaces.add(name);
  }
  /** Deleting a namespace returns its physical netdevs to the initial one, as Linux does (default_device_exit). */
  netnsDel(name: string): void {
    if (!this.namespaces.delete(name)) throw new KernelError("ENOENT");
    for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]!.netns === name) this.routes.splice(i, 1);
    for (const l of this.links.values()) {
      if (l.netns !== name) continue;
      l.netns = null;
      l.up = false;
      l.addrs = [];
      if (this.linkByNameExcept(l.name, null, l) !== undefined) l.name = `dev${l.index}`;
      this.#render(l);
    }
  }

  private linkByNameExcept(name: string, netns: string | null, except: FakeLink): FakeLink | undefined {
    for (const l of this.links.values()) if (l !== except && l.name === name && l.netns === netns) return l;
    return undefined;
  }

  netlink(request: Uint8Array, ctx: NetlinkContext): Uint8Array[] {
    let msgs: nl.NlMessage[];
    try {
      msgs = nl.parseMessages(request);
    } catch {
      return []; // the kernel drops a malformed datagram without an answer
    }
    const out: Uint8Array[] = [];
    for (const m of msgs) {
      if ((m.flags & nl.NlmF.REQUEST) === 0) continue;
      this.netlinkLog.push({ type: m.type, netns: ctx.netns });
      try {
        const replies = this.#handle(m, ctx);
        out.push(...replies);
        if ((m.flags & nl.NlmF.ACK) !== 0 && m.type !== nl.Rtm.GETLINK && m.type !== nl.Rtm.GETADDR) out.push(nl.encodeError(0, m));
      } catch (e) {
        // Malformed attributes (WireError) are what the kernel's policy checks refuse with EINVAL.
        const errno: ErrnoName = e instanceof KernelError ? e.errno : "EINVAL";
        out.push(nl.encodeError(Errno[errno], m));
      }
    }
    return out;
  }

  #handle(m: nl.NlMessage, ctx: NetlinkContext): Uint8Array[] {
    switch (m.type) {
      case nl.Rtm.GETLINK:
        return this.#getLink(m, ctx);
      case nl.Rtm.SETLINK:
      case nl.Rtm.NEWLINK:
        this.#setLink(m, ctx);
        return [];
      case nl.Rtm.NEWADDR:
      case nl.Rtm.DELADDR:
        this.#addr(m, ctx);
        return [];
      case nl.Rtm.GETADDR:
        return this.#getAddr(m, ctx);
      case nl.Rtm.NEWROUTE:
        this.#newRoute(m, ctx);
        return [];
      default:
        throw new KernelError("EOPNOTSUPP");
    }
  }

  #find(r: LinkRepr, netns: string | null): FakeLink {
    if (r.ifi.index > 0) {
      const l = this.links.get(r.ifi.index);
      if (l === undefined || l.netns !== netns) throw new KernelError("ENODEV");
      return l;
    }
    const l = r.ifname === undefined ? undefined : this.linkByName(r.ifname, netns);
    if (l === undefined) throw new KernelError("ENODEV");
    return l;
  }

  #linkMessage(l: FakeLink, seq: number, flags: number, withVfs: boolean): Uint8Array {
    const r: LinkRepr = {
      ifi: { family: 0, type: 1, index: l.index, flags: l.up ? nl.Iff.UP : 0, change: 0 },
      ifname: l.name,
      operstate: l.up ? 6 : 2,
      mtu: l.mtu,
      address: nl.macBytes(l.mac),
      extra: [],
    };
    const pf = this.#pfs.get(l.bdf);
    if (withVfs && pf !== undefined && l.netns === null) {
      r.numVf = pf.numVfs;
      if (!this.faults.noVfOps) {
        r.vfInfoList = pf.vfs.map((v, i) => ({
          vf: i,
          mac: MacAddress.parse(v.mac),
          vlan: { vlan: v.vlan, qos: v.qos },
          rate: { minTxRate: v.minTxRate, maxTxRate: v.maxTxRate },
          txRate: v.maxTxRate,
          spoofchk: v.spoofchk,
          linkState: v.linkState,
          trust: v.trust,
          vlanList: [{ vlan: v.vlan, qos: v.qos, proto: v.vlanProto }],
          extra: [],
        }));
      }
    }
    return LinkRepr.emit(r, { type: nl.Rtm.NEWLINK, flags, seq, pid: 0 });
  }

  #getLink(m: nl.NlMessage, ctx: NetlinkContext): Uint8Array[] {
    const r = LinkRepr.parse(m);
    const withVfs = r.extMask !== undefined && (r.extMask & nl.RtextFilter.VF) !== 0;
    if ((m.flags & nl.NlmF.DUMP) === nl.NlmF.DUMP) {
      const out = [...this.links.values()].filter((l) => l.netns === ctx.netns).map((l) => this.#linkMessage(l, m.seq, nl.NlmF.MULTI, withVfs));
      out.push(nl.encodeDone(m.seq));
      return out;
    }
    return [this.#linkMessage(this.#find(r, ctx.netns), m.seq, 0, withVfs)];
  }

  #setLink(m: nl.NlMessage, ctx: NetlinkContext): void {
    const r = LinkRepr.parse(m);
    // A request that names the link by index may also carry IFLA_IFNAME: then it is the new name.
    const l = this.#find(r, ctx.netns);
    const newName = r.ifi.index > 0 ? r.ifname : undefined;
    if (newName !== undefined && (!/^[^\s/:]{1,15}$/.test(newName) || newName === "." || newName === "..")) throw new KernelError("EINVAL");
    // Validate everything first so a refused request changes nothing.
    let target: string | null | undefined;
    if (r.netNsFd !== undefined) {
      target = ctx.nsFd(r.netNsFd);
      if (target === undefined) throw new KernelError("EINVAL", "bad namespace fd");
      if (target !== null && !this.namespaces.has(target)) throw new KernelError("ENOENT");
      // dev_change_net_namespace renames with IFLA_IFNAME in the target (rtnetlink.c do_setlink).
      if (this.linkByNameExcept(newName ?? l.name, target, l) !== undefined) throw new KernelError("EEXIST");
    } else if (newName !== undefined && newName !== l.name) {
      if (this.linkByNameExcept(newName, l.netns, l) !== undefined) throw new KernelError("EEXIST");
      if (l.up) throw new KernelError("EBUSY"); // dev_change_name refuses a running device
    }
    if (r.address !== undefined && (r.address.length !== 6 || (r.address[0]! & 1) !== 0)) throw new KernelError("EINVAL");
    if (r.mtu !== undefined && (r.mtu < 68 || r.mtu > 65535)) throw new KernelError("EINVAL");
    if (r.vfInfoList !== undefined) this.#setVfs(l, r.vfInfoList);

    if (target !== undefined) {
      l.up = false;
      l.addrs = []; // moving a device flushes its addresses (dev_close + NETDEV_UNREGISTER)
      for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]!.oif === l.index) this.routes.splice(i, 1);
      l.netns = target;
    }
    if (newName !== undefined) l.name = newName;
    if (r.address !== undefined) l.mac = nl.macText(r.address);
    if (r.mtu !== undefined) l.mtu = r.mtu;
    const change = r.ifi.change === 0 ? 0xffffffff : r.ifi.change; // rtnl_dev_combine_flags: change 0 means all bits
    if ((r.ifi.flags !== 0 || r.ifi.change !== 0) && (change & nl.Iff.UP) !== 0) l.up = (r.ifi.flags & nl.Iff.UP) !== 0;
    this.#render(l);
  }

  /** do_setvfinfo with netdevsim's per-op checks (netlink-vf.md §7, §10); all or nothing here. */
  #setVfs(l: FakeLink, infos: readonly WireVfInfo[]): void {
    const pf = this.#pfs.get(l.bdf);
    if (pf === undefined || this.faults.noVfOps) throw new KernelError("EOPNOTSUPP");
    const staged = pf.vfs.map((v) => ({ ...v }));
    for (const v of infos) {
      const rec = staged[v.vf];
      if (rec === undefined) throw new KernelError("EINVAL"); // vf >= num_vfs
      if (v.ibNodeGuid !== undefined || v.ibPortGuid !== undefined || v.extra.length > 0) throw new KernelError("EOPNOTSUPP");
      if (v.mac !== undefined) {
        if (v.mac.isMulticast) throw new KernelError("EINVAL");
        rec.mac = v.mac.toString();
      }
      if (v.vlan !== undefined) setVlan(rec, v.vlan.vlan, v.vlan.qos, nl.ETH_P_8021Q);
      if (v.vlanList !== undefined) {
        if (v.vlanList.length === 0) throw new KernelError("EINVAL");
        if (v.vlanList.length > 1) throw new KernelError("EOPNOTSUPP");
        const e = v.vlanList[0]!;
        setVlan(rec, e.vlan, e.qos, e.proto);
      }
      if (v.txRate !== undefined) rec.maxTxRate = v.txRate;
      if (v.rate !== undefined) {
        if (v.rate.maxTxRate !== 0 && v.rate.minTxRate > v.rate.maxTxRate) throw new KernelError("EINVAL");
        rec.minTxRate = v.rate.minTxRate;
        rec.maxTxRate = v.rate.maxTxRate;
      }
      if (v.spoofchk !== undefined) rec.spoofchk = v.spoofchk !== 0 ? 1 : 0;
      if (v.trust !== undefined) rec.trust = v.trust !== 0 ? 1 : 0;
      if (v.linkState !== undefined) {
        if (v.linkState > 2) throw new KernelError("EINVAL");
        rec.linkState = v.linkState;
      }
    }
    pf.vfs = staged;
  }

  #addr(m: nl.NlMessage, ctx: NetlinkContext): void {
    const r = AddrRepr.parse(m);
    const l = this.links.get(r.ifa.index);
    if (l === undefined || l.netns !== ctx.netns) throw new KernelError("ENODEV");
    const a = r.local ?? r.address;
    const len = r.ifa.family === nl.AddressFamily.INET ? 4 : r.ifa.family === nl.AddressFamily.INET6 ? 16 : -1;
    if (a === undefined || len < 0 || r.ifa.prefixlen > len * 8) throw new KernelError("EINVAL");
    const bytes = a.bytes();
    const i = l.addrs.findIndex((x) => x.family === r.ifa.family && bytesEq(x.local, bytes));
    if (m.type === nl.Rtm.NEWADDR) {
      if (this.faults.failNewAddr !== null) throw new KernelError(this.faults.failNewAddr);
      if (i >= 0) throw new KernelError("EEXIST");
      l.addrs.push({ family: r.ifa.family, prefixlen: r.ifa.prefixlen, local: bytes });
    } else {
      if (i < 0) throw new KernelError("EINVAL", "no such address");
      l.addrs.splice(i, 1);
    }
  }

  #getAddr(m: nl.NlMessage, ctx: NetlinkContext): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const l of this.links.values()) {
      if (l.netns !== ctx.netns) continue;
      for (const a of l.addrs) {
        const ip = nl.ipAddress(a.local);
        out.push(AddrRepr.emit({ ifa: { family: a.family, prefixlen: a.prefixlen, flags: 0, scope: 0, index: l.index }, address: ip, local: ip, extra: [] }, { type: nl.Rtm.NEWADDR, flags: nl.NlmF.MULTI, seq: m.seq, pid: 0 }));
      }
    }
    out.push(nl.encodeDone(m.seq));
    return out;
  }

  #newRoute(m: nl.NlMessage, ctx: NetlinkContext): void {
    const r = nl.RouteRepr.parse(m); // malformed: WireError, answered EINVAL
    const { family, dstLen } = r.rtm;
    const len = family === nl.AddressFamily.INET ? 4 : family === nl.AddressFamily.INET6 ? 16 : -1;
    if (len < 0 || dstLen > len * 8) throw new KernelError("EINVAL");
    const oif = r.oif ?? 0;
    const l = this.links.get(oif);
    if (l === undefined || l.netns !== ctx.netns) throw new KernelError("ENODEV");
    const dst = `${r.dst === undefined ? (len === 4 ? "0.0.0.0" : "::") : ipText(r.dst.bytes())}/${dstLen}`;
    const gateway = r.gateway === undefined ? null : ipText(r.gateway.bytes());
    if (this.routes.some((x) => x.netns === ctx.netns && x.dst === dst && x.family === family)) throw new KernelError("EEXIST");
    this.routes.push({ netns: ctx.netns, family, dst, gateway, oif });
  }

  /** Addresses of a link as "a.b.c.d/len" text. */
  addressesOf(l: FakeLink): string[] {
    return l.addrs.map((a) => `${ipText(a.local)}/${a.prefixlen}`);
  }
}

function setVlan(r: VfRecord, vlan: number, qos: number, proto: number): void {
  if (vlan > 4095 || qos > 7) throw new KernelError("EINVAL");
  if (proto !== nl.ETH_P_8021Q && proto !== nl.ETH_P_8021AD) throw new KernelError("EINVAL", "unknown VLAN protocol");
  r.vlan = vlan;
  r.qos = qos;
  r.vlanProto = proto;
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function ipText(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join(".");
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return parts.join(":");
}

function macFor(n: number): string {
  const b = [0x52, 0x54, 0x00, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}
