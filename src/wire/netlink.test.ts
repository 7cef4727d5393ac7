import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AddrRepr,
  AddressFamily,
  ARPHRD_ETHER,
  GENL_ID_CTRL,
  GenlRepr,
  Ifa,
  Ifla,
  IflaVf,
  IflaVfLinkState,
  IfOper,
  Iff,
  Ipv4Address,
  Ipv6Address,
  LinkRepr,
  MacAddress,
  NLA_F_NESTED,
  NlDoneRepr,
  NlErrorRepr,
  NlMsgType,
  NlmF,
  RtextFilter,
  Rtm,
  VdpaAttr,
  VdpaCmd,
  WireError,
  attrIsNested,
  attrType,
  collectDump,
  concatMessages,
  ctrlFamilyReply,
  ctrlGetFamilyRequest,
  defaultVfInfo,
  emitAttrs,
  emitDump,
  emitNlMessage,
  findAttr,
  finishDump,
  nla,
  nlaGet,
  parseAttrs,
  parseCtrlFamily,
  parseNlMessages,
  parseVfInfo,
  type NlMessage,
  type VfInfo,
} from "./index.js";
import { KERNEL_RTM_GETADDR_DUMP, KERNEL_RTM_NEWLINK_VIRTIO_ETH0 } from "./netlink.fixtures.js";

const is = (code: string) => (e: unknown) => e instanceof WireError && e.code === code;
function unhex(h: string): Uint8Array {
  return Uint8Array.from({ length: h.length / 2 }, (_, i) => parseInt(h.slice(2 * i, 2 * i + 2), 16));
}
function hexOf(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}
function only(b: Uint8Array): NlMessage {
  const ms = parseNlMessages(b);
  assert.equal(ms.length, 1);
  return ms[0]!;
}

test("nlmsghdr framing: several messages per datagram, NLMSG_ALIGN, bad lengths", () => {
  const a = emitNlMessage({ type: 100, flags: NlmF.REQUEST | NlmF.ACK, seq: 7, pid: 0, payload: Uint8Array.of(1, 2, 3) });
  assert.equal(hexOf(a), "13000000640005000700000000000000010203" + "00");
  const b = emitNlMessage({ type: 101, flags: 0, seq: 8, pid: 42, payload: new Uint8Array(0) });
  const both = concatMessages([a, b]);
  const ms = parseNlMessages(both);
  assert.equal(ms.length, 2);
  assert.deepEqual([...ms[0]!.payload], [1, 2, 3]);
  assert.equal(ms[1]!.pid, 42);
  assert.throws(() => parseNlMessages(both.subarray(0, 10)), is("WIRE_TRUNCATED"));
  const bad = a.slice();
  bad[0] = 8;
  assert.throws(() => parseNlMessages(bad), is("WIRE_BAD_LENGTH"));
  bad[0] = 40;
  assert.throws(() => parseNlMessages(bad), is("WIRE_TRUNCATED"));
  assert.throws(() => emitNlMessage({ type: 70000, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(0) }), is("WIRE_BAD_VALUE"));
});

test("attributes: 4-byte alignment, nesting, NLA_F_NESTED masked off, typed readers", () => {
  const bytes = emitAttrs([nla.str(3, "eth0"), nla.u8(16, 6), nla.nest(22, [nla.u32(1, 0xdeadbeef), nla.flag(2)], { nestedFlag: true }), nla.u64(9, 0x0102030405060708n)]);
  assert.equal(hexOf(bytes.subarray(0, 20)), "0900030065746830000000000500100006000000");
  const as = parseAttrs(bytes);
  assert.equal(as.length, 4);
  assert.equal(nlaGet.str(as[0]!), "eth0");
  assert.equal(nlaGet.u8(as[1]!), 6);
  assert.equal(attrIsNested(as[2]!), true);
  assert.equal(attrType(as[2]!), 22);
  assert.equal(findAttr(as, 22), as[2]);
  const inner = nlaGet.nested(as[2]!);
  assert.equal(nlaGet.u32(inner[0]!), 0xdeadbeef);
  assert.equal(inner[1]!.payload.length, 0);
  assert.equal(nlaGet.u64(as[3]!), 0x0102030405060708n);
  assert.throws(() => nlaGet.u32(as[1]!), is("WIRE_BAD_LENGTH"));
  assert.throws(() => parseAttrs(Uint8Array.of(2, 0, 1, 0)), is("WIRE_BAD_LENGTH"));
  assert.throws(() => parseAttrs(Uint8Array.of(9, 0, 1, 0, 0)), is("WIRE_TRUNCATED"));
  // The last attribute may come without its padding.
  assert.equal(parseAttrs(Uint8Array.of(5, 0, 1, 0, 7))[0]!.payload[0], 7);
  assert.equal(nlaGet.str({ type: 1, payload: Uint8Array.of(0x61, 0x62) }), "ab");
});

