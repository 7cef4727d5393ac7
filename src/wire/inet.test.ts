import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ArpPacket,
  ArpRepr,
  EtherType,
  IcmpPacket,
  IcmpRepr,
  Icmpv6Packet,
  Icmpv6Repr,
  IpProtocol,
  Ipv4Address,
  Ipv4Packet,
  Ipv4Repr,
  Ipv6Address,
  Ipv6Packet,
  Ipv6Repr,
  MacAddress,
  TcpFlags,
  TcpPacket,
  TcpRepr,
  UdpPacket,
  UdpRepr,
  WireError,
  buildIcmpv6Frame,
  buildIpFrame,
  buildUdpFrame,
  dissectFrame,
  checksumAdd,
  internetChecksum,
  ipv4Repr,
  parseIpAddress,
  tcpRepr,
  vlanTag,
} from "./index.js";

const is = (code: string) => (e: unknown) => e instanceof WireError && e.code === code;
function hexBytes(h: string): Uint8Array {
  const s = h.replace(/\s+/g, "");
  return Uint8Array.from({ length: s.length / 2 }, (_, i) => parseInt(s.slice(2 * i, 2 * i + 2), 16));
}

test("IPv4 and IPv6 address text", () => {
  assert.equal(Ipv4Address.parse("192.168.0.199").toString(), "192.168.0.199");
  assert.equal(Ipv4Address.parse("192.168.0.199").value, 0xc0a800c7);
  for (const bad of ["1.2.3", "1.2.3.256", "01.2.3.4", "1.2.3.4.5", "a.b.c.d", ""]) assert.throws(() => Ipv4Address.parse(bad), is("WIRE_BAD_VALUE"), bad);
  const cases: [string, string][] = [
    ["fd00::1", "fd00::1"],
    ["FE80:0:0:0:0200:00ff:fe00:000a", "fe80::200:ff:fe00:a"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
  ];
  for (const [i, o] of cases) assert.equal(Ipv6Address.parse(i).toString(), o, i);
  for (const bad of [":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", ":1", "1:2:3:4:5:6:7::8"]) assert.throws(() => Ipv6Address.parse(bad), is("WIRE_BAD_VALUE"), bad);
  assert.equal(parseIpAddress("10.1.2.3").family, 4);
  assert.equal(parseIpAddress("::2").family, 6);
  const mac = MacAddress.parse("02:00:00:00:00:0a");
  assert.equal(Ipv6Address.linkLocalFromMac(mac).toString(), "fe80::ff:fe00:a");
  const t = Ipv6Address.parse("fd00::12:3456");
  assert.equal(t.solicitedNodeMulticast().toString(), "ff02::1:ff12:3456");
  assert.equal(t.solicitedNodeMulticast().multicastMac().toString(), "33:33:ff:12:34:56");
});

test("IPv6 text round trips for random addresses", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
      const a = Ipv6Address.fromBytes(b);
      assert.deepEqual(Ipv6Address.parse(a.toString()).bytes(), b);
    }),
  );
});

test("IPv4 header: a known checksum, checked view, parse and emit", () => {
  // Header from RFC 1071-style worked examples: 192.168.0.1 -> 192.168.0.199, UDP, checksum 0xb861.
  const h = hexBytes("45000073000040004011b861c0a80001c0a800c7");
  const pkt = new Uint8Array(0x73);
  pkt.set(h);
  const p = Ipv4Packet.check(pkt);
  assert.equal(p.checksum, 0xb861);
  assert.equal(p.verifyChecksum(), true);
  assert.equal(internetChecksum(h), 0);
  const r = Ipv4Repr.parse(p);
  assert.equal(r.src.toString(), "192.168.0.1");
  assert.equal(r.protocol, IpProtocol.UDP);
  assert.equal(r.payloadLen, 0x73 - 20);
  assert.equal(r.dontFrag, true);
  const out = new Uint8Array(20);
  Ipv4Repr.emit(r, out);
  assert.deepEqual(out, h);
  pkt[10] = pkt[10]! ^ 1;
  assert.throws(() => Ipv4Repr.parse(Ipv4Packet.check(pkt)), is("WIRE_BAD_CHECKSUM"));
  assert.equal(Ipv4Repr.parse(Ipv4Packet.check(pkt), { verifyChecksum: false }).ttl, 64);
});

