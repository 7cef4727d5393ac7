/**
 * The guest's rtnetlink endpoint: real rtnetlink bytes in, real bytes out (netlink-vf.md §2–7).
 * RTM_GETLINK (dump and single; IFLA_EXT_MASK with RTEXT_FILTER_VF adds IFLA_NUM_VF and
 * IFLA_VFINFO_LIST), RTM_SETLINK / RTM_NEWLINK on an existing link (flags, IFLA_IFNAME rename,
 * IFLA_ADDRESS, IFLA_MTU, IFLA_NET_NS_PID / IFLA_NET_NS_FD, IFLA_VFINFO_LIST through the VF ndo
 * ops), RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR for IPv4. Every failure is an NLMSG_ERROR with a
 * negative errno; nothing in the request bytes can make this code throw.
 */
import { GuestErrno, SysError, sysErr } from "./errors.js";
import { ARPHRD_LOOPBACK, type NetDevice, type NetNamespace, type VfInfo } from "./netdev.js";
import { u32le } from "../wire/bytes.js";
import { WireError } from "../wire/errors.js";
import { Ipv4Address } from "../wire/ip.js";
import { MacAddress } from "../wire/mac.js";
import {
  NlDoneRepr,
  NlErrorRepr,
  NlMsgType,
  NlmF,
  attrMap,
  attrType,
  beginNlMessage,
  endNlMessage,
  nla,
  nlaGet,
  parseAttrs,
  parseNlMessagesPrefix,
  type NlAttr,
  type NlMessage,
  type NlWriter,
} from "../wire/netlink.js";
import {
  AddrRepr,
  AddressFamily,
  IFLA_VF_INFO,
  IFLA_VF_VLAN_INFO,
  Ifa,
  IfaF,
  Ifla,
  IflaVf,
  RouteRepr,
  Rta,
  RtextFilter,
  RtProt,
  RtScope,
  RtTable,
  Rtm,
  Rtn,
  vfInfoSpec,
  type VfInfo as WireVfInfo,
  type VfStats,
} from "../wire/rtnetlink.js";

const INT_MAX = 0x7fffffff;

/** Attributes by type, the last of a type winning (nla_parse). */
type AttrMap = Map<number, NlAttr>;

