/**
 * Issue 6: the `vpf` command driven as a user drives it: spawned processes, a real daemon on a
 * unix socket, bad topology files, a killed client and a second `up`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const COMPILED = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.js");
// Compiled (npm test): dist/src/cli/main.js. Under tsx (the dev loop): main.ts, with tsx loaded
// through NODE_OPTIONS so the daemon that `up` spawns runs TypeScript too.
const MAIN = existsSync(COMPILED) ? COMPILED : COMPILED.replace(/\.js$/, ".ts");
const ENV = existsSync(COMPILED) ? process.env : { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import tsx`.trim() };

function vpf(sock: string, ...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, "--socket", sock, ...args], { encoding: "utf8", timeout: 60_000, env: ENV });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function tmpSock(): string {
  return join(mkdtempSync(join(tmpdir(), "vpf-cli-")), "vpf.sock");
}

test("up, exec, status, a second up refused, down", () => {
  const sock = tmpSock();
  const up = vpf(sock, "up");
  assert.equal(up.status, 0, up.stderr);
  assert.match(up.stdout, /world up/);
  try {
    const second = vpf(sock, "up");
    assert.equal(second.status, 1);
    assert.match(second.stderr, /already serves .* \[DAEMON_RUNNING\]/);

    const write = vpf(sock, "exec", "vm1", "--", "echo 3 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs");
    assert.equal(write.status, 0, write.stderr);
    const busy = vpf(sock, "exec", "vm1", "--", "echo", "2", ">", "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs");
    assert.equal(busy.status, 1);
    assert.equal(busy.stderr, "sh: echo: write error: Device or resource busy\n");
    const ls = vpf(sock, "exec", "vm1", "--", "ls", "/sys/class/net");
    assert.equal(ls.stdout, "eth0\neth1\neth2\neth3\nlo\n");
    const ipj = vpf(sock, "exec", "vm1", "--", "ip", "-j", "link", "show", "eth0");
    const links = JSON.parse(ipj.stdout) as { ifname: string; num_vf?: number; vfinfo_list?: unknown[] }[];
    assert.equal(links[0]?.ifname, "eth0");
    assert.equal(links[0]?.vfinfo_list?.length, 3);
    const st = vpf(sock, "status", "--json");
    const status = JSON.parse(st.stdout) as { vms: { name: string; numVfs: number }[]; hosts: { pools: { name: string; available: number }[] }[] };
    assert.equal(status.vms.find((v) => v.name === "vm1")?.numVfs, 3);
    assert.equal(status.hosts[0]?.pools.find((p) => p.name === "vm1-pool")?.available, 5);
    const text = vpf(sock, "status");
    assert.match(text.stdout, /pool vm1-pool: 5\/8 free {2}held: vm1=3/);
    const unknownNode = vpf(sock, "exec", "vm9", "--", "ls");
    assert.equal(unknownNode.status, 1);
    assert.match(unknownNode.stderr, /no node named 'vm9'.*\[WORLD_NO_NODE\]/);
    const unknownCmd = vpf(sock, "exec", "vm1", "--", "frobnicate");
    assert.equal(unknownCmd.status, 127);
    const badIp = vpf(sock, "exec", "vm1", "--", "ip", "link", "set", "eth0", "vf", "0", "vlan", "100", "qos", "x");
    assert.equal(badIp.status, 255);
    assert.match(badIp.stderr, /Invalid "qos" value "x"/);
  } finally {
    const down = vpf(sock, "down");
    assert.equal(down.status, 0, down.stderr);
  }
  assert.equal(existsSync(sock), false, "the socket is gone after down");
  const after = vpf(sock, "status");
  assert.equal(after.status, 1);
  assert.match(after.stderr, /no vpf daemon is running/);
});

test("bad topology files are reported with file, line and field before any daemon starts", () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-topo-"));
  const f = join(dir, "bad.yaml");
  writeFileSync(f, "hosts:\n  - name: h1\n    nic: { totalVfs: 8 }\n    pools:\n      - { name: p, size: 300 }\n");
  const sock = join(dir, "vpf.sock");
  const r = vpf(sock, "up", f);
  assert.equal(r.status, 1);
  assert.equal(r.stderr, `vpf: ${f}:5:26: hosts[0].pools[0].size: must be an integer from 1 to 255 [TOPOLOGY_INVALID]\n`);
  assert.equal(existsSync(sock), false);
  const missing = vpf(sock, "up", join(dir, "nope.yaml"));
  assert.match(missing.stderr, /cannot read topology file.*\[TOPOLOGY_UNREADABLE\]/);
  const good = join(dir, "good.yaml");
  writeFileSync(good, "hosts:\n  - name: h1\n    nic: { totalVfs: 8 }\n    pools: [{ name: p, size: 2 }]\n    vms: [{ name: v1, pool: p }]\n");
  const ok = vpf(sock, "check", good);
  assert.equal(ok.status, 0);
  assert.match(ok.stdout, /ok \(1 host\(s\), 1 VM\(s\), 0 external host\(s\)\)/);
  const usage = vpf(sock, "frob");
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /unknown command 'frob'[\s\S]*Usage: vpf COMMAND/);
});

test("the daemon survives a killed client, and a crashed daemon does not block the next up", async () => {
  const sock = tmpSock();
  assert.equal(vpf(sock, "up").status, 0);
  // A client killed while its request is in flight (tcpdump waits for frames that never come).
  const client = spawn(process.execPath, [MAIN, "--socket", sock, "exec", "host1", "--", "tcpdump", "-i", "p0", "-c", "5"], { stdio: "ignore", env: ENV });
  await new Promise((r) => setTimeout(r, existsSync(COMPILED) ? 500 : 2000));
  client.kill("SIGKILL");
  await new Promise((r) => client.on("exit", r));
  const st = vpf(sock, "status", "--json");
  assert.equal(st.status, 0, st.stderr);
  // Crash the daemon: SIGKILL leaves its socket and lock file behind.
  const pid = Number(readFileSync(`${sock}.pid`, "utf8"));
  process.kill(pid, "SIGKILL");
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(existsSync(sock), "a crashed daemon leaves its socket");
  const again = vpf(sock, "up");
  assert.equal(again.status, 0, again.stderr);
  assert.equal(vpf(sock, "down").status, 0);
});

test("vpf demo passes every check and --json reports them", () => {
  const r = spawnSync(process.execPath, [MAIN, "demo", "--json"], { encoding: "utf8", timeout: 120_000, env: ENV });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; steps: { title: string; checks: { ok: boolean }[] }[] };
  assert.equal(report.ok, true);
  assert.ok(report.steps.length >= 10, "the story's seven steps and the three pod steps");
  assert.ok(report.steps.some((s) => /Deleting a pod gives its VF back/.test(s.title)));
  assert.ok(report.steps.every((s) => s.checks.length > 0 && s.checks.every((c) => c.ok)));
});
