import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { commonField } from "./virtio-width.js";
import { makeVpfWorld } from "./vpf-platform.js";
import { LinuxError } from "./errors.js";

const BAR = 0xfe80_0000;

/** The vPF (bus 1, devfn 0) with BAR 4 at BAR and memory decoding on, as firmware leaves it. */
function world(): ReturnType<typeof makeVpfWorld> {
  const w = makeVpfWorld({ poolSize: 2 });
  w.platform.configWrite(1, 0, 0x20, 4, BAR);
  w.platform.configWrite(1, 0, 0x24, 4, 0);
  w.platform.configWrite(1, 0, 0x04, 2, 0x0006);
  return w;
}

test("common-config field table (virtio 1.3 §4.1.4.3)", () => {
  assert.deepEqual(commonField(0x05), { start: 0x04, width: 4 });
  assert.deepEqual(commonField(0x13), { start: 0x12, width: 2 });
  assert.deepEqual(commonField(0x14), { start: 0x14, width: 1 });
  assert.deepEqual(commonField(0x15), { start: 0x15, width: 1 });
  assert.deepEqual(commonField(0x19), { start: 0x18, width: 2 });
  assert.deepEqual(commonField(0x2b), { start: 0x28, width: 4 });
  assert.deepEqual(commonField(0x3d), { start: 0x3c, width: 2 });
});

test("a 16-bit read that v86 splits into two byte reads returns the field's bytes", () => {
  const w = world();
  const numQueues = w.vpf.device.numQueues;
  // What the strict transport answers to a byte read of a 16-bit field (virtio §4.1.3.1).
  assert.equal(w.vm.mmioRead(BAR + 0x12, 1), 0);
  assert.equal(w.platform.mmioRead(BAR + 0x12, 1), numQueues & 0xff);
  assert.equal(w.platform.mmioRead(BAR + 0x13, 1), numQueues >> 8);
  // queue_size of queue 0, high byte then low byte.
  w.platform.mmioWrite(BAR + 0x16, 2, 0);
  const size = w.vm.mmioRead(BAR + 0x18, 2);
  assert.ok(size > 0);
  assert.equal(w.platform.mmioRead(BAR + 0x19, 1) * 256 + w.platform.mmioRead(BAR + 0x18, 1), size);
  // 8-bit fields and whole-width reads pass through unchanged.
  w.platform.mmioWrite(BAR + 0x14, 1, 1);
  assert.equal(w.platform.mmioRead(BAR + 0x14, 1), 1);
  assert.equal(w.platform.mmioRead(BAR + 0x12, 2), numQueues);
});

test("byte reads outside a common configuration structure are not widened", () => {
  const w = world();
  const before = w.platform.widened;
  // Device configuration (MAC bytes) and unclaimed space.
  assert.equal(w.platform.mmioRead(BAR + 0x1800, 1), w.vm.mmioRead(BAR + 0x1800, 1));
  assert.equal(w.platform.mmioRead(0xfd00_0000, 1), 0xff);
  assert.equal(w.platform.widened, before);
});

test("property: a byte read anywhere in BAR 4 never throws and stays a byte", () => {
  const w = world();
  fc.assert(
    fc.property(fc.integer({ min: BAR - 64, max: BAR + 0x4040 }), (a) => {
      const v = w.platform.mmioRead(a, 1);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff);
    }),
  );
});

test("a pool size out of range is LINUX_BAD_ARGUMENT", () => {
  for (const poolSize of [0, 255, 1.5]) {
    assert.throws(() => makeVpfWorld({ poolSize }), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_BAD_ARGUMENT");
  }
});