test("IPv4 checked constructor: version, IHL, total length, options", () => {
  const r = ipv4Repr({ src: Ipv4Address.parse("1.1.1.1"), dst: Ipv4Address.parse("2.2.2.2"), protocol: 99, payloadLen: 4, options: Uint8Array.of(1, 1, 1, 0) });
  const buf = new Uint8Array(Ipv4Repr.bufferLen(r) + 4 + 6); // 6 bytes of link padding
  Ipv4Repr.emit(r, buf);
  const p = Ipv4Packet.check(buf);
  assert.equal(p.headerLen, 24);
  assert.equal(p.payload.length, 4);
  assert.deepEqual(Ipv4Repr.parse(p), r);
  assert.throws(() => Ipv4Packet.check(buf.subarray(0, 19)), is("WIRE_TRUNCATED"));
  const v6 = buf.slice();
  v6[0] = 0x65;
  assert.throws(() => Ipv4Packet.check(v6), is("WIRE_BAD_VERSION"));
  const ihl = buf.slice();
  ihl[0] = 0x44;
  assert.throws(() => Ipv4Packet.check(ihl), is("WIRE_BAD_LENGTH"));
  const tl = buf.slice();
  tl[3] = 200;
  assert.throws(() => Ipv4Packet.check(tl), is("WIRE_TRUNCATED"));
  tl[3] = 10;
  assert.throws(() => Ipv4Packet.check(tl), is("WIRE_BAD_LENGTH"));
  assert.throws(() => Ipv4Repr.emit({ ...r, options: new Uint8Array(3) }, buf), is("WIRE_BAD_LENGTH"));
  assert.throws(() => Ipv4Repr.emit({ ...r, ttl: 256 }, buf), is("WIRE_BAD_VALUE"));
  assert.throws(() => Ipv4Repr.emit({ ...r, payloadLen: 70000 }, buf), is("WIRE_BAD_LENGTH"));
  assert.throws(() => Ipv4Repr.emit(r, new Uint8Array(23)), is("WIRE_BUFFER_TOO_SMALL"));
});

test("IPv6 header: fields and checks", () => {
  const r = { src: Ipv6Address.parse("fd00::1"), dst: Ipv6Address.parse("ff02::1"), nextHeader: 253, hopLimit: 1, payloadLen: 2, trafficClass: 0xb8, flowLabel: 0xabcde };
  const buf = new Uint8Array(42);
  Ipv6Repr.emit(r, buf);
  assert.deepEqual([...buf.subarray(0, 8)], [0x6b, 0x8a, 0xbc, 0xde, 0, 2, 253, 1]);
  const p = Ipv6Packet.check(buf);
  assert.deepEqual(Ipv6Repr.parse(p), r);
  assert.throws(() => Ipv6Packet.check(buf.subarray(0, 41)), is("WIRE_TRUNCATED"));
  const v4 = buf.slice();
  v4[0] = 0x4b;
  assert.throws(() => Ipv6Packet.check(v4), is("WIRE_BAD_VERSION"));
  assert.throws(() => Ipv6Repr.emit({ ...r, flowLabel: 0x100000 }, buf), is("WIRE_BAD_VALUE"));
});

