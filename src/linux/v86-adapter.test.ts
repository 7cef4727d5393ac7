import { test } from "node:test";
import assert from "node:assert/strict";
import { PINNED_V86_VERSION, REQUIRED_BUNDLE_NAMES, REQUIRED_WASM_EXPORTS, checkV86Bundle, checkV86Runtime, checkV86Wasm, installedV86Version } from "./v86-adapter.js";
import { LinuxError } from "./errors.js";

// The smoke test of the v86 adapter: fails, naming what changed, when a v86 upgrade drops an
// internal the adapter relies on. No emulator is started (the scenario tests do that).

test("v86 smoke: the installed v86 is the pinned version", () => {
  assert.equal(installedV86Version(), PINNED_V86_VERSION, `v86 ${installedV86Version()} installed, the adapter is written for ${PINNED_V86_VERSION}; pin it in package.json`);
});

test("v86 smoke: every internal the adapter uses is still in the bundle", () => {
  assert.ok(REQUIRED_BUNDLE_NAMES.length >= 15);
  const missing = checkV86Bundle();
  assert.deepEqual(missing, [], `v86 internals missing from build/libv86.mjs: ${missing.join(", ")} — port src/linux/v86-adapter.ts`);
});

test("v86 smoke: the wasm module still exports v86's allocator (heap reserve keeps guest RAM in place)", () => {
  assert.deepEqual(REQUIRED_WASM_EXPORTS, ["v86_malloc", "v86_free"]);
  const missing = checkV86Wasm();
  assert.deepEqual(missing, [], `v86.wasm no longer exports ${missing.join(", ")} — port V86Machine.reserveHeap in src/linux/v86-adapter.ts`);
});

test("v86 smoke: the runtime check names the first missing object", () => {
  const check = (x: unknown, what: string): void =>
    assert.throws(
      () => checkV86Runtime(x),
      (e: unknown) => e instanceof LinuxError && e.code === "LINUX_V86_INCOMPATIBLE" && e.details["what"] === what,
    );
  check({}, "emulator.v86");
  check({ v86: {} }, "emulator.v86.cpu");
  check({ v86: { cpu: { io: { ports: [] } } } }, "cpu.io.register_read");
  // A CPU with everything up to the RAM internals, which a v86 that reorganises its heap would lack.
  const fn = (): void => undefined;
  const cpu: Record<string, unknown> = {
    io: { ports: [], register_read: fn, register_write: fn, mmap_register: fn },
    devices: { pci: { device_spaces: [], pci_addr32: new Int32Array(1), pci_write8: fn, pci_write16: fn, pci_write32: fn, register_device: fn } },
    option_roms: [],
    memory_size: [256 << 20],
    mmap_write16: fn,
    memory_map_read8: [],
    memory_map_write8: [],
    write32: fn,
    handle_irqs: fn,
  };
  check({ v86: { cpu } }, "cpu.wasm_memory");
  cpu["wasm_memory"] = { buffer: new ArrayBuffer(8) };
  check({ v86: { cpu } }, "cpu.mem8");
  cpu["mem8"] = { byteOffset: 0, length: 8 };
  check({ v86: { cpu } }, "cpu.wm.exports");
  cpu["wm"] = { exports: { v86_malloc: fn } };
  check({ v86: { cpu } }, "cpu.wm.exports.v86_free");
  cpu["wm"] = { exports: { v86_malloc: fn, v86_free: fn } };
  assert.equal(checkV86Runtime({ v86: { cpu } }), cpu);
});
