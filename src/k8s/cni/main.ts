#!/usr/bin/env node
/**
 * vpf-sriov: the CNI plugin executable. The container runtime (or libcni, cnitool, Multus) runs
 * it with CNI_* in the environment and the network configuration on stdin; it prints the result
 * or error JSON on stdout and exits 0 or 1 (CNI spec "Overview"). The import graph stays small
 * (no gRPC, no YAML) because the process start is most of an ADD's time.
 */
import { runCni } from "./plugin.js";

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const out = await runCni(process.env, Buffer.concat(chunks).toString("utf8"));
if (out.stdout !== "") process.stdout.write(out.stdout);
process.exitCode = out.exitCode;
