import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { GuestAllocator, GuestMemory } from "../memory/index.js";
import {
  SplitQueueDevice,
  SplitQueueDriver,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VirtqueueError,
  needEvent,
  type SplitRingConfig,
} from "./index.js";

function setup(size = 8, eventIdx = false) {
  const mem = new GuestMemory(1 << 20);
  const alloc = new GuestAllocator(mem, 0x1000, (1 << 20) - 0x1000);
  const drv = SplitQueueDriver.allocate<string>(mem, alloc, size, { eventIdx });
  const dev = new SplitQueueDevice(mem, drv.config);
  return { mem, alloc, drv, dev };
}

function buf(mem: GuestMemory, alloc: GuestAllocator, bytes: number[] | number): { addr: number; len: number } {
  const data = typeof bytes === "number" ? new Uint8Array(bytes) : Uint8Array.from(bytes);
  const addr = alloc.alloc(data.length, 8);
  mem.write(addr, data);
  return { addr, len: data.length };
}

test("needEvent follows vring_need_event modulo 2^16", () => {
  assert.equal(needEvent(5, 6, 5), true);
  assert.equal(needEvent(5, 5, 4), false);
  assert.equal(needEvent(0xffff, 0, 0xfffe), true);
  assert.equal(needEvent(10, 12, 11), false);
});

test("driver adds out/in chains, device pops, reads, writes, returns; driver reaps tokens", () => {
  const { mem, alloc, drv, dev } = setup();
  const out1 = buf(mem, alloc, [1, 2, 3]);
  const out2 = buf(mem, alloc, [4, 5]);
  const in1 = buf(mem, alloc, 4);
  const in2 = buf(mem, alloc, 4);
  drv.add([out1, out2], [in1, in2], "a");
  assert.equal(drv.numFree, 4);
  assert.equal(drv.kickPrepare(), true);
  assert.equal(drv.kickPrepare(), false);
  const c = dev.pop();
  assert.ok(c !== undefined);
  assert.equal(c.readableLen, 5);
  assert.equal(c.writableLen, 8);
  assert.equal(c.descriptors, 4);
  assert.deepEqual([...dev.readChain(c)], [1, 2, 3, 4, 5]);
  assert.deepEqual([...dev.readChain(c, 2)], [3, 4, 5]);
  assert.equal(dev.writeChain(c, Uint8Array.of(9, 8, 7, 6, 5, 4)), 6);
  assert.equal(dev.pop(), undefined);
  assert.equal(dev.inFlight, 1);
  dev.pushUsed(c.head, 6);
  assert.equal(dev.needsInterrupt(), true);
  assert.equal(dev.needsInterrupt(), false, "nothing new since");
  const u = drv.getUsed();
  assert.deepEqual(u, { token: "a", len: 6, head: c.head });
  assert.deepEqual([...mem.read(in1.addr, 4)], [9, 8, 7, 6]);
  assert.deepEqual([...mem.read(in2.addr, 2)], [5, 4]);
  assert.equal(drv.getUsed(), undefined);
  assert.equal(drv.numFree, 8);
  assert.equal(drv.inFlight, 0);
});

test("indirect chains use one ring slot and a table the driver frees on reap", () => {
  const { mem, alloc, drv, dev } = setup(4);
  const before = alloc.liveAllocations;
  const segs = [buf(mem, alloc, [1]), buf(mem, alloc, [2]), buf(mem, alloc, [3])];
  const w = buf(mem, alloc, 2);
  drv.add(segs, [w], "x", { indirect: true });
  assert.equal(drv.numFree, 3);
  const c = dev.pop()!;
  assert.deepEqual([...dev.readChain(c)], [1, 2, 3]);
  assert.equal(c.writableLen, 2);
  dev.pushUsed(c.head, 0);
  assert.equal(drv.getUsed()!.token, "x");
  assert.equal(alloc.liveAllocations, before + 4, "table freed, buffers still ours");
  // A chain longer than the free descriptors goes indirect by itself.
  const many = Array.from({ length: 6 }, (_, i) => buf(mem, alloc, [i]));
  drv.add(many, [], "auto");
  assert.equal(dev.pop()!.readableLen, 6);
});

test("queue full and empty chains are driver-side API errors", () => {
  const { mem, alloc, drv } = setup(2);
  const b = buf(mem, alloc, 1);
  drv.add([b], [], "1");
  drv.add([b], [], "2");
  assert.throws(() => drv.add([b], [], "3", { indirect: false }), (e: unknown) => e instanceof VirtqueueError && e.code === "VQ_FULL");
  assert.throws(() => drv.add([], [], "4"), (e: unknown) => e instanceof VirtqueueError && e.code === "VQ_EMPTY_CHAIN");
  assert.deepEqual(drv.detachUnused().sort(), ["1", "2"]);
  assert.equal(drv.numFree, 2);
});

