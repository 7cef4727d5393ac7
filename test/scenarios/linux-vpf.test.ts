/**
 * The vmm's vPF (virtio-net PCI function with SR-IOV, backed by a host VF through vhost-vdpa)
 * on a real Debian i386 kernel's PCI bus, behind the VM's root port, with MMCONFIG: Linux's
 * virtio_pci binds it, virtio_net creates eth0, and `sriov_numvfs` goes through
 * virtio_pci_sriov_configure to the hypervisor, which binds pool backends to the vVFs. One cold
 * boot at most per run (the ready point is snapshotted). Needs `bash scripts/linux-assets.sh`.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { LinuxGuest, loadAssets, type LinuxAssets } from "../../src/linux/index.js";
import { makeVpfWorld, startLinuxOnVm, type VpfWorld } from "../../src/linux/vpf-platform.js";
import { modelSysfs, realSysfs, runSysfsScript, type SysfsStep } from "../../src/linux/differential.js";
import { GuestKernel } from "../../src/guest/index.js";

const PF = "/sys/bus/pci/devices/0000:01:00.0";
const VF = (n: number): string => `/sys/bus/pci/devices/0000:01:00.${n}`;

let assets: LinuxAssets;
let world: VpfWorld;
let guest: LinuxGuest;

before(async () => {
  assets = loadAssets();
  world = makeVpfWorld();
  guest = await LinuxGuest.start({ platform: world.platform, platformKey: world.platformKey, memory: world.memory, assets });
});

after(async () => {
  await guest.shutdown();
});

const sh = (command: string): Promise<string> => guest.read(command);
const lines = async (command: string): Promise<string[]> => (await sh(command)).trim().split("\n");
const pciDevices = async (): Promise<string[]> => (await sh("ls /sys/bus/pci/devices")).split(/\s+/).filter((s) => s !== "");

/** The host side: backends the VM holds from its pool, and what is left. */
function pool(): { held: number; available: number } {
  return { held: world.pool.heldBy(world.vm.name), available: world.pool.available };
}

test("virtio_pci binds the vPF behind the root port and virtio_net brings up eth0", async (t) => {
  t.diagnostic(`boot: ${guest.boot.kind} in ${Math.round(guest.boot.millis)} ms`);
  assert.deepEqual(await lines(`cat ${PF}/vendor ${PF}/device ${PF}/class`), ["0x1af4", "0x1041", "0x020000"]);
  assert.match((await sh(`readlink ${PF}/driver`)).trim(), /\/virtio-pci$/);
  // DRIVER_OK | FEATURES_OK | DRIVER | ACKNOWLEDGE, and VIRTIO_F_SR_IOV (bit 37) negotiated.
  assert.equal((await sh("cat /sys/bus/virtio/devices/virtio0/status")).trim(), "0x0000000f");
  const features = (await sh("cat /sys/bus/virtio/devices/virtio0/features")).trim();
  assert.equal(features[37], "1");
  assert.equal(features[32], "1"); // VIRTIO_F_VERSION_1
  assert.match(await sh("ls /sys/class/net"), /\beth0\b/);
  assert.equal((await sh(`readlink ${PF}/virtio0/net/eth0/device`)).trim() !== "", true);
});

test("the vPF shows a 4096-byte config space and the SR-IOV capability with TotalVFs = pool size", async () => {
  assert.equal((await sh(`wc -c < ${PF}/config`)).trim(), "4096");
  assert.deepEqual(await lines(`cat ${PF}/sriov_totalvfs ${PF}/sriov_numvfs ${PF}/sriov_offset ${PF}/sriov_stride ${PF}/sriov_vf_device`), [
    String(world.vpf.totalVfs),
    "0",
    "1",
    "1",
    "1041",
  ]);
  // Walk the extended capability list in the guest's own view of config space: SR-IOV (0x0010) is on it.
  const ids: number[] = [];
  let at = 0x100;
  for (let hops = 0; at !== 0 && hops < 16; hops++) {
    const header = parseInt((await sh(`od -A n -t x4 -j ${at} -N 4 ${PF}/config`)).trim(), 16);
    ids.push(header & 0xffff);
    at = header >>> 20;
  }
  assert.ok(ids.includes(0x0010), `extended capabilities ${ids.map((i) => i.toString(16)).join(",")}`);
  assert.deepEqual(pool(), { held: 0, available: world.vpf.totalVfs });
});

