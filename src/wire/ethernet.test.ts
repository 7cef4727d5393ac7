import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  EtherType,
  EthernetFrame,
  EthernetRepr,
  MacAddress,
  WireError,
  outerVlanTag,
  outerVlanTci,
  popVlanTag,
  popVlanTagInto,
  pushVlanTag,
  pushVlanTagInto,
  vlanTag,
  macKeyAt,
  tciOf,
} from "./index.js";

function isWireError(code: string) {
  return (e: unknown) => e instanceof WireError && e.code === code;
}

test("MAC addresses parse, format and classify", () => {
  const m = MacAddress.parse("AA:bb:0C:dd:ee:0f");
  assert.equal(m.toString(), "aa:bb:0c:dd:ee:0f");
  assert.deepEqual([...m.bytes()], [0xaa, 0xbb, 0x0c, 0xdd, 0xee, 0x0f]);
  assert.equal(MacAddress.parse("00-11-22-33-44-55").toString(), "00:11:22:33:44:55");
  assert.equal(MacAddress.fromBytes(m.bytes()).equals(m), true);
  assert.equal(MacAddress.BROADCAST.toString(), "ff:ff:ff:ff:ff:ff");
  assert.equal(MacAddress.BROADCAST.isBroadcast, true);
  assert.equal(MacAddress.BROADCAST.isMulticast, true);
  const mc = MacAddress.parse("01:00:5e:00:00:01");
  assert.equal(mc.isMulticast, true);
  assert.equal(mc.isBroadcast, false);
  assert.equal(MacAddress.parse("33:33:00:00:00:01").isMulticast, true);
  const uc = MacAddress.parse("02:00:00:00:00:01");
  assert.equal(uc.isUnicast, true);
  assert.equal(uc.isLocallyAdministered, true);
  assert.equal(MacAddress.parse("00:11:22:33:44:55").isLocallyAdministered, false);
  assert.equal(MacAddress.ZERO.isZero, true);
  for (const bad of ["", "aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:ff:00", "aa:bb-cc:dd:ee:ff", "gg:bb:cc:dd:ee:ff", "aabb.ccdd.eeff"]) {
    assert.throws(() => MacAddress.parse(bad), isWireError("WIRE_BAD_VALUE"), bad);
  }
  assert.throws(() => MacAddress.fromBytes(new Uint8Array(5)), isWireError("WIRE_TRUNCATED"));
  assert.throws(() => MacAddress.fromKey(2 ** 48), isWireError("WIRE_BAD_VALUE"));
  assert.equal(JSON.stringify({ m }), '{"m":"aa:bb:0c:dd:ee:0f"}');
});

test("MAC text and key round trip", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (b) => {
      const m = MacAddress.fromBytes(b);
      assert.deepEqual(m.bytes(), b);
      assert.equal(MacAddress.parse(m.toString()).key, m.key);
      assert.equal(m.isMulticast, (b[0]! & 1) === 1);
      assert.equal(macKeyAt(b, 0), m.key);
    }),
  );
});

const A = MacAddress.parse("02:00:00:00:00:0a");
const B = MacAddress.parse("02:00:00:00:00:0b");

test("untagged Ethernet II header parses and emits", () => {
  const repr: EthernetRepr = { dst: A, src: B, vlans: [], etherType: EtherType.IPV4 };
  const buf = new Uint8Array(EthernetRepr.bufferLen(repr) + 3);
  EthernetRepr.emit(repr, buf);
  buf.set([1, 2, 3], 14);
  assert.deepEqual([...buf.subarray(0, 14)], [2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 0x0b, 0x08, 0x00]);
  const f = EthernetFrame.check(buf);
  assert.equal(f.tagCount, 0);
  assert.equal(f.headerLen, 14);
  assert.deepEqual([...f.payload], [1, 2, 3]);
  assert.equal(f.dstKey, A.key);
  assert.deepEqual(EthernetRepr.parse(f), repr);
});

test("802.1Q and 802.1ad (QinQ) tags carry PCP, DEI and VID", () => {
  const s = vlanTag(100, { tpid: EtherType.QINQ, pcp: 5, dei: true });
  const c = vlanTag(4095, { pcp: 7 });
  const repr: EthernetRepr = { dst: A, src: B, vlans: [s, c], etherType: EtherType.IPV6 };
  const buf = new Uint8Array(EthernetRepr.bufferLen(repr));
  EthernetRepr.emit(repr, buf);
  assert.deepEqual([...buf.subarray(12)], [0x88, 0xa8, 0xb0, 0x64, 0x81, 0x00, 0xef, 0xff, 0x86, 0xdd]);
  const f = EthernetFrame.check(buf);
  assert.equal(f.tagCount, 2);
  assert.equal(f.etherType, EtherType.IPV6);
  assert.equal(f.outerType, EtherType.QINQ);
  assert.deepEqual(f.tag(0), s);
  assert.deepEqual(f.tag(1), c);
  assert.throws(() => f.tag(2), isWireError("WIRE_BAD_VALUE"));
  assert.deepEqual(EthernetRepr.parse(f), repr);
});

