import type { VhostVdpaHandle } from "../host/index.js";
import type { GuestMemory } from "../memory/index.js";
import {
  AriCapability,
  MsixCapability,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_VFE,
  PciExpressCapability,
  PciFunction,
  SriovCapability,
  type PciBus,
  type PciEffect,
} from "../pci/index.js";
import {
  VIRTIO_NET_PCI_CLASS,
  VIRTIO_NET_PCI_DEVICE_ID,
  VIRTIO_PCI_BAR_SPEC,
  VIRTIO_PCI_DEFAULT_BAR,
  VIRTIO_PCI_MAX_VECTORS,
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VIRTIO_PCI_SUBSYSTEM_ID,
  VIRTIO_PCI_VENDOR_ID,
  VirtioPciTransport,
} from "../virtio/index.js";
import { VmmError } from "./errors.js";
import { prefetchHostState, type VfBackend } from "./host-adapter.js";
import { MEDIATED_OPCODES, VfConfigMediator } from "./mediator.js";
import { PolicyEngine, type VmPolicy } from "./policy.js";
import type { BackendPool } from "./pool.js";
import { VdpaNetDevice } from "./vdpa-net.js";

/** The memory BAR virtio structures and MSI-X live in, on the vPF and (as a VF BAR) on vVFs: BAR 4, as QEMU. */
export const VIRTIO_BAR = VIRTIO_PCI_DEFAULT_BAR;
/** MSI-X vectors per function: configuration, receiveq, transmitq, controlq, adminq. */
export const MSIX_VECTORS = Math.min(VIRTIO_PCI_MAX_VECTORS, 5);
/** With the PF at function 0, offset 1 and stride 1, VF 255 is at function 255: the ARI limit. */
export const MAX_VVFS = 255;

export interface VpfOptions {
  /** Name for messages and status (default "vpf<k>"). */
  readonly name?: string;
  /** The host VF backing the vPF itself (its own data plane). */
  readonly backend: VfBackend;
  /** Where vVF backends come from. */
  readonly pool: BackendPool<VfBackend>;
  /** How many pool backends this VM may hold; default the pool's capacity. TotalVFs = min(quota, capacity, 255). */
  readonly quota?: number;
  readonly policy: VmPolicy;
  /**
   * Build all TotalVFs vVF instances now (QEMU 10's choice: VFs realized with the PF, only
   * enabled later) instead of on first VF Enable: VF Enable then only binds backends, at the
   * price of the instances' memory for every VF the VM may ever have. Default false.
   */
  readonly prebuildVvfs?: boolean;
}

/** Why the last VF Enable was refused, for the host operator (the guest sees only VF Enable clear). */
export interface EnableFailure {
  readonly numVfs: number;
  readonly code: string;
  readonly message: string;
}

interface VvfSlot {
  readonly fn: PciFunction;
  readonly msix: MsixCapability;
  readonly device: VdpaNetDevice;
  readonly transport: VirtioPciTransport;
}

interface Binding {
  readonly backend: VfBackend;
  readonly handle: VhostVdpaHandle;
}

/**
 * The virtual PF: a virtio-net PCI function backed by vhost-vdpa on one host VF, carrying PCI
 * Express (FLR), MSI-X, ARI and SR-IOV capabilities and offering VIRTIO_F_SR_IOV and the admin
 * virtqueue (docs/vmm.md). Its SR-IOV capability's VF Enable makes the hypervisor bind vVFs
 * 1..NumVFs to pool backends — all of them or none — and its admin queue carries the guest's
 * VF configuration to the mediator.
 */
export class Vpf {
  readonly name: string;
  readonly pf: PciFunction;
  readonly express: PciExpressCapability;
  readonly msix: MsixCapability;
  readonly ari: AriCapability;
  /** Absent when the pool or quota allows no VF at all. */
  readonly sriov: SriovCapability | undefined;
  readonly device: VdpaNetDevice;
  readonly transport: VirtioPciTransport;
  readonly mediator: VfConfigMediator;
  readonly totalVfs: number;
  readonly pool: BackendPool<VfBackend>;
  readonly quota: number;
  readonly backend: VfBackend;
  /** cleanupErrors: undo/teardown steps that failed (and were skipped so the rest could run). */
  readonly stats = { enables: 0, enableFailures: 0, disables: 0, vfsBound: 0, cleanupErrors: 0 };
  lastEnableFailure: EnableFailure | undefined;
  readonly #memory: GuestMemory;
  readonly #bus: PciBus;
  readonly #holder: string;
  readonly #slots: (VvfSlot | undefined)[] = [];
  #bindings: Binding[] = [];

