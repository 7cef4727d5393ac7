/**
 * Issue 5 item 5, on the model guest (src/guest) running on a vmm VM whose vPF and vVFs are
 * backed by vhost-vdpa devices on the emulated NIC:
 * - time from the `sriov_numvfs` write until all N vVF netdevs exist (N = 8, 64, 255; the write
 *   returns only after sriov_enable probed every VF, as on Linux), best of 10;
 * - frames per second netdev → vVF ring → NIC eswitch → vVF ring → netdev (guest driver TX,
 *   NIC VF TX, FDB lookup, NIC VF RX, MSI-X, guest driver RX), 64 B and 1500 B, one core; one
 *   doorbell per frame, and bursts of 64 with one doorbell (the qdisc's xmit_more).
 */
import type { BenchResult, BenchSuite } from "./harness.js";
import { opsPerSecond } from "./harness.js";
import { VirtualClock } from "../src/base/index.js";
import { Nic } from "../src/nic/index.js";
import { Host } from "../src/host/index.js";
import { Vm, BackendPool, hostBackend, type VfBackend } from "../src/vmm/index.js";
import { GuestKernel, iproute as ip } from "../src/guest/index.js";

const VPF = "/sys/bus/pci/devices/0000:01:00.0";
const BATCH = 64;

/** `n` vDPA backends on fresh NICs (one NIC port holds at most 254 VFs). */
function backends(n: number): VfBackend[] {
  const out: VfBackend[] = [];
  let left = n;
  let nicNo = 0;
  while (left > 0) {
    const k = Math.min(left, 254);
    const nic = new Nic({ clock: new VirtualClock(), totalVfs: k, bus: 0x3b + nicNo });
    const host = new Host(nic);
    host.setSriovNumVfs(host.pfName(0), k);
    for (let i = 0; i < k; i++) {
      const name = `vdpa${out.length}`;
      const mac = `02:00:00:${nicNo.toString(16).padStart(2, "0")}:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
      host.vdpaDevAdd({ name, mgmtdev: `pci/${nic.port(0).vfAddress(i).toString()}`, mac });
      out.push(hostBackend(host, name));
    }
    left -= k;
    nicNo++;
  }
  return out;
}

function bootGuest(vfs: number): { vm: Vm; k: GuestKernel } {
  const b = backends(vfs + 1);
  const vm = new Vm({ name: "bench", memory: 128 * 1024 * 1024 });
  vm.addVpf({ backend: b[0]!, pool: new BackendPool("p", b.slice(1)), policy: { vlan: { mode: "allow-list", allowed: [0] }, allowSpoofchkOff: true, allowTrust: true } });
  vm.start();
  return { vm, k: GuestKernel.boot({ platform: vm, memory: vm.memory }) };
}

export function enableTime(n: number): number {
  const { k } = bootGuest(n);
  let best = Infinity;
  for (let rep = 0; rep < 10; rep++) {
    const t0 = process.hrtime.bigint();
    k.sysfsWrite(`${VPF}/sriov_numvfs`, String(n));
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    if (k.initNs.list().length !== n + 2) throw new Error(`expected ${n} vVF netdevs`);
    best = Math.min(best, t);
    k.sysfsWrite(`${VPF}/sriov_numvfs`, "0");
  }
  return best;
}

export function forwarding(frameLen: number, batched = false): number {
  const { k } = bootGuest(2);
  k.sysfsWrite(`${VPF}/sriov_numvfs`, "2");
  const eth0 = k.initNs.byName("eth0")!.ifindex;
  const macs = ["02:00:00:aa:00:01", "02:00:00:aa:00:02"];
  ["eth1", "eth2"].forEach((name, vf) => {
    const dev = k.initNs.byName(name)!;
    const check = (req: Uint8Array): void => {
      const r = ip.parseReplies(k.netlink(req));
      if (r.error !== 0) throw new Error(`netlink error ${r.error}`);
    };
    check(ip.setVfRequest(eth0, vf, { mac: macs[vf]! }));
    check(ip.setLinkRequest(dev.ifindex, { mac: macs[vf]! }));
    check(ip.setLinkRequest(dev.ifindex, { up: true }));
  });
  const a = k.initNs.byName("eth1")!;
  const b = k.initNs.byName("eth2")!;
  const f = new Uint8Array(frameLen);
  f.set([2, 0, 0, 0xaa, 0, 2, 2, 0, 0, 0xaa, 0, 1, 0x88, 0xb5]);
  const before = b.stats.rxPackets;
  const burst = new Array<Uint8Array>(BATCH).fill(f);
  const rate = opsPerSecond(
    batched
      ? () => {
          a.transmitBatch(burst);
        }
      : () => {
          for (let i = 0; i < BATCH; i++) a.transmit(f);
        },
    BATCH,
  );
  // Every frame sent must have arrived (the bench measures delivered frames, not attempts).
  const sent = a.stats.txPackets;
  const got = b.stats.rxPackets - before;
  if (got < sent * 0.99 - BATCH * 20) throw new Error(`only ${got} of ${sent} frames arrived`);
  return rate;
}

export const suite: BenchSuite = {
  name: "guest",
  run(): BenchResult[] {
    const out: BenchResult[] = [];
    for (const n of [8, 64, 255]) {
      out.push({ name: `sriov_numvfs write → ${n} netdevs`, value: enableTime(n), unit: "ms", note: n === 255 ? "best of 10; target ≤ 50 ms" : "best of 10" });
    }
    for (const len of [64, 1500]) {
      out.push({ name: `netdev→vVF→eswitch→vVF→netdev ${len} B`, value: forwarding(len), unit: "frames/s", note: "one doorbell per frame" });
    }
    for (const len of [64, 1500]) {
      out.push({ name: `netdev→vVF→eswitch→vVF→netdev ${len} B, bursts of ${BATCH}`, value: forwarding(len, true), unit: "frames/s", note: "xmit_more: one doorbell per burst" });
    }
    return out;
  },
};
