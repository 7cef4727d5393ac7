/**
 * The guest's rtnetlink endpoint: real rtnetlink bytes in, real bytes out (netlink-vf.md §2–7).
 * RTM_GETLINK (dump and single; IFLA_EXT_MASK with RTEXT_FILTER_VF adds IFLA_NUM_VF and
 * IFLA_VFINFO_LIST), RTM_SETLINK / RTM_NEWLINK on an existing link (flags, IFLA_IFNAME rename,
 * IFLA_ADDRESS, IFLA_MTU, IFLA_NET_NS_PID / IFLA_NET_NS_FD, IFLA_VFINFO_LIST through the VF ndo
 * ops), RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR for IPv4. Every failure is an NLMSG_ERROR with a
 * negative errno; nothing in the request bytes can make this code throw.
 */
import { SysError, sysErr } from "./errors.js";
import { ARPHRD_LOOPBACK, type NetDevice, type NetNamespace, type VfInfo } from "./netdev.js";
import {
  attrList,
  getString,
  getU32,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NlBuilder,
  parseAttrs,
  readI32At,
  readU32At,
  splitMessages,
  structU32s,
  type AttrMap,
  type NlMsg,
} from "./nl.js";

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_TABLE = 15;
export const RT_TABLE_MAIN = 254;
export const RTPROT_KERNEL = 2;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RTN_UNICAST = 1;

export const IFLA_ADDRESS = 1;
export const IFLA_BROADCAST = 2;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_QDISC = 6;
export const IFLA_STATS = 7;
export const IFLA_TXQLEN = 13;
export const IFLA_OPERSTATE = 16;
export const IFLA_LINKMODE = 17;
export const IFLA_NET_NS_PID = 19;
export const IFLA_NUM_VF = 21;
export const IFLA_VFINFO_LIST = 22;
export const IFLA_STATS64 = 23;
export const IFLA_GROUP = 27;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
export const IFLA_PROMISCUITY = 30;
export const IFLA_NUM_TX_QUEUES = 31;
export const IFLA_NUM_RX_QUEUES = 32;
export const IFLA_CARRIER = 33;
export const IFLA_MIN_MTU = 50;
export const IFLA_MAX_MTU = 51;
export const IFLA_PERM_ADDRESS = 54;
export const IFLA_PARENT_DEV_NAME = 56;
export const IFLA_PARENT_DEV_BUS_NAME = 57;
export const RTEXT_FILTER_VF = 1;
export const RTEXT_FILTER_SKIP_STATS = 8;

export const IFLA_VF_INFO = 1;
export const IFLA_VF_MAC = 1;
export const IFLA_VF_VLAN = 2;
export const IFLA_VF_TX_RATE = 3;
export const IFLA_VF_SPOOFCHK = 4;
export const IFLA_VF_LINK_STATE = 5;
export const IFLA_VF_RATE = 6;
export const IFLA_VF_RSS_QUERY_EN = 7;
export const IFLA_VF_STATS = 8;
export const IFLA_VF_TRUST = 9;
export const IFLA_VF_IB_NODE_GUID = 10;
export const IFLA_VF_IB_PORT_GUID = 11;
export const IFLA_VF_VLAN_LIST = 12;
export const IFLA_VF_BROADCAST = 13;
export const IFLA_VF_VLAN_INFO = 1;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_LABEL = 3;
export const IFA_BROADCAST = 4;
export const IFA_FLAGS = 8;
export const IFA_F_PERMANENT = 0x80;
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

const INT_MAX = 0x7fffffff;

/** Where a netlink socket lives and how it resolves namespace references. */
export interface NetlinkContext {
  /** The socket's namespace; null (or absent) is the initial namespace. */
  readonly netns?: string | null;
  /** Resolves IFLA_NET_NS_FD: a namespace name, null for the initial one, undefined for a bad fd. */
  readonly nsFd?: (fd: number) => string | null | undefined;
}

