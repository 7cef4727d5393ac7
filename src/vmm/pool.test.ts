import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BackendPool } from "./pool.js";
import { VmmError } from "./errors.js";

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof VmmError);
    return e.code;
  }
  assert.fail("expected a VmmError");
};

test("take is all-or-nothing, lowest index first, and give returns to the original place", () => {
  const pool = new BackendPool("p", ["a", "b", "c", "d"]);
  assert.deepEqual(pool.take("vm1", 2), ["a", "b"]);
  assert.equal(code(() => pool.take("vm2", 3)), "VMM_POOL_EXHAUSTED");
  assert.equal(pool.available, 2, "a refused take changes nothing");
  assert.deepEqual(pool.take("vm2", 2), ["c", "d"]);
  pool.give("vm1", ["a"]);
  assert.deepEqual(pool.take("vm2", 1), ["a"]);
  assert.equal(pool.heldBy("vm1"), 1);
  assert.equal(pool.heldBy("vm2"), 3);
  assert.equal(pool.holderOf("a"), "vm2");
});

test("quota bounds what one holder may hold in all", () => {
  const pool = new BackendPool("p", [1, 2, 3, 4, 5]);
  pool.take("vm1", 2, 3);
  assert.equal(code(() => pool.take("vm1", 2, 3)), "VMM_QUOTA_EXCEEDED");
  assert.equal(pool.heldBy("vm1"), 2);
  assert.deepEqual(pool.take("vm1", 1, 3), [3]);
});

test("give refuses backends the holder does not hold, changing nothing", () => {
  const pool = new BackendPool("p", ["a", "b"]);
  pool.take("vm1", 1);
  assert.equal(code(() => pool.give("vm2", ["a"])), "VMM_NOT_HELD");
  assert.equal(code(() => pool.give("vm1", ["a", "b"])), "VMM_NOT_HELD");
  assert.equal(code(() => pool.give("vm1", ["a", "a"])), "VMM_NOT_HELD");
  assert.equal(pool.heldBy("vm1"), 1);
  pool.give("vm1", ["a"]);
  assert.deepEqual([...pool.holdings()], []);
  assert.equal(code(() => new BackendPool("q", ["x", "x"])), "VMM_BAD_ARGUMENT");
});

test("property: holdings always add up to capacity - available", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 4 })), { maxLength: 40 }), (ops) => {
      const pool = new BackendPool("p", [0, 1, 2, 3, 4, 5, 6, 7]);
      const held = new Map<string, number[]>();
      for (const [isTake, who, n] of ops) {
        const h = `vm${who}`;
        const mine = held.get(h) ?? [];
        if (isTake) {
          try {
            mine.push(...pool.take(h, n, 5));
          } catch (e) {
            assert.ok(e instanceof VmmError);
          }
        } else {
          pool.give(h, mine.splice(0, n));
        }
        held.set(h, mine);
      }
      let sum = 0;
      for (const [h, list] of held) {
        assert.equal(pool.heldBy(h), list.length);
        assert.ok(list.length <= 5);
        sum += list.length;
      }
      assert.equal(sum, pool.capacity - pool.available);
    }),
  );
});
