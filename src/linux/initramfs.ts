import { gzipSync } from "node:zlib";
import type { LinuxAssets } from "./assets.js";
import { writeCpioNewc, type CpioEntry } from "./cpio.js";
import { LinuxError, LinuxErrorCode } from "./errors.js";
import { sha256Hex } from "./assets.js";

/**
 * The modules the initramfs loads, in dependency order (each needs the ones before it; the
 * kernel package ships them uncompressed, CONFIG_MODULE_COMPRESS_NONE, so busybox insmod works).
 * pci-pf-stub is last: a generic PF driver whose only job is sriov_configure.
 */
export const MODULE_LOAD_ORDER: readonly string[] = [
  "virtio.ko",
  "virtio_ring.ko",
  "virtio_pci_modern_dev.ko",
  "virtio_pci_legacy_dev.ko",
  "virtio_pci.ko",
  "failover.ko",
  "net_failover.ko",
  "virtio_net.ko",
  "pci-pf-stub.ko",
];

/** Serial console markers (src/linux/console.ts parses them). */
export const READY_MARKER = "@@VPF-READY@@";
export const BEGIN_MARKER = "@@VPF-BEGIN";
export const END_MARKER = "@@VPF-END";
export const INSMOD_FAILED_MARKER = "@@VPF-INSMOD-FAILED";

export interface InitramfsOptions {
  /** Module file names to load, in order; default MODULE_LOAD_ORDER. */
  readonly modules?: readonly string[];
  /** Shell lines run after the modules load and before the ready marker. */
  readonly setup?: readonly string[];
}

export interface Initramfs {
  /** gzip-compressed cpio newc archive, what v86 passes to the kernel as its initrd. */
  readonly image: Uint8Array;
  readonly sha256: string;
}

/**
 * /init: busybox sh as PID 1. It installs the applets, mounts proc, sysfs and devtmpfs, loads
 * the modules, silences printk on the console (so command output stays clean; `dmesg` still
 * reads the log), turns tty echo off and then serves the console protocol forever: a line
 * "<id> <command>" runs <command> in a child `sh -c` (so a syntax error or `exit` cannot kill
 * PID 1) and is framed by BEGIN/END markers carrying the id and the exit status.
 */
export function initScript(modules: readonly string[], setup: readonly string[]): string {
  const lines = [
    "#!/bin/busybox sh",
    "/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin /root",
    "/bin/busybox --install -s",
    "mount -t proc proc /proc",
    "mount -t sysfs sysfs /sys",
    "mount -t devtmpfs devtmpfs /dev",
    "export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root",
    "cd /root",
    ...modules.map((m) => `insmod /lib/modules/${m} || echo "${INSMOD_FAILED_MARKER} ${m}@@"`),
    "dmesg -n 1",
    "stty -echo 2>/dev/null",
    ...setup,
    `echo "${READY_MARKER}"`,
    "while IFS= read -r line; do",
    '  id="${line%% *}"',
    '  cmd="${line#* }"',
    `  echo "${BEGIN_MARKER} $id@@"`,
    '  sh -c "$cmd" </dev/null 2>&1',
    `  echo "${END_MARKER} $id $?@@"`,
    "done",
    "poweroff -f",
    "",
  ];
  return lines.join("\n");
}

/** Builds the initramfs: busybox, the chosen modules and /init, gzip-compressed. */
export function buildInitramfs(assets: LinuxAssets, options: InitramfsOptions = {}): Initramfs {
  const modules = options.modules ?? MODULE_LOAD_ORDER;
  const enc = new TextEncoder();
  const entries: CpioEntry[] = [
    { kind: "dir", name: "bin" },
    { kind: "dir", name: "dev" },
    // The kernel opens /dev/console for init's stdio before devtmpfs is mounted.
    { kind: "chardev", name: "dev/console", major: 5, minor: 1, mode: 0o600 },
    { kind: "dir", name: "lib" },
    { kind: "dir", name: "lib/modules" },
    { kind: "file", name: "bin/busybox", data: assets.busybox, mode: 0o755 },
    { kind: "symlink", name: "bin/sh", target: "busybox" },
    { kind: "file", name: "init", data: enc.encode(initScript(modules, options.setup ?? [])), mode: 0o755 },
  ];
  for (const m of modules) {
    const data = assets.modules.get(m);
    if (data === undefined) {
      throw new LinuxError(LinuxErrorCode.assetsMissing, `module ${m} is not among the provisioned assets (scripts/linux-assets.sh MODULES)`, {
        details: { module: m },
      });
    }
    entries.push({ kind: "file", name: `lib/modules/${m}`, data, mode: 0o644 });
  }
  const image = new Uint8Array(gzipSync(writeCpioNewc(entries), { level: 6 }));
  return { image, sha256: sha256Hex(image) };
}