/** What the endpoint needs from the kernel. Each call throws SysError to refuse. */
export interface RtnlKernel {
  namespace(name: string | null): NetNamespace;
  namespaceByPid(pid: number): NetNamespace | undefined;
  moveDevice(dev: NetDevice, to: NetNamespace, newName: string | undefined): void;
  renameDevice(dev: NetDevice, name: string): void;
  setUp(dev: NetDevice, up: boolean): void;
  setMac(dev: NetDevice, mac: Uint8Array): void;
  setMtu(dev: NetDevice, mtu: number): void;
  addAddress(dev: NetDevice, address: number, prefixLen: number, label: string, exclusive: boolean): void;
  delAddress(dev: NetDevice, address: number, prefixLen: number): void;
}

export class RtnetlinkEndpoint {
  constructor(readonly kernel: RtnlKernel) {}

  /** One request datagram in; the reply datagrams out (one message each). */
  handle(request: Uint8Array, ctx: NetlinkContext = {}): Uint8Array[] {
    const out: Uint8Array[] = [];
    let ns: NetNamespace;
    try {
      ns = this.kernel.namespace(ctx.netns ?? null);
    } catch (e) {
      if (e instanceof SysError) return [];
      throw e;
    }
    for (const m of splitMessages(request)) {
      // Control messages and non-requests are not dispatched (netlink_rcv_skb).
      if ((m.flags & NLM_F_REQUEST) === 0 || m.type < 0x10) {
        if ((m.flags & NLM_F_ACK) !== 0) out.push(ack(m, 0));
        continue;
      }
      try {
        const replies = this.#dispatch(m, ns, ctx);
        out.push(...replies);
        if ((m.flags & NLM_F_ACK) !== 0 && !isDump(m)) out.push(ack(m, 0));
      } catch (e) {
        if (e instanceof SysError) out.push(ack(m, -e.errnoValue));
        else throw e;
      }
    }
    return out;
  }

