import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { GuestMemory } from "../memory/index.js";
import type { PciPlatform } from "../pci/platform.js";
import { cacheDir, defaultAssetDir, loadAssets, sha256Hex, type LinuxAssets } from "./assets.js";
import { ECAM_BUSES, e820File, mcfgTable } from "./firmware.js";
import { SerialConsole, type CommandResult } from "./console.js";
import { LinuxError, LinuxErrorCode } from "./errors.js";
import { buildInitramfs } from "./initramfs.js";
import { RecordingPlatform, parseWriteLog, replayWrites, type PlatformWrite } from "./recording-platform.js";
import { V86Machine, installedV86Version } from "./v86-adapter.js";

/** 256 MiB: room for the kernel, the initramfs and the page cache; the snapshot is ~50 MB. */
export const DEFAULT_MEMORY_SIZE = 256 * 1024 * 1024;
/** `quiet` keeps the boot log off the slow emulated UART; `dmesg` still has all of it. */
export const DEFAULT_CMDLINE = "console=ttyS0,115200 quiet loglevel=3 tsc=reliable mitigations=off random.trust_cpu=on";
/**
 * Bump when the snapshot file layout, the console protocol or what the device model saw during
 * boot changes (2: devices DMA into v86's RAM, so their log replays onto the guest's own rings).
 */
const SNAPSHOT_FORMAT = 2;

export interface LinuxGuestOptions {
  /** The devices on the guest's PCI bus next to v86's own, in power-on state. */
  readonly platform: PciPlatform;
  /**
   * Names the platform's power-on configuration (devices, IDs, devfns) for the snapshot key:
   * a snapshot is only restored onto the same configuration. Change it when the model changes.
   */
  readonly platformKey: string;
  /**
   * The guest memory the platform's devices DMA into (a Vm's `memory`). The harness rebinds its
   * region at 0 (`GuestMemory.rebind`) onto v86's RAM before the CPU runs, so rings and buffers
   * the real kernel lays out are the devices' too. It must have a region [0, memorySize).
   * Without it the devices see their own memory, not the guest's (no data path).
   */
  readonly memory?: GuestMemory;
  readonly assets?: LinuxAssets;
  readonly memorySize?: number;
  readonly cmdline?: string;
  /** Shell lines /init runs after loading modules, before the ready point (part of the key). */
  readonly setup?: readonly string[];
  /** Snapshot folder; `false` disables snapshots. Default <cache>/snapshots (see cacheDir). */
  readonly snapshotDir?: string | false;
  /** Wall-clock bound for a cold boot to the ready marker. */
  readonly bootTimeoutMs?: number;
}

/** How the guest came up, and how long it took (wall clock, for docs and benchmarks). */
export interface BootInfo {
  readonly kind: "cold" | "snapshot";
  readonly millis: number;
  readonly snapshotKey: string;
}

interface SnapshotMeta {
  readonly format: number;
  readonly key: string;
  readonly writes: PlatformWrite[];
}

/**
 * A real Debian i386 kernel booted in v86, its console reachable as commands with exit status.
 * The first boot for a given configuration is cold (~25 s of one core); it then saves a
 * snapshot at the ready point (before any test step) keyed by everything that shaped it, and
 * later boots restore it in a few seconds.
 */
export class LinuxGuest {
  private constructor(
    private readonly machine: V86Machine,
    private readonly console: SerialConsole,
    readonly boot: BootInfo,
  ) {}

  static async start(options: LinuxGuestOptions): Promise<LinuxGuest> {
    const t0 = performance.now();
    const assets = options.assets ?? loadAssets(defaultAssetDir());
    const memorySize = options.memorySize ?? DEFAULT_MEMORY_SIZE;
    checkMemory(memorySize, options.memory);
    const cmdline = options.cmdline ?? DEFAULT_CMDLINE;
    const initrd = buildInitramfs(assets, options.setup === undefined ? {} : { setup: options.setup });
    const key = createHash("sha256")
      .update(
        JSON.stringify({
          format: SNAPSHOT_FORMAT,
          v86: installedV86Version(),
          assets: assets.hashes,
          initrd: initrd.sha256,
          cmdline,
          memorySize,
          // The firmware files shape what the guest saw at boot (E820 map, MCFG).
          firmware: sha256Hex(e820File(memorySize)) + sha256Hex(mcfgTable()),
          platform: options.platformKey,
          // What the power-on device model shows: a change in the model invalidates snapshots.
          devices: platformFingerprint(options.platform),
        }),
      )
      .digest("hex")
      .slice(0, 32);
    const dir = options.snapshotDir === false ? undefined : (options.snapshotDir ?? join(cacheDir(), "snapshots"));
    const saved = dir === undefined ? undefined : readSnapshot(dir, key);

    const recorder = new RecordingPlatform(options.platform);
    // The console needs the machine to send, the machine needs the console to receive.
    const link: { machine?: V86Machine } = {};
    const console = new SerialConsole((text) => link.machine?.sendSerial(text));
    const memory = options.memory;
    const machine = await V86Machine.start({
      bios: assets.bios,
      vgaBios: assets.vgaBios,
      bzimage: assets.vmlinuz,
      initrd: initrd.image,
      cmdline,
      memorySize,
      platform: saved === undefined ? recorder : options.platform,
      onSerialByte: (b) => console.feed(b),
      ...(memory === undefined ? {} : { onRam: (ram: Uint8Array) => memory.rebind(0, ram) }),
      // After RAM is bound: a replayed DRIVER_OK makes devices map their rings in guest RAM.
      beforeWiring: () => {
        if (saved !== undefined) replayWrites(options.platform, saved.meta.writes);
      },
      ...(saved === undefined ? {} : { initialState: saved.state }),
    });
    link.machine = machine;
    try {
      if (saved === undefined) {
        await console.waitReady(options.bootTimeoutMs ?? 240_000);
        // Keep recording until the state is saved: the snapshot must match the log exactly.
        if (dir !== undefined) {
          const state = await machine.saveState();
          writeSnapshot(dir, key, state, recorder.stopRecording());
        } else {
          recorder.stopRecording();
        }
      }
    } catch (e) {
      console.close("boot failed");
      await machine.destroy();
      throw e;
    }
    return new LinuxGuest(machine, console, { kind: saved === undefined ? "cold" : "snapshot", millis: performance.now() - t0, snapshotKey: key });
  }

