import { GuestMemory, type MemoryRegionSpec } from "../memory/index.js";
import { PciBus, allOnes, type AccessWidth, type PciEffect, type PciFunction, type PciPlatform } from "../pci/index.js";
import { VmmError } from "./errors.js";
import { RootPort } from "./root-port.js";
import { Vpf, type VpfOptions } from "./vpf.js";

export interface VmOptions {
  readonly name: string;
  /**
   * Guest RAM: a size in bytes (one region at 0), explicit regions, or an existing GuestMemory
   * (the RAM a guest harness already owns, so that the devices' DMA lands in the guest's memory).
   */
  readonly memory: number | readonly MemoryRegionSpec[] | GuestMemory;
  /** Where the guest may place memory BARs (default 0xe000_0000, 256 MiB). */
  readonly mmioWindow?: { readonly base: number; readonly size: number };
  /** Bus 0 device number of the first root port; the next ones follow (default 0x10). */
  readonly firstRootPortSlot?: number;
}

export type VmState = "created" | "running" | "stopped";

/** Counters a host operator reads (`vpf vm show`). */
export interface VmCounters {
  /** MSI/MSI-X messages delivered to the guest's interrupt controller. */
  msis: number;
  /** Messages raised while no handler was registered (lost, as on a machine with no LAPIC). */
  msisLost: number;
  /** Guest register accesses while the VM was not running (ignored). */
  accessesWhileStopped: number;
}

/**
 * One virtual machine (docs/vmm.md): guest memory, a PCI Express topology of root ports on bus
 * 0 with one device behind each, and the register boundary a guest drives (PciPlatform):
 * configuration cycles by bus/devfn (ECAM semantics: every bus number is reachable), MMIO to
 * the BARs the guest programmed, MSI-X messages to the handler the guest registered.
 *
 * Life cycle: created (devices are added) → running (start) → stopped (stop: every vVF backend
 * goes back to its pool and every vPF backend is closed) → running again (start: cold boot).
 * `reset()` is a system reset of a running VM: every function is reset, which disables VFs and
 * returns their backends, and firmware state (bus numbers) is programmed again.
 */
export class Vm implements PciPlatform {
  readonly name: string;
  readonly memory: GuestMemory;
  readonly bus: PciBus;
  readonly mmioWindow: { readonly base: number; readonly size: number };
  readonly counters: VmCounters = { msis: 0, msisLost: 0, accessesWhileStopped: 0 };
  readonly #ports: RootPort[] = [];
  readonly #vpfs: Vpf[] = [];
  readonly #firstSlot: number;
  #state: VmState = "created";
  #msi: ((address: number, data: number) => void) | undefined;

