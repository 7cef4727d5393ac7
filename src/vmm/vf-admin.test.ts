import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ADMIN_CMD_HEADER_LEN,
  AdminOpcode,
  AdminQualifier,
  AdminStatus,
  ETH_P_8021AD,
  ETH_P_8021Q,
  SUPPORTED_OPCODES,
  VfLinkState,
  decodeAdminCommand,
  decodeAdminResult,
  decodeMacResult,
  decodeOpcodeList,
  decodeVfConfig,
  decodeVfStats,
  encodeAdminCommand,
  encodeAdminResult,
  encodeMacResult,
  encodeOpcodeList,
  encodeVfConfig,
  encodeVfStats,
  opcodeListLength,
  resultLength,
  statusErrno,
  type VfAdminCommand,
} from "./vf-admin.js";

test("request header is virtio 1.3 struct virtio_admin_cmd, little-endian", () => {
  const b = encodeAdminCommand({ op: "set-vlan", vf: 3, vlan: 100, qos: 5, vlanProto: ETH_P_8021AD });
  assert.equal(b.length, ADMIN_CMD_HEADER_LEN + 8);
  assert.deepEqual([...b.subarray(0, 4)], [0x03, 0x7f, 0x01, 0x00]); // opcode 0x7f03, group SR-IOV
  assert.deepEqual([...b.subarray(4, 16)], new Array<number>(12).fill(0));
  assert.deepEqual([...b.subarray(16, 24)], [3, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...b.subarray(24)], [100, 0, 5, 0, 0xa8, 0x88, 0, 0]);
});

test("every command round-trips through encode and decode", () => {
  const cmds: VfAdminCommand[] = [
    { op: "list-query" },
    { op: "list-use", opcodes: [0, 1, AdminOpcode.VF_SET_MAC, AdminOpcode.VF_GET_STATS] },
    { op: "get-config", vf: 1 },
    { op: "set-mac", vf: 2, mac: Uint8Array.of(0x02, 0, 0, 0, 0, 9) },
    { op: "get-mac", vf: 2 },
    { op: "set-vlan", vf: 255, vlan: 4095, qos: 7, vlanProto: ETH_P_8021Q },
    { op: "get-vlan", vf: 4 },
    { op: "set-spoofchk", vf: 1, enabled: false },
    { op: "set-trust", vf: 1, enabled: true },
    { op: "set-link-state", vf: 7, state: VfLinkState.DISABLE },
    { op: "set-rate", vf: 8, minTxRateMbps: 10, maxTxRateMbps: 1000 },
    { op: "get-stats", vf: 9 },
  ];
  for (const c of cmds) {
    const d = decodeAdminCommand(encodeAdminCommand(c));
    assert.ok(d.ok, c.op);
    assert.deepEqual(d.value, c);
  }
});

test("decode failures carry the spec's status and qualifier, in the spec's order", () => {
  const good = encodeAdminCommand({ op: "get-config", vf: 1 });
  const short = decodeAdminCommand(good.subarray(0, 23));
  assert.ok(!short.ok);
  assert.equal(short.qualifier, AdminQualifier.INVALID_COMMAND);

  const badGroup = good.slice();
  badGroup[2] = 2;
  badGroup[0] = 0x77; // a bad opcode too: the group is checked first (§2.12.1.2)
  const g = decodeAdminCommand(badGroup);
  assert.ok(!g.ok);
  assert.deepEqual([g.status, g.qualifier], [AdminStatus.EINVAL, AdminQualifier.INVALID_GROUP]);

  const badOp = good.slice();
  badOp[0] = 0x77;
  const o = decodeAdminCommand(badOp);
  assert.ok(!o.ok);
  assert.equal(o.qualifier, AdminQualifier.INVALID_OPCODE);

  const vlanHead = encodeAdminCommand({ op: "set-vlan", vf: 1, vlan: 1, qos: 0, vlanProto: ETH_P_8021Q });
  for (const [at, val] of [[24, 0xff], [26, 8], [29, 0x00]] as const) {
    const b = vlanHead.slice();
    b[at] = val;
    if (at === 24) b[25] = 0x10; // VID 0x10ff
    const r = decodeAdminCommand(b);
    assert.ok(!r.ok);
    assert.equal(r.qualifier, AdminQualifier.INVALID_FIELD);
  }
  const mc = decodeAdminCommand(encodeAdminCommand({ op: "set-mac", vf: 1, mac: Uint8Array.of(1, 0, 0x5e, 0, 0, 1) }));
  assert.ok(!mc.ok);
  assert.equal(mc.qualifier, AdminQualifier.INVALID_FIELD);
  const rate = decodeAdminCommand(encodeAdminCommand({ op: "set-rate", vf: 1, minTxRateMbps: 200, maxTxRateMbps: 100 }));
  assert.ok(!rate.ok);
  const truncated = decodeAdminCommand(encodeAdminCommand({ op: "set-rate", vf: 1, minTxRateMbps: 1, maxTxRateMbps: 2 }).subarray(0, 30));
  assert.ok(!truncated.ok);
  assert.equal(truncated.qualifier, AdminQualifier.INVALID_COMMAND);
});