test("NLMSG_ERROR: ACK with the full request, capped, and extended ack TLVs", () => {
  const req: NlMessage = { type: Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: 5, pid: 99, payload: new Uint8Array(16).fill(0xab) };
  const ack = NlErrorRepr.emit({ error: 0, request: req, capped: false }, { seq: 5, pid: 99 });
  assert.equal(ack.length, 16 + 4 + 16 + 16);
  const m = only(ack);
  assert.equal(m.type, NlMsgType.ERROR);
  assert.deepEqual(NlErrorRepr.parse(m), { error: 0, request: req, capped: false });
  const nack = NlErrorRepr.emit({ error: -22, request: req, capped: true, extAck: { msg: "VF out of range", offset: 36, extra: [] } }, { seq: 5, pid: 99 });
  const e = NlErrorRepr.parse(only(nack));
  assert.equal(e.error, -22);
  assert.equal(e.capped, true);
  assert.equal(e.request.seq, 5);
  assert.equal(e.request.payload.length, 0);
  assert.deepEqual(e.extAck, { msg: "VF out of range", offset: 36, extra: [] });
  assert.equal(only(nack).flags, NlmF.CAPPED | NlmF.ACK_TLVS);
  const full = NlErrorRepr.parse(only(NlErrorRepr.emit({ error: -95, request: req, capped: false, extAck: { missType: 3, extra: [] } }, { seq: 1, pid: 2 })));
  assert.deepEqual(full.extAck, { missType: 3, extra: [] });
  assert.deepEqual(full.request, req);
  assert.throws(() => NlErrorRepr.parse({ ...m, payload: m.payload.subarray(0, 19) }), is("WIRE_TRUNCATED"));
  assert.throws(() => NlErrorRepr.parse({ ...m, type: 3 }), is("WIRE_BAD_VALUE"));
});

test("multi-part dumps end with NLMSG_DONE; errors and interruptions are reported", () => {
  const d = emitDump(Rtm.NEWLINK, [new Uint8Array(16), new Uint8Array(16)], { seq: 3, pid: 1 });
  const ms = parseNlMessages(d);
  assert.deepEqual(ms.map((m) => [m.type, m.flags]), [[16, NlmF.MULTI], [16, NlmF.MULTI], [NlMsgType.DONE, NlmF.MULTI]]);
  const r = collectDump(ms);
  assert.equal(r.parts.length, 2);
  assert.equal(r.done, true);
  assert.equal(r.error, 0);
  assert.equal(collectDump(ms.slice(0, 1)).done, false);
  const failed = collectDump(parseNlMessages(NlDoneRepr.emit({ error: -16, extAck: { msg: "busy", extra: [] } }, { seq: 3, pid: 1 })));
  assert.equal(failed.error, -16);
  assert.equal(failed.extAck?.msg, "busy");
  const intr = collectDump([{ ...ms[0]!, flags: NlmF.MULTI | NlmF.DUMP_INTR }, ms[2]!]);
  assert.equal(intr.interrupted, true);
  const viaError = collectDump(parseNlMessages(NlErrorRepr.emit({ error: -1, request: ms[0]!, capped: true }, { seq: 3, pid: 1 })));
  assert.equal(viaError.error, -1);
  assert.equal(finishDump([], { seq: 1, pid: 1 }).length, 20);
});

