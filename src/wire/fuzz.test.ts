import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ArpPacket,
  ArpRepr,
  EthernetFrame,
  EthernetRepr,
  IcmpPacket,
  IcmpRepr,
  Icmpv6Packet,
  Icmpv6Repr,
  Ipv4Address,
  Ipv4Packet,
  Ipv4Repr,
  Ipv6Address,
  Ipv6Packet,
  Ipv6Repr,
  MacAddress,
  TcpPacket,
  TcpRepr,
  UdpPacket,
  UdpRepr,
  WireError,
  buildArpFrame,
  buildIpFrame,
  dissectFrame,
  type Icmpv6Repr as Icmpv6ReprT,
  type IcmpRepr as IcmpReprT,
  type L4Spec,
} from "./index.js";

function onlyWireErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof WireError, `unexpected ${e instanceof Error ? e.stack : String(e)}`);
  }
}

const v4 = fc.nat({ max: 0xffffffff }).map((v) => Ipv4Address.fromU32(v));
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Ipv6Address.fromBytes(b));
const mac = fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((k) => MacAddress.fromKey(k));
const tag = fc.record({ tpid: fc.constantFrom(0x8100, 0x88a8), pcp: fc.integer({ min: 0, max: 7 }), dei: fc.boolean(), vid: fc.integer({ min: 0, max: 4095 }) }).map((t) => ({ ...t }));
const bytes = (n: number) => fc.uint8Array({ maxLength: n });
const port = fc.nat({ max: 0xffff });

const icmp: fc.Arbitrary<IcmpReprT> = fc.oneof(
  fc.record({ kind: fc.constantFrom("echoRequest" as const, "echoReply" as const), ident: port, seq: port, data: bytes(32) }).map((x) => ({ ...x })),
  fc.record({ kind: fc.constant("other" as const), type: fc.constantFrom(3, 5, 11, 13), code: fc.nat({ max: 255 }), restOfHeader: fc.nat({ max: 0xffffffff }), data: bytes(32) }).map((x) => ({ ...x })),
);
const ndpOpt = fc.record({ type: fc.nat({ max: 255 }), data: fc.nat({ max: 3 }).chain((k) => fc.uint8Array({ minLength: 6 + 8 * k, maxLength: 6 + 8 * k })) }).map((x) => ({ ...x }));
const icmpv6: fc.Arbitrary<Icmpv6ReprT> = fc.oneof(
  fc.record({ kind: fc.constantFrom("echoRequest" as const, "echoReply" as const), ident: port, seq: port, data: bytes(32) }).map((x) => ({ ...x })),
  fc.record({ kind: fc.constant("neighborSolicit" as const), target: v6, options: fc.array(ndpOpt, { maxLength: 2 }) }).map((x) => ({ ...x })),
  fc.record({ kind: fc.constant("neighborAdvert" as const), router: fc.boolean(), solicited: fc.boolean(), override: fc.boolean(), target: v6, options: fc.array(ndpOpt, { maxLength: 2 }) }).map((x) => ({ ...x })),
  fc.record({ kind: fc.constant("other" as const), type: fc.constantFrom(1, 2, 3, 4, 133, 134, 137), code: fc.nat({ max: 255 }), body: bytes(32) }).map((x) => ({ ...x })),
);

/** Valid frames of every kind vpf builds. */
const frame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc
    .tuple(mac, mac, fc.array(tag, { maxLength: 2 }), fc.tuple(v4, v4), fc.oneof(
      fc.record({ proto: fc.constant("udp" as const), srcPort: port, dstPort: port, payload: bytes(48) }),
      fc.record({ proto: fc.constant("tcp" as const), srcPort: port, dstPort: port, payload: bytes(48) }),
      icmp.map((repr): L4Spec => ({ proto: "icmp", repr })),
    ))
    .map(([d, s, vlans, [a, b], l4]) => buildIpFrame({ dst: d, src: s, vlans }, { src: a, dst: b }, l4)),
  fc
    .tuple(mac, mac, fc.array(tag, { maxLength: 2 }), fc.tuple(v6, v6), fc.oneof(
      fc.record({ proto: fc.constant("udp" as const), srcPort: port, dstPort: port, payload: bytes(48) }),
      fc.record({ proto: fc.constant("tcp" as const), srcPort: port, dstPort: port, payload: bytes(48) }),
      icmpv6.map((repr): L4Spec => ({ proto: "icmpv6", repr })),
    ))
    .map(([d, s, vlans, [a, b], l4]) => buildIpFrame({ dst: d, src: s, vlans }, { src: a, dst: b }, l4)),
  fc.tuple(mac, mac, fc.array(tag, { maxLength: 2 }), fc.nat({ max: 0xffff }), mac, v4, mac, v4).map(([d, s, vlans, operation, sm, si, tm, ti]) =>
    buildArpFrame({ dst: d, src: s, vlans, pad: true }, { operation, senderMac: sm, senderIp: si, targetMac: tm, targetIp: ti }),
  ),
);