  /** Built by Vm.addVpf; opens the vPF's own backend. */
  constructor(opts: VpfOptions, ctx: { memory: GuestMemory; bus: PciBus; holder: string; defaultName: string }) {
    this.name = opts.name ?? ctx.defaultName;
    this.pool = opts.pool;
    this.backend = opts.backend;
    this.#memory = ctx.memory;
    this.#bus = ctx.bus;
    this.#holder = ctx.holder;
    const quota = opts.quota ?? opts.pool.capacity;
    if (!Number.isInteger(quota) || quota < 0) throw new VmmError("VMM_BAD_ARGUMENT", `${this.name}: quota ${quota} is not a non-negative integer`);
    this.quota = quota;
    this.totalVfs = Math.min(quota, opts.pool.capacity, MAX_VVFS);
    this.mediator = new VfConfigMediator(new PolicyEngine(opts.policy));

    let handle: VhostVdpaHandle;
    try {
      handle = opts.backend.open();
    } catch (e) {
      throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: cannot open the vPF's backend ${opts.backend.name}`, { cause: e });
    }
    try {
      const pf = (this.pf = new PciFunction({
        vendorId: VIRTIO_PCI_VENDOR_ID,
        deviceId: VIRTIO_NET_PCI_DEVICE_ID,
        classCode: VIRTIO_NET_PCI_CLASS,
        // virtio 1.3 §4.1.2.1: non-transitional devices SHOULD have a Revision ID of 1 or higher.
        revision: 1,
        subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
        subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
        express: true,
        // QEMU marks an SR-IOV PF multifunction (pcie_sriov_pf_init_common).
        multifunction: this.totalVfs > 0,
      }));
      pf.defineBar(VIRTIO_BAR, VIRTIO_PCI_BAR_SPEC);
      this.express = new PciExpressCapability(pf, { type: "endpoint", flr: true });
      this.msix = new MsixCapability(pf, msixLayout());
      // ARI lets VFs 8..255 have function numbers beyond 7 (PCIe Base §6.13); the PF is alone on
      // its bus (its own root port), so Next Function Number is 0.
      this.ari = new AriCapability(pf);
      this.sriov =
        this.totalVfs > 0
          ? new SriovCapability(pf, {
              totalVfs: this.totalVfs,
              firstVfOffset: 1,
              vfStride: 1,
              vfDeviceId: VIRTIO_NET_PCI_DEVICE_ID,
              vfBars: [{ index: VIRTIO_BAR, ...VIRTIO_PCI_BAR_SPEC }],
            })
          : undefined;
      this.device = new VdpaNetDevice(handle);
      this.transport = new VirtioPciTransport({ fn: pf, device: this.device, memory: ctx.memory, bar: VIRTIO_BAR, msix: this.msix, adminQueue: true });
      this.device.connect(this.transport, this.msix);
      const admin = this.transport.admin;
      if (admin === undefined) throw new VmmError("VMM_BAD_STATE", "the transport has no admin queue");
      for (const opcode of MEDIATED_OPCODES) {
        admin.register(opcode, { name: `vpf-0x${opcode.toString(16)}`, usesMember: true, handle: (cmd) => this.mediator.handle(cmd.opcode, cmd.memberId, cmd.data) });
      }
      if (opts.prebuildVvfs === true) for (let n = 1; n <= this.totalVfs; n++) this.#slots[n - 1] = this.#build(n, new VdpaNetDevice(undefined, this.device.profile));
    } catch (e) {
      handle.close();
      throw e;
    }
  }

