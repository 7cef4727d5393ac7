import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestMemory, GuestMemoryError, GuestAllocator } from "./index.js";
import { VpfError } from "../base/index.js";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof VpfError) return e.code;
    throw e;
  }
  return "no error";
}

test("little-endian accessors round-trip at every width", () => {
  const m = new GuestMemory(4096);
  m.writeU8(0, 0xab);
  m.writeU16(2, 0x1234);
  m.writeU32(4, 0xdeadbeef);
  m.writeU64(8, 0x0102030405060708n);
  assert.equal(m.readU8(0), 0xab);
  assert.equal(m.readU16(2), 0x1234);
  assert.equal(m.readU32(4), 0xdeadbeef);
  assert.equal(m.readU64(8), 0x0102030405060708n);
  assert.deepEqual([...m.read(2, 2)], [0x34, 0x12]);
  assert.deepEqual([...m.read(8, 8)], [8, 7, 6, 5, 4, 3, 2, 1]);
  m.writeU64(16, 0x1f_ffff_ffff_ffff);
  assert.equal(m.readU64Number(16), 0x1f_ffff_ffff_ffff);
  m.writeU64(24, 0xffff_ffff_ffff_ffffn);
  assert.equal(code(() => m.readU64Number(24)), "MEM_VALUE_TOO_LARGE");
});

test("regions: sparse layout, adjacent regions coalesce, overlaps refused", () => {
  const m = new GuestMemory([{ base: 0x10000, size: 0x1000 }, { base: 0, size: 0x1000 }, { base: 0x1000, size: 0x1000 }]);
  assert.deepEqual(m.regions(), [{ base: 0, size: 0x2000 }, { base: 0x10000, size: 0x1000 }]);
  assert.equal(m.size, 0x3000);
  m.writeU32(0xffe, 0x11223344); // crosses the coalesced boundary
  assert.equal(m.readU32(0xffe), 0x11223344);
  m.writeU16(0x10ffe, 7);
  assert.equal(m.readU16(0x10ffe), 7);
  assert.equal(code(() => m.readU32(0x1ffe)), "MEM_OUT_OF_RANGE");
  assert.equal(code(() => m.readU8(0x5000)), "MEM_OUT_OF_RANGE");
  assert.equal(code(() => new GuestMemory([{ base: 0, size: 10 }, { base: 5, size: 10 }])), "MEM_BAD_LAYOUT");
  assert.equal(code(() => new GuestMemory([])), "MEM_BAD_LAYOUT");
  assert.equal(code(() => new GuestMemory(-1)), "MEM_BAD_LAYOUT");
});

test("view is zero-copy and read is a copy", () => {
  const m = new GuestMemory(256);
  const v = m.view(16, 4);
  v[0] = 9;
  assert.equal(m.readU8(16), 9);
  const c = m.read(16, 4);
  c[0] = 1;
  assert.equal(m.readU8(16), 9);
  m.write(100, Uint8Array.of(1, 2, 3));
  assert.deepEqual([...m.view(100, 3)], [1, 2, 3]);
  m.fill(100, 3, 0xee);
  assert.deepEqual([...m.read(100, 3)], [0xee, 0xee, 0xee]);
  assert.equal(code(() => m.view(250, 7)), "MEM_OUT_OF_RANGE");
  assert.equal(code(() => m.view(0, -1)), "MEM_OUT_OF_RANGE");
});

test("property: any access is either served inside RAM or refused with MEM_OUT_OF_RANGE", () => {
  const m = new GuestMemory([{ base: 0x1000, size: 0x800 }, { base: 0x4000, size: 0x100 }]);
  const addr = fc.oneof(fc.integer({ min: -10, max: 0x5000 }), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(NaN));
  fc.assert(
    fc.property(addr, fc.integer({ min: -4, max: 0x900 }), fc.constantFrom(1, 2, 4, 8), (a, len, w) => {
      const inside = Number.isInteger(a) && len >= 0 && ((a >= 0x1000 && a + len <= 0x1800) || (a >= 0x4000 && a + len <= 0x4100));
      const c = code(() => m.read(a, len));
      assert.equal(c, inside ? "no error" : "MEM_OUT_OF_RANGE");
      const insideW = Number.isInteger(a) && ((a >= 0x1000 && a + w <= 0x1800) || (a >= 0x4000 && a + w <= 0x4100));
      const cw = code(() => (w === 8 ? m.readU64(a) : w === 4 ? m.readU32(a) : w === 2 ? m.readU16(a) : m.readU8(a)));
      assert.equal(cw, insideW ? "no error" : "MEM_OUT_OF_RANGE");
      assert.equal(m.contains(a, w), insideW);
    }),
  );
});