test("echo 4 > sriov_numvfs creates four vVFs at 01:00.1-4 with physfn/virtfn links; the pool follows", async () => {
  // Without autoprobe only the PCI core sees the vVFs (the probed case and frames: below and linux-dataplane.test.ts).
  await sh(`echo 0 > ${PF}/sriov_drivers_autoprobe`);
  const r = await guest.run(`echo 4 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  const devices = await pciDevices();
  for (let n = 1; n <= 4; n++) {
    assert.ok(devices.includes(`0000:01:00.${n}`), `vVF ${n}`);
    assert.equal((await sh(`readlink ${VF(n)}/physfn`)).trim(), "../0000:01:00.0");
    assert.equal((await sh(`readlink ${PF}/virtfn${n - 1}`)).trim(), `../0000:01:00.${n}`);
    assert.deepEqual(await lines(`cat ${VF(n)}/vendor ${VF(n)}/device`), ["0x1af4", "0x1041"]);
    assert.equal((await sh(`wc -c < ${VF(n)}/config`)).trim(), "4096");
  }
  assert.ok(!devices.includes("0000:01:00.5"));
  assert.equal(world.vpf.boundVfs, 4);
  assert.deepEqual(pool(), { held: 4, available: world.vpf.totalVfs - 4 });
});

test("echo 2 while four vVFs exist fails with EBUSY; nothing moves on the host", async () => {
  const r = await guest.run(`echo 2 > ${PF}/sriov_numvfs`);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /Device or resource busy/);
  assert.equal((await sh(`cat ${PF}/sriov_numvfs`)).trim(), "4");
  assert.deepEqual(pool(), { held: 4, available: world.vpf.totalVfs - 4 });
});

test("echo 0 removes the vVFs and returns every backend to the pool", async () => {
  const r = await guest.run(`echo 0 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  const devices = await pciDevices();
  for (let n = 1; n <= 7; n++) assert.ok(!devices.includes(`0000:01:00.${n}`));
  assert.equal(world.vpf.boundVfs, 0);
  assert.deepEqual(pool(), { held: 0, available: world.vpf.totalVfs });
  await sh(`echo 1 > ${PF}/sriov_drivers_autoprobe`);
});

test("a value above TotalVFs fails with ERANGE and takes nothing from the pool", async () => {
  const r = await guest.run(`echo ${world.vpf.totalVfs + 1} > ${PF}/sriov_numvfs`);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /Numerical result out of range/);
  assert.deepEqual(pool(), { held: 0, available: world.vpf.totalVfs });
});