test("property: every layer of a built frame re-emits to the same bytes (emit ∘ parse = id)", () => {
  fc.assert(
    fc.property(frame, (f) => {
      const d = dissectFrame(f);
      const out = new Uint8Array(f.length);
      EthernetRepr.emit(d.eth, out);
      const ef = EthernetFrame.check(f);
      let o = ef.headerLen;
      const src = d.ipv4?.src ?? d.ipv6?.src;
      const dst = d.ipv4?.dst ?? d.ipv6?.dst;
      if (d.arp) ArpRepr.emit(d.arp, out.subarray(o));
      if (d.ipv4) {
        Ipv4Repr.emit(d.ipv4, out.subarray(o));
        o += Ipv4Repr.bufferLen(d.ipv4);
      }
      if (d.ipv6) {
        Ipv6Repr.emit(d.ipv6, out.subarray(o));
        o += 40;
      }
      if (src !== undefined && dst !== undefined) {
        if (d.udp) UdpRepr.emit(d.udp, out.subarray(o), src, dst);
        if (d.tcp) TcpRepr.emit(d.tcp, out.subarray(o), src, dst);
        if (d.icmpv6) Icmpv6Repr.emit(d.icmpv6, out.subarray(o), src, dst);
      }
      if (d.icmp) IcmpRepr.emit(d.icmp, out.subarray(o));
      assert.deepEqual(out, f);
    }),
    { numRuns: 300 },
  );
});

test("property: mutated and truncated frames make the parsers throw only WireError", () => {
  fc.assert(
    fc.property(frame, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { maxLength: 4 }), fc.nat(), (f, flips, cut) => {
      const g = f.slice(0, f.length - (cut % (f.length + 1)));
      for (const [i, v] of flips) if (g.length > 0) g[i % g.length] = v;
      onlyWireErrors(() => dissectFrame(g));
      onlyWireErrors(() => dissectFrame(g, { verifyChecksums: false }));
    }),
    { numRuns: 500 },
  );
});

test("property: random bytes make every frame parser throw only WireError", () => {
  const a4 = Ipv4Address.parse("10.0.0.1");
  const a6 = Ipv6Address.parse("fd00::1");
  fc.assert(
    fc.property(bytes(120), (b) => {
      onlyWireErrors(() => dissectFrame(b));
      onlyWireErrors(() => ArpRepr.parse(ArpPacket.check(b)));
      onlyWireErrors(() => Ipv4Repr.parse(Ipv4Packet.check(b), { verifyChecksum: false }));
      onlyWireErrors(() => Ipv6Repr.parse(Ipv6Packet.check(b)));
      onlyWireErrors(() => UdpRepr.parse(UdpPacket.check(b), a4, a4, { verifyChecksum: false }));
      onlyWireErrors(() => TcpRepr.parse(TcpPacket.check(b), a6, a6, { verifyChecksum: false }));
      onlyWireErrors(() => IcmpRepr.parse(IcmpPacket.check(b), { verifyChecksum: false }));
      onlyWireErrors(() => Icmpv6Repr.parse(Icmpv6Packet.check(b), a6, a6, { verifyChecksum: false }));
      // With a correct version nibble the IP checks go deeper.
      const v4b = Uint8Array.from([0x45, ...b]);
      onlyWireErrors(() => Ipv4Repr.parse(Ipv4Packet.check(v4b), { verifyChecksum: false }));
      const v6b = Uint8Array.from([0x60, ...b]);
      onlyWireErrors(() => Ipv6Repr.parse(Ipv6Packet.check(v6b)));
      // ICMPv6 with ND types and code 0 reaches the option parser.
      for (const t of [135, 136, 128]) onlyWireErrors(() => Icmpv6Repr.parse(Icmpv6Packet.check(Uint8Array.from([t, 0, ...b])), a6, a6, { verifyChecksum: false }));
    }),
    { numRuns: 400 },
  );
});

test("property: text parsers throw only WireError", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 45 }), (s) => {
      onlyWireErrors(() => MacAddress.parse(s));
      onlyWireErrors(() => Ipv4Address.parse(s));
      onlyWireErrors(() => Ipv6Address.parse(s));
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.array(fc.constantFrom("0", "1", "a", "f", ":", "::", ".", "255", "ffff"), { maxLength: 20 }), (parts) => {
      const s = parts.join("");
      onlyWireErrors(() => Ipv6Address.parse(s));
      onlyWireErrors(() => Ipv4Address.parse(s));
    }),
    { numRuns: 400 },
  );
});
