/**
 * A small IPv4 stack per network namespace, enough for `ping` between netdevs: ARP (RFC 826)
 * with a neighbour table and a queue of packets awaiting resolution, IPv4 (RFC 791) delivery by
 * connected routes, ICMP echo (RFC 792). Hosts follow Linux's weak host model: an address of any
 * device in the namespace is local.
 */
import { sysErr } from "./errors.js";
import type { NetDevice, NetNamespace } from "./netdev.js";

const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const IPPROTO_ICMP = 1;

export interface EchoReply {
  readonly from: number;
  readonly id: number;
  readonly seq: number;
  readonly ttl: number;
  readonly bytes: number;
}

interface Pending {
  readonly dev: NetDevice;
  readonly packet: Uint8Array; // IPv4 packet without Ethernet header
}

export interface StackCounters {
  arpRequestsSent: number;
  arpRepliesSent: number;
  icmpEchoRequestsReceived: number;
  icmpEchoRepliesReceived: number;
  ipDelivered: number;
  dropped: number;
}

export function ipToString(a: number): string {
  return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

export function parseIpv4(text: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (m === null) throw sysErr("EINVAL", `not an IPv4 address: ${JSON.stringify(text)}`);
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw sysErr("EINVAL", `not an IPv4 address: ${JSON.stringify(text)}`);
    v = v * 256 + o;
  }
  return v >>> 0;
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** RFC 1071 Internet checksum over b[off, off+len). */
export function inetChecksum(b: Uint8Array, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < len; i += 2) sum += (b[off + i]! << 8) | b[off + i + 1]!;
  if (len % 2 === 1) sum += b[off + len - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export class IpStack {
  readonly neighbours = new Map<number, Uint8Array>();
  readonly #pending = new Map<number, Pending[]>();
  readonly replies: EchoReply[] = [];
  readonly counters: StackCounters = { arpRequestsSent: 0, arpRepliesSent: 0, icmpEchoRequestsReceived: 0, icmpEchoRepliesReceived: 0, ipDelivered: 0, dropped: 0 };
  #ipId = 1;

  constructor(readonly ns: NetNamespace) {}

  isLocal(addr: number): boolean {
    for (const d of this.ns.devices.values()) for (const a of d.addrs) if (a.address === addr) return true;
    return false;
  }

  /** Connected routes only: the up device whose prefix holds dst (longest), and its address. */
  connected(dst: number): { dev: NetDevice; src: number; prefixLen: number } | undefined {
    let best: { dev: NetDevice; src: number; prefixLen: number } | undefined;
    for (const d of this.ns.list()) {
      if (!d.isUp) continue;
      for (const a of d.addrs) {
        const m = mask(a.prefixLen);
        if (((a.address & m) >>> 0) === ((dst & m) >>> 0) && (best === undefined || a.prefixLen > best.prefixLen)) best = { dev: d, src: a.address, prefixLen: a.prefixLen };
      }
    }
    return best;
  }

  /**
   * Longest-prefix match over connected routes and the namespace's static routes (RTM_NEWROUTE);
   * a gateway route resolves its next hop through a connected route on its device.
   */
  route(dst: number): { dev: NetDevice; src: number; nexthop: number } | undefined {
    const c = this.connected(dst);
    let best: { dev: NetDevice; src: number; nexthop: number; p: number } | undefined = c === undefined ? undefined : { dev: c.dev, src: c.src, nexthop: dst, p: c.prefixLen };
    for (const r of this.ns.routes) {
      const m = mask(r.dstLen);
      if (((r.dst & m) >>> 0) !== ((dst & m) >>> 0) || (best !== undefined && r.dstLen <= best.p)) continue;
      const dev = this.ns.byIndex(r.oif);
      if (dev === undefined || !dev.isUp) continue;
      const src = dev.addrs[0]?.address;
      if (src === undefined) continue;
      best = { dev, src, nexthop: r.gateway ?? dst, p: r.dstLen };
    }
    return best === undefined ? undefined : { dev: best.dev, src: best.src, nexthop: best.nexthop };
  }

  /** Sends one ICMP echo request; the reply, if any, lands in `replies`. */
  sendEcho(dst: number, id: number, seq: number, payloadBytes = 56): void {
    const local = this.isLocal(dst);
    const lo = this.ns.byName("lo");
    const r = local && lo !== undefined && lo.isUp ? { dev: lo, src: dst, nexthop: dst } : this.route(dst);
    if (r === undefined) throw sysErr("ENETUNREACH", `no route to ${ipToString(dst)}`);
    const icmp = new Uint8Array(8 + payloadBytes);
    icmp[0] = 8;
    icmp[4] = (id >> 8) & 255;
    icmp[5] = id & 255;
    icmp[6] = (seq >> 8) & 255;
    icmp[7] = seq & 255;
    for (let i = 0; i < payloadBytes; i++) icmp[8 + i] = i & 255;
    const c = inetChecksum(icmp, 0, icmp.length);
    icmp[2] = c >> 8;
    icmp[3] = c & 255;
    this.#sendIp(r.dev, r.src, dst, IPPROTO_ICMP, icmp, r.nexthop);
  }

  #sendIp(dev: NetDevice, src: number, dst: number, proto: number, payload: Uint8Array, nexthop = dst): void {
    const p = new Uint8Array(20 + payload.length);
    p[0] = 0x45;
    const len = p.length;
    p[2] = len >> 8;
    p[3] = len & 255;
    const id = this.#ipId++ & 0xffff;
    p[4] = id >> 8;
    p[5] = id & 255;
    p[6] = 0x40; // DF, as Linux sets for ping with PMTU discovery
    p[8] = 64;
    p[9] = proto;
    writeIp(p, 12, src);
    writeIp(p, 16, dst);
    const c = inetChecksum(p, 0, 20);
    p[10] = c >> 8;
    p[11] = c & 255;
    p.set(payload, 20);
    this.#output(dev, nexthop, p);
  }

  #output(dev: NetDevice, nexthop: number, packet: Uint8Array): void {
    if (dev.type === 772) {
      // Loopback: straight back into this namespace.
      dev.stats.txPackets++;
      dev.stats.txBytes += packet.length;
      dev.stats.rxPackets++;
      dev.stats.rxBytes += packet.length;
      this.#inputIp(dev, packet);
      return;
    }
    const mac = this.neighbours.get(nexthop);
    if (mac !== undefined) {
      dev.transmit(ethFrame(mac, dev.mac, ETH_P_IP, packet));
      return;
    }
    const q = this.#pending.get(nexthop) ?? [];
    // A small per-neighbour queue (Linux: unres_qlen_bytes); when full, the oldest packet goes,
    // as __neigh_event_send drops from the head.
    if (q.length >= 3) {
      q.shift();
      this.counters.dropped++;
    }
    q.push({ dev, packet });
    this.#pending.set(nexthop, q);
    const src = dev.addrs[0]?.address ?? 0;
    this.#sendArp(dev, 1, new Uint8Array(6), src, nexthop, new Uint8Array([255, 255, 255, 255, 255, 255]));
    this.counters.arpRequestsSent++;
  }

  #sendArp(dev: NetDevice, op: number, tha: Uint8Array, spa: number, tpa: number, dstMac: Uint8Array): void {
    const a = new Uint8Array(28);
    a[1] = 1; // htype Ethernet
    a[2] = 0x08; // ptype IPv4
    a[4] = 6;
    a[5] = 4;
    a[7] = op;
    a.set(dev.mac, 8);
    writeIp(a, 14, spa);
    a.set(tha, 18);
    writeIp(a, 24, tpa);
    dev.transmit(ethFrame(dstMac, dev.mac, ETH_P_ARP, a));
  }

  /** Entry point for every frame a device of this namespace received. */
  input(dev: NetDevice, frame: Uint8Array): void {
    if (frame.length < 14) {
      this.counters.dropped++;
      return;
    }
    const dstIsUs = frame[0] === dev.mac[0] && frame[1] === dev.mac[1] && frame[2] === dev.mac[2] && frame[3] === dev.mac[3] && frame[4] === dev.mac[4] && frame[5] === dev.mac[5];
    const group = ((frame[0] ?? 0) & 1) === 1;
    if (!dstIsUs && !group) {
      this.counters.dropped++;
      return;
    }
    const type = (frame[12]! << 8) | frame[13]!;
    const body = frame.subarray(14);
    if (type === ETH_P_ARP) this.#inputArp(dev, body);
    else if (type === ETH_P_IP) this.#inputIp(dev, body);
    else this.counters.dropped++;
  }

  #inputArp(dev: NetDevice, a: Uint8Array): void {
    if (a.length < 28 || a[1] !== 1 || a[2] !== 0x08 || a[3] !== 0 || a[4] !== 6 || a[5] !== 4) {
      this.counters.dropped++;
      return;
    }
    const op = (a[6]! << 8) | a[7]!;
    const sha = a.slice(8, 14);
    const spa = readIp(a, 14);
    const tpa = readIp(a, 24);
    const forUs = dev.addrs.some((x) => x.address === tpa);
    if (forUs || this.neighbours.has(spa)) this.neighbours.set(spa, sha);
    if (op === 1 && forUs) {
      this.#sendArp(dev, 2, sha, tpa, spa, sha);
      this.counters.arpRepliesSent++;
    }
    const q = this.#pending.get(spa);
    if (q !== undefined && this.neighbours.has(spa)) {
      this.#pending.delete(spa);
      for (const p of q) p.dev.transmit(ethFrame(sha, p.dev.mac, ETH_P_IP, p.packet));
    }
  }

  #inputIp(dev: NetDevice, p: Uint8Array): void {
    if (p.length < 20 || p[0]! >> 4 !== 4) {
      this.counters.dropped++;
      return;
    }
    const ihl = (p[0]! & 15) * 4;
    const total = (p[2]! << 8) | p[3]!;
    if (ihl < 20 || total < ihl || total > p.length || inetChecksum(p, 0, ihl) !== 0) {
      this.counters.dropped++;
      return;
    }
    const dst = readIp(p, 16);
    if (!this.isLocal(dst)) {
      this.counters.dropped++; // no forwarding in the model guest
      return;
    }
    this.counters.ipDelivered++;
    const src = readIp(p, 12);
    if (p[9] !== IPPROTO_ICMP) return;
    const icmp = p.subarray(ihl, total);
    if (icmp.length < 8 || inetChecksum(icmp, 0, icmp.length) !== 0) {
      this.counters.dropped++;
      return;
    }
    if (icmp[0] === 8) {
      this.counters.icmpEchoRequestsReceived++;
      const reply = icmp.slice();
      reply[0] = 0;
      reply[2] = 0;
      reply[3] = 0;
      const c = inetChecksum(reply, 0, reply.length);
      reply[2] = c >> 8;
      reply[3] = c & 255;
      const r = this.isLocal(src) ? { dev, src: dst, nexthop: src } : this.route(src);
      if (r === undefined) return;
      this.#sendIp(r.dev, dst, src, IPPROTO_ICMP, reply, r.nexthop);
    } else if (icmp[0] === 0) {
      this.counters.icmpEchoRepliesReceived++;
      this.replies.push({ from: src, id: (icmp[4]! << 8) | icmp[5]!, seq: (icmp[6]! << 8) | icmp[7]!, ttl: p[8]!, bytes: icmp.length });
    }
  }
}

function readIp(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function writeIp(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 255;
  b[o + 1] = (v >>> 16) & 255;
  b[o + 2] = (v >>> 8) & 255;
  b[o + 3] = v & 255;
}

function ethFrame(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  // Pad to the 60-byte Ethernet minimum (without FCS), as a NIC driver would.
  const f = new Uint8Array(Math.max(60, 14 + payload.length));
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = type >> 8;
  f[13] = type & 255;
  f.set(payload, 14);
  return f;
}
