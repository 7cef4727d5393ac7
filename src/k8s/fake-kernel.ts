import { KernelError, Errno, type ErrnoName } from "../base/index.js";
import type { GuestKernelEndpoint, NetlinkContext } from "./endpoint.js";
import { MemorySysfs } from "./sysfs.js";
import * as nl from "./rtnl.js";

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
      if ((m.flags & nl.NLM_F_REQUEST) === 0) continue;
      this.netlinkLog.push({ type: m.type, netns: ctx.netns });
      try {
        const replies = this.#handle(m, ctx);
        out.push(...replies);
        if ((m.flags & nl.NLM_F_ACK) !== 0 && m.type !== nl.RTM_GETLINK && m.type !== nl.RTM_GETADDR) out.push(nl.encodeError(0, m));
      } catch (e) {
        const errno: ErrnoName = e instanceof KernelError ? e.errno : "EINVAL";
        out.push(nl.encodeError(Errno[errno], m));
      }
    }
    return out;
  }

  #handle(m: nl.NlMessage, ctx: NetlinkContext): Uint8Array[] {
    switch (m.type) {
      case nl.RTM_GETLINK:
        return this.#getLink(m, ctx);
      case nl.RTM_SETLINK:
      case nl.RTM_NEWLINK:
        this.#setLink(m, ctx);
        return [];
      case nl.RTM_NEWADDR:
      case nl.RTM_DELADDR:
        this.#addr(m, ctx);
        return [];
      case nl.RTM_GETADDR:
        return this.#getAddr(m, ctx);
      case nl.RTM_NEWROUTE:
        this.#newRoute(m, ctx);
        return [];
      default:
        throw new KernelError("EOPNOTSUPP");
    }
  }

  #find(info: nl.IfInfo, attrs: nl.NlAttr[], netns: string | null): FakeLink {
    if (info.index > 0) {
      const l = this.links.get(info.index);
      if (l === undefined || l.netns !== netns) throw new KernelError("ENODEV");
      return l;
    }
    const n = nl.findAttr(attrs, nl.IFLA_IFNAME);
    const l = n === undefined ? undefined : this.linkByName(nl.attrAsString(n), netns);
    if (l === undefined) throw new KernelError("ENODEV");
    return l;
  }

  #linkMessage(l: FakeLink, seq: number, flags: number, withVfs: boolean): Uint8Array {
    const attrs: nl.NlAttr[] = [nl.attrStr(nl.IFLA_IFNAME, l.name), nl.attr(nl.IFLA_ADDRESS, nl.macBytes(l.mac)), nl.attrU32(nl.IFLA_MTU, l.mtu), nl.attr(nl.IFLA_OPERSTATE, Uint8Array.of(l.up ? 6 : 2))];
    const pf = this.#pfs.get(l.bdf);
    if (withVfs && pf !== undefined && l.netns === null) {
      attrs.push(nl.attrU32(nl.IFLA_NUM_VF, pf.numVfs));
      if (!this.faults.noVfOps) {
        const infos = pf.vfs.map((v, i) =>
          nl.attrNest(nl.IFLA_VF_INFO, [
            nl.vfMacAttr(i, v.mac),
            nl.attr(nl.IFLA_VF_VLAN, u32s(i, v.vlan, v.qos)),
            nl.vfRateAttr(i, v.minTxRate, v.maxTxRate),
            nl.attr(nl.IFLA_VF_TX_RATE, u32s(i, v.maxTxRate)),
            nl.attr(nl.IFLA_VF_SPOOFCHK, u32s(i, v.spoofchk)),
            nl.vfLinkStateAttr(i, v.linkState),
            nl.attr(nl.IFLA_VF_TRUST, u32s(i, v.trust)),
            nl.attrNest(nl.IFLA_VF_VLAN_LIST, [vlanInfo(i, v)]),
          ]),
        );
        attrs.push(nl.attrNest(nl.IFLA_VFINFO_LIST, infos));
      }
    }
    const payload = nl.encodeIfInfo({ family: 0, type: 1, index: l.index, flags: l.up ? nl.IFF_UP : 0, change: 0 }, attrs);
    return nl.encodeMessage(nl.RTM_NEWLINK, flags, seq, payload);
  }

  #getLink(m: nl.NlMessage, ctx: NetlinkContext): Uint8Array[] {
    const { info, attrs } = nl.parseIfInfo(m.payload);
    const mask = nl.findAttr(attrs, nl.IFLA_EXT_MASK);
    const withVfs = mask !== undefined && (nl.attrAsU32(mask) & nl.RTEXT_FILTER_VF) !== 0;
    if ((m.flags & nl.NLM_F_DUMP) === nl.NLM_F_DUMP) {
      const out = [...this.links.values()].filter((l) => l.netns === ctx.netns).map((l) => this.#linkMessage(l, m.seq, nl.NLM_F_MULTI, withVfs));
      out.push(nl.encodeMessage(nl.NLMSG_DONE, nl.NLM_F_MULTI, m.seq, new Uint8Array(4)));
      return out;
    }
    return [this.#linkMessage(this.#find(info, attrs, ctx.netns), m.seq, 0, withVfs)];
  }

  #setLink(m: nl.NlMessage, ctx: NetlinkContext): void {
    const { info, attrs } = nl.parseIfInfo(m.payload);
    const l = this.#find(info, attrs, ctx.netns);
    const nameA = nl.findAttr(attrs, nl.IFLA_IFNAME);
    const newName = nameA === undefined ? undefined : nl.attrAsString(nameA);
    if (newName !== undefined && (!/^[^\s/:]{1,15}$/.test(newName) || newName === "." || newName === "..")) throw new KernelError("EINVAL");
    // Validate everything first so a refused request changes nothing.
    const fdA = nl.findAttr(attrs, nl.IFLA_NET_NS_FD);
    let target: string | null | undefined;
    if (fdA !== undefined) {
      target = ctx.nsFd(nl.attrAsU32(fdA));
      if (target === undefined) throw new KernelError("EINVAL", "bad namespace fd");
      if (target !== null && !this.namespaces.has(target)) throw new KernelError("ENOENT");
      // dev_change_net_namespace renames with IFLA_IFNAME in the target (rtnetlink.c do_setlink).
      if (this.linkByNameExcept(newName ?? l.name, target, l) !== undefined) throw new KernelError("EEXIST");
    } else if (newName !== undefined && newName !== l.name) {
      if (this.linkByNameExcept(newName, l.netns, l) !== undefined) throw new KernelError("EEXIST");
      if (l.up) throw new KernelError("EBUSY"); // dev_change_name refuses a running device
    }
    const macA = nl.findAttr(attrs, nl.IFLA_ADDRESS);
    if (macA !== undefined && (macA.data.length !== 6 || (macA.data[0]! & 1) !== 0)) throw new KernelError("EINVAL");
    const mtuA = nl.findAttr(attrs, nl.IFLA_MTU);
    const mtu = mtuA === undefined ? undefined : nl.attrAsU32(mtuA);
    if (mtu !== undefined && (mtu < 68 || mtu > 65535)) throw new KernelError("EINVAL");
    const vfList = nl.findAttr(attrs, nl.IFLA_VFINFO_LIST);
    if (vfList !== undefined) this.#setVfs(l, vfList);

    if (fdA !== undefined && target !== undefined) {
      l.up = false;
      l.addrs = []; // moving a device flushes its addresses (dev_close + NETDEV_UNREGISTER)
      for (let i = this.routes.length - 1; i >= 0; i--) if (this.routes[i]!.oif === l.index) this.routes.splice(i, 1);
      l.netns = target;
    }
    if (newName !== undefined) l.name = newName;
    if (macA !== undefined) l.mac = nl.macText(macA.data);
    if (mtu !== undefined) l.mtu = mtu;
    if ((info.change & nl.IFF_UP) !== 0 || (info.change === 0 && info.flags !== 0)) l.up = (info.flags & nl.IFF_UP) !== 0;
    this.#render(l);
  }

  #setVfs(l: FakeLink, list: nl.NlAttr): void {
    const pf = this.#pfs.get(l.bdf);
    if (pf === undefined || this.faults.noVfOps) throw new KernelError("EOPNOTSUPP");
    const staged = pf.vfs.map((v) => ({ ...v }));
    for (const info of nl.parseAttrs(list.data)) {
      if (info.type !== nl.IFLA_VF_INFO) continue;
      for (const a of nl.parseAttrs(info.data)) {
        const need = a.type === nl.IFLA_VF_MAC ? 36 : a.type === nl.IFLA_VF_VLAN || a.type === nl.IFLA_VF_RATE ? 12 : a.type === nl.IFLA_VF_VLAN_LIST ? 0 : 8;
        if (a.data.length < need) throw new KernelError("EINVAL");
        const vf = a.type === nl.IFLA_VF_VLAN_LIST ? -1 : u32At(a.data, 0);
        const rec = vf >= 0 ? staged[vf] : undefined;
        if (vf >= 0 && rec === undefined) throw new KernelError("EINVAL"); // vf >= num_vfs (netdevsim)
        switch (a.type) {
          case nl.IFLA_VF_MAC:
            if ((a.data[4]! & 1) !== 0) throw new KernelError("EINVAL");
            rec!.mac = nl.macText(a.data.subarray(4, 10));
            break;
          case nl.IFLA_VF_VLAN:
            setVlan(rec!, u32At(a.data, 4), u32At(a.data, 8), nl.ETH_P_8021Q);
            break;
          case nl.IFLA_VF_VLAN_LIST: {
            const items = nl.parseAttrs(a.data);
            if (items.length === 0) throw new KernelError("EINVAL");
            if (items.length > 1) throw new KernelError("EOPNOTSUPP");
            const it = items[0]!;
            if (it.type !== nl.IFLA_VF_VLAN_INFO || it.data.length < 16) throw new KernelError("EINVAL");
            const r = staged[u32At(it.data, 0)];
            if (r === undefined) throw new KernelError("EINVAL");
            setVlan(r, u32At(it.data, 4), u32At(it.data, 8), (it.data[12]! << 8) | it.data[13]!);
            break;
          }
          case nl.IFLA_VF_RATE: {
            const min = u32At(a.data, 4), max = u32At(a.data, 8);
            if (max !== 0 && min > max) throw new KernelError("EINVAL");
            rec!.minTxRate = min;
            rec!.maxTxRate = max;
            break;
          }
          case nl.IFLA_VF_TX_RATE:
            rec!.maxTxRate = u32At(a.data, 4);
            break;
          case nl.IFLA_VF_SPOOFCHK:
            rec!.spoofchk = u32At(a.data, 4) !== 0 ? 1 : 0;
            break;
          case nl.IFLA_VF_TRUST:
            rec!.trust = u32At(a.data, 4) !== 0 ? 1 : 0;
            break;
          case nl.IFLA_VF_LINK_STATE: {
            const s = u32At(a.data, 4);
            if (s > 2) throw new KernelError("EINVAL");
            rec!.linkState = s;
            break;
          }
          default:
            throw new KernelError("EOPNOTSUPP");
        }
      }
    }
    pf.vfs = staged;
  }

  #addr(m: nl.NlMessage, ctx: NetlinkContext): void {
    const { addr, attrs } = nl.parseIfAddr(m.payload);
    const l = this.links.get(addr.index);
    if (l === undefined || l.netns !== ctx.netns) throw new KernelError("ENODEV");
    const a = nl.findAttr(attrs, nl.IFA_LOCAL) ?? nl.findAttr(attrs, nl.IFA_ADDRESS);
    const len = addr.family === nl.AF_INET ? 4 : addr.family === nl.AF_INET6 ? 16 : -1;
    if (a === undefined || len < 0 || a.data.length !== len || addr.prefixlen > len * 8) throw new KernelError("EINVAL");
    const i = l.addrs.findIndex((x) => x.family === addr.family && bytesEq(x.local, a.data));
    if (m.type === nl.RTM_NEWADDR) {
      if (this.faults.failNewAddr !== null) throw new KernelError(this.faults.failNewAddr);
      if (i >= 0) throw new KernelError("EEXIST");
      l.addrs.push({ family: addr.family, prefixlen: addr.prefixlen, local: a.data.slice() });
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
        const payload = nl.encodeIfAddr({ family: a.family, prefixlen: a.prefixlen, flags: 0, scope: 0, index: l.index }, [nl.attr(nl.IFA_ADDRESS, a.local), nl.attr(nl.IFA_LOCAL, a.local)]);
        out.push(nl.encodeMessage(nl.RTM_NEWADDR, nl.NLM_F_MULTI, m.seq, payload));
      }
    }
    out.push(nl.encodeMessage(nl.NLMSG_DONE, nl.NLM_F_MULTI, m.seq, new Uint8Array(4)));
    return out;
  }

  #newRoute(m: nl.NlMessage, ctx: NetlinkContext): void {
    const { rt, attrs } = nl.parseRtMsg(m.payload);
    const len = rt.family === nl.AF_INET ? 4 : rt.family === nl.AF_INET6 ? 16 : -1;
    if (len < 0 || rt.dstLen > len * 8) throw new KernelError("EINVAL");
    const oifA = nl.findAttr(attrs, nl.RTA_OIF);
    const oif = oifA === undefined ? 0 : nl.attrAsU32(oifA);
    const l = this.links.get(oif);
    if (l === undefined || l.netns !== ctx.netns) throw new KernelError("ENODEV");
    const dstA = nl.findAttr(attrs, nl.RTA_DST);
    const gwA = nl.findAttr(attrs, nl.RTA_GATEWAY);
    if ((dstA !== undefined && dstA.data.length !== len) || (gwA !== undefined && gwA.data.length !== len)) throw new KernelError("EINVAL");
    const dst = `${dstA === undefined ? (len === 4 ? "0.0.0.0" : "::") : ipText(dstA.data)}/${rt.dstLen}`;
    const gateway = gwA === undefined ? null : ipText(gwA.data);
    if (this.routes.some((r) => r.netns === ctx.netns && r.dst === dst && r.family === rt.family)) throw new KernelError("EEXIST");
    this.routes.push({ netns: ctx.netns, family: rt.family, dst, gateway, oif });
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

function vlanInfo(i: number, v: VfRecord): nl.NlAttr {
  const b = new Uint8Array(16);
  b.set(u32s(i, v.vlan, v.qos));
  b[12] = v.vlanProto >>> 8;
  b[13] = v.vlanProto & 0xff;
  return nl.attr(nl.IFLA_VF_VLAN_INFO, b);
}

function u32s(...vals: number[]): Uint8Array {
  const b = new Uint8Array(4 * vals.length);
  const v = new DataView(b.buffer);
  vals.forEach((x, i) => v.setUint32(4 * i, x >>> 0, true));
  return b;
}

function u32At(b: Uint8Array, o: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(o, true);
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