  /** Pool backends this vPF's vVFs hold now. */
  get boundVfs(): number {
    return this.#bindings.length;
  }
  /** The vVF functions that exist now (VF Enable set), 1-based order. */
  vvfs(): PciFunction[] {
    return this.#bindings.map((_, i) => this.#slots[i]!.fn);
  }
  /** vVF n's transport (n 1-based), if the vVF was ever instantiated. */
  vvfTransport(n: number): VirtioPciTransport | undefined {
    return this.#slots[n - 1]?.transport;
  }
  /** The backend bound to vVF n now. */
  vvfBackend(n: number): VfBackend | undefined {
    return this.#bindings[n - 1]?.backend;
  }
  /** Whether `fn` is this vPF or one of its vVFs. */
  owns(fn: PciFunction): boolean {
    return fn === this.pf || (fn.virtualFunction !== undefined && fn.virtualFunction.parent === this.sriov);
  }

  /** Effects of a configuration write to the vPF (VF Enable, FLR) or a vVF (its FLR). */
  handleEffects(fn: PciFunction, effects: readonly PciEffect[]): void {
    if (fn !== this.pf) return; // a vVF's FLR already reset its transport and backend (reset hook)
    for (const e of effects) {
      if (e.kind === "vfs-enabled") this.#enable(e.numVfs);
      else if (e.kind === "vfs-disabled") this.#disable();
    }
  }

