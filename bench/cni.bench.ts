/**
 * CNI plugin wall time per call, process start included (issue 8 item 4): 100 pods get a VF each
 * through `vpf-sriov` ADD (with Debian's host-local for IPAM), then lose it through DEL, every call
 * a fresh `node dist/src/k8s/cni/main.js` process talking to a fake guest kernel on a guest endpoint
 * socket served by this process. Baseline: `node empty.js` started the same way in the same run,
 * alternating with the plugin runs so that both see the same load on a shared machine.
 * Target: ADD p50 <= 1.3 x baseline p50.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BenchResult, BenchSuite } from "./harness.js";
import { percentile } from "./harness.js";
import { cniBench, execPlugin } from "../src/k8s/cni/testkit.js";

const PODS = 100;

function runNode(script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ["pipe", "pipe", "inherit"] });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
    child.stdin.end("");
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export const suite: BenchSuite = {
  name: "cni",
  async run(): Promise<BenchResult[]> {
    const pods = Array.from({ length: PODS }, (_, i) => `pod${i}`);
    const b = await cniBench(PODS, pods, 128);
    try {
      const empty = join(b.dir, "empty.js");
      await writeFile(empty, "");
      const base: number[] = [];
      const add: number[] = [];
      const del: number[] = [];
      for (let i = 0; i < 5; i++) await runNode(empty); // warm the page cache
      const conf = (i: number): string => JSON.stringify(b.conf({ deviceID: b.vf(i), vlan: 100 + i, spoofchk: "on", trust: "off" }));
      // Baseline and plugin runs alternate, so both see the same machine load.
      for (let i = 0; i < PODS; i++) {
        base.push(await timed(() => runNode(empty)));
        add.push(await timed(async () => {
          const r = await execPlugin(b.env("ADD", `c${i}`, `pod${i}`), conf(i));
          if (r.exitCode !== 0) throw new Error(`ADD ${i} failed: ${r.stdout}`);
        }));
      }
      for (let i = 0; i < PODS; i++) {
        base.push(await timed(() => runNode(empty)));
        del.push(await timed(async () => {
          const r = await execPlugin(b.env("DEL", `c${i}`, `pod${i}`), conf(i));
          if (r.exitCode !== 0) throw new Error(`DEL ${i} failed: ${r.stdout}`);
        }));
      }
      for (const a of [base, add, del]) a.sort((x, y) => x - y);
      const b50 = percentile(base, 50);
      return [
        { name: "node empty script start, p50", value: b50, unit: "ms" },
        { name: "node empty script start, p99", value: percentile(base, 99), unit: "ms" },
        { name: "vpf-sriov ADD (host-local IPAM), p50", value: percentile(add, 50), unit: "ms", note: `${PODS} pods` },
        { name: "vpf-sriov ADD (host-local IPAM), p99", value: percentile(add, 99), unit: "ms" },
        { name: "vpf-sriov DEL, p50", value: percentile(del, 50), unit: "ms" },
        { name: "vpf-sriov DEL, p99", value: percentile(del, 99), unit: "ms" },
        { name: "ADD p50 / node start p50", value: percentile(add, 50) / b50, unit: "x", note: "target <= 1.3" },
        // Minimums are the least disturbed by other load on a shared machine.
        { name: "ADD min / node start min", value: add[0]! / base[0]!, unit: "x", note: `${add[0]!.toFixed(1)} / ${base[0]!.toFixed(1)} ms` },
      ];
    } finally {
      await b.close();
    }
  },
};