  constructor(opts: VmOptions) {
    if (typeof opts.name !== "string" || opts.name.length === 0) throw new VmmError("VMM_BAD_ARGUMENT", "a VM needs a name");
    this.name = opts.name;
    try {
      this.memory = opts.memory instanceof GuestMemory ? opts.memory : new GuestMemory(opts.memory);
    } catch (e) {
      throw new VmmError("VMM_BAD_ARGUMENT", `VM ${opts.name}: bad memory layout`, { cause: e });
    }
    const first = opts.firstRootPortSlot ?? 0x10;
    if (!Number.isInteger(first) || first < 1 || first > 31) throw new VmmError("VMM_BAD_ARGUMENT", `first root port slot ${first} is not 1..31`);
    this.#firstSlot = first;
    this.bus = new PciBus(opts.mmioWindow === undefined ? {} : { mmioWindow: opts.mmioWindow });
    this.mmioWindow = this.bus.mmioWindow;
    this.bus.onEffects((fn, _rid, effects) => this.#effects(fn, effects));
    this.bus.onMsi((address, data) => {
      const h = this.#msi;
      if (h === undefined) {
        this.counters.msisLost++;
        return;
      }
      this.counters.msis++;
      h(address, data);
    });
  }

  get state(): VmState {
    return this.#state;
  }
  get rootPorts(): readonly RootPort[] {
    return this.#ports;
  }
  get vpfs(): readonly Vpf[] {
    return this.#vpfs;
  }

  /**
   * Adds a root port on bus 0 (next free slot) with a fresh secondary bus; returns it. Ports
   * exist only while the VM is being built (no hot-plug).
   */
  addRootPort(): RootPort {
    if (this.#state !== "created") throw new VmmError("VMM_BAD_STATE", `VM ${this.name}: devices are added before start`);
    const k = this.#ports.length;
    const slot = this.#firstSlot + k;
    if (slot > 31) throw new VmmError("VMM_TOPOLOGY", `VM ${this.name}: no free slot on bus 0 for another root port`);
    const port = new RootPort(slot, k + 1);
    this.bus.attach(port.fn, { bus: 0, device: slot, function: 0 });
    this.#ports.push(port);
    return port;
  }

  /** Adds a vPF behind a new root port, at function 0 of the port's secondary bus. */
  addVpf(opts: VpfOptions): Vpf {
    if (this.#state !== "created") throw new VmmError("VMM_BAD_STATE", `VM ${this.name}: devices are added before start`);
    const name = opts.name ?? `vpf${this.#vpfs.length}`;
    if (this.#vpfs.some((v) => v.name === name)) throw new VmmError("VMM_TOPOLOGY", `VM ${this.name} already has a device named ${name}`);
    if (this.#firstSlot + this.#ports.length > 31) throw new VmmError("VMM_TOPOLOGY", `VM ${this.name}: no free slot on bus 0 for another root port`);
    const vpf = new Vpf(opts, { memory: this.memory, bus: this.bus, holder: this.name, defaultName: name });
    const port = this.addRootPort();
    this.bus.attach(vpf.pf, { bus: port.secondaryBus, device: 0, function: 0 });
    this.#vpfs.push(vpf);
    return vpf;
  }

  /** Powers the VM on (first start, or a cold boot after stop). */
  start(): void {
    if (this.#state === "running") throw new VmmError("VMM_BAD_STATE", `VM ${this.name} is already running`);
    if (this.#state === "stopped") {
      for (const v of this.#vpfs) v.restart();
      for (const p of this.#ports) {
        p.fn.reset();
        p.programFirmwareState();
      }
    }
    this.#state = "running";
  }

  /** Powers the VM off: every vVF backend returns to its pool, every vPF backend is closed. */
  stop(): void {
    if (this.#state !== "running") throw new VmmError("VMM_BAD_STATE", `VM ${this.name} is not running`);
    this.#state = "stopped";
    for (const v of this.#vpfs) v.shutdown();
  }

  /** System reset of a running VM (reboot): all functions reset, firmware state reprogrammed. */
  reset(): void {
    if (this.#state !== "running") throw new VmmError("VMM_BAD_STATE", `VM ${this.name} is not running`);
    for (const v of this.#vpfs) this.#effects(v.pf, v.pf.reset());
    for (const p of this.#ports) {
      p.fn.reset();
      p.programFirmwareState();
    }
  }

  #effects(fn: PciFunction, effects: readonly PciEffect[]): void {
    for (const v of this.#vpfs) {
      if (v.owns(fn)) {
        v.handleEffects(fn, effects);
        return;
      }
    }
  }

  // ------------------------------------------------------------------ PciPlatform

  #running(): boolean {
    if (this.#state === "running") return true;
    this.counters.accessesWhileStopped++;
    return false;
  }

  configRead(bus: number, devfn: number, offset: number, width: AccessWidth): number {
    if (!this.#running()) return allOnes(width);
    return this.bus.configRead(bus, devfn, offset, width);
  }
  configWrite(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): void {
    if (!this.#running()) return;
    this.bus.configWrite(bus, devfn, offset, width, value);
  }
  mmioRead(address: number, width: AccessWidth): number {
    if (!this.#running()) return allOnes(width);
    return this.bus.mmioRead(address, width);
  }
  mmioWrite(address: number, width: AccessWidth, value: number): void {
    if (!this.#running()) return;
    this.bus.mmioWrite(address, width, value);
  }
  onMsi(handler: (address: number, data: number) => void): void {
    this.#msi = handler;
  }
}
