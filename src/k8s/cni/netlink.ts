import { KernelError, errnoName } from "../../base/index.js";
import { VpfError } from "../../base/index.js";
import { AddrRepr, LinkRepr, type IfInfoMsg, type VfInfo as WireVfInfo } from "../../wire/rtnetlink.js";
import type { GuestEndpointClient } from "../endpoint.js";
import { K8sError } from "../errors.js";
import * as nl from "../rtnl.js";

/**
 * An rtnetlink socket over the guest endpoint: requests with increasing sequence numbers, every
 * change with NLM_F_ACK, NLMSG_ERROR turned into a KernelError carrying the kernel's errno, and
 * malformed replies into K8S_NETLINK.
 */
export interface LinkChange {
  readonly netNsFd?: number;
  readonly ifname?: string;
  readonly address?: string;
  readonly mtu?: number;
  /** IFLA_VFINFO_LIST with one IFLA_VF_INFO (on a PF). */
  readonly vf?: WireVfInfo;
}

export interface LinkView {
  readonly index: number;
  readonly name: string;
  readonly mac: string | undefined;
  readonly mtu: number | undefined;
  readonly up: boolean;
  readonly vfs: nl.VfInfo[] | undefined;
}

export class Rtnl {
  #seq = 1;
  constructor(private readonly client: GuestEndpointClient) {}

  /** Sends one message (built by `build` with our sequence number); returns the non-control replies. */
  async request(netns: string | null, build: (seq: number) => Uint8Array): Promise<nl.NlMessage[]> {
    const seq = this.#seq++;
    const replies = await this.client.netlink(build(seq), netns);
    try {
      const out: nl.NlMessage[] = [];
      for (const r of replies) {
        for (const m of nl.parseMessages(r)) {
          if (m.seq !== seq) continue;
          if (m.type === nl.NlMsgType.ERROR) {
            const errno = nl.errorOf(m);
            if (errno === 0) continue;
            const name = errnoName(errno);
            throw new KernelError(name ?? "EIO", name === undefined ? `kernel error ${errno}` : undefined, { details: { errno } });
          }
          if (m.type === nl.NlMsgType.DONE) continue;
          out.push(m);
        }
      }
      return out;
    } catch (e) {
      if (e instanceof KernelError || !(e instanceof VpfError)) throw e;
      throw new K8sError("K8S_NETLINK", `malformed rtnetlink reply: ${e.message}`, { cause: e });
    }
  }

  /** RTM_GETLINK by name (ifindex 0 + IFLA_IFNAME) or index; VF info when asked (RTEXT_FILTER_VF). */
  async getLink(netns: string | null, which: { name: string } | { index: number }, withVfs = false): Promise<LinkView> {
    const ifi: IfInfoMsg = { family: 0, type: 0, index: "index" in which ? which.index : 0, flags: 0, change: 0 };
    const req: LinkRepr = { ifi, extra: [] };
    if ("name" in which) req.ifname = which.name;
    if (withVfs) req.extMask = nl.RtextFilter.VF | nl.RtextFilter.SKIP_STATS;
    const replies = await this.request(netns, (seq) => LinkRepr.emit(req, { type: nl.Rtm.GETLINK, flags: nl.NlmF.REQUEST, seq, pid: 0 }));
    const m = replies.find((r) => r.type === nl.Rtm.NEWLINK);
    if (m === undefined) throw new K8sError("K8S_NETLINK", "RTM_GETLINK got no RTM_NEWLINK answer");
    let r: LinkRepr;
    try {
      r = LinkRepr.parse(m);
    } catch (e) {
      throw new K8sError("K8S_NETLINK", `malformed RTM_NEWLINK: ${(e as Error).message}`, { cause: e });
    }
    return {
      index: r.ifi.index,
      name: r.ifname ?? "",
      mac: r.address === undefined || r.address.length !== 6 ? undefined : nl.macText(r.address),
      mtu: r.mtu,
      up: (r.ifi.flags & nl.Iff.UP) !== 0,
      vfs: r.vfInfoList?.map(nl.flattenVf),
    };
  }