const PF_MAC = MacAddress.parse("52:54:00:12:34:56");

function pfLink(vfs: VfInfo[]): LinkRepr {
  return {
    ifi: { family: AddressFamily.UNSPEC, type: ARPHRD_ETHER, index: 3, flags: Iff.UP | Iff.BROADCAST | Iff.MULTICAST | Iff.RUNNING | Iff.LOWER_UP, change: 0 },
    ifname: "eth0",
    txqlen: 1000,
    operstate: IfOper.UP,
    linkmode: 0,
    mtu: 1500,
    address: PF_MAC.bytes(),
    broadcast: MacAddress.BROADCAST.bytes(),
    numVf: vfs.length,
    vfInfoList: vfs,
    parentDevName: "0000:00:04.0",
    parentDevBusName: "pci",
    extra: [],
  };
}

test("RTM_NEWLINK with IFLA_VFINFO_LIST: exact struct layouts of netlink-vf.md §5", () => {
  const vf0: VfInfo = {
    ...defaultVfInfo(0),
    mac: MacAddress.parse("00:11:22:33:44:55"),
    broadcast: MacAddress.BROADCAST,
    vlan: { vlan: 5, qos: 1 },
    rate: { minTxRate: 10, maxTxRate: 100 },
    txRate: 100,
    spoofchk: 1,
    linkState: IflaVfLinkState.ENABLE,
    rssQueryEn: 1,
    trust: 1,
    vlanList: [{ vlan: 5, qos: 1, proto: 0x88a8 }],
    stats: { rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 4n, broadcast: 5n, multicast: 6n, rxDropped: 7n, txDropped: 2n ** 63n },
  };
  const vf1 = { ...defaultVfInfo(1), broadcast: MacAddress.BROADCAST };
  const repr = pfLink([vf0, vf1]);
  const bytes = LinkRepr.emit(repr, { type: Rtm.NEWLINK, flags: NlmF.MULTI, seq: 9, pid: 1234 });
  const m = only(bytes);
  const back = LinkRepr.parse(m);
  assert.deepEqual(back, repr);
  assert.deepEqual(LinkRepr.emit(back, { type: Rtm.NEWLINK, flags: NlmF.MULTI, seq: 9, pid: 1234 }), bytes);

  // Walk the raw attributes to check layouts byte by byte.
  const top = parseAttrs(m.payload.subarray(16));
  const list = findAttr(top, Ifla.VFINFO_LIST)!;
  assert.equal(attrIsNested(list), false, "dumps open nests without NLA_F_NESTED");
  const infos = parseAttrs(list.payload);
  assert.equal(infos.length, 2);
  const a0 = parseAttrs(infos[0]!.payload);
  assert.deepEqual(a0.map(attrType), [IflaVf.MAC, IflaVf.BROADCAST, IflaVf.VLAN, IflaVf.RATE, IflaVf.TX_RATE, IflaVf.SPOOFCHK, IflaVf.LINK_STATE, IflaVf.RSS_QUERY_EN, IflaVf.TRUST, IflaVf.VLAN_LIST, IflaVf.STATS]);
  const mac = findAttr(a0, IflaVf.MAC)!.payload;
  assert.equal(mac.length, 36);
  assert.equal(hexOf(mac), "00000000" + "001122334455" + "00".repeat(26));
  assert.equal(findAttr(a0, IflaVf.BROADCAST)!.payload.length, 32);
  assert.equal(hexOf(findAttr(a0, IflaVf.VLAN)!.payload), "00000000" + "05000000" + "01000000");
  assert.equal(hexOf(findAttr(a0, IflaVf.RATE)!.payload), "00000000" + "0a000000" + "64000000");
  assert.equal(findAttr(a0, IflaVf.TX_RATE)!.payload.length, 8);
  const vinfo = parseAttrs(findAttr(a0, IflaVf.VLAN_LIST)!.payload);
  assert.equal(vinfo.length, 1);
  assert.equal(hexOf(vinfo[0]!.payload), "00000000" + "05000000" + "01000000" + "88a8" + "0000", "vlan_proto is big-endian, sizeof 16");
  // Defaults as the kernel reports before a driver fills them in: -1 for unsupported settings.
  const a1 = parseAttrs(infos[1]!.payload);
  assert.equal(hexOf(findAttr(a1, IflaVf.SPOOFCHK)!.payload), "01000000ffffffff");
  assert.equal(hexOf(findAttr(a1, IflaVf.TRUST)!.payload), "01000000ffffffff");
  assert.equal(back.vfInfoList![1]!.spoofchk, -1);
  // VF_STATS: every u64 payload 8-byte aligned in the message, through PAD attributes.
  let seen = 0;
  const walk = (buf: Uint8Array, base: number) => {
    let o = 0;
    while (o + 4 <= buf.length) {
      const len = buf[o]! | (buf[o + 1]! << 8);
      const type = buf[o + 2]! | (buf[o + 3]! << 8);
      if (type !== 6 && len === 12) {
        assert.equal((base + o + 4) % 8, 0, "u64 counter aligned");
        seen++;
      }
      o += (len + 3) & ~3;
    }
  };
  const statsAttr = findAttr(a0, IflaVf.STATS)!;
  walk(statsAttr.payload, statsAttr.payload.byteOffset - bytes.byteOffset);
  assert.equal(seen, 8);
});