  #dispatch(m: NlMsg, ns: NetNamespace, ctx: NetlinkContext): Uint8Array[] {
    switch (m.type) {
      case RTM_GETLINK:
        return this.#getLink(m, ns);
      case RTM_SETLINK:
        return this.#setLink(m, ns, ctx, false);
      case RTM_NEWLINK:
        return this.#setLink(m, ns, ctx, true);
      case RTM_DELLINK:
        // Physical (driver-owned) links cannot be deleted; the model has no virtual link kinds.
        return this.#delLink(m, ns);
      case RTM_NEWADDR:
        return this.#newAddr(m, ns, true);
      case RTM_DELADDR:
        return this.#newAddr(m, ns, false);
      case RTM_GETADDR:
        return this.#getAddr(m, ns);
      case RTM_NEWROUTE:
        return this.#newRoute(m, ns, true);
      case RTM_DELROUTE:
        return this.#newRoute(m, ns, false);
      case RTM_GETROUTE:
        return this.#getRoute(m, ns);
      default:
        throw sysErr("EOPNOTSUPP", `rtnetlink message type ${m.type} is not supported`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Links

  #getLink(m: NlMsg, ns: NetNamespace): Uint8Array[] {
    if (isDump(m)) {
      // Old requests carry only a 1-byte rtgenmsg; attributes follow only a full ifinfomsg.
      let ext = 0;
      if (m.payload.length >= 16) {
        const attrs = parseAttrs(m.payload.subarray(16));
        if (attrs === undefined) throw sysErr("EINVAL");
        ext = getU32(attrs.get(IFLA_EXT_MASK)) ?? 0;
      }
      const out = ns.list().map((d) => this.#fillLink(d, RTM_NEWLINK, NLM_F_MULTI, m, ext));
      out.push(done(m));
      return out;
    }
    if (m.payload.length < 16) throw sysErr("EINVAL");
    const attrs = parseAttrs(m.payload.subarray(16));
    if (attrs === undefined) throw sysErr("EINVAL");
    const dev = findDev(ns, m.payload, attrs, true);
    return [this.#fillLink(dev, RTM_NEWLINK, 0, m, getU32(attrs.get(IFLA_EXT_MASK)) ?? 0)];
  }

  #fillLink(dev: NetDevice, type: number, flags: number, req: NlMsg, ext: number): Uint8Array {
    const b = new NlBuilder().header(type, flags, req.seq, req.pid);
    const ifi = new Uint8Array(16);
    const v = new DataView(ifi.buffer);
    v.setUint16(2, dev.type, true);
    v.setInt32(4, dev.ifindex, true);
    v.setUint32(8, dev.reportedFlags, true);
    b.bytes(ifi);
    b.str(IFLA_IFNAME, dev.name);
    b.u32(IFLA_TXQLEN, 1000);
    b.u8(IFLA_OPERSTATE, dev.operstate);
    b.u8(IFLA_LINKMODE, 0);
    b.u32(IFLA_MTU, dev.mtu);
    b.u32(IFLA_MIN_MTU, dev.minMtu);
    b.u32(IFLA_MAX_MTU, dev.maxMtu);
    b.u32(IFLA_GROUP, 0);
    b.u32(IFLA_PROMISCUITY, 0);
    b.u32(IFLA_NUM_TX_QUEUES, 1);
    b.u32(IFLA_NUM_RX_QUEUES, 1);
    b.str(IFLA_QDISC, dev.type === ARPHRD_LOOPBACK ? "noqueue" : "pfifo_fast");
    b.u8(IFLA_CARRIER, dev.isUp && dev.carrier ? 1 : 0);
    b.attr(IFLA_ADDRESS, dev.mac);
    b.attr(IFLA_BROADCAST, dev.type === ARPHRD_LOOPBACK ? new Uint8Array(6) : new Uint8Array(6).fill(0xff));
    const s = dev.stats;
    // struct rtnl_link_stats64 (25 × u64 since Linux 6.0 added rx_otherhost_dropped, as the
    // captured kernel reply in src/wire's fixtures has it) and the legacy 32-bit rtnl_link_stats.
    const st = [s.rxPackets, s.txPackets, s.rxBytes, s.txBytes, 0, 0, s.rxDropped, s.txDropped, s.multicast];
    const s64 = new Uint8Array(25 * 8);
    const d64 = new DataView(s64.buffer);
    st.forEach((x, i) => d64.setBigUint64(i * 8, BigInt(x), true));
    b.attr(IFLA_STATS64, s64);
    b.attr(IFLA_STATS, structU32s(...st, ...new Array<number>(24 - st.length).fill(0)));
    if ((ext & RTEXT_FILTER_VF) !== 0 && dev.parentName !== undefined) this.#fillVf(b, dev, ext);
    if (dev.type !== ARPHRD_LOOPBACK) b.attr(IFLA_PERM_ADDRESS, dev.permAddr);
    if (dev.parentName !== undefined && dev.parentBus !== undefined) {
      b.str(IFLA_PARENT_DEV_NAME, dev.parentName);
      b.str(IFLA_PARENT_DEV_BUS_NAME, dev.parentBus);
    }
    return b.finish();
  }

  /** rtnl_vf_ports_fill / rtnl_fill_vfinfo (netlink-vf.md §6). */
  #fillVf(b: NlBuilder, dev: NetDevice, ext: number): void {
    const ops = dev.ops;
    let num: number;
    try {
      num = ops.numVf?.() ?? 0;
    } catch {
      num = 0;
    }
    b.u32(IFLA_NUM_VF, num);
    if (ops.getVfConfig === undefined) return;
    b.begin(IFLA_VFINFO_LIST);
    for (let vf = 0; vf < num; vf++) {
      let info: VfInfo;
      try {
        info = ops.getVfConfig(vf);
      } catch {
        continue; // a VF whose config cannot be read is skipped silently
      }
      const mark = b.length;
      const depth = b.openNests;
      b.begin(IFLA_VF_INFO);
      const mac = new Uint8Array(36);
      new DataView(mac.buffer).setUint32(0, vf, true);
      mac.set(info.mac.subarray(0, 6), 4);
      b.attr(IFLA_VF_MAC, mac);
      const bc = new Uint8Array(32);
      bc.fill(0xff, 0, 6);
      b.attr(IFLA_VF_BROADCAST, bc);
      b.attr(IFLA_VF_VLAN, structU32s(vf, info.vlan, info.qos));
      b.attr(IFLA_VF_RATE, structU32s(vf, info.minTxRate, info.maxTxRate));
      b.attr(IFLA_VF_TX_RATE, structU32s(vf, info.maxTxRate));
      b.attr(IFLA_VF_SPOOFCHK, structU32s(vf, info.spoofchk ? 1 : 0));
      b.attr(IFLA_VF_LINK_STATE, structU32s(vf, info.linkState));
      b.attr(IFLA_VF_RSS_QUERY_EN, structU32s(vf, 0xffffffff)); // -1: not supported
      b.attr(IFLA_VF_TRUST, structU32s(vf, info.trusted ? 1 : 0));
      b.begin(IFLA_VF_VLAN_LIST);
      const vi = new Uint8Array(16);
      const vv = new DataView(vi.buffer);
      vv.setUint32(0, vf, true);
      vv.setUint32(4, info.vlan, true);
      vv.setUint32(8, info.qos, true);
      vv.setUint16(12, info.vlanProto, false); // __be16 (netlink-vf.md §5)
      b.attr(IFLA_VF_VLAN_INFO, vi);
      b.end();
      if ((ext & RTEXT_FILTER_SKIP_STATS) === 0) {
        let st = { rxPackets: 0n, txPackets: 0n, rxBytes: 0n, txBytes: 0n, broadcast: 0n, multicast: 0n, rxDropped: 0n, txDropped: 0n };
        try {
          if (ops.getVfStats !== undefined) st = { ...ops.getVfStats(vf) };
        } catch {
          // Linux ignores ndo_get_vf_stats' return value and reports zeros.
        }
        b.begin(IFLA_VF_STATS);
        b.u64(0, st.rxPackets);
        b.u64(1, st.txPackets);
        b.u64(2, st.rxBytes);
        b.u64(3, st.txBytes);
        b.u64(4, st.broadcast);
        b.u64(5, st.multicast);
        b.u64(7, st.rxDropped);
        b.u64(8, st.txDropped);
        b.end();
      }
      b.end();
      // nla_len is 16 bits: a VF whose entry would push IFLA_VFINFO_LIST past 65535 bytes is
      // left out, and so are the ones after it (with stats, about 200 VFs fit; clients that do
      // not need them ask RTEXT_FILTER_SKIP_STATS, as iproute2 does without -s).
      if (b.nestLength > 0xffff) {
        b.truncate(mark, depth);
        break;
      }
    }
    b.end();
  }

  #setLink(m: NlMsg, ns: NetNamespace, ctx: NetlinkContext, isNew: boolean): Uint8Array[] {
    if (m.payload.length < 16) throw sysErr("EINVAL");
    const attrs = parseAttrs(m.payload.subarray(16));
    if (attrs === undefined) throw sysErr("EINVAL");
    const idx = readI32At(m.payload, 4);
    let dev: NetDevice | undefined;
    if (idx > 0) dev = ns.byIndex(idx);
    else if (attrs.has(IFLA_IFNAME)) dev = ns.byName(getString(attrs.get(IFLA_IFNAME)!));
    else if (!isNew) throw sysErr("EINVAL");
    if (isNew) {
      if (dev !== undefined && (m.flags & NLM_F_EXCL) !== 0) throw sysErr("EEXIST");
      if (dev === undefined) {
        if ((m.flags & NLM_F_CREATE) === 0) throw sysErr("ENODEV");
        throw sysErr("EOPNOTSUPP", "the model guest creates no virtual links");
      }
    }
    if (dev === undefined) throw sysErr("ENODEV");
    this.#doSetlink(dev, m.payload, attrs, ns, ctx, idx > 0);
    return [];
  }

