import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AdminCommandRegistry,
  VIRTIO_ADMIN_STATUS_EINVAL,
  VIRTIO_ADMIN_STATUS_OK,
  VIRTIO_ADMIN_STATUS_Q_INVALID_COMMAND,
  decodeOpcodeBitmap,
  encodeOpcodeBitmap,
  type AdminGroup,
} from "./index.js";

function group(over: Partial<AdminGroup> = {}): AdminGroup {
  return { groupType: 1, supported: () => true, active: () => true, memberValid: (id) => id >= 1 && id <= 4, ...over };
}

function cmd(opcode: number, member: number, data: number[] = [], groupType = 1): Uint8Array {
  const b = new Uint8Array(24 + data.length);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, opcode, true);
  dv.setUint16(2, groupType, true);
  dv.setBigUint64(16, BigInt(member), true);
  b.set(data, 24);
  return b;
}

function status(out: Uint8Array): [number, number] {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  return [dv.getUint16(0, true), dv.getUint16(2, true)];
}

test("opcode bitmaps round-trip", () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 0x7fff }), { maxLength: 20 }), (ops) => {
      const b = encodeOpcodeBitmap(ops);
      assert.equal(b.length % 8, 0);
      assert.deepEqual(decodeOpcodeBitmap(b), [...ops].sort((x, y) => x - y));
    }),
  );
});

test("a short readable part reads as zeros: an empty command is LIST_QUERY on group 0", () => {
  const r = new AdminCommandRegistry([group()]);
  assert.deepEqual(status(r.execute(new Uint8Array(0))), [VIRTIO_ADMIN_STATUS_EINVAL, 4]);
  assert.deepEqual(status(r.execute(Uint8Array.of(0, 0, 1))), [VIRTIO_ADMIN_STATUS_OK, 0], "group_type 1 in a truncated header");
});

test("a handler that throws answers INVALID_COMMAND and keeps the error", () => {
  const r = new AdminCommandRegistry([group()]);
  r.register(0x10, { name: "boom", usesMember: false, handle: () => { throw new Error("bug"); } });
  r.execute(cmd(1, 0, [...encodeOpcodeBitmap([0, 1, 0x10])]));
  assert.deepEqual(status(r.execute(cmd(0x10, 0))), [VIRTIO_ADMIN_STATUS_EINVAL, VIRTIO_ADMIN_STATUS_Q_INVALID_COMMAND]);
  assert.ok(r.lastHandlerError instanceof Error);
});

test("property: any command bytes get a status, never an exception; EINVAL leaves the usable set alone", () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 30 }), (cmds) => {
      const r = new AdminCommandRegistry([group()]);
      const seen: number[] = [];
      r.register(0x20, { name: "member", usesMember: true, handle: (c) => { seen.push(c.memberId); return { status: 0 }; } });
      for (const c of cmds) {
        const out = r.execute(c);
        assert.ok(out.length >= 8 && out.length % 8 === 0);
        const [st] = status(out);
        assert.ok(st === VIRTIO_ADMIN_STATUS_OK || st === VIRTIO_ADMIN_STATUS_EINVAL);
      }
      for (const m of seen) assert.ok(m >= 1 && m <= 4, "handlers only see valid members");
      assert.equal(r.stats.commands, cmds.length);
    }),
    { numRuns: 300 },
  );
});