test("member ids beyond 32 bits stay out of range", () => {
  const b = encodeAdminCommand({ op: "get-config", vf: 1 });
  b[23] = 0x80;
  const d = decodeAdminCommand(b);
  assert.ok(d.ok && d.value.op === "get-config");
  assert.ok(d.value.vf > 0xffffffff);
});

test("opcode list bitmap: length DIV_ROUND_UP(max+1,64)*8, bits by opcode", () => {
  assert.equal(opcodeListLength([0, 1]), 8);
  assert.equal(opcodeListLength([64]), 16);
  const b = encodeOpcodeList([0, 1, 64]);
  assert.deepEqual([...b], [3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeOpcodeList(b), [0, 1, 64]);
  assert.deepEqual(decodeOpcodeList(encodeOpcodeList(SUPPORTED_OPCODES)), [...SUPPORTED_OPCODES]);
  assert.equal(resultLength(AdminOpcode.LIST_QUERY), opcodeListLength(SUPPORTED_OPCODES));
});

test("results: header, config, stats and MAC layouts round-trip", () => {
  const cfg = {
    mac: Uint8Array.of(2, 1, 2, 3, 4, 5),
    vlan: 100,
    qos: 3,
    vlanProto: ETH_P_8021Q,
    spoofchk: true,
    trust: false,
    linkState: VfLinkState.ENABLE,
    minTxRateMbps: 0,
    maxTxRateMbps: 2500,
  };
  const r = decodeAdminResult(encodeAdminResult(AdminStatus.OK, 0, encodeVfConfig(cfg)));
  assert.ok(r);
  assert.equal(r.status, 0);
  assert.deepEqual(decodeVfConfig(r.payload), cfg);
  const stats = { rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 2n ** 63n, broadcast: 5n, multicast: 6n, rxDropped: 7n, txDropped: 8n };
  assert.deepEqual(decodeVfStats(encodeVfStats(stats)), stats);
  assert.deepEqual(decodeMacResult(encodeMacResult(cfg.mac)), cfg.mac);
  const refused = decodeAdminResult(encodeAdminResult(AdminStatus.EPERM, AdminQualifier.POLICY_VLAN));
  assert.ok(refused);
  assert.deepEqual([refused.status, refused.qualifier], [1, AdminQualifier.POLICY_VLAN]);
  // OK reserves the qualifier: the device writes 0.
  assert.equal(decodeAdminResult(encodeAdminResult(AdminStatus.OK, 7))?.qualifier, 0);
  assert.equal(decodeAdminResult(new Uint8Array(7)), undefined);
  assert.equal(decodeVfConfig(new Uint8Array(31)), undefined);
});

test("status maps to errno by value", () => {
  assert.equal(statusErrno(AdminStatus.OK), undefined);
  assert.equal(statusErrno(AdminStatus.EPERM), "EPERM");
  assert.equal(statusErrno(AdminStatus.EINVAL), "EINVAL");
  assert.equal(statusErrno(AdminStatus.EAGAIN), "EAGAIN");
  assert.equal(statusErrno(999), "EIO");
});

test("property: decoding arbitrary request bytes never throws", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...SUPPORTED_OPCODES, 0x7f0a, 7), (bytes, op) => {
      const b = new Uint8Array(Math.max(bytes.length, 24));
      b.set(bytes);
      b[0] = op & 0xff;
      b[1] = op >>> 8;
      b[2] = bytes.length % 3 === 0 ? 2 : 1;
      b[3] = 0;
      const r = decodeAdminCommand(b);
      if (!r.ok) assert.notEqual(r.status, AdminStatus.OK);
      const raw = decodeAdminCommand(bytes);
      if (!raw.ok) assert.ok(raw.reason.length > 0);
    }),
    { numRuns: 500 },
  );
});