test("iproute2-style VF set requests decode: legacy VLAN, 802.1ad VLAN list, state, trust", () => {
  // ip link set eth0 vf 2 vlan 7 qos 3 proto 802.1ad  → IFLA_VF_VLAN_LIST only (netlink-vf.md §8)
  const set: LinkRepr = {
    ifi: { family: 0, type: 0, index: 3, flags: 0, change: 0 },
    vfInfoList: [{ vf: 2, vlanList: [{ vlan: 7, qos: 3, proto: 0x88a8 }], extra: [] }],
    extra: [],
  };
  const req = LinkRepr.emit(set, { type: Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: 1, pid: 0 });
  const got = LinkRepr.parse(only(req));
  assert.deepEqual(got.vfInfoList, [{ vf: 2, vlanList: [{ vlan: 7, qos: 3, proto: 0x88a8 }], extra: [] }]);
  // A nest built with NLA_F_NESTED (as newer iproute2 does) decodes the same.
  const flagged = emitAttrs([nla.nest(Ifla.VFINFO_LIST, [nla.nest(1, [nla.raw(IflaVf.LINK_STATE, Uint8Array.of(4, 0, 0, 0, 2, 0, 0, 0)), nla.raw(IflaVf.TRUST, Uint8Array.of(4, 0, 0, 0, 0, 0, 0, 0))], { nestedFlag: true })], { nestedFlag: true })]);
  const p = new Uint8Array(16 + flagged.length);
  p.set(flagged, 16);
  const r = LinkRepr.parse({ type: Rtm.NEWLINK, flags: NlmF.REQUEST, seq: 0, pid: 0, payload: p });
  assert.deepEqual(r.vfInfoList, [{ vf: 4, linkState: IflaVfLinkState.DISABLE, trust: 0, extra: [] }]);
  // Short structs and mixed VF indexes are refused.
  assert.throws(() => parseVfInfo({ type: 1, payload: emitAttrs([nla.raw(IflaVf.VLAN, new Uint8Array(8))]) }), is("WIRE_TRUNCATED"));
  const mixed = { type: 1, payload: emitAttrs([nla.raw(IflaVf.TRUST, Uint8Array.of(1, 0, 0, 0, 1, 0, 0, 0)), nla.raw(IflaVf.SPOOFCHK, Uint8Array.of(2, 0, 0, 0, 1, 0, 0, 0))]) };
  assert.throws(() => parseVfInfo(mixed), is("WIRE_BAD_VALUE"));
  assert.throws(() => parseVfInfo({ type: 1, payload: new Uint8Array(0) }), is("WIRE_BAD_VALUE"));
  // Unknown attributes survive raw.
  const unk = { type: 1, payload: emitAttrs([nla.raw(IflaVf.TRUST, Uint8Array.of(1, 0, 0, 0, 1, 0, 0, 0)), nla.u32(99, 5)]) };
  assert.deepEqual(parseVfInfo(unk).extra, [{ type: 99, payload: Uint8Array.of(5, 0, 0, 0) }]);
});

