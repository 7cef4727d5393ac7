/**
 * Issue 7, stretch goal: the vVFs as working virtio-net devices in the real kernel. The VM's
 * guest memory is v86's RAM (GuestMemory region rebound onto it, zero copy), so the rings the
 * real virtio_net lays out are the rings the NIC's vDPA data plane serves. Two vVFs, one moved
 * into a network namespace (busybox `unshare -n` + `ip link set ... netns PID` + `nsenter`), ping
 * each other through the NIC's eswitch; the host's VF counters prove the frames crossed it and
 * the uplink tap proves unicast never left the NIC. One cold boot at most per run (the ready
 * point is snapshotted; linux-vpf.test.ts shares the snapshot). Needs
 * `bash scripts/linux-assets.sh`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { LinuxGuest, loadAssets } from "../../src/linux/index.js";
import { makeVpfWorld, type VpfWorld } from "../../src/linux/vpf-platform.js";
import { VdpaNetDevice } from "../../src/vmm/index.js";

const PF = "/sys/bus/pci/devices/0000:01:00.0";
/** Runs a command inside the namespace held by the one `sleep` the test starts. */
const NS = "nsenter -t $(pidof sleep) -n";

let world: VpfWorld;
let guest: LinuxGuest;
const wire: Uint8Array[] = [];

before(async () => {
  world = makeVpfWorld();
  world.host.nic.port(0).uplink.attach((f) => wire.push(f));
  guest = await LinuxGuest.start({ platform: world.platform, platformKey: world.platformKey, memory: world.memory, assets: loadAssets() });
});

after(async () => {
  await guest.shutdown();
});

const sh = (command: string, timeoutMs?: number): Promise<string> => guest.read(command, timeoutMs);

/** The host VF (index on the NIC's PF) whose MAC a guest netdev carries. */
function hostVfByMac(mac: string): number {
  const vfs = world.host.getVfInfo(world.host.pfNames()[0] ?? "").vfs;
  const i = vfs.findIndex((v) => v.mac.toString() === mac);
  assert.ok(i >= 0, `no host VF has ${mac}`);
  return i;
}

function hostStats(vf: number): { tx: bigint; rx: bigint } {
  const s = world.host.getVfInfo(world.host.pfNames()[0] ?? "").vfs[vf]?.stats;
  assert.ok(s !== undefined, `host VF ${vf} has no stats`);
  return { tx: s.txPackets, rx: s.rxPackets };
}

function relay(n: number): VdpaNetDevice["stats"] {
  const d = world.vpf.vvfTransport(n)?.device;
  assert.ok(d instanceof VdpaNetDevice, `vVF ${n} has a vDPA device`);
  return { ...d.stats };
}

test("the VM's RAM is v86's RAM: bound once before the CPU ran; bytes the guest writes are in the VM's memory", async (t) => {
  t.diagnostic(`boot: ${guest.boot.kind} in ${Math.round(guest.boot.millis)} ms`);
  assert.equal(guest.ramBinds, 1);
  assert.deepEqual(world.memory.regions(), [{ base: 0, size: 256 * 1024 * 1024 }]);
  // A marker the command line does not contain (the shell computes it), written into the page
  // cache of the guest's tmpfs: the device side finds it in the VM's memory.
  const n = 40_000 + Math.floor(Math.random() * 9_999);
  await sh(`printf 'VPF%dMARK' $((${n} * 3)) > /tmp/marker`);
  const ram = world.memory.view(0, world.memory.size);
  const hay = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
  assert.ok(hay.indexOf(`VPF${n * 3}MARK`) >= 0, "the guest's write is visible in the VM's GuestMemory");
});