  /** Runs one shell command line (`sh -c`) in the guest. */
  run(command: string, timeoutMs?: number): Promise<CommandResult> {
    return this.console.run(command, timeoutMs);
  }

  /** Runs a command that must succeed and returns its output (LINUX_COMMAND_FAILED otherwise). */
  async read(command: string, timeoutMs?: number): Promise<string> {
    const r = await this.run(command, timeoutMs);
    if (r.status !== 0) {
      throw new LinuxError(LinuxErrorCode.commandFailed, `\`${command}\` exited ${r.status}: ${r.output}`, {
        details: { command, status: r.status },
      });
    }
    return r.output;
  }

  /** MSI/MSI-X messages from the platform given to the guest's local APIC, and dropped ones. */
  get msi(): { readonly delivered: number; readonly dropped: number } {
    return this.machine.msi;
  }

  /**
   * How often the guest memory was bound to v86's RAM: 1 (before the CPU ran) unless v86 moved
   * its heap, which would leave devices' ring views on the old bytes. 0 without `memory`.
   */
  get ramBinds(): number {
    return this.machine.ramBinds;
  }

  /** The last console output, for diagnostics. */
  consoleTail(chars?: number): string {
    return this.console.tail(chars);
  }

  async shutdown(): Promise<void> {
    this.console.close("shut down");
    await this.machine.destroy();
  }
}

/** v86 gives an initrd machine at least 64 MiB and rounds RAM up to 128 KiB (src/cpu.js create_memory). */
const MIN_MEMORY = 64 * 1024 * 1024;
const MEMORY_GRANULE = 128 * 1024;

function checkMemory(memorySize: number, memory: GuestMemory | undefined): void {
  if (!Number.isSafeInteger(memorySize) || memorySize < MIN_MEMORY || memorySize % MEMORY_GRANULE !== 0 || memorySize >= 2 ** 31) {
    throw new LinuxError(LinuxErrorCode.badArgument, `memory size ${memorySize} is not a multiple of 128 KiB in [64 MiB, 2 GiB)`, { details: { memorySize } });
  }
  if (memory !== undefined && !memory.regions().some((r) => r.base === 0 && r.size === memorySize)) {
    throw new LinuxError(LinuxErrorCode.badArgument, `the guest memory has no region [0, ${memorySize}) to bind to v86's RAM`, {
      details: { memorySize, regions: memory.regions() },
    });
  }
}

/**
 * A hash of the configuration space of every function the platform answers for at power-on, on
 * the buses the ECAM window covers. Reads only (no side effects; VFs are absent at power-on).
 */
export function platformFingerprint(platform: PciPlatform): string {
  const h = createHash("sha256");
  for (let bus = 0; bus < ECAM_BUSES; bus++) {
    for (let devfn = 0; devfn < 256; devfn++) {
      if (platform.configRead(bus, devfn, 0, 2) === 0xffff) continue;
      const bytes = new Uint8Array(4096);
      const view = new DataView(bytes.buffer);
      for (let off = 0; off < 4096; off += 4) view.setUint32(off, platform.configRead(bus, devfn, off, 4) >>> 0, true);
      h.update(Uint8Array.of(bus, devfn)).update(bytes);
    }
  }
  return h.digest("hex");
}

function readSnapshot(dir: string, key: string): { state: ArrayBuffer; meta: SnapshotMeta } | undefined {
  const statePath = join(dir, `${key}.v86state`);
  const metaPath = join(dir, `${key}.json`);
  if (!existsSync(statePath) || !existsSync(metaPath)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(metaPath, "utf8"));
  } catch {
    return undefined; // a torn or foreign file: boot cold and overwrite it
  }
  const m = raw as Partial<Record<keyof SnapshotMeta, unknown>> | null;
  const writes = m === null || typeof m !== "object" ? undefined : parseWriteLog(m.writes);
  if (m === null || m.format !== SNAPSHOT_FORMAT || m.key !== key || writes === undefined) return undefined;
  const bytes = readFileSync(statePath);
  const state = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(state).set(bytes);
  return { state, meta: { format: SNAPSHOT_FORMAT, key, writes } };
}

/** Atomic: state first, then the metadata that makes it valid, each via rename. */
function writeSnapshot(dir: string, key: string, state: ArrayBuffer, writes: PlatformWrite[]): void {
  mkdirSync(dir, { recursive: true });
  const statePath = join(dir, `${key}.v86state`);
  const metaPath = join(dir, `${key}.json`);
  writeFileSync(`${statePath}.tmp`, new Uint8Array(state));
  renameSync(`${statePath}.tmp`, statePath);
  const meta: SnapshotMeta = { format: SNAPSHOT_FORMAT, key, writes };
  writeFileSync(`${metaPath}.tmp`, JSON.stringify(meta));
  renameSync(`${metaPath}.tmp`, metaPath);
}