test("GETLINK request with IFLA_EXT_MASK = RTEXT_FILTER_VF, as ip link show sends it", () => {
  const req = LinkRepr.emit({ ifi: { family: 0, type: 0, index: 0, flags: 0, change: 0 }, extMask: RtextFilter.VF, extra: [] }, { type: Rtm.GETLINK, flags: NlmF.REQUEST | NlmF.DUMP, seq: 1, pid: 0 });
  assert.equal(hexOf(req), "28000000120001030100000000000000" + "00".repeat(16) + "08001d0001000000");
  assert.equal(LinkRepr.parse(only(req)).extMask, 1);
});

test("a real kernel's RTM_NEWLINK for a virtio-net interface: IFLA_NUM_VF 0 and no VF list", () => {
  const m = only(unhex(KERNEL_RTM_NEWLINK_VIRTIO_ETH0));
  assert.equal(m.type, Rtm.NEWLINK);
  const r = LinkRepr.parse(m);
  assert.equal(r.ifname, "eth0");
  assert.equal(r.ifi.type, ARPHRD_ETHER);
  assert.equal(r.numVf, 0);
  assert.equal(r.vfInfoList, undefined);
  assert.equal(r.parentDevBusName, "virtio");
  assert.equal(r.parentDevName, "virtio2");
  assert.equal(r.mtu, 1400);
  assert.equal(r.operstate, IfOper.UP);
  assert.equal(MacAddress.fromBytes(r.address!).toString(), "02:fc:00:00:00:01");
  assert.ok(r.extra.length > 10, "attributes vpf does not model are kept raw");
  // Re-emitting keeps every attribute (order is canonical, so compare as multisets).
  const again = LinkRepr.emit(r, m);
  const count = (b: Uint8Array) => parseAttrs(only(b).payload.subarray(16)).map((a) => `${a.type}:${hexOf(a.payload)}`).sort();
  assert.deepEqual(count(again), count(unhex(KERNEL_RTM_NEWLINK_VIRTIO_ETH0)));
});

test("a real kernel's RTM_GETADDR dump decodes: IFA_ADDRESS, IFA_LOCAL, label, flags, cacheinfo", () => {
  const d = collectDump(parseNlMessages(unhex(KERNEL_RTM_GETADDR_DUMP)));
  assert.equal(d.done, true);
  const addrs = d.parts.map((m) => AddrRepr.parse(m));
  const v4 = addrs.find((a) => a.label === "eth0")!;
  assert.equal(v4.ifa.family, AddressFamily.INET);
  assert.equal(v4.ifa.prefixlen, 24);
  assert.equal(v4.address?.toString(), "192.0.2.2");
  assert.equal(v4.local?.toString(), "192.0.2.2");
  assert.equal(v4.broadcast?.toString(), "192.0.2.255");
  const v6 = addrs.filter((a) => a.ifa.family === AddressFamily.INET6).map((a) => a.address?.toString());
  assert.deepEqual(v6, ["::1", "fd00::2", "fe80::fc:ff:fe00:1"]);
  for (const a of addrs) {
    assert.equal(a.cacheInfo?.valid, 0xffffffff);
    const m = d.parts[addrs.indexOf(a)]!;
    const again = AddrRepr.parse(only(AddrRepr.emit(a, m)));
    assert.deepEqual(again, a);
  }
});