/** A u32 attribute's value; undefined when absent or shorter than 4 bytes. */
function u32Of(a: NlAttr | undefined): number | undefined {
  return a === undefined || a.payload.length < 4 ? undefined : nlaGet.u32(a);
}

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
    // netlink_rcv_skb: a short or over-long header ends the datagram silently.
    for (const m of parseNlMessagesPrefix(request)) {
      // Control messages and non-requests are not dispatched (netlink_rcv_skb).
      if ((m.flags & NlmF.REQUEST) === 0 || m.type < NlMsgType.MIN_TYPE) {
        if ((m.flags & NlmF.ACK) !== 0) out.push(ack(m, 0));
        continue;
      }
      try {
        const replies = this.#dispatch(m, ns, ctx);
        out.push(...replies);
        if ((m.flags & NlmF.ACK) !== 0 && !isDump(m)) out.push(ack(m, 0));
      } catch (e) {
        if (e instanceof SysError) out.push(ack(m, -e.errnoValue));
        // An impossible attribute length in the request: nla_parse's -EINVAL.
        else if (e instanceof WireError) out.push(ack(m, -GuestErrno.EINVAL));
        else throw e;
      }
    }
    return out;
  }

  #dispatch(m: NlMessage, ns: NetNamespace, ctx: NetlinkContext): Uint8Array[] {
    switch (m.type) {
      case Rtm.GETLINK:
        return this.#getLink(m, ns);
      case Rtm.SETLINK:
        return this.#setLink(m, ns, ctx, false);
      case Rtm.NEWLINK:
        return this.#setLink(m, ns, ctx, true);
      case Rtm.DELLINK:
        // Physical (driver-owned) links cannot be deleted; the model has no virtual link kinds.
        return this.#delLink(m, ns);
      case Rtm.NEWADDR:
        return this.#newAddr(m, ns, true);
      case Rtm.DELADDR:
        return this.#newAddr(m, ns, false);
      case Rtm.GETADDR:
        return this.#getAddr(m, ns);
      case Rtm.NEWROUTE:
        return this.#newRoute(m, ns, true);
      case Rtm.DELROUTE:
        return this.#newRoute(m, ns, false);
      case Rtm.GETROUTE:
        return this.#getRoute(m, ns);
      default:
        throw sysErr("EOPNOTSUPP", `rtnetlink message type ${m.type} is not supported`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Links

  #getLink(m: NlMessage, ns: NetNamespace): Uint8Array[] {
    if (isDump(m)) {
      // Old requests carry only a 1-byte rtgenmsg; attributes follow only a full ifinfomsg.
      let ext = 0;
      if (m.payload.length >= 16) ext = u32Of(attrsAfter(m.payload, 16).get(Ifla.EXT_MASK)) ?? 0;
      const out = ns.list().map((d) => this.#fillLink(d, NlmF.MULTI, m, ext));
      out.push(done(m));
      return out;
    }
    if (m.payload.length < 16) throw sysErr("EINVAL");
    const attrs = attrsAfter(m.payload, 16);
    const dev = findDev(ns, m.payload, attrs, true);
    return [this.#fillLink(dev, 0, m, u32Of(attrs.get(Ifla.EXT_MASK)) ?? 0)];
  }

  /** rtnl_fill_ifinfo, in its attribute order. */
  #fillLink(dev: NetDevice, flags: number, req: NlMessage, ext: number): Uint8Array {
    const w = beginNlMessage({ type: Rtm.NEWLINK, flags, seq: req.seq, pid: req.pid });
    // struct ifinfomsg: family, pad, type, index, flags, change (0 in replies).
    w.u8(AddressFamily.UNSPEC);
    w.u8(0);
    w.u16(dev.type);
    w.u32(dev.ifindex >>> 0);
    w.u32(dev.reportedFlags >>> 0);
    w.u32(0);
    w.attr(nla.str(Ifla.IFNAME, dev.name));
    w.attr(nla.u32(Ifla.TXQLEN, 1000));
    w.attr(nla.u8(Ifla.OPERSTATE, dev.operstate));
    w.attr(nla.u8(Ifla.LINKMODE, 0));
    w.attr(nla.u32(Ifla.MTU, dev.mtu));
    w.attr(nla.u32(Ifla.MIN_MTU, dev.minMtu));
    w.attr(nla.u32(Ifla.MAX_MTU, dev.maxMtu));
    w.attr(nla.u32(Ifla.GROUP, 0));
    w.attr(nla.u32(Ifla.PROMISCUITY, 0));
    w.attr(nla.u32(Ifla.NUM_TX_QUEUES, 1));
    w.attr(nla.u32(Ifla.NUM_RX_QUEUES, 1));
    w.attr(nla.str(Ifla.QDISC, dev.type === ARPHRD_LOOPBACK ? "noqueue" : "pfifo_fast"));
    w.attr(nla.u8(Ifla.CARRIER, dev.isUp && dev.carrier ? 1 : 0));
    w.attr(nla.raw(Ifla.ADDRESS, dev.mac));
    w.attr(nla.raw(Ifla.BROADCAST, dev.type === ARPHRD_LOOPBACK ? new Uint8Array(6) : new Uint8Array(6).fill(0xff)));
    const s = dev.stats;
    // struct rtnl_link_stats64 (25 × u64 since Linux 6.0 added rx_otherhost_dropped, as the
    // captured kernel reply in src/wire's fixtures has it) and the legacy 32-bit rtnl_link_stats.
    const st = [s.rxPackets, s.txPackets, s.rxBytes, s.txBytes, 0, 0, s.rxDropped, s.txDropped, s.multicast];
    const s64 = new Uint8Array(25 * 8);
    const d64 = new DataView(s64.buffer);
    st.forEach((x, i) => d64.setBigUint64(i * 8, BigInt(x), true));
    w.attr(nla.raw(Ifla.STATS64, s64));
    const s32 = new Uint8Array(24 * 4);
    const d32 = new DataView(s32.buffer);
    st.forEach((x, i) => d32.setUint32(i * 4, x >>> 0, true));
    w.attr(nla.raw(Ifla.STATS, s32));
    if ((ext & RtextFilter.VF) !== 0 && dev.parentName !== undefined) this.#fillVf(w, dev, ext);
    if (dev.type !== ARPHRD_LOOPBACK) w.attr(nla.raw(Ifla.PERM_ADDRESS, dev.permAddr));
    if (dev.parentName !== undefined && dev.parentBus !== undefined) {
      w.attr(nla.str(Ifla.PARENT_DEV_NAME, dev.parentName));
      w.attr(nla.str(Ifla.PARENT_DEV_BUS_NAME, dev.parentBus));
    }
    return endNlMessage(w);
  }

  /** rtnl_vf_ports_fill / rtnl_fill_vfinfo (netlink-vf.md §6). */
  #fillVf(w: NlWriter, dev: NetDevice, ext: number): void {
    const ops = dev.ops;
    let num: number;
    try {
      num = ops.numVf?.() ?? 0;
    } catch {
      num = 0;
    }
    w.attr(nla.u32(Ifla.NUM_VF, num));
    if (ops.getVfConfig === undefined) return;
    const list = w.beginNest(Ifla.VFINFO_LIST);
    for (let vf = 0; vf < num; vf++) {
      let info: VfInfo;
      try {
        info = ops.getVfConfig(vf);
      } catch {
        continue; // a VF whose config cannot be read is skipped silently
      }
      let stats: VfStats | undefined;
      if ((ext & RtextFilter.SKIP_STATS) === 0) {
        stats = { rxPackets: 0n, txPackets: 0n, rxBytes: 0n, txBytes: 0n, broadcast: 0n, multicast: 0n, rxDropped: 0n, txDropped: 0n };
        try {
          if (ops.getVfStats !== undefined) stats = { ...ops.getVfStats(vf) };
        } catch {
          // Linux ignores ndo_get_vf_stats' return value and reports zeros.
        }
      }
      const entry: WireVfInfo = {
        vf,
        mac: MacAddress.fromBytes(info.mac),
        broadcast: MacAddress.BROADCAST,
        vlan: { vlan: info.vlan, qos: info.qos },
        rate: { minTxRate: info.minTxRate, maxTxRate: info.maxTxRate },
        txRate: info.maxTxRate,
        spoofchk: info.spoofchk ? 1 : 0,
        linkState: info.linkState,
        rssQueryEn: -1, // virtio_net has no ndo_set_vf_rss_query_en
        trust: info.trusted ? 1 : 0,
        vlanList: [{ vlan: info.vlan, qos: info.qos, proto: info.vlanProto }],
        extra: [],
      };
      if (stats !== undefined) entry.stats = stats;
      const mark = w.length;
      // nla_put_u64_64bit adds no IFLA_VF_STATS_PAD on x86 (efficient unaligned access).
      w.attr(vfInfoSpec(entry, { alignU64: false }));
      // nla_len is 16 bits: a VF whose entry would push IFLA_VFINFO_LIST past 65535 bytes is
      // left out, and so are the ones after it (with stats, 221 VFs fit; clients that do
      // not need them ask RTEXT_FILTER_SKIP_STATS, as iproute2 does without -s).
      if (w.nestLength(list) > 0xffff) {
        w.truncate(mark);
        break;
      }
    }
    w.endNest(list);
  }

  #setLink(m: NlMessage, ns: NetNamespace, ctx: NetlinkContext, isNew: boolean): Uint8Array[] {
    if (m.payload.length < 16) throw sysErr("EINVAL");
    const attrs = attrsAfter(m.payload, 16);
    const idx = i32At(m.payload, 4);
    const nameAttr = attrs.get(Ifla.IFNAME);
    let dev: NetDevice | undefined;
    if (idx > 0) dev = ns.byIndex(idx);
    else if (nameAttr !== undefined) dev = ns.byName(nlaGet.str(nameAttr));
    else if (!isNew) throw sysErr("EINVAL");
    if (isNew) {
      if (dev !== undefined && (m.flags & NlmF.EXCL) !== 0) throw sysErr("EEXIST");
      if (dev === undefined) {
        if ((m.flags & NlmF.CREATE) === 0) throw sysErr("ENODEV");
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
    const nameAttr = attrs.get(Ifla.IFNAME);
    const newName = nameAttr === undefined ? undefined : nlaGet.str(nameAttr);
    let target: NetNamespace | undefined;
    if (attrs.has(Ifla.NET_NS_PID)) {
      const pid = u32Of(attrs.get(Ifla.NET_NS_PID));
      if (pid === undefined) throw sysErr("EINVAL");
      target = k.namespaceByPid(pid);
      if (target === undefined) throw sysErr("ESRCH");
    } else if (attrs.has(Ifla.NET_NS_FD)) {
      const fd = u32Of(attrs.get(Ifla.NET_NS_FD));
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
    const mac = attrs.get(Ifla.ADDRESS);
    if (mac !== undefined) {
      if (mac.payload.length < 6) throw sysErr("EINVAL");
      k.setMac(dev, mac.payload.slice(0, 6));
    }
    const mtu = attrs.get(Ifla.MTU);
    if (mtu !== undefined) {
      const v = u32Of(mtu);
      if (v === undefined) throw sysErr("EINVAL");
      k.setMtu(dev, v);
    }
    if (newName !== undefined && !renamedByMove && (byIndex || newName !== dev.name) && newName !== dev.name) k.renameDevice(dev, newName);
    const flags = u32le(ifm, 8);
    const change = u32le(ifm, 12);
    if (flags !== 0 || change !== 0) {
      // rtnl_dev_combine_flags: ifi_change 0 means "all bits".
      const want = change !== 0 ? (flags & change) | (dev.flags & ~change) : flags;
      if (((want ^ dev.flags) & 1) !== 0) k.setUp(dev, (want & 1) !== 0);
    }
    const vfl = attrs.get(Ifla.VFINFO_LIST);
    if (vfl !== undefined) {
      for (const a of parseAttrs(vfl.payload)) {
        if (attrType(a) !== IFLA_VF_INFO) throw sysErr("EINVAL");
        doSetVfInfo(dev, parseAttrs(a.payload));
      }
    }
  }

  #delLink(m: NlMessage, ns: NetNamespace): Uint8Array[] {
    if (m.payload.length < 16) throw sysErr("EINVAL");
    findDev(ns, m.payload, attrsAfter(m.payload, 16), false);
    throw sysErr("EOPNOTSUPP", "cannot delete a device owned by a driver");
  }

  // -------------------------------------------------------------------------------------------
  // Addresses (IPv4)

  #newAddr(m: NlMessage, ns: NetNamespace, add: boolean): Uint8Array[] {
    if (m.payload.length < 8) throw sysErr("EINVAL");
    const family = m.payload[0]!;
    const prefix = m.payload[1]!;
    const index = u32le(m.payload, 4);
    if (family !== AddressFamily.INET) throw sysErr("EAFNOSUPPORT", "the model guest speaks IPv4 only");
    const attrs = attrsAfter(m.payload, 8);
    const local = (attrs.get(Ifa.LOCAL) ?? attrs.get(Ifa.ADDRESS))?.payload;
    if (local === undefined || local.length < 4 || prefix > 32) throw sysErr("EINVAL");
    const dev = ns.byIndex(index);
    if (dev === undefined) throw sysErr("ENODEV");
    const addr = Ipv4Address.fromBytes(local).value;
    const labelAttr = attrs.get(Ifa.LABEL);
    const label = labelAttr !== undefined ? nlaGet.str(labelAttr) : dev.name;
    if (add) this.kernel.addAddress(dev, addr, prefix, label, (m.flags & NlmF.EXCL) !== 0);
    else this.kernel.delAddress(dev, addr, prefix);
    return [];
  }

  #getAddr(m: NlMessage, ns: NetNamespace): Uint8Array[] {
    if (!isDump(m)) throw sysErr("EOPNOTSUPP");
    const family = m.payload.length >= 1 ? m.payload[0]! : AddressFamily.UNSPEC;
    const out: Uint8Array[] = [];
    if (family === AddressFamily.UNSPEC || family === AddressFamily.INET) {
      for (const dev of ns.list()) {
        for (const a of dev.addrs) {
          const ip = Ipv4Address.fromU32(a.address);
          const r: AddrRepr = {
            // RT_SCOPE_HOST for loopback addresses
            ifa: { family: AddressFamily.INET, prefixlen: a.prefixLen, flags: IfaF.PERMANENT, scope: a.address >>> 24 === 127 ? RtScope.HOST : RtScope.UNIVERSE, index: dev.ifindex },
            address: ip,
            local: ip,
            label: a.label,
            flags: IfaF.PERMANENT,
            extra: [],
          };
          if (a.prefixLen < 31) {
            const host = a.prefixLen === 0 ? 0xffffffff : ~(0xffffffff << (32 - a.prefixLen)) >>> 0;
            r.broadcast = Ipv4Address.fromU32((a.address | host) >>> 0);
          }
          out.push(AddrRepr.emit(r, { type: Rtm.NEWADDR, flags: NlmF.MULTI, seq: m.seq, pid: m.pid }));
        }
      }
    }
    out.push(done(m));
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Routes (IPv4, table main)

  /** inet_rtm_newroute / inet_rtm_delroute, for table main. */
  #newRoute(m: NlMessage, ns: NetNamespace, add: boolean): Uint8Array[] {
    if (m.payload.length < 12) throw sysErr("EINVAL");
    const p = m.payload;
    if (p[0] !== AddressFamily.INET) throw sysErr("EAFNOSUPPORT", "the model guest speaks IPv4 only");
    const dstLen = p[1]!;
    if (dstLen > 32) throw sysErr("EINVAL");
    const attrs = attrsAfter(p, 12);
    const table = u32Of(attrs.get(Rta.TABLE)) ?? p[4]!;
    if (table !== RtTable.MAIN && table !== RtTable.UNSPEC) throw sysErr("EOPNOTSUPP", "only table main exists in the model guest");
    const dstRaw = attrs.get(Rta.DST);
    const gwRaw = attrs.get(Rta.GATEWAY);
    const dst = dstRaw === undefined ? 0 : ip4(dstRaw);
    const gateway = gwRaw === undefined ? undefined : ip4(gwRaw);
    if (dst === undefined || (gwRaw !== undefined && gateway === undefined)) throw sysErr("EINVAL");
    if (((dst & ~prefixMask(dstLen)) >>> 0) !== 0) throw sysErr("EINVAL", "route prefix has host bits set");
    const oif = u32Of(attrs.get(Rta.OIF)) ?? 0;
    const priority = u32Of(attrs.get(Rta.PRIORITY)) ?? 0;
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
      if ((m.flags & NlmF.EXCL) !== 0) throw sysErr("EEXIST");
      if ((m.flags & NlmF.REPLACE) === 0) throw sysErr("EEXIST"); // without NLM_F_REPLACE an existing route stays
    }
    const r = { dst, dstLen, gateway, oif: dev.ifindex, protocol: p[5]!, scope: p[6]!, priority };
    const j = ns.routes.findIndex(same);
    if (j >= 0) ns.routes[j] = r;
    else ns.routes.push(r);
    return [];
  }

  /** Dump of table main: connected prefixes (proto kernel, scope link) then static routes. */
  #getRoute(m: NlMessage, ns: NetNamespace): Uint8Array[] {
    if (!isDump(m)) throw sysErr("EOPNOTSUPP");
    const family = m.payload.length >= 1 ? m.payload[0]! : AddressFamily.UNSPEC;
    const out: Uint8Array[] = [];
    const emit = (dst: number, dstLen: number, protocol: number, scope: number, oif: number, gateway: number | undefined, prefsrc: number | undefined, priority: number): void => {
      const r: RouteRepr = {
        rtm: { family: AddressFamily.INET, dstLen, srcLen: 0, tos: 0, table: RtTable.MAIN, protocol, scope, type: Rtn.UNICAST, flags: 0 },
        table: RtTable.MAIN,
        oif,
        extra: [],
      };
      if (dstLen > 0) r.dst = Ipv4Address.fromU32(dst);
      if (priority !== 0) r.priority = priority;
      if (prefsrc !== undefined) r.prefsrc = Ipv4Address.fromU32(prefsrc);
      if (gateway !== undefined) r.gateway = Ipv4Address.fromU32(gateway);
      out.push(RouteRepr.emit(r, { type: Rtm.NEWROUTE, flags: NlmF.MULTI, seq: m.seq, pid: m.pid }));
    };
    if (family === AddressFamily.UNSPEC || family === AddressFamily.INET) {
      for (const d of ns.list()) {
        if (!d.isUp || d.type === ARPHRD_LOOPBACK) continue;
        for (const a of d.addrs) emit((a.address & prefixMask(a.prefixLen)) >>> 0, a.prefixLen, RtProt.KERNEL, RtScope.LINK, d.ifindex, undefined, a.address, 0);
      }
      for (const r of ns.routes) emit(r.dst, r.dstLen, r.protocol, r.scope, r.oif, r.gateway, undefined, r.priority);
    }
    out.push(done(m));
    return out;
  }
}

