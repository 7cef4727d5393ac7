/**
 * The ONLY module that touches v86 internals (docs/linux.md "v86 adapter"). v86's public API
 * (v86.d.ts) boots a machine and moves serial bytes and snapshots; everything vpf needs beyond
 * that (configuration cycles, an ECAM window, fw_cfg files, an ACPI fix) goes through the
 * private objects below, whose property names the release build keeps. `checkV86Bundle` and
 * `checkV86Runtime` fail with LINUX_V86_INCOMPATIBLE, naming what is missing, when a v86
 * upgrade removes or renames one; package.json pins v86 to an exact version for that reason.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { V86 } from "v86";
import type { AccessWidth, PciPlatform } from "../pci/platform.js";
import { ConfigRouter, type NativeBus } from "./config-router.js";
import { LinuxError, LinuxErrorCode } from "./errors.js";
import { ECAM_BASE, ECAM_SIZE, e820File, mcfgTable } from "./firmware.js";

/** The v86 version the adapter was written and tested against (package.json pins it). */
export const PINNED_V86_VERSION = "0.5.462+g5f9a90f";

// ---- The internal shapes vpf relies on (v86 src/cpu.js, src/io.js, src/pci.js, src/acpi.js) ----

type PortRead = (this: unknown, port: number) => number;
type PortWrite = (this: unknown, value: number) => void;
interface PortEntry {
  read8: PortRead;
  read16: PortRead;
  read32: PortRead;
  write8: PortWrite;
  write16: PortWrite;
  write32: PortWrite;
  device: unknown;
}
interface V86Io {
  ports: PortEntry[];
  register_read(port: number, device: object, r8?: () => number, r16?: () => number, r32?: () => number): void;
  register_write(port: number, device: object, w8?: (v: number) => void, w16?: (v: number) => void, w32?: (v: number) => void): void;
  mmap_register(
    address: number,
    size: number,
    read8: (a: number) => number,
    write8: (a: number, v: number) => void,
    read32: (a: number) => number,
    write32: (a: number, v: number) => void,
  ): void;
}
interface V86Pci {
  device_spaces: (Int32Array | undefined)[];
  pci_addr32: Int32Array;
  pci_write8(address: number, value: number): void;
  pci_write16(address: number, value: number): void;
  pci_write32(address: number, value: number): void;
  register_device(device: object): Int32Array;
}
interface V86Acpi {
  gpe: Uint8Array;
}
type MmapRead = (address: number) => number;
type MmapWrite = (address: number, value: number) => void;
interface V86Cpu {
  io: V86Io;
  /** Per 128 KiB block of the 4 GiB physical space: the MMIO handlers (src/cpu.js). */
  memory_map_read8: (MmapRead | undefined)[];
  memory_map_write8: (MmapWrite | undefined)[];
  devices: { pci: V86Pci; acpi?: V86Acpi };
  option_roms: { name: string; data: Uint8Array }[];
  /** A live view (a Proxy over wasm memory in v86), not a typed array. */
  memory_size: { readonly [index: number]: number | undefined };
  mmap_write16(address: number, value: number): void;
  /** The wasm heap that holds guest RAM (and v86's own state); growing it replaces its buffer. */
  wasm_memory: { readonly buffer: ArrayBuffer };
  /**
   * Guest RAM: a Proxy (src/cpu.js create_memory) that builds a fresh Uint8Array over the
   * current wasm buffer on every property access; its byteOffset/length locate RAM in the heap.
   */
  mem8: { readonly byteOffset: number; readonly length: number };
  /** The wasm instance (src/cpu.js); its exports include v86's allocator (v86_malloc, v86_free). */
  wm: { exports: Record<string, unknown> };
  /** wasm exports bound onto the CPU (src/cpu.js wasm_patch): a physical write, and IRQ polling. */
  write32(address: number, value: number): void;
  handle_irqs(): void;
}

