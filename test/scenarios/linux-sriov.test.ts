/**
 * A real Debian i386 kernel (booted in v86) enumerates an SR-IOV PF from src/pci through
 * MMCONFIG and creates, refuses and removes VFs through its own sriov_numvfs. One cold boot per
 * file at most: the ready point is snapshotted (keyed by asset hashes), later runs restore it.
 * Needs `bash scripts/linux-assets.sh` first (CI runs it).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { LinuxError, LinuxGuest, loadAssets, type LinuxAssets } from "../../src/linux/index.js";
import { makePfStubPlatform, type PfStubPlatform } from "../../src/linux/sriov-platform.js";

const PF = "/sys/bus/pci/devices/0000:00:03.0";
const VF = (n: number): string => `/sys/bus/pci/devices/0000:00:03.${n}`;

let assets: LinuxAssets;
let platform: PfStubPlatform;
let guest: LinuxGuest;

before(async () => {
  assets = loadAssets();
  platform = makePfStubPlatform();
  guest = await LinuxGuest.start({ platform: platform.bus, platformKey: platform.platformKey, assets });
});

after(async () => {
  await guest.shutdown();
});

async function sh(command: string): Promise<string> {
  return guest.read(command);
}

async function pciDevices(): Promise<string[]> {
  return (await sh("ls /sys/bus/pci/devices")).split(/\s+/).filter((s) => s !== "");
}

test("the guest is the pinned Debian kernel and uses MMCONFIG for extended config space", async (t) => {
  t.diagnostic(`boot: ${guest.boot.kind} in ${Math.round(guest.boot.millis)} ms`);
  assert.equal((await sh("uname -r")).trim(), assets.kernelRelease);
  const log = await sh("dmesg");
  assert.match(log, /PCI: MMCONFIG for domain 0000 \[bus 00-0f\] at \[mem 0xb0000000-0xb0ffffff\]/);
  assert.match(log, /PCI: Using MMCONFIG for extended config space/);
});

test("the PF shows a 4096-byte config space and the SR-IOV capability", async () => {
  assert.deepEqual((await sh(`cat ${PF}/vendor ${PF}/device ${PF}/class`)).trim().split("\n"), ["0x1af4", "0x10fe", "0x020000"]);
  assert.equal((await sh(`wc -c < ${PF}/config`)).trim(), "4096");
  // Extended capability header at 0x100: ID 0x0010 (SR-IOV), version 1, next 0.
  assert.equal((await sh(`od -A n -t x4 -j 256 -N 4 ${PF}/config`)).trim(), "00010010");
  assert.deepEqual(
    (await sh(`cat ${PF}/sriov_totalvfs ${PF}/sriov_numvfs ${PF}/sriov_offset ${PF}/sriov_stride ${PF}/sriov_vf_device`)).trim().split("\n"),
    ["7", "0", "1", "1", "10ff"],
  );
});

test("echo 4 > sriov_numvfs creates four VFs at PF + offset + stride·i with physfn/virtfn links", async () => {
  await sh(`echo 1af4 10fe > /sys/bus/pci/drivers/pci-pf-stub/new_id`);
  assert.match((await sh(`readlink ${PF}/driver`)).trim(), /\/pci-pf-stub$/);
  const r = await guest.run(`echo 4 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  assert.equal((await sh(`cat ${PF}/sriov_numvfs`)).trim(), "4");
  const devices = await pciDevices();
  for (let n = 1; n <= 4; n++) {
    assert.ok(devices.includes(`0000:00:03.${n}`), `VF ${n} at 00:03.${n}`);
    assert.equal((await sh(`readlink ${VF(n)}/physfn`)).trim(), "../0000:00:03.0");
    assert.equal((await sh(`readlink ${PF}/virtfn${n - 1}`)).trim(), `../0000:00:03.${n}`);
    assert.deepEqual((await sh(`cat ${VF(n)}/vendor ${VF(n)}/device`)).trim().split("\n"), ["0x1af4", "0x10ff"]);
    assert.equal((await sh(`wc -c < ${VF(n)}/config`)).trim(), "4096");
  }
  assert.ok(!devices.includes("0000:00:03.5"));
  // The host side saw the same: four VF functions attached where the capability puts them.
  assert.deepEqual(platform.events, ["enabled 4 at 00:03.1,00:03.2,00:03.3,00:03.4"]);
  assert.equal(platform.sriov.enabledVfs, 4);
});

test("echo 2 while 4 VFs exist fails with EBUSY and changes nothing", async () => {
  const r = await guest.run(`echo 2 > ${PF}/sriov_numvfs`);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /Device or resource busy/);
  assert.equal((await sh(`cat ${PF}/sriov_numvfs`)).trim(), "4");
  assert.equal(platform.sriov.enabledVfs, 4);
  assert.equal(platform.events.length, 1);
});

test("echo 0 removes the VFs from the guest and from the bus", async () => {
  const r = await guest.run(`echo 0 > ${PF}/sriov_numvfs`);
  assert.equal(r.status, 0, r.output);
  const devices = await pciDevices();
  for (let n = 1; n <= 7; n++) assert.ok(!devices.includes(`0000:00:03.${n}`));
  assert.equal((await sh(`ls ${PF} | grep -c virtfn || true`)).trim(), "0");
  assert.deepEqual(platform.events.slice(1), ["disabled 4"]);
  assert.equal(platform.bus.functionAt(0, 0x19), undefined);
});

test("a value above TotalVFs fails with ERANGE", async () => {
  const r = await guest.run(`echo 8 > ${PF}/sriov_numvfs`);
  assert.notEqual(r.status, 0);
  assert.match(r.output, /Numerical result out of range/);
  assert.equal((await sh(`cat ${PF}/sriov_numvfs`)).trim(), "0");
  assert.equal(platform.events.length, 2);
});

test("a restored snapshot brings back the same guest and device state in seconds", async (t) => {
  await guest.shutdown();
  platform = makePfStubPlatform();
  guest = await LinuxGuest.start({ platform: platform.bus, platformKey: platform.platformKey, assets });
  t.diagnostic(`boot: ${guest.boot.kind} in ${Math.round(guest.boot.millis)} ms`);
  assert.equal(guest.boot.kind, "snapshot");
  // The device model was rebuilt by replaying the guest's writes up to the snapshot point:
  // the command register the guest programmed reads back the same through conf1.
  const command = (await sh(`od -A n -t x2 -j 4 -N 2 ${PF}/config`)).trim();
  assert.equal(parseInt(command, 16), platform.pf.command);
  await sh(`echo 1af4 10fe > /sys/bus/pci/drivers/pci-pf-stub/new_id`);
  assert.equal((await guest.run(`echo 3 > ${PF}/sriov_numvfs`)).status, 0);
  assert.deepEqual(platform.events, ["enabled 3 at 00:03.1,00:03.2,00:03.3"]);
  assert.equal((await guest.run(`echo 0 > ${PF}/sriov_numvfs`)).status, 0);
});

test("a platform function where v86 has its own is refused before the guest runs", async () => {
  // 00:07.0 is v86's ACPI function (PIIX4 PM).
  const clash = makePfStubPlatform({ devfn: 0x38 });
  await assert.rejects(
    LinuxGuest.start({ platform: clash.bus, platformKey: clash.platformKey, assets, snapshotDir: false }),
    (e: unknown) => e instanceof LinuxError && e.code === "LINUX_DEVFN_CONFLICT" && /00:07\.0/.test(e.message),
  );
});