test("two vVFs ping each other across a network namespace through the NIC's eswitch", async (t) => {
  assert.equal((await guest.run(`echo 2 > ${PF}/sriov_numvfs`)).status, 0);
  const macs = (await sh("cat /sys/class/net/eth1/address /sys/class/net/eth2/address")).trim().split("\n");
  assert.equal(macs.length, 2);
  const [vf1, vf2] = [hostVfByMac(macs[0] ?? ""), hostVfByMac(macs[1] ?? "")];
  // eth2 into its own namespace, held open by a sleeping process.
  await sh("setsid unshare -n sleep 999999 </dev/null >/dev/null 2>&1 & sleep 0.2; pidof sleep");
  await sh("ip link set eth2 netns $(pidof sleep)");
  assert.doesNotMatch(await sh("ls /sys/class/net"), /\beth2\b/);
  await sh("ip addr add 10.7.0.1/24 dev eth1 && ip link set eth1 up");
  await sh(`${NS} ip addr add 10.7.0.2/24 dev eth2 && ${NS} ip link set eth2 up && ${NS} ip link set lo up`);

  const host1 = hostStats(vf1);
  const host2 = hostStats(vf2);
  const relay1 = relay(1);
  const relay2 = relay(2);
  const wireBefore = wire.length;
  const started = performance.now();
  const out = await sh("ping -c 3 -W 2 10.7.0.2", 30_000);
  t.diagnostic(`ping -c 3: ${Math.round(performance.now() - started)} ms; ${out.match(/round-trip.*$/m)?.[0] ?? ""}`);
  assert.match(out, /3 packets transmitted, 3 packets received, 0% packet loss/);
  const back = await sh(`${NS} ping -c 2 -W 2 10.7.0.1`, 30_000);
  assert.match(back, /2 packets transmitted, 2 packets received/);

  // The NIC VFs behind eth1 and eth2 counted every frame: 3 + 2 echoes each way, plus ARP.
  const d1 = { tx: hostStats(vf1).tx - host1.tx, rx: hostStats(vf1).rx - host1.rx };
  const d2 = { tx: hostStats(vf2).tx - host2.tx, rx: hostStats(vf2).rx - host2.rx };
  t.diagnostic(`host VF ${vf1} (eth1): tx +${d1.tx} rx +${d1.rx}; host VF ${vf2} (eth2): tx +${d2.tx} rx +${d2.rx}`);
  assert.ok(d1.tx >= 5n && d2.rx >= 5n, "eth1 → eth2 crossed the eswitch");
  assert.ok(d2.tx >= 5n && d1.rx >= 5n, "eth2 → eth1 crossed the eswitch");
  // Only broadcasts (ARP requests) are flooded to the uplink; unicast stayed inside the NIC.
  const leaked = wire.slice(wireBefore).filter((f) => ((f[0] ?? 0) & 1) === 0);
  assert.equal(leaked.length, 0, "no unicast frame reached the wire");
  // The hypervisor relayed doorbells and interrupts only; the NIC VFs moved the frames.
  assert.ok(relay(1).kicks - relay1.kicks >= 5 && relay(2).kicks - relay2.kicks >= 5, "TX doorbells relayed as vhost kicks");
  assert.ok(relay(1).calls - relay1.calls >= 1 && relay(2).calls - relay2.calls >= 1, "RX interrupts relayed as MSI-X");
  assert.equal(guest.msi.dropped, 0);
  // And the kernel's own counters agree.
  assert.match(await sh("cat /sys/class/net/eth1/statistics/rx_packets"), /^\d+/);
  assert.ok(Number((await sh("cat /sys/class/net/eth1/statistics/rx_packets")).trim()) >= 5);
  // The RAM never moved under the devices' ring views.
  assert.equal(guest.ramBinds, 1);
});

test("the vPF's own eth0 reaches the namespace through the eswitch too (restored: its rings come from the replayed device log)", async (t) => {
  const vpfVf = hostVfByMac((await sh("cat /sys/class/net/eth0/address")).trim());
  await sh("ip addr add 10.9.0.1/24 dev eth0 && ip link set eth0 up");
  await sh(`${NS} ip addr add 10.9.0.2/24 dev eth2`);
  const before = hostStats(vpfVf);
  const out = await sh("ping -c 2 -W 2 10.9.0.2", 30_000);
  assert.match(out, /2 packets transmitted, 2 packets received/);
  const after = hostStats(vpfVf);
  t.diagnostic(`host VF ${vpfVf} (vPF eth0): tx +${after.tx - before.tx} rx +${after.rx - before.rx}; boot was ${guest.boot.kind}`);
  assert.ok(after.tx - before.tx >= 2n && after.rx - before.rx >= 2n);
  assert.equal(world.vpf.transport.status & 0x40, 0, "the vPF never needed a reset");
  await sh("ip link set eth0 down");
});

test("tearing down: the namespace goes, echo 0 removes both vVFs and every backend returns to the pool", async () => {
  await sh("kill $(pidof sleep)");
  const r = await guest.run(`echo 0 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  assert.doesNotMatch(await sh("ls /sys/class/net"), /\beth[12]\b/);
  assert.equal(world.vpf.boundVfs, 0);
  assert.equal(world.pool.available, world.vpf.totalVfs);
});