test("without EVENT_IDX: NO_INTERRUPT and NO_NOTIFY flags suppress", () => {
  const { mem, alloc, drv, dev } = setup();
  const b = buf(mem, alloc, 1);
  dev.disableNotification();
  drv.add([b], [], "1");
  assert.equal(drv.kickPrepare(), false);
  assert.equal(dev.enableNotification(), true, "a buffer arrived while notifications were off");
  drv.add([b], [], "2");
  assert.equal(drv.kickPrepare(), true);
  drv.disableCallbacks();
  dev.pushUsed(dev.pop()!.head, 0);
  assert.equal(dev.needsInterrupt(), false);
  assert.equal(drv.enableCallbacks(), true);
  dev.pushUsed(dev.pop()!.head, 0);
  assert.equal(dev.needsInterrupt(), true);
  assert.equal(dev.stats.interruptsSuppressed, 1);
  assert.equal(dev.stats.interruptsSent, 1);
});

test("with EVENT_IDX: used_event and avail_event thresholds", () => {
  const { mem, alloc, drv, dev } = setup(8, true);
  const b = buf(mem, alloc, 1);
  // avail_event is 0 at start: the first add crosses it.
  drv.add([b], [], "1");
  assert.equal(drv.kickPrepare(), true);
  drv.add([b], [], "2");
  assert.equal(drv.kickPrepare(), false, "device has not re-armed avail_event");
  assert.equal(dev.enableNotification(), true);
  const c1 = dev.pop()!;
  const c2 = dev.pop()!;
  assert.equal(dev.enableNotification(), false);
  drv.add([b], [], "3");
  assert.equal(drv.kickPrepare(), true);
  // used_event: the driver wants an interrupt after the first used entry.
  dev.pushUsed(c1.head, 0);
  assert.equal(dev.needsInterrupt(), true);
  dev.pushUsed(c2.head, 0);
  assert.equal(dev.needsInterrupt(), false, "driver has not reaped, used_event still 0");
  assert.equal(drv.getUsed()!.token, "1");
  assert.equal(drv.getUsed()!.token, "2");
  dev.pushUsed(dev.pop()!.head, 0);
  assert.equal(dev.needsInterrupt(), true);
});

test("save/restore: a successor queue continues from base()", () => {
  const { mem, alloc, drv, dev } = setup();
  const b = buf(mem, alloc, 1);
  for (const t of ["a", "b", "c"]) drv.add([b], [], t);
  const c1 = dev.pop()!;
  const c2 = dev.pop()!;
  dev.pushUsed(c1.head, 0);
  assert.deepEqual(dev.base(), { lastAvailIdx: 2, usedIdx: 1 });
  const next = new SplitQueueDevice(mem, drv.config, dev.base());
  assert.equal(next.inFlight, 1);
  next.pushUsed(c2.head, 0);
  next.pushUsed(next.pop()!.head, 0);
  assert.deepEqual([drv.getUsed()!.token, drv.getUsed()!.token, drv.getUsed()!.token], ["a", "b", "c"]);
  assert.throws(() => next.pushUsed(0, 0), (e: unknown) => e instanceof VirtqueueError && e.code === "VQ_USED_OVERFLOW");
});

test("ring configuration is validated", () => {
  const mem = new GuestMemory(0x10000);
  const ok: SplitRingConfig = { size: 16, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000, eventIdx: false };
  assert.ok(new SplitQueueDevice(mem, ok));
  const bad: [Partial<SplitRingConfig>, string][] = [
    [{ size: 3 }, "VQ_BAD_SIZE"],
    [{ size: 65536 }, "VQ_BAD_SIZE"],
    [{ descAddr: 0x1008 }, "VQ_BAD_ALIGNMENT"],
    [{ usedAddr: 0x3002 }, "VQ_BAD_ALIGNMENT"],
    [{ usedAddr: 0xfff0 }, "VQ_RING_OUT_OF_RANGE"],
  ];
  for (const [patch, code] of bad) {
    assert.throws(() => new SplitQueueDevice(mem, { ...ok, ...patch }), (e: unknown) => e instanceof VirtqueueError && e.code === code);
  }
});

