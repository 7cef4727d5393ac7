import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serveGuestEndpoint, type EndpointServer } from "../endpoint.js";
import { FakeGuestKernel } from "../fake-kernel.js";
import type { CniOutcome } from "./plugin.js";

/**
 * A test bench for vpf-sriov: a fake guest kernel with one virtio PF and VFs, served on a guest
 * endpoint socket in a temp dir, CNI config and env builders, and a way to run the real
 * executable as a process (compiled main.js, or main.ts through tsx under the dev loop).
 */
export const PF_BDF = "0000:00:04.0";
export const HOST_LOCAL_DIR = "/usr/lib/cni";

export interface CniBench {
  readonly dir: string;
  readonly kernel: FakeGuestKernel;
  readonly endpoint: EndpointServer;
  vf(i: number): string;
  conf(extra?: Record<string, unknown>): Record<string, unknown>;
  env(command: string, containerId: string, netns: string, ifname?: string): Record<string, string>;
  close(): Promise<void>;
}

export async function cniBench(numVfs = 4, namespaces: readonly string[] = ["pod1", "pod2"], totalVfs = 8): Promise<CniBench> {
  const dir = await mkdtemp(join(tmpdir(), "vpf-cni-"));
  const kernel = new FakeGuestKernel([{ bdf: PF_BDF, totalVfs }]);
  await kernel.sysfs.writeFile(`/sys/bus/pci/devices/${PF_BDF}/sriov_numvfs`, String(numVfs));
  for (const n of namespaces) kernel.netnsAdd(n);
  const endpoint = await serveGuestEndpoint(join(dir, "guest.sock"), kernel);
  return {
    dir,
    kernel,
    endpoint,
    vf: (i) => FakeGuestKernel.vfAddress(PF_BDF, i),
    conf: (extra = {}) => ({
      cniVersion: "1.0.0",
      name: "vfnet",
      type: "vpf-sriov",
      deviceID: FakeGuestKernel.vfAddress(PF_BDF, 0),
      guestEndpoint: endpoint.path,
      dataDir: join(dir, "state"),
      ipam: { type: "host-local", subnet: "10.56.0.0/24", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "ipam") },
      ...extra,
    }),
    env: (command, containerId, netns, ifname = "net1") => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: netns === "" ? "" : `/var/run/netns/${netns}`,
      CNI_IFNAME: ifname,
      CNI_PATH: HOST_LOCAL_DIR,
    }),
    close: async () => {
      await endpoint.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The plugin's entry point beside this module: compiled main.js, else main.ts run through tsx. */
export function pluginCommand(): { cmd: string; args: string[] } {
  const js = fileURLToPath(new URL("./main.js", import.meta.url));
  if (existsSync(js)) return { cmd: process.execPath, args: [js] };
  return { cmd: process.execPath, args: ["--import", "tsx", fileURLToPath(new URL("./main.ts", import.meta.url))] };
}

/** Runs the plugin as a process, as a container runtime does. */
export function execPlugin(env: Record<string, string>, stdin: string): Promise<CniOutcome> {
  const { cmd, args } = pluginCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["pipe", "pipe", "inherit"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ stdout: Buffer.concat(out).toString("utf8"), exitCode: code ?? 1 }));
    child.stdin.end(stdin);
  });
}
