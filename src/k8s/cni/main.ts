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
// For ADD and DEL, the IPAM delegate (a process start of its own) is started before the rest of
// the plugin loads, so the two overlap; runCni takes it over (and releases a pre-started ADD's
// address if the input turns out bad).
let ipam: { type: string; command: "ADD" | "DEL"; call: Promise<unknown> } | undefined;
const command = process.env.CNI_COMMAND;
const ipamType = command === "ADD" || command === "DEL" ? ipamTypeOf(stdin) : undefined;
if (ipamType !== undefined && (command === "ADD" || command === "DEL")) {
  const env = process.env;
  const call = execDelegateNegotiated(ipamType, { command, containerId: env.CNI_CONTAINERID ?? "", netns: env.CNI_NETNS ?? "", ifname: env.CNI_IFNAME ?? "", args: env.CNI_ARGS ?? "", path: (env.CNI_PATH ?? "").split(":").filter((x) => x !== "") }, stdin);
  call.catch(() => undefined); // handed to runCni, which awaits it
  ipam = { type: ipamType, command, call };
}
const { runCni } = await import("./plugin.js");
const out = await runCni(process.env, stdin, ipam === undefined ? {} : { ipam });
if (out.stdout !== "") process.stdout.write(out.stdout);
process.exitCode = out.exitCode;
