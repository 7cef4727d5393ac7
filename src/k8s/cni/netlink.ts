import { KernelError, errnoName } from "../../base/index.js";
import type { GuestEndpointClient } from "../endpoint.js";
import { K8sError } from "../errors.js";
import * as nl from "../rtnl.js";

/**
 * An rtnetlink socket over the guest endpoint: requests with increasing sequence numbers, every
 * change with NLM_F_ACK, and NLMSG_ERROR turned into a KernelError carrying the kernel's errno.
 */
export class Rtnl {
  #seq = 1;
  constructor(private readonly client: GuestEndpointClient) {}

  async request(netns: string | null, type: number, flags: number, payload: Uint8Array): Promise<nl.NlMessage[]> {
    const seq = this.#seq++;
    const replies = await this.client.netlink(nl.encodeMessage(type, nl.NLM_F_REQUEST | flags, seq, payload), netns);
    const out: nl.NlMessage[] = [];
    for (const r of replies) {
      for (const m of nl.parseMessages(r)) {
        if (m.seq !== seq) continue;
        if (m.type === nl.NLMSG_ERROR) {
          const errno = nl.errorOf(m);
          if (errno === 0) continue;
          const name = errnoName(errno);
          throw new KernelError(name ?? "EIO", name === undefined ? `kernel error ${errno}` : undefined, { details: { errno, request: type } });
        }
        if (m.type === nl.NLMSG_DONE) continue;
        out.push(m);
      }
    }
    return out;
  }

  /** RTM_GETLINK by name (ifindex 0 + IFLA_IFNAME) or index; VF info when asked (RTEXT_FILTER_VF). */
  async getLink(netns: string | null, which: { name: string } | { index: number }, withVfs = false): Promise<LinkView> {
    const attrs: nl.NlAttr[] = [];
    if ("name" in which) attrs.push(nl.attrStr(nl.IFLA_IFNAME, which.name));
    if (withVfs) attrs.push(nl.attrU32(nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_VF | nl.RTEXT_FILTER_SKIP_STATS));
    const index = "index" in which ? which.index : 0;
    const replies = await this.request(netns, nl.RTM_GETLINK, 0, nl.encodeIfInfo({ family: 0, type: 0, index, flags: 0, change: 0 }, attrs));
    const m = replies.find((r) => r.type === nl.RTM_NEWLINK);
    if (m === undefined) throw new K8sError("K8S_NETLINK", "RTM_GETLINK got no RTM_NEWLINK answer");
    return linkView(m);
  }

  /** RTM_SETLINK on ifindex with the given attributes and flag change. */
  async setLink(netns: string | null, index: number, attrs: readonly nl.NlAttr[], flags = 0, change = 0): Promise<void> {
    await this.request(netns, nl.RTM_SETLINK, nl.NLM_F_ACK, nl.encodeIfInfo({ family: 0, type: 0, index, flags, change }, attrs));
  }

  async addAddress(netns: string, index: number, family: number, addr: Uint8Array, prefixlen: number): Promise<void> {
    const payload = nl.encodeIfAddr({ family, prefixlen, flags: 0, scope: 0, index }, [nl.attr(nl.IFA_LOCAL, addr), nl.attr(nl.IFA_ADDRESS, addr)]);
    await this.request(netns, nl.RTM_NEWADDR, nl.NLM_F_ACK | 0x400 | 0x200, payload); // NLM_F_CREATE | NLM_F_EXCL
  }

  async addRoute(netns: string, index: number, family: number, dst: Uint8Array, dstLen: number, gw: Uint8Array | undefined): Promise<void> {
    const attrs = [nl.attr(nl.RTA_DST, dst), nl.attrU32(nl.RTA_OIF, index)];
    if (gw !== undefined) attrs.push(nl.attr(nl.RTA_GATEWAY, gw));
    // table main (254), protocol boot (3), scope universe (0), type unicast (1)
    const payload = nl.encodeRtMsg({ family, dstLen, table: 254, protocol: 3, scope: 0, type: 1 }, attrs);
    await this.request(netns, nl.RTM_NEWROUTE, nl.NLM_F_ACK | 0x400 | 0x200, payload);
  }

  /** Addresses of one link, from an RTM_GETADDR dump, as "addr/len" text keys. */
  async addresses(netns: string, index: number): Promise<{ family: number; addr: Uint8Array; prefixlen: number }[]> {
    const replies = await this.request(netns, nl.RTM_GETADDR, nl.NLM_F_DUMP, nl.encodeIfAddr({ family: 0, prefixlen: 0, flags: 0, scope: 0, index: 0 }, []));
    const out: { family: number; addr: Uint8Array; prefixlen: number }[] = [];
    for (const r of replies) {
      if (r.type !== nl.RTM_NEWADDR) continue;
      const { addr, attrs } = nl.parseIfAddr(r.payload);
      if (addr.index !== index) continue;
      const a = nl.findAttr(attrs, nl.IFA_LOCAL) ?? nl.findAttr(attrs, nl.IFA_ADDRESS);
      if (a !== undefined) out.push({ family: addr.family, addr: a.data.slice(), prefixlen: addr.prefixlen });
    }
    return out;
  }
}

export interface LinkView {
  readonly index: number;
  readonly name: string;
  readonly mac: string | undefined;
  readonly mtu: number | undefined;
  readonly up: boolean;
  readonly vfs: nl.VfInfo[] | undefined;
}

function linkView(m: nl.NlMessage): LinkView {
  const { info, attrs } = nl.parseIfInfo(m.payload);
  const name = nl.findAttr(attrs, nl.IFLA_IFNAME);
  const mac = nl.findAttr(attrs, nl.IFLA_ADDRESS);
  const mtu = nl.findAttr(attrs, nl.IFLA_MTU);
  const list = nl.findAttr(attrs, nl.IFLA_VFINFO_LIST);
  return {
    index: info.index,
    name: name === undefined ? "" : nl.attrAsString(name),
    mac: mac === undefined || mac.data.length < 6 ? undefined : nl.macText(mac.data),
    mtu: mtu === undefined ? undefined : nl.attrAsU32(mtu),
    up: (info.flags & nl.IFF_UP) !== 0,
    vfs: list === undefined ? undefined : nl.parseVfInfoList(list),
  };
}