  /**
   * VF Enable 0 → 1: take NumVFs backends, open them, instantiate vVFs 1..NumVFs (reusing earlier
   * instances), program the host defaults and put the vVFs on the bus. Any failure undoes every
   * step and clears VF Enable again, so the guest reads VF Enable = 0 and finds no VF.
   */
  #enable(n: number): void {
    this.stats.enables++;
    if (n === 0 || this.#bindings.length > 0) return;
    let taken: VfBackend[] = [];
    const bindings: Binding[] = [];
    const bound: number[] = [];
    const attached: PciFunction[] = [];
    let dropPrefetched = (): void => undefined;
    try {
      taken = this.pool.take(this.#holder, n, this.quota);
      dropPrefetched = prefetchHostState(taken);
      for (const backend of taken) {
        try {
          bindings.push({ backend, handle: backend.open() });
        } catch (e) {
          throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: backend ${backend.name} cannot be opened`, { cause: e });
        }
      }
      for (let i = 1; i <= n; i++) {
        const b = bindings[i - 1]!;
        const slot = this.#slot(i, b.handle);
        this.mediator.bind(i, b.backend.control, backendMac(b.handle));
        bound.push(i);
        this.#bus.attachVf(slot.fn);
        attached.push(slot.fn);
      }
    } catch (e) {
      dropPrefetched();
      // Undo in reverse order. Each step is guarded: this runs inside a guest register write,
      // which must not end in an exception, and a failing step must not stop the others.
      for (const fn of attached) this.#safely(() => this.#bus.detach(fn));
      for (const i of bound) this.#safely(() => this.mediator.unbind(i));
      for (let i = 1; i <= bindings.length; i++) {
        const s = this.#slots[i - 1];
        if (s !== undefined && s.device.backend === bindings[i - 1]!.handle) this.#safely(() => s.device.detachBackend());
      }
      for (const b of bindings) this.#safely(() => b.handle.close());
      if (taken.length > 0) this.#safely(() => this.pool.give(this.#holder, taken));
      this.#safely(() => this.#refuseEnable());
      this.stats.enableFailures++;
      const code = e instanceof VmmError ? e.code : "VMM_BACKEND_FAILED";
      this.lastEnableFailure = { numVfs: n, code, message: e instanceof Error ? e.message : String(e) };
      return;
    }
    dropPrefetched();
    this.#bindings = bindings;
    this.stats.vfsBound += n;
  }

  /** Runs one clean-up step; a failing step is counted and skipped so the others still run. */
  #safely(step: () => void): void {
    try {
      step();
    } catch {
      this.stats.cleanupErrors++;
    }
  }

  /** Clears VF Enable as the device: the capability sees a write and disables its VFs. */
  #refuseEnable(): void {
    const s = this.sriov;
    if (s === undefined) return;
    const at = s.offset + PCI_SRIOV_CTRL;
    this.pf.configWrite(at, 2, this.pf.configRead(at, 2) & ~PCI_SRIOV_CTRL_VFE);
  }

  /** The vVF slot n (1-based), created on first use, with `handle` as its backend. */
  #slot(n: number, handle: VhostVdpaHandle): VvfSlot {
    const existing = this.#slots[n - 1];
    if (existing !== undefined) {
      try {
        existing.device.attachBackend(handle);
      } catch (e) {
        throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: backend refused vVF ${n}`, { cause: e });
      }
      return existing;
    }
    // The backend is queried first: if it refuses, the VF function (which SriovCapability caches
    // and hands out again) has not been given capabilities yet.
    let device: VdpaNetDevice;
    try {
      device = new VdpaNetDevice(handle);
    } catch (e) {
      throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: backend refused vVF ${n}`, { cause: e });
    }
    const slot = this.#build(n, device);
    this.#slots[n - 1] = slot;
    return slot;
  }

  /** vVF n's function, capabilities and transport around `device`. */
  #build(n: number, device: VdpaNetDevice): VvfSlot {
    const sriov = this.sriov!;
    const fn = sriov.vfFunction(n, { classCode: VIRTIO_NET_PCI_CLASS, revision: 1, subsystemVendorId: VIRTIO_PCI_VENDOR_ID, subsystemId: VIRTIO_PCI_SUBSYSTEM_ID });
    new PciExpressCapability(fn, { type: "endpoint", flr: true });
    const msix = new MsixCapability(fn, msixLayout());
    new AriCapability(fn);
    const transport = new VirtioPciTransport({ fn, device, memory: this.#memory, bar: VIRTIO_BAR, msix });
    device.connect(transport, msix);
    return { fn, msix, device, transport };
  }

  /** VF Enable 1 → 0 (write, FLR, reset): detach every vVF and return its backend. Idempotent. */
  #disable(): void {
    const bindings = this.#bindings;
    if (bindings.length === 0) return;
    this.#bindings = [];
    this.stats.disables++;
    const dropPrefetched = prefetchHostState(bindings.map((b) => b.backend));
    for (let i = 1; i <= bindings.length; i++) {
      const slot = this.#slots[i - 1]!;
      if (this.#bus.ridOf(slot.fn) !== undefined) this.#safely(() => this.#bus.detach(slot.fn));
      this.mediator.unbind(i);
      this.#safely(() => slot.device.detachBackend());
    }
    dropPrefetched();
    for (const b of bindings) this.#safely(() => b.handle.close());
    this.pool.give(
      this.#holder,
      bindings.map((b) => b.backend),
    );
  }

  /** VM stop: every vVF backend back to the pool, the vPF reset, its own backend closed. */
  shutdown(): void {
    this.#disable();
    this.pf.reset();
    const h = this.device.detachBackend();
    h?.close();
  }

  /** VM start after a stop: reopen the vPF's own backend. */
  restart(): void {
    if (this.device.backend !== undefined) return;
    let h: VhostVdpaHandle;
    try {
      h = this.backend.open();
    } catch (e) {
      throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: cannot reopen the vPF's backend ${this.backend.name}`, { cause: e });
    }
    try {
      this.device.attachBackend(h);
    } catch (e) {
      h.close();
      throw new VmmError("VMM_BACKEND_FAILED", `${this.name}: backend ${this.backend.name} refused the vPF`, { cause: e });
    }
  }
}

function msixLayout(): { vectors: number; tableBar: number; tableOffset: number; pbaBar: number; pbaOffset: number } {
  return { vectors: MSIX_VECTORS, tableBar: VIRTIO_BAR, tableOffset: VIRTIO_PCI_MSIX_TABLE_OFFSET, pbaBar: VIRTIO_BAR, pbaOffset: VIRTIO_PCI_MSIX_PBA_OFFSET };
}

/** The MAC a vDPA device reports in its virtio-net config (VHOST_VDPA_GET_CONFIG, bytes 0..5). */
function backendMac(h: VhostVdpaHandle): Uint8Array {
  try {
    return h.getConfig(0, 6);
  } catch {
    return new Uint8Array(6);
  }
}
