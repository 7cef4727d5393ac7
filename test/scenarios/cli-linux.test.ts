/**
 * Issue 7 item 5: a topology VM with `guest: linux` boots a real Debian kernel in v86 inside the
 * daemon, and `vpf exec` reaches its busybox shell through the serial console. The kernel's own
 * sriov_numvfs rules answer; the host pool follows. Needs `bash scripts/linux-assets.sh`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.js");
const PF = "/sys/bus/pci/devices/0000:01:00.0";

test("vpf exec on a real Linux guest: sriov_numvfs through the kernel's PCI core, pool in vpf status", { timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-linux-cli-"));
  const sock = join(dir, "vpf.sock");
  const topo = join(dir, "linux.yaml");
  writeFileSync(topo, "hosts:\n  - name: host1\n    nic: { totalVfs: 16 }\n    pools: [{ name: p1, size: 4 }]\n    vms:\n      - { name: lvm, guest: linux, pool: p1, vlan: { mode: allow-list, allow: [100] } }\n");
  const vpf = (...args: string[]): { status: number; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [MAIN, "--socket", sock, ...args], { encoding: "utf8", timeout: 480_000 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const up = vpf("up", topo);
  assert.equal(up.status, 0, up.stderr);
  try {
    assert.equal(vpf("exec", "lvm", "--", "cat", `${PF}/sriov_totalvfs`).stdout, "4\n");
    assert.equal(vpf("exec", "lvm", "--", `echo 2 > ${PF}/sriov_numvfs`).status, 0);
    const busy = vpf("exec", "lvm", "--", `echo 1 > ${PF}/sriov_numvfs`);
    assert.notEqual(busy.status, 0);
    assert.match(busy.stdout, /Device or resource busy/);
    const range = vpf("exec", "lvm", "--", `echo 0 > ${PF}/sriov_numvfs; echo 5 > ${PF}/sriov_numvfs`);
    assert.match(range.stdout, /Numerical result out of range/);
    assert.equal(vpf("exec", "lvm", "--", `echo 2 > ${PF}/sriov_numvfs`).status, 0);
    const devs = vpf("exec", "lvm", "--", "ls", "/sys/bus/pci/devices").stdout.split(/\s+/);
    assert.ok(devs.includes("0000:01:00.1") && devs.includes("0000:01:00.2"), devs.join(" "));
    assert.equal(vpf("exec", "lvm", "--", "readlink", "/sys/bus/pci/devices/0000:01:00.2/physfn").stdout.trim(), "../0000:01:00.0");
    const st = JSON.parse(vpf("status", "--json").stdout) as { vms: { name: string; guest: string; numVfs: number; boundVfs: number }[]; hosts: { pools: { name: string; available: number }[] }[] };
    const vm = st.vms.find((v) => v.name === "lvm");
    assert.equal(vm?.guest, "linux");
    assert.equal(vm?.numVfs, 2);
    assert.equal(vm?.boundVfs, 2);
    assert.equal(st.hosts[0]?.pools.find((p) => p.name === "p1")?.available, 2);
  } finally {
    assert.equal(vpf("down").status, 0);
  }
});