test("with driver autoprobe the real kernel binds virtio_pci to the vVFs and virtio_net creates their netdevs", async () => {
  const r = await guest.run(`echo 2 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  for (let n = 1; n <= 2; n++) {
    assert.match((await sh(`readlink ${VF(n)}/driver`)).trim(), /\/virtio-pci$/, `vVF ${n} driver`);
    // Each vVF's transport reached DRIVER_OK with MSI-X vectors from its own table.
    assert.equal((world.vpf.vvfTransport(n)?.status ?? 0) & 0x0f, 0x0f);
    assert.match(await sh(`ls ${VF(n)}/msi_irqs`), /\d/);
  }
  const netdevs = (await sh("ls /sys/class/net")).split(/\s+/).filter((s) => s !== "");
  assert.deepEqual(netdevs.filter((n) => n.startsWith("eth")).sort(), ["eth0", "eth1", "eth2"]);
  assert.deepEqual(pool(), { held: 2, available: world.vpf.totalVfs - 2 });
  assert.equal((await guest.run(`echo 0 > ${PF}/sriov_numvfs`)).status, 0);
  assert.equal((await sh("ls /sys/class/net")).includes("eth1"), false);
  assert.deepEqual(pool(), { held: 0, available: world.vpf.totalVfs });
});

test("an MSI-X message from the vPF reaches the real kernel's interrupt handler", async () => {
  const count = async (): Promise<number> => {
    const line = (await sh("grep virtio0-config /proc/interrupts")).trim();
    return Number(line.split(/\s+/)[1]);
  };
  const before = await count();
  // The config-change vector Linux programmed into the vPF's MSI-X table (entry 0).
  assert.equal(world.vpf.msix.entry(0).masked, false);
  assert.equal(world.vpf.msix.notify(0), "sent");
  // Delivery happens outside v86's instruction loop; the next command runs after it.
  assert.equal(await count(), before + 1);
  assert.equal(guest.msi.dropped, 0);
});

/** One sysfs script for both guests: what a user (or sriov-network-operator) does to a PF. */
function differentialScript(): SysfsStep[] {
  const attrs = ["vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision"];
  const sriov = ["sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_vf_device", "sriov_drivers_autoprobe"];
  const steps: SysfsStep[] = [...attrs, ...sriov].map((a) => ({ op: "read", path: `${PF}/${a}` }));
  const numvfs = `${PF}/sriov_numvfs`;
  steps.push(
    { op: "write", path: `${PF}/sriov_drivers_autoprobe`, data: "0" },
    { op: "read", path: `${PF}/sriov_drivers_autoprobe` },
    { op: "write", path: numvfs, data: "abc" },
    { op: "write", path: numvfs, data: String(world.vpf.totalVfs + 1) },
    { op: "write", path: numvfs, data: "4" },
    { op: "read", path: numvfs },
  );
  for (let n = 1; n <= 4; n++) {
    steps.push(
      { op: "readlink", path: `${PF}/virtfn${n - 1}` },
      { op: "readlink", path: `${VF(n)}/physfn` },
      ...["vendor", "device", "class"].map((a): SysfsStep => ({ op: "read", path: `${VF(n)}/${a}` })),
    );
  }
  steps.push(
    { op: "list", path: "/sys/bus/pci/devices", prefix: "0000:01:" },
    { op: "write", path: numvfs, data: "2" },
    { op: "read", path: numvfs },
    { op: "write", path: numvfs, data: "0" },
    { op: "read", path: numvfs },
    { op: "readlink", path: `${PF}/virtfn0` },
    { op: "list", path: "/sys/bus/pci/devices", prefix: "0000:01:" },
    { op: "write", path: `${PF}/sriov_drivers_autoprobe`, data: "1" },
  );
  return steps;
}

test("differential: the same sysfs script gives the same values and errnos on the real and the model guest", async () => {
  const model = makeVpfWorld();
  const kernel = GuestKernel.boot({ platform: model.vm, memory: model.vm.memory });
  const steps = differentialScript();
  const real = await runSysfsScript(realSysfs(guest), steps);
  const modelled = await runSysfsScript(modelSysfs(kernel), steps);
  assert.equal(real.length, steps.length);
  assert.deepEqual(modelled, real);
  // Both hosts followed the same way: every backend back in its pool.
  assert.deepEqual([model.pool.available, world.pool.available], [model.vpf.totalVfs, world.vpf.totalVfs]);
});

test("from a restored snapshot the rebuilt vmm serves the same guest", async (t) => {
  await guest.shutdown();
  world = makeVpfWorld();
  // What a topology with `guest: linux` does: a real guest on a started VM.
  guest = await startLinuxOnVm(world.vm, { assets });
  t.diagnostic(`boot: ${guest.boot.kind} in ${Math.round(guest.boot.millis)} ms`);
  assert.equal(guest.boot.kind, "snapshot");
  // Replaying the guest's writes brought the fresh vPF to DRIVER_OK, as the guest left it.
  assert.equal(world.vpf.transport.status & 0x0f, 0x0f);
  await sh(`echo 0 > ${PF}/sriov_drivers_autoprobe`);
  assert.equal((await guest.run(`echo 3 > ${PF}/sriov_numvfs`)).status, 0);
  assert.deepEqual(pool(), { held: 3, available: world.vpf.totalVfs - 3 });
  assert.equal((await guest.run(`echo 0 > ${PF}/sriov_numvfs`)).status, 0);
  assert.deepEqual(pool(), { held: 0, available: world.vpf.totalVfs });
});