  /** do_setlink, in Linux's attribute order; applied changes stay applied when a later one fails. */
  #doSetlink(dev: NetDevice, ifm: Uint8Array, attrs: AttrMap, ns: NetNamespace, ctx: NetlinkContext, byIndex: boolean): void {
    const k = this.kernel;
    const nameAttr = attrs.get(IFLA_IFNAME);
    const newName = nameAttr === undefined ? undefined : getString(nameAttr);
    let target: NetNamespace | undefined;
    if (attrs.has(IFLA_NET_NS_PID)) {
      const pid = getU32(attrs.get(IFLA_NET_NS_PID));
      if (pid === undefined) throw sysErr("EINVAL");
      target = k.namespaceByPid(pid);
      if (target === undefined) throw sysErr("ESRCH");
    } else if (attrs.has(IFLA_NET_NS_FD)) {
      const fd = getU32(attrs.get(IFLA_NET_NS_FD));
      if (fd === undefined) throw sysErr("EINVAL");
      const name = ctx.nsFd?.(fd);
      if (name === undefined) throw sysErr("EBADF");
      target = k.namespace(name);
    }
    let renamedByMove = false;
    if (target !== undefined && target !== ns) {
      k.moveDevice(dev, target, newName);
      renamedByMove = newName !== undefined;
    }
    const mac = attrs.get(IFLA_ADDRESS);
    if (mac !== undefined) {
      if (mac.length < 6) throw sysErr("EINVAL");
      k.setMac(dev, mac.slice(0, 6));
    }
    const mtu = attrs.get(IFLA_MTU);
    if (mtu !== undefined) {
      const v = getU32(mtu);
      if (v === undefined) throw sysErr("EINVAL");
      k.setMtu(dev, v);
    }
    if (newName !== undefined && !renamedByMove && (byIndex || newName !== dev.name) && newName !== dev.name) k.renameDevice(dev, newName);
    const flags = readU32At(ifm, 8);
    const change = readU32At(ifm, 12);
    if (flags !== 0 || change !== 0) {
      // rtnl_dev_combine_flags: ifi_change 0 means "all bits".
      const want = change !== 0 ? (flags & change) | (dev.flags & ~change) : flags;
      if (((want ^ dev.flags) & 1) !== 0) k.setUp(dev, (want & 1) !== 0);
    }
    const vfl = attrs.get(IFLA_VFINFO_LIST);
    if (vfl !== undefined) {
      const list = attrList(vfl);
      if (list === undefined) throw sysErr("EINVAL");
      for (const a of list) {
        if (a.type !== IFLA_VF_INFO) throw sysErr("EINVAL");
        const vf = attrList(a.data);
        if (vf === undefined) throw sysErr("EINVAL");
        doSetVfInfo(dev, vf);
      }
    }
  }

  #delLink(m: NlMsg, ns: NetNamespace): Uint8Array[] {
    if (m.payload.length < 16) throw sysErr("EINVAL");
    const attrs = parseAttrs(m.payload.subarray(16));
    if (attrs === undefined) throw sysErr("EINVAL");
    findDev(ns, m.payload, attrs, false);
    throw sysErr("EOPNOTSUPP", "cannot delete a device owned by a driver");
  }

  // -------------------------------------------------------------------------------------------
  // Addresses (IPv4)

  #newAddr(m: NlMsg, ns: NetNamespace, add: boolean): Uint8Array[] {
    if (m.payload.length < 8) throw sysErr("EINVAL");
    const family = m.payload[0]!;
    const prefix = m.payload[1]!;
    const index = readU32At(m.payload, 4);
    if (family !== AF_INET) throw sysErr("EAFNOSUPPORT", "the model guest speaks IPv4 only");
    const attrs = parseAttrs(m.payload.subarray(8));
    if (attrs === undefined) throw sysErr("EINVAL");
    const local = attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS);
    if (local === undefined || local.length < 4 || prefix > 32) throw sysErr("EINVAL");
    const dev = ns.byIndex(index);
    if (dev === undefined) throw sysErr("ENODEV");
    const addr = ((local[0]! << 24) | (local[1]! << 16) | (local[2]! << 8) | local[3]!) >>> 0;
    const label = attrs.has(IFA_LABEL) ? getString(attrs.get(IFA_LABEL)!) : dev.name;
    if (add) this.kernel.addAddress(dev, addr, prefix, label, (m.flags & NLM_F_EXCL) !== 0);
    else this.kernel.delAddress(dev, addr, prefix);
    return [];
  }

  #getAddr(m: NlMsg, ns: NetNamespace): Uint8Array[] {
    if (!isDump(m)) throw sysErr("EOPNOTSUPP");
    const family = m.payload.length >= 1 ? m.payload[0]! : AF_UNSPEC;
    const out: Uint8Array[] = [];
    if (family === AF_UNSPEC || family === AF_INET) {
      for (const dev of ns.list()) {
        for (const a of dev.addrs) {
          const b = new NlBuilder().header(RTM_NEWADDR, NLM_F_MULTI, m.seq, m.pid);
          const ifa = new Uint8Array(8);
          ifa[0] = AF_INET;
          ifa[1] = a.prefixLen;
          ifa[2] = IFA_F_PERMANENT;
          ifa[3] = (a.address >>> 24) === 127 ? 254 : 0; // RT_SCOPE_HOST for loopback addresses
          new DataView(ifa.buffer).setUint32(4, dev.ifindex, true);
          b.bytes(ifa);
          const ip = ipBytes(a.address);
          b.attr(IFA_ADDRESS, ip);
          b.attr(IFA_LOCAL, ip);
          if (a.prefixLen < 31) {
            const host = a.prefixLen === 0 ? 0xffffffff : ~(0xffffffff << (32 - a.prefixLen)) >>> 0;
            b.attr(IFA_BROADCAST, ipBytes((a.address | host) >>> 0));
          }
          b.str(IFA_LABEL, a.label);
          b.u32(IFA_FLAGS, IFA_F_PERMANENT);
          out.push(b.finish());
        }
      }
    }
    out.push(done(m));
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Routes (IPv4, table main)

  /** inet_rtm_newroute / inet_rtm_delroute, for table main. */
  #newRoute(m: NlMsg, ns: NetNamespace, add: boolean): Uint8Array[] {
    if (m.payload.length < 12) throw sysErr("EINVAL");
    const p = m.payload;
    if (p[0] !== AF_INET) throw sysErr("EAFNOSUPPORT", "the model guest speaks IPv4 only");
    const dstLen = p[1]!;
    if (dstLen > 32) throw sysErr("EINVAL");
    const attrs = parseAttrs(p.subarray(12));
    if (attrs === undefined) throw sysErr("EINVAL");
    const table = getU32(attrs.get(RTA_TABLE)) ?? p[4]!;
    if (table !== RT_TABLE_MAIN && table !== 0) throw sysErr("EOPNOTSUPP", "only table main exists in the model guest");
    const dstRaw = attrs.get(RTA_DST);
    const gwRaw = attrs.get(RTA_GATEWAY);
    const dst = dstRaw === undefined ? 0 : ip4(dstRaw);
    const gateway = gwRaw === undefined ? undefined : ip4(gwRaw);
    if (dst === undefined || (gwRaw !== undefined && gateway === undefined)) throw sysErr("EINVAL");
    if (((dst & ~prefixMask(dstLen)) >>> 0) !== 0) throw sysErr("EINVAL", "route prefix has host bits set");
    const oif = getU32(attrs.get(RTA_OIF)) ?? 0;
    const priority = getU32(attrs.get(RTA_PRIORITY)) ?? 0;
    const same = (r: { dst: number; dstLen: number; priority: number }): boolean => r.dst === dst && r.dstLen === dstLen && r.priority === priority;
    if (!add) {
      const i = ns.routes.findIndex((r) => same(r) && (oif === 0 || r.oif === oif) && (gateway === undefined || r.gateway === gateway));
      if (i < 0) throw sysErr("ESRCH");
      ns.routes.splice(i, 1);
      return [];
    }
    let dev = oif === 0 ? undefined : ns.byIndex(oif);
    if (oif !== 0 && dev === undefined) throw sysErr("ENODEV");
    if (dev !== undefined && !dev.isUp) throw sysErr("ENETDOWN", "Nexthop device is not up");
    if (gateway !== undefined) {
      // The gateway must be on a connected prefix (of the given device), as fib_check_nh asks.
      const on = (d: NetDevice): boolean => d.isUp && d.addrs.some((a) => ((a.address ^ gateway) & prefixMask(a.prefixLen)) >>> 0 === 0);
      if (dev === undefined) dev = ns.list().find(on);
      if (dev === undefined || !on(dev)) throw sysErr("ENETUNREACH", "Nexthop has invalid gateway");
    }
    if (dev === undefined) throw sysErr("ENODEV", "Nexthop device required");
    if (ns.routes.some(same)) {
      if ((m.flags & NLM_F_EXCL) !== 0) throw sysErr("EEXIST");
      if ((m.flags & 0x100) === 0) throw sysErr("EEXIST"); // without NLM_F_REPLACE an existing route stays
    }
    const r = { dst, dstLen, gateway, oif: dev.ifindex, protocol: p[5]!, scope: p[6]!, priority };
    const j = ns.routes.findIndex(same);
    if (j >= 0) ns.routes[j] = r;
    else ns.routes.push(r);
    return [];
  }

  /** Dump of table main: connected prefixes (proto kernel, scope link) then static routes. */
  #getRoute(m: NlMsg, ns: NetNamespace): Uint8Array[] {
    if (!isDump(m)) throw sysErr("EOPNOTSUPP");
    const family = m.payload.length >= 1 ? m.payload[0]! : AF_UNSPEC;
    const out: Uint8Array[] = [];
    const emit = (dst: number, dstLen: number, protocol: number, scope: number, oif: number, gateway: number | undefined, prefsrc: number | undefined, priority: number): void => {
      const b = new NlBuilder().header(RTM_NEWROUTE, NLM_F_MULTI, m.seq, m.pid);
      b.bytes(Uint8Array.of(AF_INET, dstLen, 0, 0, RT_TABLE_MAIN, protocol, scope, RTN_UNICAST, 0, 0, 0, 0));
      b.u32(RTA_TABLE, RT_TABLE_MAIN);
      if (dstLen > 0) b.attr(RTA_DST, ipBytes(dst));
      if (priority !== 0) b.u32(RTA_PRIORITY, priority);
      if (prefsrc !== undefined) b.attr(RTA_PREFSRC, ipBytes(prefsrc));
      if (gateway !== undefined) b.attr(RTA_GATEWAY, ipBytes(gateway));
      b.u32(RTA_OIF, oif);
      out.push(b.finish());
    };
    if (family === AF_UNSPEC || family === AF_INET) {
      for (const d of ns.list()) {
        if (!d.isUp || d.type === ARPHRD_LOOPBACK) continue;
        for (const a of d.addrs) emit((a.address & prefixMask(a.prefixLen)) >>> 0, a.prefixLen, RTPROT_KERNEL, RT_SCOPE_LINK, d.ifindex, undefined, a.address, 0);
      }
      for (const r of ns.routes) emit(r.dst, r.dstLen, r.protocol, r.scope, r.oif, r.gateway, undefined, r.priority);
    }
    out.push(done(m));
    return out;
  }
}

