import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AddressFamily,
  Ipv4Address,
  Ipv6Address,
  NLA_F_NESTED,
  NlWriter,
  NlmF,
  RouteRepr,
  Rta,
  RtProt,
  RtScope,
  RtTable,
  Rtm,
  Rtn,
  WireError,
  attrMap,
  beginNlMessage,
  emitAttrs,
  endNlMessage,
  nla,
  nlaGet,
  parseAttrs,
  parseNlMessages,
  parseNlMessagesPrefix,
  routeTable,
  IflaVf,
  IflaVfStats,
  MacAddress,
  attrType,
  parseVfInfo,
  vfInfoSpec,
  type IpAddress,
  type NlAttrSpec,
  type NlMessage,
} from "./index.js";

const is = (code: string) => (e: unknown) => e instanceof WireError && e.code === code;
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString("hex");
function only(b: Uint8Array): NlMessage {
  const ms = parseNlMessages(b);
  assert.equal(ms.length, 1);
  return ms[0]!;
}
const rtm = (o: Partial<RouteRepr["rtm"]> = {}): RouteRepr["rtm"] => ({ family: AddressFamily.INET, dstLen: 0, srcLen: 0, tos: 0, table: RtTable.MAIN, protocol: RtProt.BOOT, scope: RtScope.UNIVERSE, type: Rtn.UNICAST, flags: 0, ...o });

test("RTM_NEWROUTE: `ip route add 10.1.0.0/16 via 10.0.0.1 dev 3` byte for byte", () => {
  const r: RouteRepr = { rtm: rtm({ dstLen: 16 }), dst: Ipv4Address.parse("10.1.0.0"), gateway: Ipv4Address.parse("10.0.0.1"), oif: 3, extra: [] };
  const b = RouteRepr.emit(r, { type: Rtm.NEWROUTE, flags: NlmF.REQUEST | NlmF.ACK | NlmF.CREATE | NlmF.EXCL, seq: 1, pid: 0 });
  assert.equal(
    hexOf(b),
    "34000000" + "1800" + "0506" + "01000000" + "00000000" + // nlmsghdr
      "02100000" + "fe030001" + "00000000" + // rtmsg: INET /16, table main, proto boot, scope universe, unicast
      "08000100" + "0a010000" + // RTA_DST
      "08000500" + "0a000001" + // RTA_GATEWAY
      "08000400" + "03000000", // RTA_OIF
  );
  assert.deepEqual(RouteRepr.parse(only(b)), r);
});