/** Names that must occur in v86's release bundle; a rename in an upgrade fails the smoke test. */
export const REQUIRED_BUNDLE_NAMES: readonly string[] = [
  "register_device",
  "device_spaces",
  "pci_addr32",
  "pci_write8",
  "pci_write16",
  "pci_write32",
  "register_read",
  "register_write",
  "mmap_register",
  "mmap_write16",
  "memory_map_read8",
  "handle_irqs",
  "write32",
  "memory_map_write8",
  "option_roms",
  "memory_size",
  "devices.pci",
  "devices.acpi",
  ".gpe",
  ".ports",
  "emulator-loaded",
  "serial0-output-byte",
  "serial0_send",
  "save_state",
  "wasm_memory",
  "mem8",
];

/** Exports of build/v86.wasm the adapter calls (its allocator, see V86Machine.reserveHeap). */
export const REQUIRED_WASM_EXPORTS: readonly string[] = ["v86_malloc", "v86_free"];

const require = createRequire(import.meta.url);

function v86PackageDir(): string {
  return dirname(require.resolve("v86/package.json"));
}

/** The installed v86's version string (its package.json). */
export function installedV86Version(): string {
  const pkg = JSON.parse(readFileSync(join(v86PackageDir(), "package.json"), "utf8")) as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

/** Static check: the installed bundle still contains every internal name. Returns what is missing. */
export function checkV86Bundle(): string[] {
  const bundle = readFileSync(join(v86PackageDir(), "build", "libv86.mjs"), "utf8");
  return REQUIRED_BUNDLE_NAMES.filter((n) => !bundle.includes(n));
}

/**
 * Static check of the wasm module: an export's name is stored as plain UTF-8 in the export
 * section, so a byte search finds it without instantiating. Returns what is missing.
 */
export function checkV86Wasm(): string[] {
  const wasm = readFileSync(join(v86PackageDir(), "build", "v86.wasm"));
  return REQUIRED_WASM_EXPORTS.filter((n) => !wasm.includes(Buffer.from(n, "utf8")));
}

function fail(what: string): never {
  throw new LinuxError(
    LinuxErrorCode.v86Incompatible,
    `v86 ${installedV86Version()} lacks ${what}; src/linux/v86-adapter.ts was written for v86 ${PINNED_V86_VERSION} — pin that version or port the adapter`,
    { details: { what, installed: installedV86Version(), pinned: PINNED_V86_VERSION } },
  );
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null;
}

/** Runtime check of a loaded emulator: returns the CPU object typed, or fails naming the gap. */
export function checkV86Runtime(emulator: unknown): V86Cpu {
  const inner = isObject(emulator) ? emulator["v86"] : undefined;
  if (!isObject(inner)) fail("emulator.v86");
  const cpu = inner["cpu"];
  if (!isObject(cpu)) fail("emulator.v86.cpu");
  const io = cpu["io"];
  if (!isObject(io) || !Array.isArray(io["ports"])) fail("cpu.io.ports");
  for (const f of ["register_read", "register_write", "mmap_register"]) if (typeof io[f] !== "function") fail(`cpu.io.${f}`);
  const devices = cpu["devices"];
  if (!isObject(devices)) fail("cpu.devices");
  const pci = devices["pci"];
  if (!isObject(pci)) fail("cpu.devices.pci");
  if (!Array.isArray(pci["device_spaces"])) fail("cpu.devices.pci.device_spaces");
  if (!(pci["pci_addr32"] instanceof Int32Array)) fail("cpu.devices.pci.pci_addr32");
  for (const f of ["pci_write8", "pci_write16", "pci_write32", "register_device"]) if (typeof pci[f] !== "function") fail(`cpu.devices.pci.${f}`);
  const acpi = devices["acpi"];
  if (acpi !== undefined && !(isObject(acpi) && acpi["gpe"] instanceof Uint8Array)) fail("cpu.devices.acpi.gpe");
  if (!Array.isArray(cpu["option_roms"])) fail("cpu.option_roms");
  const memorySize = cpu["memory_size"];
  if (!isObject(memorySize) || typeof memorySize[0] !== "number") fail("cpu.memory_size");
  if (typeof cpu["mmap_write16"] !== "function") fail("cpu.mmap_write16");
  if (!Array.isArray(cpu["memory_map_read8"])) fail("cpu.memory_map_read8");
  if (typeof cpu["write32"] !== "function") fail("cpu.write32");
  if (typeof cpu["handle_irqs"] !== "function") fail("cpu.handle_irqs");
  const wasmMemory = cpu["wasm_memory"];
  if (!isObject(wasmMemory) || !(wasmMemory["buffer"] instanceof ArrayBuffer)) fail("cpu.wasm_memory");
  const mem8 = cpu["mem8"];
  if (!isObject(mem8) || typeof mem8["byteOffset"] !== "number" || typeof mem8["length"] !== "number") fail("cpu.mem8");
  const wm = cpu["wm"];
  const wasmExports = isObject(wm) ? wm["exports"] : undefined;
  if (!isObject(wasmExports)) fail("cpu.wm.exports");
  for (const f of ["v86_malloc", "v86_free"]) if (typeof wasmExports[f] !== "function") fail(`cpu.wm.exports.${f}`);
  if (!Array.isArray(cpu["memory_map_write8"])) fail("cpu.memory_map_write8");
  return cpu as unknown as V86Cpu;
}

// ---- The machine ----

export interface V86MachineOptions {
  readonly bios: Uint8Array;
  readonly vgaBios: Uint8Array;
  readonly bzimage: Uint8Array;
  readonly initrd: Uint8Array;
  readonly cmdline: string;
  readonly memorySize: number;
  /** A state from `saveState`: the machine resumes from it instead of booting. */
  readonly initialState?: ArrayBuffer;
  /** The devices placed on the guest's PCI bus next to v86's own. */
  readonly platform: PciPlatform;
  readonly onSerialByte: (byte: number) => void;
  /**
   * Receives guest RAM (physical 0 up to the memory size, zero copy over v86's heap): once when
   * the machine is loaded (after a snapshot restore), before the platform is wired in and the CPU
   * runs, and again whenever v86 moves its heap (checked on every platform MMIO access).
   */
  readonly onRam?: (ram: Uint8Array) => void;
  /** Runs once after the first onRam, before the platform is wired in (replay a device log here). */
  readonly beforeWiring?: () => void;
}

/** Loading wasm and the images takes well under a second; this only bounds a broken install. */
const LOAD_TIMEOUT_MS = 60_000;
/** v86 dispatches MMIO per 128 KiB block (src/const.js MMAP_BLOCK_BITS). */
const MMAP_BLOCK_BITS = 17;
/** Local APIC Interrupt Command Register, low dword, and its fields (Intel SDM Vol. 3A §11.6.1). */
const LAPIC_ICR_LOW = 0xfee0_0300;
const ICR_LEVEL_ASSERT = 1 << 14;
const ICR_SHORTHAND_SELF = 1 << 18;
/** Heap reserved in v86's allocator so its wasm memory does not grow under device views (see reserveHeap). */
const HEAP_RESERVE_BYTES = 32 * 1024 * 1024;
const HEAP_RESERVE_CHUNK = 32 * 1024;
/** The I/O APIC sits at 0xFEC00000; PCI memory BARs stay below it on a PC. */
const PCI_HOLE_END = 0xfec0_0000;

function formatDevfn(devfn: number): string {
  return `00:${(devfn >> 3).toString(16).padStart(2, "0")}.${devfn & 7}`;
}

/** A copy of bytes as a fresh ArrayBuffer (v86 keeps and may mutate what it is given). */
function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(out).set(bytes);
  return out;
}