test("allocator: alignment, exhaustion, free and coalescing", () => {
  const m = new GuestMemory(0x10000);
  const a = new GuestAllocator(m, 0x1000, 0x1000);
  const x = a.alloc(10, 16);
  const y = a.alloc(100, 4096 / 2);
  assert.equal(x % 16, 0);
  assert.equal(y % 2048, 0);
  assert.ok(y >= x + 10);
  assert.equal(code(() => a.alloc(0x1000)), "MEM_ALLOC_FAILED");
  assert.equal(code(() => a.alloc(8, 3)), "MEM_ALLOC_FAILED");
  a.free(x);
  a.free(y);
  assert.equal(a.freeBytes, 0x1000);
  assert.equal(a.liveAllocations, 0);
  assert.equal(a.alloc(0x1000, 4096), 0x1000);
  assert.equal(code(() => a.free(0x1234)), "MEM_BAD_FREE");
  assert.equal(code(() => new GuestAllocator(m, 0xf000, 0x2000)), "MEM_OUT_OF_RANGE");
  assert.ok(new GuestMemoryError("X", "y") instanceof VpfError);
});

test("property: allocations never overlap and free returns everything", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 300 }), fc.constantFrom(1, 2, 8, 64, 256), fc.boolean()), { maxLength: 60 }), (ops) => {
      const a = new GuestAllocator(undefined, 0x100, 0x4000);
      const live: [number, number][] = [];
      for (const [size, align, doFree] of ops) {
        if (doFree && live.length > 0) {
          const [addr] = live.splice(0, 1)[0]!;
          a.free(addr);
          continue;
        }
        let addr: number;
        try {
          addr = a.alloc(size, align);
        } catch (e) {
          assert.ok(e instanceof GuestMemoryError && e.code === "MEM_ALLOC_FAILED");
          continue;
        }
        assert.equal(addr % align, 0);
        assert.ok(addr >= 0x100 && addr + size <= 0x4100);
        for (const [b, s] of live) assert.ok(addr + size <= b || b + s <= addr);
        live.push([addr, size]);
      }
      for (const [addr] of live) a.free(addr);
      assert.equal(a.freeBytes, 0x4000);
    }),
  );
});

test("backing: a region over a caller's array is the same bytes both ways (zero copy, offset view too)", () => {
  const heap = new Uint8Array(0x3000);
  const ram = heap.subarray(0x1000, 0x2000); // a window at a non-zero byteOffset, like wasm RAM
  const m = new GuestMemory([{ base: 0x10000, size: 0x1000, backing: ram }]);
  m.writeU32(0x10004, 0xdeadbeef);
  assert.deepEqual([...heap.subarray(0x1004, 0x1008)], [0xef, 0xbe, 0xad, 0xde]);
  heap[0x1010] = 0x5a;
  assert.equal(m.readU8(0x10010), 0x5a);
  m.view(0x10020, 4).set([1, 2, 3, 4]);
  assert.equal(m.readU32(0x10020), 0x04030201);
  // Bounds are the region's, not the buffer's: the bytes around the window stay unreachable.
  assert.equal(code(() => m.readU8(0x10000 + 0x1000)), "MEM_OUT_OF_RANGE");
  assert.equal(code(() => m.readU32(0xfffe)), "MEM_OUT_OF_RANGE");
  assert.equal(code(() => m.view(0x10ffc, 8)), "MEM_OUT_OF_RANGE");
  assert.equal(heap[0x0fff], 0);
  assert.equal(heap[0x2000], 0);
});