test("UDP over IPv4 and IPv6: checksums with pseudo-header, zero checksum rules", () => {
  const a4 = Ipv4Address.parse("10.0.0.1"), b4 = Ipv4Address.parse("10.0.0.2");
  const a6 = Ipv6Address.parse("fd00::1"), b6 = Ipv6Address.parse("fd00::2");
  const r: UdpRepr = { srcPort: 68, dstPort: 67, payload: Uint8Array.of(1, 2, 3) };
  for (const [s, d] of [[a4, b4], [a6, b6]] as const) {
    const buf = new Uint8Array(UdpRepr.bufferLen(r));
    UdpRepr.emit(r, buf, s, d);
    const p = UdpPacket.check(buf);
    assert.equal(p.verifyChecksum(s, d), true);
    assert.deepEqual(UdpRepr.parse(p, s, d), r);
    // The pseudo-header matters: another destination fails.
    assert.throws(() => UdpRepr.parse(p, s, s), is("WIRE_BAD_CHECKSUM"));
    buf[6] = 0;
    buf[7] = 0;
    assert.equal(UdpPacket.check(buf).verifyChecksum(s, d), s.family === 4, "zero checksum is 'none' only over IPv4");
  }
  assert.throws(() => UdpPacket.check(hexBytes("0001000200070000")), is("WIRE_BAD_LENGTH"));
  assert.throws(() => UdpPacket.check(hexBytes("00010002000a0000")), is("WIRE_TRUNCATED"));
  assert.throws(() => UdpRepr.emit({ ...r, srcPort: 65536 }, new Uint8Array(11), a4, b4), is("WIRE_BAD_VALUE"));
  assert.throws(() => UdpRepr.emit(r, new Uint8Array(11), a4, b6), is("WIRE_BAD_VALUE"));
});

test("TCP: header, options, flags, checksum over both families", () => {
  const a4 = Ipv4Address.parse("192.0.2.1"), b4 = Ipv4Address.parse("192.0.2.2");
  const r = tcpRepr({ srcPort: 443, dstPort: 51000, seq: 0xfffffff0, ack: 5, flags: TcpFlags.SYN | TcpFlags.ACK | TcpFlags.AE, window: 29200, options: Uint8Array.of(2, 4, 5, 0xb4), payload: Uint8Array.of(9, 8, 7) });
  const buf = new Uint8Array(TcpRepr.bufferLen(r));
  TcpRepr.emit(r, buf, a4, b4);
  const p = TcpPacket.check(buf);
  assert.equal(p.headerLen, 24);
  assert.equal(p.flags, 0x112);
  assert.deepEqual(TcpRepr.parse(p, a4, b4), r);
  buf[buf.length - 1] = buf[buf.length - 1]! ^ 0x10;
  assert.throws(() => TcpRepr.parse(TcpPacket.check(buf), a4, b4), is("WIRE_BAD_CHECKSUM"));
  const short = buf.slice(0, 20);
  short[12] = 0x40;
  assert.throws(() => TcpPacket.check(short), is("WIRE_BAD_LENGTH"));
  short[12] = 0x60;
  assert.throws(() => TcpPacket.check(short), is("WIRE_TRUNCATED"));
  assert.throws(() => TcpRepr.emit({ ...r, flags: 0x1000 }, new Uint8Array(100), a4, b4), is("WIRE_BAD_VALUE"));
});

test("ICMP echo and other types", () => {
  const r: IcmpRepr = { kind: "echoReply", ident: 0x1234, seq: 9, data: Uint8Array.of(1, 2, 3) };
  const buf = new Uint8Array(IcmpRepr.bufferLen(r));
  IcmpRepr.emit(r, buf);
  assert.deepEqual([...buf.subarray(0, 2)], [0, 0]);
  assert.equal(internetChecksum(buf), 0);
  assert.deepEqual(IcmpRepr.parse(IcmpPacket.check(buf)), r);
  const other: IcmpRepr = { kind: "other", type: 3, code: 4, restOfHeader: 1500, data: new Uint8Array(28) };
  const ob = new Uint8Array(IcmpRepr.bufferLen(other));
  IcmpRepr.emit(other, ob);
  assert.deepEqual(IcmpRepr.parse(IcmpPacket.check(ob)), other);
  ob[9] = 1;
  assert.throws(() => IcmpRepr.parse(IcmpPacket.check(ob)), is("WIRE_BAD_CHECKSUM"));
  assert.throws(() => IcmpPacket.check(new Uint8Array(7)), is("WIRE_TRUNCATED"));
});