/**
 * A v86 PC (i440FX/PIIX3, ACPI on, 32-bit CPU) whose PCI bus also carries a PciPlatform's
 * functions, with MMCONFIG for extended configuration space.
 */
export class V86Machine {
  #onRam: ((ram: Uint8Array) => void) | undefined;
  #ramBuffer: ArrayBuffer | undefined;

  private constructor(
    private readonly emulator: V86,
    private readonly cpu: V86Cpu,
  ) {}

  /** Creates the machine, installs the hooks before the CPU runs, then starts it. */
  static async start(options: V86MachineOptions): Promise<V86Machine> {
    const missing = checkV86Bundle();
    if (missing.length > 0) fail(`bundle names ${missing.join(", ")}`);
    const missingExports = checkV86Wasm();
    if (missingExports.length > 0) fail(`wasm exports ${missingExports.join(", ")}`);
    const emulator = new V86({
      wasm_path: join(v86PackageDir(), "build", "v86.wasm"),
      bios: { buffer: toArrayBuffer(options.bios) },
      vga_bios: { buffer: toArrayBuffer(options.vgaBios) },
      bzimage: { buffer: toArrayBuffer(options.bzimage) },
      initrd: { buffer: toArrayBuffer(options.initrd) },
      cmdline: options.cmdline,
      memory_size: options.memorySize,
      // ACPI builds the tables SeaBIOS extends with our MCFG; without it Linux sees no RSDP.
      acpi: true,
      autostart: false,
      disable_speaker: true,
      disable_keyboard: true,
      disable_mouse: true,
      ...(options.initialState === undefined ? {} : { initial_state: { buffer: options.initialState } }),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new LinuxError(LinuxErrorCode.bootTimeout, `v86 did not load within ${LOAD_TIMEOUT_MS} ms (wasm or BIOS images)`)),
          LOAD_TIMEOUT_MS,
        );
        emulator.add_listener("emulator-loaded", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const cpu = checkV86Runtime(emulator);
      const machine = new V86Machine(emulator, cpu);
      machine.#onRam = options.onRam;
      // Only a machine whose RAM is shared with devices needs its heap to stay put.
      if (options.onRam !== undefined) machine.#reserveHeap();
      machine.#checkRam();
      options.beforeWiring?.();
      machine.installFirmwareFiles();
      machine.installAcpiFix();
      const router = new ConfigRouter(machine.nativeBus(), options.platform);
      const shadowed = router.shadowedDevfns();
      if (shadowed.length > 0) {
        throw new LinuxError(
          LinuxErrorCode.devfnConflict,
          `the platform has functions at ${shadowed.map(formatDevfn).join(", ")}, where v86 has its own; move them (v86 occupies ${machine.nativeDevfns().map(formatDevfn).join(", ")})`,
          { details: { shadowed } },
        );
      }
      machine.installPciRouting(router, options.platform);
      machine.installMsiDelivery(options.platform);
      emulator.add_listener("serial0-output-byte", options.onSerialByte);
      await emulator.run();
      return machine;
    } catch (e) {
      // Leave no emulator (and its timers) behind: the process must be able to exit.
      await emulator.destroy();
      throw e;
    }
  }

