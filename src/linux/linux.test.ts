import { test } from "node:test";
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import type { AccessWidth, PciPlatform } from "../pci/platform.js";
import type { LinuxAssets } from "./assets.js";
import { ConfigRouter, type NativeBus } from "./config-router.js";
import { SerialConsole } from "./console.js";
import { readCpioNewc, writeCpioNewc, type CpioEntry } from "./cpio.js";
import { KernelError } from "../base/index.js";
import { errnoFromMessage, modelSysfs, runSysfsScript } from "./differential.js";
import { LinuxError } from "./errors.js";
import { ECAM_BASE, ECAM_SIZE, e820File, mcfgTable } from "./firmware.js";
import { MODULE_LOAD_ORDER, buildInitramfs, initScript } from "./initramfs.js";
import { RecordingPlatform, parseWriteLog, replayWrites } from "./recording-platform.js";
import { platformFingerprint } from "./guest.js";

const ones = (w: AccessWidth): number => (w === 4 ? 0xffff_ffff : w === 2 ? 0xffff : 0xff);

test("cpio newc: header layout, padding and trailer", () => {
  const bytes = writeCpioNewc([{ kind: "file", name: "init", data: new TextEncoder().encode("abc"), mode: 0o755 }]);
  const text = new TextDecoder().decode(bytes);
  assert.equal(text.slice(0, 6), "070701");
  // c_mode of a regular file 0755, c_filesize 3, c_namesize 5 ("init" + NUL).
  assert.equal(text.slice(14, 22), (0o100755).toString(16).padStart(8, "0"));
  assert.equal(text.slice(54, 62), "00000003");
  assert.equal(text.slice(94, 102), "00000005");
  // 110 + 5 = 115 → padded to 116; data 3 → padded to 4.
  assert.equal(text.slice(110, 115), "init\0");
  assert.equal(bytes[115], 0);
  assert.equal(text.slice(116, 119), "abc");
  assert.equal(bytes.length % 4, 0);
  assert.ok(text.includes("TRAILER!!!\0"));
});

test("cpio newc: round trip of every entry kind", () => {
  const entries: CpioEntry[] = [
    { kind: "dir", name: "dev" },
    { kind: "chardev", name: "dev/console", major: 5, minor: 1 },
    { kind: "symlink", name: "bin/sh", target: "busybox" },
    { kind: "file", name: "bin/busybox", data: Uint8Array.of(1, 2, 3, 4, 5), mode: 0o755 },
  ];
  const parsed = readCpioNewc(writeCpioNewc(entries));
  assert.deepEqual(parsed.map((p) => p.name), ["dev", "dev/console", "bin/sh", "bin/busybox"]);
  assert.equal(parsed[0]!.mode, 0o040755);
  assert.equal(parsed[1]!.mode, 0o020600);
  assert.deepEqual([parsed[1]!.rdevMajor, parsed[1]!.rdevMinor], [5, 1]);
  assert.equal(parsed[2]!.mode, 0o120777);
  assert.equal(new TextDecoder().decode(parsed[2]!.data), "busybox");
  assert.deepEqual([...parsed[3]!.data], [1, 2, 3, 4, 5]);
});

test("cpio newc: refuses names and modes newc cannot carry", () => {
  for (const name of ["", "/init", "a\0b", "TRAILER!!!"]) {
    assert.throws(() => writeCpioNewc([{ kind: "dir", name }]), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_CPIO_INVALID");
  }
  assert.throws(() => writeCpioNewc([{ kind: "file", name: "x", data: new Uint8Array(0), mode: 0o10000 }]), /permission/);
  assert.throws(() => writeCpioNewc([{ kind: "chardev", name: "x", major: -1, minor: 0 }]), /device number/);
});

test("cpio newc: property — any files round-trip byte for byte", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z0-9_.-]{1,20}$/), { minLength: 1, maxLength: 8 }),
      fc.array(fc.uint8Array({ maxLength: 70 }), { minLength: 8, maxLength: 8 }),
      (names, datas) => {
        const entries: CpioEntry[] = names.filter((n) => n !== "TRAILER!!!").map((name, i) => ({ kind: "file", name, data: datas[i]! }));
        const parsed = readCpioNewc(writeCpioNewc(entries));
        assert.equal(parsed.length, entries.length);
        parsed.forEach((p, i) => {
          const e = entries[i]!;
          assert.equal(p.name, e.name);
          assert.deepEqual([...p.data], e.kind === "file" ? [...e.data] : []);
        });
      },
    ),
  );
});

test("cpio reader: garbage never escapes as anything but LINUX_CPIO_INVALID", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        readCpioNewc(bytes);
      } catch (e) {
        assert.ok(e instanceof LinuxError && e.code === "LINUX_CPIO_INVALID");
      }
    }),
  );
});

