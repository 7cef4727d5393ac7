import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { CniError } from "./errors.js";

/**
 * IPAM delegation as libcni does it (CNI spec "Delegated plugins"): find the binary named by
 * ipam.type on CNI_PATH, run it with the same CNI_* environment and the whole network
 * configuration on stdin, read its result or error JSON from stdout.
 */
export async function findPlugin(type: string, path: readonly string[]): Promise<string> {
  for (const dir of path) {
    const p = join(dir, type);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // try the next directory
    }
  }
  throw new CniError("VPF_IPAM_FAILED", `IPAM plugin ${JSON.stringify(type)} not found in CNI_PATH`, { details: { type, path: [...path] } });
}

export interface DelegateEnv {
  readonly command: string;
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  readonly args: string;
  readonly path: readonly string[];
}

/** Runs a delegate; returns its parsed stdout (undefined when empty, e.g. after DEL). */
export async function execDelegate(type: string, env: DelegateEnv, stdin: string): Promise<unknown> {
  const bin = await findPlugin(type, env.path);
  const childEnv: Record<string, string> = {
    CNI_COMMAND: env.command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifname,
    CNI_ARGS: env.args,
    CNI_PATH: env.path.join(":"),
  };
  if (process.env.PATH !== undefined) childEnv.PATH = process.env.PATH;
  const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
    const child = spawn(bin, [], { env: childEnv, stdio: ["pipe", "pipe", "inherit"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.on("error", (e) => reject(new CniError("VPF_IPAM_FAILED", `cannot run ${bin}: ${e.message}`, { cause: e })));
    child.on("close", (c) => resolve({ code: c ?? 1, stdout: Buffer.concat(chunks).toString("utf8") }));
    child.stdin.on("error", () => undefined); // a delegate that exits without reading stdin
    child.stdin.end(stdin);
  });
  let out: unknown;
  if (stdout.trim() !== "") {
    try {
      out = JSON.parse(stdout);
    } catch {
      throw new CniError("VPF_IPAM_FAILED", `${type} ${env.command} printed something that is not JSON`, { details: { stdout: stdout.slice(0, 200) } });
    }
  }
  if (code !== 0) {
    const o = typeof out === "object" && out !== null ? (out as Record<string, unknown>) : {};
    const msg = typeof o.msg === "string" ? o.msg : `exit status ${code}`;
    const n = typeof o.code === "number" ? o.code : undefined;
    throw new CniError("VPF_IPAM_FAILED", `${type} ${env.command}: ${msg}`, { details: { delegate: type, delegateCode: n, delegateDetails: o.details }, ...(n === undefined ? {} : { cniCode: n }) });
  }
  return out;
}

/**
 * Runs a delegate, and if it refuses the configuration's cniVersion (code 1, e.g. Debian's
 * host-local, which stops at 1.0.0), asks its VERSION and retries once with the highest version
 * both sides speak, the way libcni negotiates for a conflist. The result shapes of 1.0.0 and 1.1.0
 * IPAM results are the same.
 */
export async function execDelegateNegotiated(type: string, env: DelegateEnv, stdin: string): Promise<unknown> {
  try {
    return await execDelegate(type, env, stdin);
  } catch (e) {
    if (!(e instanceof CniError) || e.details.delegateCode !== 1) throw e;
    const v = await execDelegate(type, { ...env, command: "VERSION" }, "{}");
    const theirs = typeof v === "object" && v !== null ? (v as Record<string, unknown>).supportedVersions : undefined;
    const common = ["1.1.0", "1.0.0"].find((x) => Array.isArray(theirs) && theirs.includes(x));
    const conf = JSON.parse(stdin) as Record<string, unknown>;
    if (common === undefined || common === conf.cniVersion) throw e;
    return execDelegate(type, env, JSON.stringify({ ...conf, cniVersion: common }));
  }
}

/**
 * ipam.type of a configuration text, if it is a plain JSON object naming a plausible plugin, so
 * that main.ts can start the delegate before the rest of the plugin is loaded. The full
 * validation still happens in parseConf; an ADD that then fails releases the address.
 */
export function ipamTypeOf(stdin: string): string | undefined {
  try {
    const v: unknown = JSON.parse(stdin);
    const ipam = typeof v === "object" && v !== null ? (v as Record<string, unknown>).ipam : undefined;
    const t = typeof ipam === "object" && ipam !== null ? (ipam as Record<string, unknown>).type : undefined;
    return typeof t === "string" && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(t) ? t : undefined;
  } catch {
    return undefined;
  }
}