test("route messages: a kernel-style dump entry, RTA_TABLE over rtm_table, IPv6, bad families and lengths", () => {
  const r: RouteRepr = {
    rtm: rtm({ dstLen: 24, protocol: RtProt.KERNEL, scope: RtScope.LINK }),
    table: 1000,
    dst: Ipv4Address.parse("192.168.7.0"),
    priority: 100,
    prefsrc: Ipv4Address.parse("192.168.7.9"),
    oif: 2,
    extra: [nla.u32(Rta.METRICS | NLA_F_NESTED, 0)],
  };
  const b = RouteRepr.emit(r, { type: Rtm.NEWROUTE, flags: NlmF.MULTI, seq: 9, pid: 77 });
  const m = only(b);
  const types = parseAttrs(m.payload.subarray(12)).map((a) => a.type & 0x3fff);
  assert.deepEqual(types, [Rta.TABLE, Rta.DST, Rta.PRIORITY, Rta.PREFSRC, Rta.OIF, Rta.METRICS]);
  const back = RouteRepr.parse(m);
  assert.deepEqual(back, r);
  assert.equal(routeTable(back), 1000);
  assert.equal(routeTable({ rtm: back.rtm, extra: [] }), RtTable.MAIN);
  const r6: RouteRepr = { rtm: rtm({ family: AddressFamily.INET6, dstLen: 64 }), dst: Ipv6Address.parse("fd00:1::"), gateway: Ipv6Address.parse("fe80::1"), oif: 4, extra: [] };
  assert.deepEqual(RouteRepr.parse(only(RouteRepr.emit(r6, { type: Rtm.DELROUTE, flags: NlmF.REQUEST, seq: 0, pid: 0 }))), r6);
  // An IPv4 address in an IPv6 message is a length error; unknown families keep addresses raw.
  const wrong = RouteRepr.emit({ ...r6, rtm: rtm({ family: AddressFamily.INET6 }), dst: Ipv4Address.parse("10.0.0.0") }, { type: Rtm.NEWROUTE, flags: 0, seq: 0, pid: 0 });
  assert.throws(() => RouteRepr.parse(only(wrong)), is("WIRE_BAD_LENGTH"));
  const other = RouteRepr.parse(only(RouteRepr.emit({ ...r, rtm: rtm({ family: AddressFamily.UNSPEC }) }, { type: Rtm.GETROUTE, flags: NlmF.REQUEST | NlmF.DUMP, seq: 0, pid: 0 })));
  assert.equal(other.dst, undefined);
  assert.deepEqual(other.extra.map((a) => a.type), [Rta.DST, Rta.PREFSRC, Rta.METRICS | NLA_F_NESTED]);
  assert.throws(() => RouteRepr.parse({ type: Rtm.NEWADDR, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(12) }), is("WIRE_BAD_VALUE"));
  assert.throws(() => RouteRepr.parse({ type: Rtm.GETROUTE, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(11) }), is("WIRE_TRUNCATED"));
  assert.throws(() => RouteRepr.emit({ rtm: rtm({ dstLen: 256 }), extra: [] }, { type: Rtm.NEWROUTE, flags: 0, seq: 0, pid: 0 }), is("WIRE_BAD_VALUE"));
  const shortOif = emitAttrs([nla.raw(Rta.OIF, Uint8Array.of(1, 2))]);
  const p = new Uint8Array(12 + shortOif.length);
  p.set(shortOif, 12);
  assert.throws(() => RouteRepr.parse({ type: Rtm.NEWROUTE, flags: 0, seq: 0, pid: 0, payload: p }), is("WIRE_BAD_LENGTH"));
});

const u32 = fc.nat({ max: 0xffffffff });
const u8 = fc.nat({ max: 0xff });
const v4 = u32.map((x) => Ipv4Address.fromU32(x));
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Ipv6Address.fromBytes(b));
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });
const arbRoute: fc.Arbitrary<RouteRepr> = fc.boolean().chain((six) => {
  const ip: fc.Arbitrary<IpAddress> = six ? v6 : v4;
  return fc.record({
    rtm: fc.record({ family: fc.constant(six ? AddressFamily.INET6 : AddressFamily.INET), dstLen: u8, srcLen: u8, tos: u8, table: u8, protocol: u8, scope: u8, type: u8, flags: u32 }).map((x) => ({ ...x })),
    dst: opt(ip),
    gateway: opt(ip),
    prefsrc: opt(ip),
    oif: opt(u32),
    priority: opt(u32),
    table: opt(u32),
    extra: fc.constant([]),
  });
}).map((r) => {
  const out: RouteRepr = { rtm: r.rtm, extra: [] };
  for (const k of ["dst", "gateway", "prefsrc", "oif", "priority", "table"] as const) if (r[k] !== undefined) Object.assign(out, { [k]: r[k] });
  return out;
});

test("property: route messages round trip (parse ∘ emit = id, emit ∘ parse ∘ emit = emit)", () => {
  fc.assert(
    fc.property(arbRoute, fc.constantFrom(Rtm.NEWROUTE, Rtm.DELROUTE, Rtm.GETROUTE), u32, (r, type, seq) => {
      const h = { type, flags: NlmF.REQUEST, seq, pid: 0 };
      const b = RouteRepr.emit(r, h);
      const back = RouteRepr.parse(only(b));
      assert.deepEqual(back, r);
      assert.deepEqual(RouteRepr.emit(back, h), b);
    }),
    { numRuns: 200 },
  );
});

test("property: random bytes make RouteRepr.parse and the lenient framing throw only WireError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(AddressFamily.INET, AddressFamily.INET6, AddressFamily.UNSPEC), (b, family) => {
      try {
        RouteRepr.parse({ type: Rtm.NEWROUTE, flags: 0, seq: 0, pid: 0, payload: Uint8Array.from([family, ...b]) });
      } catch (e) {
        assert.ok(e instanceof WireError, `unexpected ${String(e)}`);
      }
      // The lenient split never throws, and yields a prefix of what the strict one accepts.
      const lenient = parseNlMessagesPrefix(b);
      try {
        assert.deepEqual(parseNlMessages(b), lenient);
      } catch (e) {
        assert.ok(e instanceof WireError, `unexpected ${String(e)}`);
      }
    }),
    { numRuns: 300 },
  );
});

