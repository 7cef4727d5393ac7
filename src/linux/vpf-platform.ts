import { VirtualClock } from "../base/index.js";
import { Host } from "../host/index.js";
import { Nic } from "../nic/index.js";
import { hostBackend, type VfBackend } from "../vmm/host-adapter.js";
import { BackendPool, Vm, type Vpf, type VmPolicy } from "../vmm/index.js";
import type { GuestMemory } from "../memory/index.js";
import { LinuxError, LinuxErrorCode } from "./errors.js";
import { LinuxGuest, type LinuxGuestOptions } from "./guest.js";
import { VirtioSplitReadRepair } from "./virtio-width.js";

/**
 * A whole host for the real guest: an emulated NIC whose PF has host VFs with vDPA devices, one
 * backing the vPF and the rest in the VM's pool, and a VM (src/vmm) carrying the vPF behind a
 * root port. The VM is the PciPlatform the real kernel's PCI bus sees (through the split-read
 * repair that v86 needs, see virtio-width.ts).
 */
export interface VpfWorld {
  readonly host: Host;
  readonly vm: Vm;
  readonly vpf: Vpf;
  readonly pool: BackendPool<VfBackend>;
  /** The VM's RAM, to hand to LinuxGuest.start as `memory` (rebound onto v86's RAM there). */
  readonly memory: GuestMemory;
  /** What to hand to LinuxGuest.start: the VM behind the split-read repair. */
  readonly platform: VirtioSplitReadRepair;
  /** Names the power-on configuration for the snapshot key. */
  readonly platformKey: string;
}

export interface VpfWorldOptions {
  /** Backends in the VM's pool (TotalVFs of the vPF); default 7. */
  readonly poolSize?: number;
  readonly policy?: VmPolicy;
}

const DEFAULT_POLICY: VmPolicy = { vlan: { mode: "allow-list", allowed: [0, 100] }, allowSpoofchkOff: false, allowTrust: false };

const VM_PLATFORM_KEY = "vmm-vm:v1";

/**
 * Starts a real Linux guest on an existing, started VM (for `guest: linux` in a topology): the
 * VM's bus is the guest's PCI bus behind the split-read repair; snapshots are keyed by the VM's
 * power-on device configuration, so VMs of the same shape share one.
 */
export function startLinuxOnVm(vm: Vm, options: Omit<LinuxGuestOptions, "platform" | "platformKey" | "memory"> = {}): Promise<LinuxGuest> {
  // v86's RAM becomes the VM's RAM at 0, so the guest gets as much as the VM has there.
  const low = vm.memory.regions().find((r) => r.base === 0);
  return LinuxGuest.start({
    ...(low === undefined ? {} : { memorySize: low.size }),
    ...options,
    memory: vm.memory,
    platform: new VirtioSplitReadRepair(vm, vm.bus),
    platformKey: VM_PLATFORM_KEY,
  });
}

/** The MAC of the world's vdpa device i: 02:56:50:00:00:<i+1> (vdpa0 backs the vPF, vdpaN vVF N). */
export function worldMac(i: number): string {
  return `02:56:50:00:00:${(i + 1).toString(16).padStart(2, "0")}`;
}

export function makeVpfWorld(options: VpfWorldOptions = {}): VpfWorld {
  const poolSize = options.poolSize ?? 7;
  // The vPF sits alone on its root port's bus with ARI: at most 255 VFs; the NIC adds one for the vPF.
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 254) {
    throw new LinuxError(LinuxErrorCode.badArgument, `pool size ${poolSize} is not 1..254`, { details: { poolSize } });
  }
  const host = new Host(new Nic({ clock: new VirtualClock(), totalVfs: poolSize + 1, bus: 0x3b }));
  host.setSriovNumVfs(host.pfNames()[0] ?? "", poolSize + 1);
  const backends = host.vdpaMgmtdevShow().map((m, i) => {
    // A MAC per device (as `vdpa dev add ... mac`): virtio_net takes it from the device config
    // (VIRTIO_NET_F_MAC), and the eswitch, which does not learn, forwards to it.
    host.vdpaDevAdd({ name: `vdpa${i}`, mgmtdev: m.name, mac: worldMac(i) });
    return hostBackend(host, `vdpa${i}`);
  });
  const own = backends[0];
  if (own === undefined) throw new LinuxError(LinuxErrorCode.badArgument, "the host has no VF to back the vPF");
  const pool = new BackendPool("pool0", backends.slice(1));
  // v86's RAM size: LinuxGuest.start rebinds this region onto v86's RAM.
  const vm = new Vm({ name: "linux", memory: 256 * 1024 * 1024 });
  const vpf = vm.addVpf({ backend: own, pool, policy: options.policy ?? DEFAULT_POLICY });
  vm.start();
  return {
    host,
    vm,
    vpf,
    pool,
    memory: vm.memory,
    platform: new VirtioSplitReadRepair(vm, vm.bus),
    // The same key as startLinuxOnVm: the power-on fingerprint in the snapshot key tells VMs apart.
    platformKey: VM_PLATFORM_KEY,
  };
}