function fakeAssets(): LinuxAssets {
  const modules = new Map<string, Uint8Array>(MODULE_LOAD_ORDER.map((m, i) => [m, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, i)]));
  return {
    dir: "/nonexistent",
    kernelRelease: "6.1.0-test-686",
    vmlinuz: Uint8Array.of(1),
    busybox: Uint8Array.of(0x7f, 0x45, 0x4c, 0x46),
    bios: Uint8Array.of(2),
    vgaBios: Uint8Array.of(3),
    modules,
    hashes: {},
    packages: {},
  };
}

test("initramfs: busybox, /dev/console, /init and the modules in load order", () => {
  const { image, sha256 } = buildInitramfs(fakeAssets());
  assert.match(sha256, /^[0-9a-f]{64}$/);
  const entries = readCpioNewc(new Uint8Array(gunzipSync(image)));
  const names = entries.map((e) => e.name);
  for (const n of ["bin/busybox", "bin/sh", "dev/console", "init"]) assert.ok(names.includes(n), n);
  const mods = names.filter((n) => n.startsWith("lib/modules/")).map((n) => n.slice("lib/modules/".length));
  assert.deepEqual(mods, [...MODULE_LOAD_ORDER]);
  const init = new TextDecoder().decode(entries.find((e) => e.name === "init")!.data);
  assert.ok(init.startsWith("#!/bin/busybox sh\n"));
  const insmods = [...init.matchAll(/^insmod \/lib\/modules\/(\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(insmods, [...MODULE_LOAD_ORDER]);
  for (const fs of ["proc", "sysfs", "devtmpfs"]) assert.match(init, new RegExp(`mount -t ${fs} `));
  // The same inputs give the same archive: the snapshot key depends on it.
  assert.equal(buildInitramfs(fakeAssets()).sha256, sha256);
});

test("initramfs: a module that was not provisioned is LINUX_ASSETS_MISSING", () => {
  assert.throws(() => buildInitramfs(fakeAssets(), { modules: ["nope.ko"] }), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_ASSETS_MISSING");
  assert.match(initScript([], ["echo hi"]), /\necho hi\n/);
});

test("MCFG: 60 bytes, checksum 0, one allocation for buses 0..15 at the ECAM base", () => {
  const t = mcfgTable();
  const v = new DataView(t.buffer);
  assert.equal(t.length, 60);
  assert.equal(new TextDecoder().decode(t.subarray(0, 4)), "MCFG");
  assert.equal(v.getUint32(4, true), 60);
  assert.equal(t.reduce((s, b) => (s + b) & 0xff, 0), 0);
  assert.equal(Number(v.getBigUint64(44, true)), ECAM_BASE);
  assert.deepEqual([v.getUint16(52, true), t[54], t[55]], [0, 0, 15]);
  assert.equal(ECAM_SIZE, 16 << 20);
});

test("etc/e820: RAM from 0 and the ECAM window reserved", () => {
  const f = e820File(256 << 20);
  const v = new DataView(f.buffer);
  assert.equal(f.length, 40);
  assert.deepEqual([Number(v.getBigUint64(0, true)), Number(v.getBigUint64(8, true)), v.getUint32(16, true)], [0, 256 << 20, 1]);
  assert.deepEqual([Number(v.getBigUint64(20, true)), Number(v.getBigUint64(28, true)), v.getUint32(36, true)], [ECAM_BASE, ECAM_SIZE, 2]);
});

/** A platform with one 4 KiB function at devfn 0x18 (00:03.0), little-endian byte storage. */
function oneFunctionPlatform(): { platform: PciPlatform; space: Uint8Array; writes: string[] } {
  const space = new Uint8Array(4096);
  space.set([0xf4, 0x1a, 0xfe, 0x10]);
  const writes: string[] = [];
  const platform: PciPlatform = {
    configRead: (bus, devfn, offset, width) => {
      if (bus !== 0 || devfn !== 0x18) return ones(width);
      let v = 0;
      for (let i = width - 1; i >= 0; i--) v = v * 256 + (space[offset + i] ?? 0);
      return v;
    },
    configWrite: (bus, devfn, offset, width, value) => {
      writes.push(`${bus}:${devfn}:${offset}:${width}:${value}`);
      if (bus !== 0 || devfn !== 0x18) return;
      for (let i = 0; i < width; i++) space[offset + i] = (value >>> (8 * i)) & 0xff;
    },
    mmioRead: (_a, w) => ones(w),
    mmioWrite: () => undefined,
    onMsi: () => undefined,
    mmioWindow: { base: 0xc000_0000, size: 0x1000_0000 },
  };
  return { platform, space, writes };
}

function nativeBus(): { bus: NativeBus; log: string[] } {
  const spaces = new Map<number, Int32Array>([[0, Int32Array.of(0x12378086, 0, 0x06000002)]]);
  const log: string[] = [];
  return {
    log,
    bus: {
      has: (devfn) => spaces.has(devfn),
      readDword: (devfn, offset) => spaces.get(devfn)?.[offset >> 2] ?? 0,
      write: (devfn, offset, width, value) => void log.push(`${devfn}:${offset}:${width}:${value}`),
    },
  };
}

test("config router: v86's functions stay v86's, every other devfn is the platform's", () => {
  const { bus, log } = nativeBus();
  const { platform, writes } = oneFunctionPlatform();
  const r = new ConfigRouter(bus, platform);
  assert.equal(r.read(0, 0, 0, 4), 0x12378086);
  assert.equal(r.read(0, 0, 2, 2), 0x1237);
  assert.equal(r.read(0, 0, 0x100, 4), 0); // conventional PCI: no extended space
  r.write(0, 0, 4, 2, 0x1_0007);
  assert.deepEqual(log, ["0:4:2:7"]);
  assert.equal(r.read(0, 0x18, 0, 4), 0x10fe1af4);
  assert.equal(r.read(0, 0x19, 0, 4), 0xffff_ffff); // absent function: all ones
  assert.equal(r.read(1, 0, 0, 2), 0xffff); // other buses are the platform's
  r.write(0, 0x18, 0x108, 2, 0x19);
  assert.deepEqual(writes, [`0:${0x18}:${0x108}:2:${0x19}`]);
});

test("config router: a platform function where v86 has one is reported as shadowed", () => {
  const { bus } = nativeBus();
  const { platform } = oneFunctionPlatform();
  assert.deepEqual(new ConfigRouter(bus, platform).shadowedDevfns(), []);
  const clash: PciPlatform = { ...platform, configRead: (b, d, o, w) => (d === 0 ? 0x1234 : platform.configRead(b, d, o, w)) };
  assert.deepEqual(new ConfigRouter(bus, clash).shadowedDevfns(), [0]);
});

test("config router: ECAM decode, alignment and the conf1 address", () => {
  const { bus } = nativeBus();
  const { platform, space } = oneFunctionPlatform();
  const r = new ConfigRouter(bus, platform);
  space.set([0x10, 0x00, 0x01, 0x00], 0x100);
  const at = (devfn: number, off: number): number => ECAM_BASE + (devfn << 12) + off;
  assert.deepEqual(ConfigRouter.decodeEcam(at(0x18, 0x104)), { bus: 0, devfn: 0x18, offset: 0x104 });
  assert.deepEqual(ConfigRouter.decodeEcam(ECAM_BASE + (1 << 20) + 0x100), { bus: 1, devfn: 0, offset: 0x100 });
  assert.equal(ConfigRouter.decodeEcam(ECAM_BASE - 1), undefined);
  assert.equal(ConfigRouter.decodeEcam(ECAM_BASE + ECAM_SIZE), undefined);
  assert.equal(r.ecamRead(at(0x18, 0x100), 4), 0x00010010);
  assert.equal(r.ecamRead(at(0x18, 0x101), 2), 0xffff); // misaligned
  assert.equal(r.ecamRead(at(0, 0), 4), 0x12378086);
  r.ecamWrite(at(0x18, 0x10a), 2, 0xabcd);
  assert.equal(space[0x10a], 0xcd);
  assert.deepEqual(ConfigRouter.decodeConf1(0x8000_1a04, 2), { bus: 0, devfn: 0x1a, offset: 6 });
  assert.equal(ConfigRouter.decodeConf1(0x0000_1a04, 0), undefined);
});

test("config router: property — any access answers a value of its width and never throws", () => {
  const { bus } = nativeBus();
  const { platform } = oneFunctionPlatform();
  const r = new ConfigRouter(bus, platform);
  fc.assert(
    fc.property(fc.integer({ min: ECAM_BASE - 16, max: ECAM_BASE + ECAM_SIZE + 16 }), fc.constantFrom<AccessWidth>(1, 2, 4), fc.nat(), (a, w, v) => {
      r.ecamWrite(a, w, v);
      const got = r.ecamRead(a, w);
      assert.ok(Number.isInteger(got) && got >= 0 && got <= ones(w));
    }),
  );
});

test("serial console: framing, exit status, CR LF and input checks", async () => {
  const sent: string[] = [];
  const holder: { con?: SerialConsole } = {};
  const feed = (s: string): void => {
    for (const b of new TextEncoder().encode(s)) holder.con!.feed(b);
  };
  const con = new SerialConsole((text) => {
    sent.push(text);
    const [id] = text.split(" ");
    // What /init prints back, with kernel-style noise around it.
    queueMicrotask(() => feed(`[ 1.0] noise\r\n@@VPF-BEGIN ${id}@@\r\nline 1\r\nline 2\r\n@@VPF-END ${id} 3@@\r\n`));
  });
  holder.con = con;
  feed("booting...\r\n@@VPF-READY@@\r\n");
  await con.waitReady(1000);
  const r = await con.run("echo 4 > /sys/x", 1000);
  assert.deepEqual(r, { output: "line 1\nline 2\n", status: 3 });
  assert.deepEqual(sent, ["1 echo 4 > /sys/x\n"]);
  const r2 = await con.run("true", 1000);
  assert.equal(r2.status, 3);
  assert.equal(sent[1], "2 true\n");
  for (const bad of ["a\nb", "echo @@VPF-END 1 0@@", "x".repeat(5000)]) {
    await assert.rejects(con.run(bad), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_BAD_COMMAND");
  }
  con.close("test over");
  await assert.rejects(con.run("true"), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_CONSOLE_STATE");
});

test("serial console: a guest that never answers is LINUX_COMMAND_TIMEOUT / LINUX_BOOT_TIMEOUT", async () => {
  const con = new SerialConsole(() => undefined);
  await assert.rejects(con.run("sleep 100", 5), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_COMMAND_TIMEOUT");
  await assert.rejects(con.waitReady(5), (e: unknown) => e instanceof LinuxError && e.code === "LINUX_BOOT_TIMEOUT");
});

test("recording platform: the logged writes rebuild the model's state", () => {
  const a = oneFunctionPlatform();
  const rec = new RecordingPlatform(a.platform);
  rec.configWrite(0, 0x18, 4, 2, 6);
  rec.configWrite(0, 0x18, 0x108, 2, 9);
  rec.mmioWrite(0xc000_0000, 4, 1);
  const log = rec.stopRecording();
  rec.configWrite(0, 0x18, 0x10, 4, 1); // after the snapshot point: not part of it
  assert.equal(log.length, 3);
  const b = oneFunctionPlatform();
  replayWrites(b.platform, parseWriteLog(JSON.parse(JSON.stringify(log)))!);
  assert.deepEqual([...b.space.subarray(0, 0x200)], [...a.space.subarray(0, 0x200)].map((x, i) => (i >= 0x10 && i < 0x14 ? 0 : x)));
});

test("platform fingerprint: changes with the power-on config space, not with reads", () => {
  const a = oneFunctionPlatform();
  const f1 = platformFingerprint(a.platform);
  assert.equal(platformFingerprint(a.platform), f1);
  a.space[0x40] = 1;
  assert.notEqual(platformFingerprint(a.platform), f1);
});

test("recording platform: a malformed log on disk is refused, never half-applied", () => {
  assert.equal(parseWriteLog({}), undefined);
  assert.equal(parseWriteLog([{ op: "config", bus: 0, devfn: 300, offset: 0, width: 4, value: 0 }]), undefined);
  assert.equal(parseWriteLog([{ op: "mmio", address: 1, width: 3, value: 0 }]), undefined);
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const log = parseWriteLog(v);
      assert.ok(log === undefined || Array.isArray(log));
    }),
  );
});

test("differential: script outcomes are labelled, lists filtered, errors carried as errno names", async () => {
  const files = new Map<string, string>([["/a", "1\n"]]);
  const model = modelSysfs({
    sysfsRead: (p) => {
      const v = files.get(p);
      if (v === undefined) throw new KernelError("ENOENT");
      return v;
    },
    sysfsWrite: (p, d) => {
      if (d === "bad") throw new KernelError("EINVAL");
      files.set(p, `${d}\n`);
    },
    sysfsReadlink: () => "../x",
    sysfsList: () => ["b", "a", "c0"],
  });
  const out = await runSysfsScript(model, [
    { op: "read", path: "/a" },
    { op: "write", path: "/a", data: "bad" },
    { op: "write", path: "/a", data: "2" },
    { op: "read", path: "/a" },
    { op: "read", path: "/missing" },
    { op: "readlink", path: "/l" },
    { op: "list", path: "/d", prefix: "c" },
  ]);
  assert.deepEqual(out, [
    'read /a => "1"',
    'write "bad" > /a => EINVAL',
    'write "2" > /a => ""',
    'read /a => "2"',
    "read /missing => ENOENT",
    'readlink /l => "../x"',
    'list /d => "c0"',
  ]);
});

test("differential: busybox error messages map to errno names", () => {
  assert.equal(errnoFromMessage("sh: write error: Device or resource busy\n"), "EBUSY");
  assert.equal(errnoFromMessage("cat: read error: Is a directory"), "EISDIR");
  assert.equal(errnoFromMessage("cat: can't open 'x': No such file or directory"), "ENOENT");
  assert.equal(errnoFromMessage("weird"), "unknown(weird)");
});
