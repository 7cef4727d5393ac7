import { test } from "node:test";
import assert from "node:assert/strict";
import { PINNED_V86_VERSION, REQUIRED_BUNDLE_NAMES, checkV86Bundle, checkV86Runtime, installedV86Version } from "./v86-adapter.js";
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

test("v86 smoke: the runtime check names the first missing object", () => {
  const check = (x: unknown, what: string): void =>
    assert.throws(
      () => checkV86Runtime(x),
      (e: unknown) => e instanceof LinuxError && e.code === "LINUX_V86_INCOMPATIBLE" && e.details["what"] === what,
    );
  check({}, "emulator.v86");
  check({ v86: {} }, "emulator.v86.cpu");
  check({ v86: { cpu: { io: { ports: [] } } } }, "cpu.io.register_read");
});