/** Writes a raw descriptor, for building malicious rings. */
function desc(mem: GuestMemory, table: number, i: number, addr: number, len: number, flags: number, next: number): void {
  mem.writeU64(table + 16 * i, BigInt(addr));
  mem.writeU32(table + 16 * i + 8, len);
  mem.writeU16(table + 16 * i + 12, flags);
  mem.writeU16(table + 16 * i + 14, next);
}

function rawRing(build: (mem: GuestMemory, cfg: SplitRingConfig) => void, indirect = true): SplitQueueDevice {
  const mem = new GuestMemory(0x10000);
  const cfg: SplitRingConfig = { size: 4, descAddr: 0x1000, availAddr: 0x2000, usedAddr: 0x3000, eventIdx: false, indirect };
  build(mem, cfg);
  return new SplitQueueDevice(mem, cfg);
}

function publish(mem: GuestMemory, cfg: SplitRingConfig, heads: number[], idx = heads.length): void {
  heads.forEach((h, k) => mem.writeU16(cfg.availAddr + 4 + 2 * k, h));
  mem.writeU16(cfg.availAddr + 2, idx);
}

test("misbehaving drivers: every violation is counted, breaks the queue, never throws", () => {
  const cases: [string, (mem: GuestMemory, cfg: SplitRingConfig) => void, boolean?][] = [
    ["VQ_CHAIN_LOOP", (m, c) => { desc(m, c.descAddr, 0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 1); desc(m, c.descAddr, 1, 0x5000, 1, VIRTQ_DESC_F_NEXT, 0); publish(m, c, [0]); }],
    ["VQ_AVAIL_IDX_AHEAD", (m, c) => { desc(m, c.descAddr, 0, 0x5000, 1, 0, 0); publish(m, c, [0], 5); }],
    ["VQ_BAD_HEAD", (m, c) => { publish(m, c, [4]); }],
    ["VQ_BAD_NEXT", (m, c) => { desc(m, c.descAddr, 0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 9); publish(m, c, [0]); }],
    ["VQ_BAD_BUFFER", (m, c) => { desc(m, c.descAddr, 0, 0xfff0, 0x20, 0, 0); publish(m, c, [0]); }],
    ["VQ_BAD_BUFFER", (m, c) => { m.writeU64(c.descAddr, 1n << 60n); m.writeU32(c.descAddr + 8, 1); publish(m, c, [0]); }],
    ["VQ_READ_AFTER_WRITE", (m, c) => { desc(m, c.descAddr, 0, 0x5000, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1); desc(m, c.descAddr, 1, 0x5000, 1, 0, 0); publish(m, c, [0]); }],
    ["VQ_INDIRECT_WITH_NEXT", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1); publish(m, c, [0]); }],
    ["VQ_INDIRECT_BAD_LEN", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 20, VIRTQ_DESC_F_INDIRECT, 0); publish(m, c, [0]); }],
    ["VQ_INDIRECT_BAD_LEN", (m, c) => { desc(m, c.descAddr, 0, 0x4000, 16 * 1025, VIRTQ_DESC_F_INDIRECT, 0); publish(m, c, [0]); }],
    ["VQ_INDIRECT_NESTED", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT, 0); desc(m, 0x6000, 0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT, 0); publish(m, c, [0]); }],
    ["VQ_CHAIN_LOOP", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 32, VIRTQ_DESC_F_INDIRECT, 0); desc(m, 0x6000, 0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 1); desc(m, 0x6000, 1, 0x5000, 1, VIRTQ_DESC_F_NEXT, 0); publish(m, c, [0]); }],
    ["VQ_BAD_NEXT", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT, 0); desc(m, 0x6000, 0, 0x5000, 1, VIRTQ_DESC_F_NEXT, 1); publish(m, c, [0]); }],
    ["VQ_INDIRECT_NOT_NEGOTIATED", (m, c) => { desc(m, c.descAddr, 0, 0x6000, 16, VIRTQ_DESC_F_INDIRECT, 0); publish(m, c, [0]); }, false],
  ];
  for (const [code, build, indirect] of cases) {
    const q = rawRing(build, indirect ?? true);
    const seen: string[] = [];
    q.onViolation = (e) => seen.push(e.code);
    assert.equal(q.pop(), undefined, code);
    assert.equal(q.broken?.code, code);
    assert.deepEqual(seen, [code]);
    assert.equal(q.stats.violations[code], 1);
    assert.equal(q.pop(), undefined, "a broken queue serves nothing");
    assert.equal(q.stats.violations[code], 1, "counted once");
  }
});