test("ICMPv6 echo, neighbour solicitation and advertisement", () => {
  const a = Ipv6Address.parse("fe80::1"), b = Ipv6Address.parse("fe80::2");
  const mac = MacAddress.parse("02:11:22:33:44:55");
  const reprs: Icmpv6Repr[] = [
    { kind: "echoRequest", ident: 1, seq: 2, data: Uint8Array.of(5) },
    { kind: "neighborSolicit", target: b, options: [{ type: 1, data: mac.bytes() }] },
    { kind: "neighborAdvert", router: true, solicited: false, override: true, target: b, options: [] },
    { kind: "other", type: 133, code: 0, body: new Uint8Array(4) },
    { kind: "other", type: 128, code: 1, body: new Uint8Array(4) },
  ];
  for (const r of reprs) {
    const buf = new Uint8Array(Icmpv6Repr.bufferLen(r));
    Icmpv6Repr.emit(r, buf, a, b);
    const p = Icmpv6Packet.check(buf);
    assert.equal(p.verifyChecksum(a, b), true);
    assert.deepEqual(Icmpv6Repr.parse(p, a, b), r);
    assert.throws(() => Icmpv6Repr.parse(p, b, b), is("WIRE_BAD_CHECKSUM"));
  }
  const na = new Uint8Array(24);
  Icmpv6Repr.emit(reprs[2]!, na, a, b);
  assert.equal(na[4], 0xa0);
  const ns = new Uint8Array(32);
  Icmpv6Repr.emit(reprs[1]!, ns, a, b);
  ns[25] = 0; // option length 0 (RFC 4861 §4.6 invalid)
  assert.throws(() => Icmpv6Repr.parse(Icmpv6Packet.check(ns), a, b, { verifyChecksum: false }), is("WIRE_BAD_LENGTH"));
  assert.throws(() => Icmpv6Repr.parse(Icmpv6Packet.check(ns.subarray(0, 20)), a, b, { verifyChecksum: false }), is("WIRE_TRUNCATED"));
  assert.throws(() => Icmpv6Repr.bufferLen({ kind: "neighborSolicit", target: b, options: [{ type: 1, data: new Uint8Array(5) }] }), is("WIRE_BAD_LENGTH"));
});

test("ARP for Ethernet/IPv4; other hardware types refused by the Repr", () => {
  const r: ArpRepr = { operation: 2, senderMac: MacAddress.parse("02:00:00:00:00:01"), senderIp: Ipv4Address.parse("10.0.0.1"), targetMac: MacAddress.parse("02:00:00:00:00:02"), targetIp: Ipv4Address.parse("10.0.0.2") };
  const buf = new Uint8Array(28 + 18);
  ArpRepr.emit(r, buf);
  assert.deepEqual([...buf.subarray(0, 8)], [0, 1, 8, 0, 6, 4, 0, 2]);
  const p = ArpPacket.check(buf);
  assert.equal(p.len, 28);
  assert.deepEqual(ArpRepr.parse(p), r);
  assert.throws(() => ArpPacket.check(buf.subarray(0, 27)), is("WIRE_TRUNCATED"));
  const ib = buf.slice();
  ib[1] = 32;
  assert.throws(() => ArpRepr.parse(ArpPacket.check(ib)), is("WIRE_BAD_VALUE"));
});