test("parseNlMessagesPrefix keeps the messages before a bad header; attrMap keeps the last of a type", () => {
  const a = RouteRepr.emit({ rtm: rtm(), extra: [] }, { type: Rtm.GETROUTE, flags: NlmF.REQUEST | NlmF.DUMP, seq: 1, pid: 0 });
  const bad = Uint8Array.of(8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); // nlmsg_len 8 < 16
  const dgram = new Uint8Array(a.length + bad.length + a.length);
  dgram.set(a);
  dgram.set(bad, a.length);
  dgram.set(a, a.length + bad.length);
  assert.throws(() => parseNlMessages(dgram), is("WIRE_BAD_LENGTH"));
  const ms = parseNlMessagesPrefix(dgram);
  assert.equal(ms.length, 1);
  assert.equal(ms[0]!.type, Rtm.GETROUTE);
  assert.deepEqual(parseNlMessagesPrefix(a.subarray(0, a.length - 1)), []);
  const attrs = parseAttrs(emitAttrs([nla.u32(Rta.OIF, 1), nla.u32(Rta.TABLE | NLA_F_NESTED, 5), nla.u32(Rta.OIF, 2)]));
  const m = attrMap(attrs);
  assert.equal(nlaGet.u32(m.get(Rta.OIF)!), 2);
  assert.equal(nlaGet.u32(m.get(Rta.TABLE)!), 5);
});

test("NlWriter nests in place: begin, measure, cancel, end; over-long nests refuse", () => {
  const w = beginNlMessage({ type: Rtm.NEWLINK, flags: 0, seq: 0, pid: 0 });
  const outer = w.beginNest(22);
  const inner = w.beginNest(1);
  w.attr(nla.u32(3, 7));
  w.endNest(inner);
  const mark = w.length;
  const dropped = w.beginNest(1);
  w.attr(nla.u32(3, 8));
  assert.equal(w.nestLength(dropped), 12);
  w.truncate(mark);
  w.endNest(outer);
  const m = only(endNlMessage(w));
  const top = parseAttrs(m.payload);
  assert.equal(top.length, 1);
  assert.equal(top[0]!.type, 22);
  const kids = nlaGet.nested(top[0]!);
  assert.equal(kids.length, 1);
  assert.equal(nlaGet.u32(nlaGet.nested(kids[0]!)[0]!), 7);
  const big = new NlWriter();
  const s = big.beginNest(1);
  big.attr(nla.raw(2, new Uint8Array(0xfff0)));
  big.attr(nla.raw(2, new Uint8Array(64)));
  assert.throws(() => big.endNest(s), is("WIRE_BAD_LENGTH"));
});

test("vfInfoSpec with { alignU64: false } writes the VF counters without IFLA_VF_STATS_PAD (x86), decoding the same", () => {
  const stats = { rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 4n, broadcast: 5n, multicast: 6n, rxDropped: 7n, txDropped: 2n ** 64n - 1n };
  const v = { vf: 3, mac: MacAddress.parse("02:00:00:00:00:03"), stats, extra: [] };
  const statsTypes = (spec: NlAttrSpec): number[] => {
    const info = parseAttrs(emitAttrs([spec]))[0]!;
    const st = nlaGet.nested(info).find((a) => attrType(a) === IflaVf.STATS)!;
    return nlaGet.nested(st).map(attrType);
  };
  // Emitted alone, IFLA_VF_STATS' first counter would sit 4 bytes off 8: padded, a PAD goes first.
  assert.ok(statsTypes(vfInfoSpec(v)).includes(IflaVfStats.PAD));
  assert.deepEqual(statsTypes(vfInfoSpec(v, { alignU64: false })), [0, 1, 2, 3, 4, 5, 7, 8]);
  for (const spec of [vfInfoSpec(v), vfInfoSpec(v, { alignU64: false })]) assert.deepEqual(parseVfInfo(parseAttrs(emitAttrs([spec]))[0]!).stats, stats);
});