test("address messages: emit, parse, family-checked address lengths", () => {
  const r: AddrRepr = { ifa: { family: AddressFamily.INET, prefixlen: 24, flags: 0, scope: 0, index: 7 }, address: Ipv4Address.parse("10.0.0.5"), local: Ipv4Address.parse("10.0.0.5"), label: "net1", extra: [] };
  const b = AddrRepr.emit(r, { type: Rtm.NEWADDR, flags: NlmF.REQUEST | NlmF.ACK | NlmF.CREATE | NlmF.EXCL, seq: 4, pid: 0 });
  assert.equal(hexOf(b.subarray(16, 40)), "021800000700000008000100" + "0a000005" + "08000200" + "0a000005");
  assert.deepEqual(AddrRepr.parse(only(b)), r);
  const r6: AddrRepr = { ifa: { family: AddressFamily.INET6, prefixlen: 64, flags: 0, scope: 0, index: 7 }, address: Ipv6Address.parse("fd00::5"), flags: 0x202, extra: [] };
  assert.deepEqual(AddrRepr.parse(only(AddrRepr.emit(r6, { type: Rtm.NEWADDR, flags: 0, seq: 0, pid: 0 }))), r6);
  const wrong = AddrRepr.emit({ ...r, ifa: { ...r.ifa, family: AddressFamily.INET6 } }, { type: Rtm.NEWADDR, flags: 0, seq: 0, pid: 0 });
  assert.throws(() => AddrRepr.parse(only(wrong)), is("WIRE_BAD_LENGTH"));
  assert.throws(() => AddrRepr.parse({ type: Rtm.NEWLINK, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(8) }), is("WIRE_BAD_VALUE"));
  assert.equal(Ifa.LOCAL, 2);
});

test("generic netlink: CTRL_CMD_GETFAMILY request and the controller's reply", () => {
  const req = ctrlGetFamilyRequest("vdpa", { seq: 1, pid: 0 });
  assert.equal(hexOf(req), "20000000100005000100000000000000" + "03010000" + "090002007664706100000000");
  const g = GenlRepr.parse(only(req));
  assert.equal(g.type, GENL_ID_CTRL);
  assert.equal(g.cmd, 3);
  assert.equal(nlaGet.str(g.attrs[0]!), "vdpa");
  const fam = { id: 0x1b, name: "vdpa", version: 1, hdrsize: 0, maxattr: 21, ops: [{ id: VdpaCmd.DEV_NEW, flags: 0x0b }, { id: VdpaCmd.DEV_GET, flags: 0x0e }], mcastGroups: [] };
  const rep = ctrlFamilyReply(fam, { seq: 1, pid: 77 });
  assert.deepEqual(parseCtrlFamily(GenlRepr.parse(only(rep))), fam);
  const dev = GenlRepr.emit({ type: 0x1b, flags: NlmF.REQUEST | NlmF.ACK, seq: 2, pid: 0, cmd: VdpaCmd.DEV_NEW, version: 1, attrs: [nla.str(VdpaAttr.MGMTDEV_BUS_NAME, "pci"), nla.str(VdpaAttr.MGMTDEV_DEV_NAME, "0000:08:00.2"), nla.str(VdpaAttr.DEV_NAME, "vdpa0"), nla.raw(VdpaAttr.DEV_NET_CFG_MACADDR, PF_MAC.bytes()), nla.u16(VdpaAttr.DEV_NET_CFG_MAX_VQP, 4)] });
  const gd = GenlRepr.parse(only(dev));
  assert.equal(nlaGet.str(findAttr(gd.attrs, VdpaAttr.MGMTDEV_DEV_NAME)!), "0000:08:00.2");
  assert.equal(nlaGet.u16(findAttr(gd.attrs, VdpaAttr.DEV_NET_CFG_MAX_VQP)!), 4);
  assert.throws(() => parseCtrlFamily({ ...g, attrs: [] }), is("WIRE_BAD_VALUE"));
  assert.throws(() => GenlRepr.parse({ type: 16, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(3) }), is("WIRE_TRUNCATED"));
  assert.equal(NLA_F_NESTED, 0x8000);
});

// ------------------------------------------------------------------ properties