/** The attributes after a fixed header, by type (last wins); a bad length throws WireError (→ EINVAL). */
function attrsAfter(payload: Uint8Array, header: number): AttrMap {
  return attrMap(parseAttrs(payload.subarray(header)));
}

function i32At(b: Uint8Array, o: number): number {
  return u32le(b, o) | 0;
}

/** IPv4 as host-order number from 4 attribute bytes, or undefined when the length is wrong. */
function ip4(a: NlAttr): number | undefined {
  return a.payload.length !== 4 ? undefined : Ipv4Address.fromBytes(a.payload).value;
}

function prefixMask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** do_setvfinfo (netlink-vf.md §7): each attribute to its ndo, in Linux's order. */
function doSetVfInfo(dev: NetDevice, list: NlAttr[]): void {
  const ops = dev.ops;
  const tb = new Map<number, Uint8Array>();
  // Minimum payload lengths from ifla_vf_policy.
  const minLen: Record<number, number> = { 1: 36, 2: 12, 3: 8, 4: 8, 5: 8, 6: 12, 7: 8, 9: 8, 10: 12, 11: 12 };
  for (const a of list) {
    const t = attrType(a);
    const need = minLen[t];
    if (need !== undefined && a.payload.length < need) throw sysErr("EINVAL");
    tb.set(t, a.payload);
  }
  const vfOf = (d: Uint8Array): number => {
    const vf = u32le(d, 0);
    if (vf >= INT_MAX) throw sysErr("EINVAL");
    return vf;
  };
  const u = (d: Uint8Array, i: number): number => u32le(d, i * 4);
  let d = tb.get(IflaVf.MAC);
  if (d !== undefined) {
    if (ops.setVfMac === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfMac(vfOf(d), d.slice(4, 10));
  }
  d = tb.get(IflaVf.VLAN);
  if (d !== undefined) {
    if (ops.setVfVlan === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfVlan(vfOf(d), u(d, 1), u(d, 2), 0x8100);
  }
  d = tb.get(IflaVf.VLAN_LIST);
  if (d !== undefined) {
    const infos: Uint8Array[] = [];
    for (const e of parseAttrs(d)) {
      if (attrType(e) !== IFLA_VF_VLAN_INFO || e.payload.length < 14) throw sysErr("EINVAL");
      infos.push(e.payload);
    }
    if (infos.length === 0) throw sysErr("EINVAL");
    if (infos.length > 1) throw sysErr("EOPNOTSUPP"); // MAX_VLAN_LIST_LEN is 1
    const i0 = infos[0]!;
    if (ops.setVfVlan === undefined) throw sysErr("EOPNOTSUPP");
    const proto = (i0[12]! << 8) | i0[13]!; // __be16
    ops.setVfVlan(vfOf(i0), u(i0, 1), u(i0, 2), proto);
  }
  d = tb.get(IflaVf.TX_RATE);
  if (d !== undefined) {
    if (ops.getVfConfig === undefined || ops.setVfRate === undefined) throw sysErr("EOPNOTSUPP");
    const vf = vfOf(d);
    const cur = ops.getVfConfig(vf);
    ops.setVfRate(vf, cur.minTxRate, u(d, 1));
  }
  d = tb.get(IflaVf.RATE);
  if (d !== undefined) {
    if (ops.setVfRate === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfRate(vfOf(d), u(d, 1), u(d, 2));
  }
  d = tb.get(IflaVf.SPOOFCHK);
  if (d !== undefined) {
    if (ops.setVfSpoofchk === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfSpoofchk(vfOf(d), u(d, 1) !== 0);
  }
  d = tb.get(IflaVf.LINK_STATE);
  if (d !== undefined) {
    if (ops.setVfLinkState === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfLinkState(vfOf(d), u(d, 1));
  }
  d = tb.get(IflaVf.RSS_QUERY_EN);
  if (d !== undefined) {
    vfOf(d);
    throw sysErr("EOPNOTSUPP"); // virtio_net has no ndo_set_vf_rss_query_en
  }
  d = tb.get(IflaVf.TRUST);
  if (d !== undefined) {
    if (ops.setVfTrust === undefined) throw sysErr("EOPNOTSUPP");
    ops.setVfTrust(vfOf(d), u(d, 1) !== 0);
  }
  if (tb.has(IflaVf.IB_NODE_GUID) || tb.has(IflaVf.IB_PORT_GUID)) throw sysErr("EOPNOTSUPP"); // InfiniBand only
}

function findDev(ns: NetNamespace, ifm: Uint8Array, attrs: AttrMap, allowName: boolean): NetDevice {
  const idx = i32At(ifm, 4);
  const nameAttr = attrs.get(Ifla.IFNAME);
  let dev: NetDevice | undefined;
  if (idx > 0) dev = ns.byIndex(idx);
  else if (allowName && nameAttr !== undefined) dev = ns.byName(nlaGet.str(nameAttr));
  else throw sysErr("EINVAL");
  if (dev === undefined) throw sysErr("ENODEV");
  return dev;
}

function isDump(m: NlMessage): boolean {
  return (m.flags & NlmF.DUMP) === NlmF.DUMP;
}

/** NLMSG_ERROR: error 0 is an ACK (header only, NLM_F_CAPPED), otherwise the whole request echoed. */
function ack(m: NlMessage, error: number): Uint8Array {
  return NlErrorRepr.emit({ error, request: m, capped: error === 0 }, { seq: m.seq, pid: m.pid });
}

function done(m: NlMessage): Uint8Array {
  return NlDoneRepr.emit({ error: 0 }, { seq: m.seq, pid: m.pid });
}