test("frame builder and dissector agree, through VLAN and QinQ tags", () => {
  const A = MacAddress.parse("02:00:00:00:00:0a"), B = MacAddress.parse("02:00:00:00:00:0b");
  const s4 = Ipv4Address.parse("10.1.0.1"), d4 = Ipv4Address.parse("10.1.0.2");
  const f = buildUdpFrame({ dst: B, src: A, vlans: [vlanTag(7, { tpid: EtherType.QINQ }), vlanTag(8)], pad: true }, s4, d4, 1000, 2000, Uint8Array.of(42));
  assert.equal(f.length, 60);
  const d = dissectFrame(f);
  assert.deepEqual(d.eth.vlans.map((t) => t.vid), [7, 8]);
  assert.equal(d.ipv4?.src.toString(), "10.1.0.1");
  assert.equal(d.udp?.dstPort, 2000);
  assert.deepEqual([...d.payload], [42]);
  const t6 = buildIpFrame({ dst: B, src: A }, { src: Ipv6Address.parse("fd00::a"), dst: Ipv6Address.parse("fd00::b") }, { proto: "tcp", srcPort: 1, dstPort: 2, payload: Uint8Array.of(1, 2) });
  const d6 = dissectFrame(t6);
  assert.equal(d6.tcp?.srcPort, 1);
  assert.deepEqual([...d6.payload], [1, 2]);
  const ns = buildIcmpv6Frame({ dst: B, src: A }, Ipv6Address.parse("fd00::a"), Ipv6Address.parse("fd00::b"), { kind: "echoReply", ident: 3, seq: 4, data: new Uint8Array(0) });
  assert.equal(dissectFrame(ns).icmpv6?.kind, "echoReply");
  const raw = buildIpFrame({ dst: B, src: A }, { src: s4, dst: d4 }, { proto: "raw", protocol: 200, payload: Uint8Array.of(5, 6) });
  const dr = dissectFrame(raw);
  assert.equal(dr.ipv4?.protocol, 200);
  assert.deepEqual([...dr.payload], [5, 6]);
  const at = 22 + 20 + 8; // Ethernet with two tags, IPv4, UDP header: the payload byte
  f[at] = f[at]! ^ 0xff;
  assert.throws(() => dissectFrame(f), is("WIRE_BAD_CHECKSUM"));
  assert.equal(dissectFrame(f, { verifyChecksums: false }).udp?.srcPort, 1000);
  assert.throws(() => buildUdpFrame({ dst: B, src: A }, s4, Ipv6Address.parse("::1"), 1, 2, new Uint8Array(0)), is("WIRE_BAD_VALUE"));
});

const arbMac = fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((k) => MacAddress.fromKey(k));
const arbV4 = fc.nat({ max: 0xffffffff }).map((v) => Ipv4Address.fromU32(v));
const arbV6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Ipv6Address.fromBytes(b));
const arbTag = fc.record({ tpid: fc.constantFrom(0x8100, 0x88a8), pcp: fc.integer({ min: 0, max: 7 }), dei: fc.boolean(), vid: fc.integer({ min: 0, max: 4095 }) }).map((t) => ({ ...t }));
const arbL4 = fc.oneof(
  fc.record({ proto: fc.constant("udp" as const), srcPort: fc.nat({ max: 65535 }), dstPort: fc.nat({ max: 65535 }), payload: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ proto: fc.constant("tcp" as const), srcPort: fc.nat({ max: 65535 }), dstPort: fc.nat({ max: 65535 }), seq: fc.nat({ max: 0xffffffff }), flags: fc.nat({ max: 0xfff }), payload: fc.uint8Array({ maxLength: 40 }) }),
);

test("property: built frames dissect back to what was asked, for both families", () => {
  fc.assert(
    fc.property(arbMac, arbMac, fc.array(arbTag, { maxLength: 2 }), fc.oneof(fc.tuple(arbV4, arbV4), fc.tuple(arbV6, arbV6)), arbL4, (dst, src, vlans, [s, d], l4) => {
      const f = buildIpFrame({ dst, src, vlans }, { src: s, dst: d }, l4);
      const x = dissectFrame(f);
      assert.equal(x.eth.dst.key, dst.key);
      assert.deepEqual(x.eth.vlans, vlans);
      const l4r = l4.proto === "udp" ? x.udp : x.tcp;
      assert.ok(l4r);
      assert.equal(l4r.srcPort, l4.srcPort);
      assert.deepEqual(l4r.payload, l4.payload);
      if (l4.proto === "tcp") assert.equal(x.tcp?.seq, l4.seq);
      const ip = x.ipv4 ?? x.ipv6;
      assert.equal(ip?.src.toString(), s.toString());
    }),
    { numRuns: 200 },
  );
});

test("property: the checksum sum is the same on every alignment and length (fast path vs bytewise)", () => {
  const slow = (b: Uint8Array, off: number, len: number) => {
    let s = 0;
    for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
    return s;
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (b, x, y) => {
      const off = b.length === 0 ? 0 : x % b.length;
      const len = (b.length - off === 0) ? 0 : y % (b.length - off + 1);
      assert.equal(checksumAdd(0, b, off, len), slow(b, off, len));
      assert.equal(checksumAdd(0, b.subarray(off), 0, len), slow(b, off, len));
    }),
  );
});