test("property: random ring contents never make the device throw or escape its bounds", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0x200, maxLength: 0x200 }), fc.uint8Array({ minLength: 0x40, maxLength: 0x40 }), fc.boolean(), (descBytes, availBytes, eventIdx) => {
      const mem = new GuestMemory(0x4000);
      const cfg: SplitRingConfig = { size: 8, descAddr: 0x1000, availAddr: 0x1200, usedAddr: 0x1300, eventIdx };
      mem.write(0x1000, descBytes);
      mem.write(0x1200, availBytes);
      // Indirect tables may point anywhere, including back into the descriptor table.
      const q = new SplitQueueDevice(mem, cfg);
      for (let k = 0; k < 20; k++) {
        const c = q.pop();
        if (c === undefined) break;
        assert.ok(c.head < 8);
        for (const s of [...c.readable, ...c.writable]) assert.ok(mem.contains(s.addr, s.len));
        q.writeChain(c, new Uint8Array(c.writableLen).fill(0xaa));
        q.pushUsed(c.head, c.writableLen);
        q.needsInterrupt();
        q.enableNotification();
      }
    }),
    { numRuns: 300 },
  );
});

test("property: whatever the driver adds, the device pops the same chains in order", () => {
  const seg = fc.record({ len: fc.integer({ min: 0, max: 64 }) });
  const op = fc.oneof(
    fc.record({ kind: fc.constant("add" as const), out: fc.array(seg, { maxLength: 4 }), inn: fc.array(seg, { maxLength: 4 }), indirect: fc.boolean() }),
    fc.record({ kind: fc.constant("serve" as const), n: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ kind: fc.constant("reap" as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.boolean(), (ops, eventIdx) => {
      const { alloc, drv, dev } = setup(8, eventIdx);
      const expected: { out: number; inn: number; token: string }[] = [];
      const served: string[] = [];
      const reaped: string[] = [];
      let n = 0;
      for (const o of ops) {
        if (o.kind === "add") {
          if (o.out.length + o.inn.length === 0) continue;
          const out = o.out.map((s) => ({ addr: alloc.alloc(Math.max(1, s.len)), len: s.len }));
          const inn = o.inn.map((s) => ({ addr: alloc.alloc(Math.max(1, s.len)), len: s.len }));
          const token = `t${n++}`;
          try {
            drv.add(out, inn, token, { indirect: o.indirect });
          } catch (e) {
            assert.ok(e instanceof VirtqueueError && e.code === "VQ_FULL");
            continue;
          }
          expected.push({ out: o.out.reduce((a, s) => a + s.len, 0), inn: o.inn.reduce((a, s) => a + s.len, 0), token });
        } else if (o.kind === "serve") {
          for (let k = 0; k < o.n; k++) {
            const c = dev.pop();
            if (c === undefined) break;
            const want = expected[served.length]!;
            assert.equal(c.readableLen, want.out);
            assert.equal(c.writableLen, want.inn);
            served.push(want.token);
            dev.addUsed(c.head, c.writableLen);
          }
          dev.publishUsed();
        } else {
          for (let u = drv.getUsed(); u !== undefined; u = drv.getUsed()) reaped.push(u.token);
        }
      }
      assert.equal(dev.broken, undefined);
      assert.deepEqual(reaped, served.slice(0, reaped.length));
      assert.equal(drv.inFlight, expected.length - reaped.length);
    }),
    { numRuns: 150 },
  );
});

test("after the guest's RAM is rebound to other bytes, the device queue re-makes its ring views (v86 heap growth)", () => {
  const { mem, alloc, drv, dev } = setup();
  const out = buf(mem, alloc, [7, 7]);
  drv.add([out], [], "a");
  drv.kickPrepare();
  const old = mem.view(0, 1 << 20);
  const moved = Uint8Array.from(old); // a grown heap keeps the contents at new addresses
  const gen = mem.generation;
  mem.rebind(0, moved);
  assert.equal(mem.generation, gen + 1);
  const c = dev.pop();
  assert.ok(c !== undefined, "the chain is read from the new bytes");
  moved[drv.config.availAddr + 2] = 3; // a later avail.idx write lands only in the new bytes
  assert.equal(dev.available(), 2, "avail.idx is read from the new bytes");
  dev.pushUsed(c.head, 0);
  const usedIdxAt = drv.config.usedAddr + 2;
  assert.equal(mem.readU16(usedIdxAt), 1, "the used index went to the new bytes");
  assert.equal(old[usedIdxAt], 0, "and not to the old ones");
});