test("backing: wrong length refused; a backed region is never coalesced with its neighbour", () => {
  assert.equal(code(() => new GuestMemory([{ base: 0, size: 0x1000, backing: new Uint8Array(0x800) }])), "MEM_BAD_LAYOUT");
  const m = new GuestMemory([
    { base: 0, size: 0x1000 },
    { base: 0x1000, size: 0x1000, backing: new Uint8Array(0x1000) },
  ]);
  assert.deepEqual(m.regions(), [{ base: 0, size: 0x1000 }, { base: 0x1000, size: 0x1000 }]);
  assert.equal(code(() => m.writeU32(0xffe, 1)), "MEM_OUT_OF_RANGE");
  m.writeU32(0xffc, 1);
  m.writeU32(0x1000, 2);
  assert.equal(m.readU32(0xffc) + m.readU32(0x1000), 3);
});

test("rebind: a region moves to new bytes of the same length; size mismatch and unknown base refused", () => {
  const a = new Uint8Array(0x1000);
  const m = new GuestMemory([{ base: 0x2000, size: 0x1000, backing: a }]);
  m.writeU8(0x2001, 7);
  const b = new Uint8Array(0x1000);
  b[1] = 9;
  m.rebind(0x2000, b);
  assert.equal(m.readU8(0x2001), 9);
  m.writeU16(0x2002, 0xbeef);
  assert.equal(b[2], 0xef);
  assert.equal(a[2], 0, "the old bytes are no longer written");
  assert.equal(code(() => m.rebind(0x2000, new Uint8Array(0x2000))), "MEM_BAD_LAYOUT");
  assert.equal(code(() => m.rebind(0x2800, new Uint8Array(0x1000))), "MEM_BAD_LAYOUT");
  // A plain region can be rebound too (a VM built before the emulator's RAM existed).
  const p = new GuestMemory(0x1000);
  const ext = new Uint8Array(0x1000);
  p.rebind(0, ext);
  p.writeU32(0x10, 0x01020304);
  assert.equal(ext[0x10], 4);
});

test("property: a backed region and a plain one agree on every access and refuse the same ones", () => {
  const size = 0x400;
  const op = fc.record({
    kind: fc.constantFrom("u8", "u16", "u32", "u64", "bytes", "fill"),
    addr: fc.oneof(fc.integer({ min: 0x1000 - 16, max: 0x1000 + size + 16 }), fc.constantFrom(-1, 0.5, Number.NaN, 2 ** 60)),
    value: fc.integer({ min: 0, max: 0xffff_ffff }),
    len: fc.integer({ min: 0, max: 24 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), fc.integer({ min: 0, max: 64 }), (ops, offset) => {
      const heap = new Uint8Array(size + 128);
      const plain = new GuestMemory([{ base: 0x1000, size }]);
      const backed = new GuestMemory([{ base: 0x1000, size, backing: heap.subarray(offset, offset + size) }]);
      for (const o of ops) {
        const act = (m: GuestMemory): string => {
          try {
            switch (o.kind) {
              case "u8": m.writeU8(o.addr, o.value & 0xff); return String(m.readU8(o.addr));
              case "u16": m.writeU16(o.addr, o.value); return String(m.readU16(o.addr));
              case "u32": m.writeU32(o.addr, o.value); return String(m.readU32(o.addr));
              case "u64": m.writeU64(o.addr, BigInt(o.value) * 3n); return String(m.readU64(o.addr));
              case "bytes": m.write(o.addr, new Uint8Array(o.len).fill(o.value & 0xff)); return m.read(o.addr, o.len).join(",");
              case "fill": m.fill(o.addr, o.len, o.value & 0xff); return m.view(o.addr, o.len).join(",");
            }
          } catch (e) {
            if (e instanceof GuestMemoryError) return e.code;
            throw e;
          }
        };
        assert.equal(act(backed), act(plain));
      }
      assert.deepEqual(heap.subarray(offset, offset + size), plain.read(0x1000, size));
      // Nothing outside the window was touched.
      assert.ok(heap.subarray(0, offset).every((b) => b === 0) && heap.subarray(offset + size).every((b) => b === 0));
    }),
    { numRuns: 200 },
  );
});
