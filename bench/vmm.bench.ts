/**
 * VF Enable at the device level (issue 5): the time from the guest's write of VF Enable into the
 * vPF's SR-IOV capability until vVFs 1..N are bound to pool backends (vhost-vdpa handles opened,
 * host VF defaults applied through the host facade) and answer configuration reads at their
 * routing IDs. The guest is the vmm's TestGuest writing through the Vm's PciPlatform. "first"
 * builds the vVF instances (configuration spaces, capabilities, transports); "again" re-enables
 * after a disable and reuses them; "pre-built" is the first enable of a vPF whose instances were
 * built with the VM (VpfOptions.prebuildVvfs, as QEMU 10 realizes VFs with the PF).
 */
import { VirtualClock } from "../src/base/index.js";
import { Host } from "../src/host/index.js";
import { Nic } from "../src/nic/index.js";
import { BackendPool, TestGuest, Vm, hostBackend, type VfBackend } from "../src/vmm/index.js";
import type { BenchResult, BenchSuite } from "./harness.js";

const MiB = 1024 * 1024;

function backends(n: number, bus: number): VfBackend[] {
  const host = new Host(new Nic({ clock: new VirtualClock(), totalVfs: n, bus }));
  const pf = host.pfNames()[0]!;
  host.setSriovNumVfs(pf, n);
  return host.vdpaMgmtdevShow().map((m, i) => {
    host.vdpaDevAdd({ name: `vdpa${i}`, mgmtdev: m.name });
    return hostBackend(host, `vdpa${i}`);
  });
}

interface Rig {
  guest: TestGuest;
  sriov: number;
  enable: (n: number) => number;
  disable: () => void;
}

function rig(n: number, prebuildVvfs = false): Rig {
  const own = backends(1, 0x3b)[0]!;
  const pool = new BackendPool("bench", backends(n, 0x5e));
  const vm = new Vm({ name: "bench", memory: 32 * MiB });
  vm.addVpf({ backend: own, pool, prebuildVvfs, policy: { vlan: { mode: "allow-list", allowed: [0] }, allowSpoofchkOff: false, allowTrust: false } });
  vm.start();
  const g = new TestGuest(vm, vm.memory, { base: 8 * MiB, size: 24 * MiB });
  g.assignBars(1, 0);
  const sriov = g.findExtCap(1, 0, 0x10)!;
  g.assignVfBars(1, 0, sriov);
  g.write(1, 0, sriov + 0x08, 2, 0x10); // ARI Capable Hierarchy
  return {
    guest: g,
    sriov,
    enable: (k: number): number => {
      g.write(1, 0, sriov + 0x10, 2, k);
      const t0 = process.hrtime.bigint();
      g.write(1, 0, sriov + 0x08, 2, 0x19);
      for (let d = 1; d <= k; d++) if (g.read(1, d, 0x08, 4) !== 0x0200_0001) throw new Error(`vVF ${d} missing`);
      return Number(process.hrtime.bigint() - t0) / 1e6;
    },
    disable: (): void => g.write(1, 0, sriov + 0x08, 2, 0x10),
  };
}

export const suite: BenchSuite = {
  name: "vmm",
  run(): BenchResult[] {
    const out: BenchResult[] = [];
    for (const n of [8, 64, 255]) {
      let first = Infinity;
      let again = Infinity;
      for (let rep = 0; rep < 3; rep++) {
        const r = rig(n);
        first = Math.min(first, r.enable(n));
        for (let i = 0; i < 3; i++) {
          r.disable();
          again = Math.min(again, r.enable(n));
        }
      }
      let pre = Infinity;
      for (let rep = 0; rep < 3; rep++) pre = Math.min(pre, rig(n, true).enable(n));
      out.push({ name: `VF Enable → ${n} vVFs bound (first, instances built)`, value: first, unit: "ms", note: "best of 3" });
      out.push({ name: `VF Enable → ${n} vVFs bound (first, pre-built)`, value: pre, unit: "ms", note: "best of 3" });
      out.push({ name: `VF Enable → ${n} vVFs bound (again, instances reused)`, value: again, unit: "ms", note: "best of 9" });
    }
    return out;
  },
};
