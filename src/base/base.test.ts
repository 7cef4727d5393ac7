import { test } from "node:test";
import assert from "node:assert/strict";
import { VirtualClock, SeededRandom, KernelError, VpfError } from "./index.js";

test("virtual clock fires timers in deadline order, ties in insertion order", () => {
  const c = new VirtualClock();
  const seen: string[] = [];
  c.after(20n, () => seen.push("b"));
  c.after(10n, () => seen.push("a1"));
  c.after(10n, () => seen.push("a2"));
  const h = c.after(15n, () => seen.push("cancelled"));
  h.cancel();
  c.advance(12n);
  assert.deepEqual(seen, ["a1", "a2"]);
  assert.equal(c.now(), 12n);
  c.advance(100n);
  assert.deepEqual(seen, ["a1", "a2", "b"]);
  assert.throws(() => c.advance(-1n), RangeError);
});

test("seeded random repeats per seed and stays in range", () => {
  const a = new SeededRandom(42), b = new SeededRandom(42), c = new SeededRandom(43);
  const sa = Array.from({ length: 8 }, () => a.nextU32());
  const sb = Array.from({ length: 8 }, () => b.nextU32());
  const sc = Array.from({ length: 8 }, () => c.nextU32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  for (let i = 0; i < 1000; i++) {
    const v = a.below(7);
    assert.ok(v >= 0 && v < 7);
  }
});

test("kernel errors carry errno name as stable code and strerror text", () => {
  const e = new KernelError("EBUSY");
  assert.ok(e instanceof VpfError);
  assert.equal(e.code, "EBUSY");
  assert.equal(e.message, "Device or resource busy");
});