  /** RTM_SETLINK on ifindex with the given changes and flag change. */
  async setLink(netns: string | null, index: number, c: LinkChange, flags = 0, change = 0): Promise<void> {
    const req: LinkRepr = { ifi: { family: 0, type: 0, index, flags, change }, extra: [] };
    if (c.netNsFd !== undefined) req.netNsFd = c.netNsFd;
    if (c.ifname !== undefined) req.ifname = c.ifname;
    if (c.address !== undefined) req.address = nl.macBytes(c.address);
    if (c.mtu !== undefined) req.mtu = c.mtu;
    if (c.vf !== undefined) req.vfInfoList = [c.vf];
    await this.request(netns, (seq) => LinkRepr.emit(req, { type: nl.Rtm.SETLINK, flags: nl.NlmF.REQUEST | nl.NlmF.ACK, seq, pid: 0 }));
  }

  async addAddress(netns: string, index: number, addr: Uint8Array, prefixlen: number): Promise<void> {
    const ip = nl.ipAddress(addr);
    const family = addr.length === 4 ? nl.AddressFamily.INET : nl.AddressFamily.INET6;
    const req: AddrRepr = { ifa: { family, prefixlen, flags: 0, scope: 0, index }, local: ip, address: ip, extra: [] };
    const flags = nl.NlmF.REQUEST | nl.NlmF.ACK | nl.NlmF.CREATE | nl.NlmF.EXCL;
    await this.request(netns, (seq) => AddrRepr.emit(req, { type: nl.Rtm.NEWADDR, flags, seq, pid: 0 }));
  }

  async addRoute(netns: string, index: number, dst: Uint8Array, dstLen: number, gw: Uint8Array | undefined): Promise<void> {
    const family = dst.length === 4 ? nl.AddressFamily.INET : nl.AddressFamily.INET6;
    // As `ip route add DST via GW dev IF`: table main, protocol boot, scope universe, unicast.
    const req: nl.RouteRepr = {
      rtm: { family, dstLen, srcLen: 0, tos: 0, table: nl.RtTable.MAIN, protocol: nl.RtProt.BOOT, scope: nl.RtScope.UNIVERSE, type: nl.Rtn.UNICAST, flags: 0 },
      dst: nl.ipAddress(dst),
      oif: index,
      extra: [],
    };
    if (gw !== undefined) req.gateway = nl.ipAddress(gw);
    const flags = nl.NlmF.REQUEST | nl.NlmF.ACK | nl.NlmF.CREATE | nl.NlmF.EXCL;
    await this.request(netns, (seq) => nl.RouteRepr.emit(req, { type: nl.Rtm.NEWROUTE, flags, seq, pid: 0 }));
  }

  /** Addresses of one link, from an RTM_GETADDR dump. */
  async addresses(netns: string, index: number): Promise<{ addr: Uint8Array; prefixlen: number }[]> {
    const req: AddrRepr = { ifa: { family: 0, prefixlen: 0, flags: 0, scope: 0, index: 0 }, extra: [] };
    const replies = await this.request(netns, (seq) => AddrRepr.emit(req, { type: nl.Rtm.GETADDR, flags: nl.NlmF.REQUEST | nl.NlmF.DUMP, seq, pid: 0 }));
    const out: { addr: Uint8Array; prefixlen: number }[] = [];
    for (const m of replies) {
      if (m.type !== nl.Rtm.NEWADDR) continue;
      let r: AddrRepr;
      try {
        r = AddrRepr.parse(m);
      } catch (e) {
        throw new K8sError("K8S_NETLINK", `malformed RTM_NEWADDR: ${(e as Error).message}`, { cause: e });
      }
      const a = r.local ?? r.address;
      if (r.ifa.index === index && a !== undefined) out.push({ addr: a.bytes(), prefixlen: r.ifa.prefixlen });
    }
    return out;
  }
}