  /** Guest RAM as a zero-copy view over v86's heap (valid until v86 grows its heap). */
  ram(): Uint8Array {
    const mem8 = this.cpu.mem8;
    return new Uint8Array(this.cpu.wasm_memory.buffer, mem8.byteOffset, mem8.length);
  }

  /**
   * v86 keeps guest RAM in its wasm heap, and growing a wasm memory replaces its ArrayBuffer: every
   * view over the old one (guest memory, and the ring views devices made from it) goes dead. The
   * heap grows when v86's allocator runs out, mostly as its JIT compiles new guest code. So the
   * allocator is made to grow once, up front: HEAP_RESERVE_BYTES in chunks below its large-block
   * threshold, freed at once, stay in its free list for later allocations.
   */
  #reserveHeap(): void {
    const exports = this.cpu.wm.exports;
    const malloc = exports["v86_malloc"] as (size: number) => number;
    const free = exports["v86_free"] as (ptr: number) => void;
    const chunks: number[] = [];
    for (let i = 0; i < HEAP_RESERVE_BYTES / HEAP_RESERVE_CHUNK; i++) {
      const p = malloc(HEAP_RESERVE_CHUNK);
      if (p === 0) break;
      chunks.push(p);
    }
    for (const p of chunks) free(p);
  }

  /**
   * How often guest RAM was handed to onRam: 1 when v86 never moved it. More means the heap grew
   * after devices may have made views of rings in it (they then see a detached buffer and report
   * DEVICE_NEEDS_RESET); see reserveHeap.
   */
  ramBinds = 0;

  /** Hands RAM to onRam when the heap's buffer is new (first call, or v86 grew its heap). */
  #checkRam(): void {
    const onRam = this.#onRam;
    if (onRam === undefined) return;
    const buffer = this.cpu.wasm_memory.buffer;
    if (buffer === this.#ramBuffer) return;
    this.#ramBuffer = buffer;
    this.ramBinds++;
    onRam(this.ram());
  }

  /** fw_cfg files SeaBIOS reads at POST (only matters on a cold boot; harmless on restore). */
  private installFirmwareFiles(): void {
    const size = this.cpu.memory_size[0] ?? 0;
    this.cpu.option_roms.push({ name: "etc/e820", data: e820File(size) }, { name: "acpi/mcfg", data: mcfgTable() });
  }

  /**
   * v86 stores writes to GPE0 status (0xAFE0/1) instead of clearing the written bits (ACPI 6.5
   * §4.8.1.1: status bits are write-1-to-clear), and lacks the PIIX4 hotplug registers PCIU/PCID
   * (0xAE00/0xAE04) SeaBIOS's DSDT reads in _E01, which then read all ones and eject every slot.
   */
  private installAcpiFix(): void {
    const acpi = this.cpu.devices.acpi;
    if (acpi === undefined) return;
    const io = this.cpu.io;
    for (const port of [0xafe0, 0xafe1]) {
      const index = port - 0xafe0;
      io.register_write(port, acpi, (v: number) => {
        // acpi.gpe is replaced on restore_state, so look it up on every write.
        const gpe = acpi.gpe;
        gpe[index] = (gpe[index] ?? 0) & ~v & 0xff;
      });
    }
    const zero = (): number => 0;
    for (let port = 0xae00; port < 0xae08; port++) io.register_read(port, acpi, zero, zero, zero);
  }

  private nativeDevfns(): number[] {
    const out: number[] = [];
    this.cpu.devices.pci.device_spaces.forEach((space, devfn) => {
      if (space !== undefined && devfn < 256) out.push(devfn);
    });
    return out;
  }

  private nativeBus(): NativeBus {
    const pci = this.cpu.devices.pci;
    return {
      has: (devfn) => pci.device_spaces[devfn] !== undefined,
      readDword: (devfn, offset) => pci.device_spaces[devfn]?.[offset >>> 2] ?? -1,
      write: (devfn, offset, width, value) => {
        const address = (devfn << 8) | offset;
        if (width === 1) pci.pci_write8(address, value);
        else if (width === 2) pci.pci_write16(address, value);
        else pci.pci_write32(address, value | 0);
      },
    };
  }

  /**
   * Conf1: the data port handlers (0xCFC..0xCFF) are wrapped so that a cycle addressed to a
   * devfn v86 does not occupy goes to the platform; v86 keeps its own functions. ECAM: a 16 MiB
   * MMIO window at ECAM_BASE served by the router for every function (v86 MMIO is in 128 KiB
   * blocks; the window is aligned). v86 splits 16-bit MMIO writes into two byte writes, which
   * would tear 16-bit registers (SR-IOV Control, NumVFs), so cpu.mmap_write16 is wrapped to
   * deliver them whole inside the window and inside the platform's BAR space.
   */
  private installPciRouting(router: ConfigRouter, platform: PciPlatform): void {
    const pci = this.cpu.devices.pci;
    const ports = this.cpu.io.ports;
    const target = (byte: number): { bus: number; devfn: number; offset: number } | undefined => {
      const at = ConfigRouter.decodeConf1(pci.pci_addr32[0] ?? 0, byte);
      return at !== undefined && router.ownsPlatform(at.bus, at.devfn) ? at : undefined;
    };
    const wrapRead = (entry: PortEntry, key: "read8" | "read16" | "read32", byte: number, width: AccessWidth): void => {
      const original = entry[key];
      entry[key] = function (this: unknown, port: number): number {
        const at = target(byte);
        if (at === undefined) return original.call(this, port);
        const v = router.read(at.bus, at.devfn, at.offset, width);
        return width === 4 ? v | 0 : v;
      };
    };
    const wrapWrite = (entry: PortEntry, key: "write8" | "write16" | "write32", byte: number, width: AccessWidth): void => {
      const original = entry[key];
      entry[key] = function (this: unknown, value: number): void {
        const at = target(byte);
        if (at === undefined) {
          original.call(this, value);
          return;
        }
        router.write(at.bus, at.devfn, at.offset, width, value >>> 0);
      };
    };
    for (let byte = 0; byte < 4; byte++) {
      const entry = ports[0xcfc + byte];
      if (entry === undefined) fail(`io.ports[0x${(0xcfc + byte).toString(16)}]`);
      wrapRead(entry, "read8", byte, 1);
      wrapWrite(entry, "write8", byte, 1);
      if (byte === 0 || byte === 2) {
        wrapRead(entry, "read16", byte, 2);
        wrapWrite(entry, "write16", byte, 2);
      }
      if (byte === 0) {
        wrapRead(entry, "read32", byte, 4);
        wrapWrite(entry, "write32", byte, 4);
      }
    }
    const cpu = this.cpu;
    // Which 128 KiB blocks are ours: 1 = ECAM, 2 = the platform's BAR space.
    const owner = new Uint8Array(1 << (32 - MMAP_BLOCK_BITS));
    const unmapped = this.unmappedHandler();
    const ecamFirst = ECAM_BASE >>> MMAP_BLOCK_BITS;
    const ecamEnd = (ECAM_BASE + ECAM_SIZE) >>> MMAP_BLOCK_BITS;
    // The PCI hole: from the end of RAM to the I/O APIC. SeaBIOS, then Linux, place memory BARs
    // there; every block v86 leaves unmapped is handed to the platform, which answers all ones
    // where no BAR decodes, exactly as unmapped space reads.
    const holeFirst = Math.ceil((cpu.memory_size[0] ?? 0) / (1 << MMAP_BLOCK_BITS));
    const holeEnd = PCI_HOLE_END >>> MMAP_BLOCK_BITS;
    let runStart = -1;
    // Device DMA happens inside these accesses (a doorbell, DRIVER_OK): RAM must be current.
    const checkRam = (): void => this.#checkRam();
    const flush = (end: number): void => {
      if (runStart < 0) return;
      cpu.io.mmap_register(
        runStart << MMAP_BLOCK_BITS,
        (end - runStart) << MMAP_BLOCK_BITS,
        (a) => (checkRam(), platform.mmioRead(a >>> 0, 1)),
        (a, v) => (checkRam(), platform.mmioWrite(a >>> 0, 1, v & 0xff)),
        (a) => (checkRam(), platform.mmioRead(a >>> 0, 4) | 0),
        (a, v) => (checkRam(), platform.mmioWrite(a >>> 0, 4, v >>> 0)),
      );
      owner.fill(2, runStart, end);
      runStart = -1;
    };
    for (let block = holeFirst; block < holeEnd; block++) {
      const free = unmapped !== undefined && cpu.memory_map_read8[block] === unmapped && (block < ecamFirst || block >= ecamEnd);
      if (free && runStart < 0) runStart = block;
      if (!free) flush(block);
    }
    flush(holeEnd);
    cpu.io.mmap_register(
      ECAM_BASE,
      ECAM_SIZE,
      (a) => router.ecamRead(a >>> 0, 1),
      (a, v) => router.ecamWrite(a >>> 0, 1, v),
      (a) => router.ecamRead(a >>> 0, 4) | 0,
      (a, v) => router.ecamWrite(a >>> 0, 4, v >>> 0),
    );
    owner.fill(1, ecamFirst, ecamEnd);
    const originalWrite16 = cpu.mmap_write16.bind(cpu);
    cpu.mmap_write16 = (address: number, value: number): void => {
      const a = address >>> 0;
      const who = (a & 1) === 0 ? owner[a >>> MMAP_BLOCK_BITS] : 0;
      if (who === 1) router.ecamWrite(a, 2, value & 0xffff);
      else if (who === 2) {
        checkRam();
        platform.mmioWrite(a, 2, value & 0xffff);
      }
      else originalWrite16(address, value);
    };
  }

  /** v86 maps all of 4 GiB above RAM to one "unmapped" handler; the most frequent one is it. */
  private unmappedHandler(): MmapRead | undefined {
    const counts = new Map<MmapRead, number>();
    const first = Math.ceil((this.cpu.memory_size[0] ?? 0) / (1 << MMAP_BLOCK_BITS));
    for (let block = first; block < 1 << (32 - MMAP_BLOCK_BITS); block++) {
      const h = this.cpu.memory_map_read8[block];
      if (h !== undefined) counts.set(h, (counts.get(h) ?? 0) + 1);
    }
    let best: MmapRead | undefined;
    let most = 0;
    for (const [h, n] of counts) {
      if (n > most) {
        best = h;
        most = n;
      }
    }
    return best;
  }

  /** MSI/MSI-X messages the platform raised and the guest's local APIC was given. */
  readonly msi = { delivered: 0, dropped: 0 };

  /**
   * MSI delivery. v86 has no MSI path and exports no APIC entry point, but its local APIC (in
   * wasm) is reachable through a physical write: a message is turned into a self-IPI, a write
   * of the Interrupt Command Register at 0xFEE00300 with the message's vector, fixed delivery,
   * level assert and the "self" destination shorthand (Intel SDM Vol. 3A §11.6.1). With one CPU
   * every MSI destination is that CPU. Only fixed and lowest-priority messages to the
   * 0xFEExxxxx window with a vector ≥ 16 are delivered (§11.11); others are counted and dropped.
   * Delivery is deferred to the next macrotask, outside v86's instruction loop, because a
   * device usually raises the message from inside a guest MMIO access.
   */
  private installMsiDelivery(platform: PciPlatform): void {
    const cpu = this.cpu;
    const pending: number[] = [];
    let scheduled = false;
    const flush = (): void => {
      scheduled = false;
      for (const vector of pending.splice(0)) cpu.write32(LAPIC_ICR_LOW, vector | ICR_LEVEL_ASSERT | ICR_SHORTHAND_SELF);
      cpu.handle_irqs();
    };
    platform.onMsi((address, data) => {
      const a = address >>> 0;
      const mode = (data >>> 8) & 7;
      const vector = data & 0xff;
      if (a < 0xfee0_0000 || a > 0xfeef_ffff || (mode !== 0 && mode !== 1) || vector < 16) {
        this.msi.dropped++;
        return;
      }
      this.msi.delivered++;
      pending.push(vector);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
  }

  /** Bytes into the UART's receive side (the guest's console input). */
  sendSerial(text: string): void {
    this.emulator.serial0_send(text);
  }

  /** Stops the CPU and returns the whole machine state. */
  async saveState(): Promise<ArrayBuffer> {
    await this.emulator.stop();
    const state = await this.emulator.save_state();
    await this.emulator.run();
    return state;
  }

  /** Stops the emulator and frees its memory. */
  async destroy(): Promise<void> {
    await this.emulator.stop();
    await this.emulator.destroy();
  }
}
