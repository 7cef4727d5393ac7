#!/usr/bin/env node
/**
 * vpf-sriov: the CNI plugin executable. The container runtime (or libcni, cnitool, Multus) runs
 * it with CNI_* in the environment and the network configuration on stdin; it prints the result
 * or error JSON on stdout and exits 0 or 1 (CNI spec "Overview"). The import graph stays small
 * (no gRPC, no YAML, src/wire's netlink modules only) because process start is most of an ADD.
 */
import { readFileSync } from "node:fs";
import { execDelegateNegotiated, ipamTypeOf } from "./ipam.js";

// One synchronous read of fd 0: a runtime writes the whole configuration and closes the pipe,
// and this skips setting up a stream for a few hundred bytes.
let stdin = "";
try {
  stdin = readFileSync(0, "utf8");
} catch {
  // no stdin (closed or a terminal that would block): the configuration parser reports it
}
// For ADD, the IPAM delegate (a process start of its own) is started before the rest of the
// plugin loads, so the two overlap; runCni takes it over, or releases it if the input is bad.
let ipam: { type: string; add: Promise<unknown> } | undefined;
const ipamType = process.env.CNI_COMMAND === "ADD" ? ipamTypeOf(stdin) : undefined;
if (ipamType !== undefined) {
  const env = process.env;
  const add = execDelegateNegotiated(ipamType, { command: "ADD", containerId: env.CNI_CONTAINERID ?? "", netns: env.CNI_NETNS ?? "", ifname: env.CNI_IFNAME ?? "", args: env.CNI_ARGS ?? "", path: (env.CNI_PATH ?? "").split(":").filter((x) => x !== "") }, stdin);
  add.catch(() => undefined); // handed to runCni, which awaits it
  ipam = { type: ipamType, add };
}
const { runCni } = await import("./plugin.js");
const out = await runCni(process.env, stdin, ipam === undefined ? {} : { ipam });
if (out.stdout !== "") process.stdout.write(out.stdout);
process.exitCode = out.exitCode;