/** IPv4 as host-order number from 4 attribute bytes, or undefined when the length is wrong. */
function ip4(d: Uint8Array | undefined): number | undefined {
  if (d === undefined || d.length !== 4) return undefined;
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}

function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** do_setvfinfo (netlink-vf.md §7): each attribute to its ndo, in Linux's order. */
function doSetVfInfo(dev: NetDevice, list: { type: number; data: Uint8Array }[]): void {
  const ops = dev.ops;
  const tb = new Map<number, Uint8Array>();
  // Minimum payload lengths from ifla_vf_policy.
  const minLen: Record<number, number> = { 1: 36, 2: 12, 3: 8, 4: 8, 5: 8, 6: 12, 7: 8, 9: 8, 10: 12, 11: 12 };
  for (const a of list) {
    const need = minLen[a.type];
    if (need !== undefined && a.data.length < need) throw sysErr("EINVAL");
    tb.set(a.type, a.data);
  }
  const vfOf = (d: Uint8Array): number => {
    const vf = readU32At(d, 0);
    if (vf >= INT_MAX) throw sysErr("EINVAL");
    return vf;
  };
  const u = (d: Uint8Array, i: number): number => readU32At(d, i * 4);
  let d = tb.get(IFLA_VF_MAC);
  if (d !== undefined) {
    if (ops.setVfMac === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfMac(vfOf(d), d.slice(4, 10));
  }
  d = tb.get(IFLA_VF_VLAN);
  if (d !== undefined) {
    if (ops.setVfVlan === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfVlan(vfOf(d), u(d, 1), u(d, 2), 0x8100);
  }
  d = tb.get(IFLA_VF_VLAN_LIST);
  if (d !== undefined) {
    const entries = attrList(d);
    if (entries === undefined) throw sysErr("EINVAL");
    const infos: Uint8Array[] = [];
    for (const e of entries) {
      if (e.type !== IFLA_VF_VLAN_INFO || e.data.length < 14) throw sysErr("EINVAL");
      infos.push(e.data);
    }
    if (infos.length === 0) throw sysErr("EINVAL");
    if (infos.length > 1) throw sysErr("EOPNOTSUPP"); // MAX_VLAN_LIST_LEN is 1
    const i0 = infos[0]!;
    if (ops.setVfVlan === undefined) throw sysErr("EOPNOTSUPP");
    const proto = (i0[12]! << 8) | i0[13]!;
    ops.setVfVlan(vfOf(i0), u(i0, 1), u(i0, 2), proto);
  }
  d = tb.get(IFLA_VF_TX_RATE);
  if (d !== undefined) {
    if (ops.getVfConfig === undefined || ops.setVfRate === undefined) throw sysErr("EOPNOTSUPP");
    const vf = vfOf(d);
    const cur = ops.getVfConfig(vf);
    ops.setVfRate(vf, cur.minTxRate, u(d, 1));
  }
  d = tb.get(IFLA_VF_RATE);
  if (d !== undefined) {
    if (ops.setVfRate === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfRate(vfOf(d), u(d, 1), u(d, 2));
  }
  d = tb.get(IFLA_VF_SPOOFCHK);
  if (d !== undefined) {
    if (ops.setVfSpoofchk === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfSpoofchk(vfOf(d), u(d, 1) !== 0);
  }
  d = tb.get(IFLA_VF_LINK_STATE);
  if (d !== undefined) {
    if (ops.setVfLinkState === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfLinkState(vfOf(d), u(d, 1));
  }
  d = tb.get(IFLA_VF_RSS_QUERY_EN);
  if (d !== undefined) {
    vfOf(d);
    throw sysErr("EOPNOTSUPP"); // virtio_net has no ndo_set_vf_rss_query_en
  }
  d = tb.get(IFLA_VF_TRUST);
  if (d !== undefined) {
    if (ops.setVfTrust === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfTrust(vfOf(d), u(d, 1) !== 0);
  }
  if (tb.has(IFLA_VF_IB_NODE_GUID) || tb.has(IFLA_VF_IB_PORT_GUID)) throw sysErr("EOPNOTSUPP"); // InfiniBand only
}

function findDev(ns: NetNamespace, ifm: Uint8Array, attrs: AttrMap, allowName: boolean): NetDevice {
  const idx = readI32At(ifm, 4);
  let dev: NetDevice | undefined;
  if (idx > 0) dev = ns.byIndex(idx);
  else if (allowName && attrs.has(IFLA_IFNAME)) dev = ns.byName(getString(attrs.get(IFLA_IFNAME)!));
  else throw sysErr("EINVAL");
  if (dev === undefined) throw sysErr("ENODEV");
  return dev;
}

function isDump(m: NlMsg): boolean {
  return (m.flags & NLM_F_DUMP) === NLM_F_DUMP;
}

function ipBytes(a: number): Uint8Array {
  return Uint8Array.of((a >>> 24) & 255, (a >>> 16) & 255, (a >>> 8) & 255, a & 255);
}

/** NLMSG_ERROR: error 0 is an ACK (header only, NLM_F_CAPPED), otherwise the whole request echoed. */
function ack(m: NlMsg, error: number): Uint8Array {
  const b = new NlBuilder().header(NLMSG_ERROR, error === 0 ? NLM_F_CAPPED : 0, m.seq, m.pid);
  const e = new Uint8Array(4);
  new DataView(e.buffer).setInt32(0, error, true);
  b.bytes(e);
  b.bytes(error === 0 ? m.raw.subarray(0, 16) : m.raw);
  return b.finish();
}

function done(m: NlMsg): Uint8Array {
  return new NlBuilder().header(NLMSG_DONE, NLM_F_MULTI, m.seq, m.pid).bytes(new Uint8Array(4)).finish();
}