test("tag validation refuses out-of-range fields", () => {
  assert.throws(() => vlanTag(4096), isWireError("WIRE_BAD_VALUE"));
  assert.throws(() => vlanTag(-1), isWireError("WIRE_BAD_VALUE"));
  assert.throws(() => vlanTag(1, { pcp: 8 }), isWireError("WIRE_BAD_VALUE"));
  assert.throws(() => vlanTag(1, { tpid: 0x0800 }), isWireError("WIRE_BAD_VALUE"));
  const buf = new Uint8Array(18);
  assert.throws(() => EthernetRepr.emit({ dst: A, src: B, vlans: [{ tpid: 0x8100, pcp: 0, dei: false, vid: 5000 }], etherType: 0x800 }, buf), isWireError("WIRE_BAD_VALUE"));
  assert.throws(() => EthernetRepr.emit({ dst: A, src: B, vlans: [], etherType: 0x800 }, new Uint8Array(13)), isWireError("WIRE_BUFFER_TOO_SMALL"));
});

test("push and pop tags over a frame, QinQ order", () => {
  const repr: EthernetRepr = { dst: A, src: B, vlans: [], etherType: EtherType.ARP };
  const plain = new Uint8Array(14 + 28).fill(0x5a);
  EthernetRepr.emit(repr, plain);
  assert.equal(popVlanTag(plain), null);
  assert.equal(outerVlanTag(plain), null);
  const ctag = vlanTag(10, { pcp: 3 });
  const stag = vlanTag(200, { tpid: EtherType.QINQ });
  const one = pushVlanTag(plain, ctag);
  const two = pushVlanTag(one, stag);
  assert.equal(two.length, plain.length + 8);
  const f = EthernetFrame.check(two);
  assert.deepEqual(f.tags(), [stag, ctag]);
  assert.equal(f.etherType, EtherType.ARP);
  assert.deepEqual(outerVlanTag(two), stag);
  const p1 = popVlanTag(two);
  assert.ok(p1);
  assert.deepEqual(p1.tag, stag);
  assert.deepEqual(p1.frame, one);
  const p2 = popVlanTag(p1.frame);
  assert.ok(p2);
  assert.deepEqual(p2.tag, ctag);
  assert.deepEqual(p2.frame, plain);
  assert.throws(() => pushVlanTag(new Uint8Array(13), ctag), isWireError("WIRE_TRUNCATED"));
  const cut = two.slice(0, 16);
  assert.throws(() => popVlanTag(cut), isWireError("WIRE_TRUNCATED"));
});

test("checked constructor refuses short frames and overlong tag stacks", () => {
  assert.throws(() => EthernetFrame.check(new Uint8Array(13)), isWireError("WIRE_TRUNCATED"));
  const t = new Uint8Array(16);
  t[12] = 0x81;
  assert.throws(() => EthernetFrame.check(t), isWireError("WIRE_TRUNCATED"));
  const many = new Uint8Array(14 + 4 * 9);
  for (let i = 0; i < 10; i++) many.set([0x81, 0x00], 12 + 4 * i);
  assert.throws(() => EthernetFrame.check(many), isWireError("WIRE_BAD_VALUE"));
});

test("random bytes: Ethernet parsing throws only WireError and round trips", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      let f: EthernetFrame;
      try {
        f = EthernetFrame.check(b);
      } catch (e) {
        assert.ok(e instanceof WireError, String(e));
        return;
      }
      const r = EthernetRepr.parse(f);
      const out = new Uint8Array(EthernetRepr.bufferLen(r));
      EthernetRepr.emit(r, out);
      assert.deepEqual(out, b.subarray(0, f.headerLen));
    }),
  );
});

test("push/pop into a scratch buffer and in place match the allocating forms", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 14, maxLength: 80 }), fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 7 }), fc.boolean(), (raw, vid, pcp, ad) => {
      const frame = raw.slice();
      frame[12] = 0x08; // make it untagged
      const tag = vlanTag(vid, { pcp, tpid: ad ? EtherType.QINQ : EtherType.VLAN });
      const tagged = pushVlanTag(frame, tag);
      const scratch = new Uint8Array(100).fill(0xee);
      const n = pushVlanTagInto(frame, tag, scratch);
      assert.deepEqual(scratch.subarray(0, n), tagged);
      // In place: the frame sits at the start of a larger buffer.
      const room = new Uint8Array(frame.length + 4);
      room.set(frame);
      assert.equal(pushVlanTagInto(room.subarray(0, frame.length), tag, room), tagged.length);
      assert.deepEqual(room, tagged);
      assert.equal(outerVlanTci(tagged), tag.tpid * 0x10000 + tciOf(tag));
      assert.equal(outerVlanTci(frame), -1);
      const back = new Uint8Array(100);
      const m = popVlanTagInto(tagged, back);
      assert.deepEqual(back.subarray(0, m), frame);
      assert.equal(popVlanTagInto(frame, back), -1);
      const inPlace = tagged.slice();
      assert.equal(popVlanTagInto(inPlace, inPlace), frame.length);
      assert.deepEqual(inPlace.subarray(0, frame.length), frame);
      assert.deepEqual(popVlanTag(tagged)?.frame, frame);
    }),
  );
  const f = new Uint8Array(20);
  assert.throws(() => pushVlanTagInto(f, vlanTag(1), new Uint8Array(23)), isWireError("WIRE_BUFFER_TOO_SMALL"));
  const t = pushVlanTag(f, vlanTag(1));
  assert.throws(() => popVlanTagInto(t, new Uint8Array(19)), isWireError("WIRE_BUFFER_TOO_SMALL"));
});
