/**
 * Issue 4 item 6. Eswitch forwarding VF → VF with both VFs served by the NIC from vDPA rings in
 * guest memory (the whole data path: TX ring pop, header strip, FDB lookup among 4096 known
 * MACs, RX ring fill, used-ring updates and interrupts; plus the guest double's own ring work,
 * which runs on the same core), at 64 B and 1500 B; and the max_tx_rate shaper's accuracy.
 */
import type { BenchResult, BenchSuite } from "./harness.js";
import { opsPerSecond } from "./harness.js";
import { VirtualClock, NS_PER_MS, NS_PER_S } from "../src/base/index.js";
import { MacAddress, EthernetRepr } from "../src/wire/index.js";
import { Nic } from "../src/nic/index.js";
import { Host, VirtioNetDouble } from "../src/host/index.js";

const PF = "enp59s0f0np0";
const RECEIVERS = 4;
const MACS_PER_RECEIVER = 1024; // 4096 known destination MACs in the FDB
const BATCH = 64;

function frameTo(dstKey: number, srcKey: number, len: number): Uint8Array {
  const b = new Uint8Array(len);
  EthernetRepr.emit({ dst: MacAddress.fromKey(dstKey), src: MacAddress.fromKey(srcKey), vlans: [], etherType: 0x0800 }, b);
  return b;
}

export function forwarding(frameLen: number): { frames: number; fdb: number; run: () => void } {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const host = new Host(nic);
  host.setSriovNumVfs(PF, 1 + RECEIVERS);
  const guests: VirtioNetDouble[] = [];
  for (let i = 0; i <= RECEIVERS; i++) {
    host.vdpaDevAdd({ name: `vdpa${i}`, mgmtdev: `pci/${nic.port(0).vfAddress(i).toString()}`, mac: MacAddress.fromKey(0x020000000000 + i + 1).toString() });
    const g = new VirtioNetDouble(host.openVhostVdpa(`vdpa${i}`), { queueSize: 256 });
    g.start();
    guests.push(g);
  }
  // Each receiver owns 1024 addresses (its VIRTIO_NET_CTRL_MAC table): 4096 FDB entries to hit.
  const dsts: number[] = [];
  for (let r = 1; r <= RECEIVERS; r++) {
    const keys = Array.from({ length: MACS_PER_RECEIVER }, (_, j) => 0x021000000000 + r * 0x10000 + j);
    nic.port(0).vf(r).setRxMode({ unicast: keys });
    dsts.push(...keys);
  }
  // Interleave destinations so consecutive frames hit different receivers and entries.
  const order = dsts.map((_, i) => dsts[(i * 2654435761) % dsts.length]!);
  const src = 0x020000000001;
  const frames = order.map((d) => frameTo(d, src, frameLen));
  const batches: Uint8Array[][] = [];
  for (let i = 0; i < frames.length; i += BATCH) batches.push(frames.slice(i, i + BATCH));
  const [sender, ...receivers] = guests as [VirtioNetDouble, ...VirtioNetDouble[]];
  let b = 0;
  let delivered = 0;
  const run = (): void => {
    const sent = sender.send(...batches[b]!);
    if (sent !== BATCH) throw new Error(`ring full: sent ${sent}`);
    b = (b + 1) % batches.length;
    for (const g of receivers) delivered += g.drain();
  };
  run();
  if (delivered !== BATCH) throw new Error(`expected ${BATCH} deliveries, got ${delivered}`);
  return { frames: BATCH, fdb: nic.port(0).eswitch.fdbSize, run };
}

function shaperAccuracy(mbps: number): { measured: number; error: number } {
  const clock = new VirtualClock();
  const nic = new Nic({ clock });
  const host = new Host(nic);
  host.setSriovNumVfs(PF, 2);
  const g: VirtioNetDouble[] = [];
  for (let i = 0; i < 2; i++) {
    host.vdpaDevAdd({ name: `v${i}`, mgmtdev: `pci/${nic.port(0).vfAddress(i).toString()}`, mac: MacAddress.fromKey(0x020000000000 + i + 1).toString() });
    const d = new VirtioNetDouble(host.openVhostVdpa(`v${i}`), { queueSize: 256 });
    d.start();
    g.push(d);
  }
  host.setVf(PF, 0, { maxTxRate: mbps });
  const f = frameTo(0x020000000002, 0x020000000001, 1514);
  const fill = Array.from({ length: 256 }, () => f);
  let bytes = 0;
  const count = (fr: Uint8Array): void => {
    bytes += fr.length;
  };
  // Warm-up second: let the bucket's initial burst pass, then measure one second of steady state.
  const step = NS_PER_MS / 10n;
  for (let t = 0n; t < NS_PER_S; t += step) {
    g[0]!.send(...fill);
    clock.advance(step);
    g[1]!.receiveEach(() => undefined);
  }
  for (let t = 0n; t < NS_PER_S; t += step) {
    g[0]!.send(...fill);
    clock.advance(step);
    g[1]!.receiveEach(count);
  }
  const measured = (bytes * 8) / 1e6;
  return { measured, error: (measured - mbps) / mbps };
}

export const suite: BenchSuite = {
  name: "nic",
  run(): BenchResult[] {
    const out: BenchResult[] = [];
    for (const [len, label] of [
      [60, "64 B"],
      [1514, "1500 B"],
    ] as const) {
      const f = forwarding(len);
      const cpu0 = process.cpuUsage();
      let calls = 0;
      const fps = opsPerSecond(() => {
        f.run();
        calls++;
      }, f.frames, 1500);
      const cpu = process.cpuUsage(cpu0);
      // Frames per second of CPU time this process got: robust when the shared machine is busy.
      const perCpuS = ((calls - 20) * f.frames) / ((cpu.user + cpu.system) / 1e6);
      out.push({ name: `eswitch VF→VF via vDPA rings, ${label} frames`, value: fps, unit: "frames/s", note: `wall clock; ${f.fdb} FDB entries, batches of ${BATCH}, guest double's ring work included` });
      out.push({ name: `  same, per CPU-second of this process`, value: perCpuS, unit: "frames/s", note: "one core; what the wall figure is on an idle core" });
      out.push({ name: `  same, throughput per CPU-second`, value: (perCpuS * (len + 4) * 8) / 1e9, unit: "Gbit/s", note: "L2 bytes with FCS" });
    }
    for (const mbps of [10, 1000, 25000]) {
      const r = shaperAccuracy(mbps);
      out.push({ name: `max_tx_rate ${mbps} Mbit/s, measured over 1 s virtual`, value: r.measured, unit: "Mbit/s", note: `error ${(r.error * 100).toFixed(3)} %` });
    }
    return out;
  },
};