const u32 = fc.nat({ max: 0xffffffff });
const arbMac = fc.integer({ min: 0, max: 2 ** 48 - 1 }).map((k) => MacAddress.fromKey(k));
const arbSetting = fc.constantFrom(-1, 0, 1);
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const arbVf: fc.Arbitrary<VfInfo> = fc
  .record(
    {
      vf: fc.nat({ max: 255 }),
      mac: arbMac,
      broadcast: arbMac,
      vlan: fc.record({ vlan: u32, qos: u32 }).map((x) => ({ ...x })),
      rate: fc.record({ minTxRate: u32, maxTxRate: u32 }).map((x) => ({ ...x })),
      txRate: u32,
      spoofchk: arbSetting,
      linkState: fc.nat({ max: 3 }),
      rssQueryEn: arbSetting,
      trust: arbSetting,
      vlanList: fc.array(fc.record({ vlan: u32, qos: u32, proto: fc.nat({ max: 0xffff }) }).map((x) => ({ ...x })), { minLength: 1, maxLength: 2 }),
      stats: fc.record({ rxPackets: u64, txPackets: u64, rxBytes: u64, txBytes: u64, broadcast: u64, multicast: u64, rxDropped: u64, txDropped: u64 }).map((x) => ({ ...x })),
      ibNodeGuid: u64,
    },
    { requiredKeys: ["vf", "mac"] },
  )
  .map((x) => ({ ...x, extra: [] }));

test("property: link messages round trip (parse ∘ emit = id, emit ∘ parse ∘ emit = emit)", () => {
  fc.assert(
    fc.property(fc.array(arbVf, { maxLength: 3 }), fc.option(fc.string({ maxLength: 15 }).filter((s) => !s.includes("\0")), { nil: undefined }), u32, (vfs, name, seq) => {
      const r = pfLink(vfs);
      if (name === undefined) delete r.ifname;
      else r.ifname = name;
      const h = { type: Rtm.NEWLINK, flags: NlmF.MULTI, seq, pid: 1 };
      const b = LinkRepr.emit(r, h);
      const back = LinkRepr.parse(only(b));
      assert.deepEqual(back, r);
      assert.deepEqual(LinkRepr.emit(back, h), b);
    }),
    { numRuns: 150 },
  );
});

function onlyWireErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof WireError, `unexpected ${String(e)}`);
  }
}

test("property: random bytes make every netlink parser throw only WireError", () => {
  const kinds = [Rtm.NEWLINK, Rtm.SETLINK, Rtm.NEWADDR, NlMsgType.ERROR, NlMsgType.DONE, GENL_ID_CTRL];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...kinds), fc.nat({ max: 0xffff }), (b, type, flags) => {
      onlyWireErrors(() => parseNlMessages(b));
      onlyWireErrors(() => parseAttrs(b));
      const m: NlMessage = { type, flags, seq: 0, pid: 0, payload: b };
      onlyWireErrors(() => LinkRepr.parse(m));
      onlyWireErrors(() => AddrRepr.parse({ ...m, type: Rtm.NEWADDR }));
      onlyWireErrors(() => AddrRepr.parse({ ...m, type: Rtm.NEWADDR, payload: Uint8Array.from([AddressFamily.INET6, ...b]) }));
      onlyWireErrors(() => NlErrorRepr.parse({ ...m, type: NlMsgType.ERROR }));
      onlyWireErrors(() => NlDoneRepr.parse({ ...m, type: NlMsgType.DONE }));
      onlyWireErrors(() => collectDump([m]));
      onlyWireErrors(() => parseCtrlFamily(GenlRepr.parse(m)));
      onlyWireErrors(() => parseVfInfo({ type: 1, payload: b }));
    }),
    { numRuns: 400 },
  );
});

test("property: random attribute trees inside a VF list never escape as non-WireError", () => {
  const leaf = fc.record({ type: fc.nat({ max: 15 }), payload: fc.uint8Array({ maxLength: 40 }) }).map((x) => ({ ...x }));
  fc.assert(
    fc.property(fc.array(fc.array(leaf, { maxLength: 6 }), { maxLength: 3 }), (infos) => {
      const body = emitAttrs([nla.nest(Ifla.VFINFO_LIST, infos.map((ls) => nla.nest(1, ls)))]);
      const p = new Uint8Array(16 + body.length);
      p.set(body, 16);
      onlyWireErrors(() => LinkRepr.parse({ type: Rtm.NEWLINK, flags: 0, seq: 0, pid: 0, payload: p }));
    }),
    { numRuns: 300 },
  );
});
