#!/usr/bin/env node
/**
 * vpf-sriov: the CNI plugin executable. The container runtime (or libcni, cnitool, Multus) runs
 * it with CNI_* in the environment and the network configuration on stdin; it prints the result
 * or error JSON on stdout and exits 0 or 1 (CNI spec "Overview"). The import graph stays small
 * (no gRPC, no YAML, src/wire's netlink modules only) because process start is most of an ADD.
 */
import { readFileSync } from "node:fs";
import { runCni } from "./plugin.js";

// One synchronous read of fd 0: a runtime writes the whole configuration and closes the pipe,
// and this skips setting up a stream for a few hundred bytes.
let stdin = "";
try {
  stdin = readFileSync(0, "utf8");
} catch {
  // no stdin (closed or a terminal that would block): the configuration parser reports it
}
const out = await runCni(process.env, stdin);
if (out.stdout !== "") process.stdout.write(out.stdout);
process.exitCode = out.exitCode;
