#!/usr/bin/env node
/**
 * The `vpf` command. Subcommands:
 *   vpf up [FILE] [--socket PATH]     start a daemon holding the world of FILE (default topology)
 *   vpf exec NODE -- COMMAND...       run a command inside a node; prints its output, exits with its status
 *   vpf status [--json]               nodes, pools, VFs and who holds them
 *   vpf down                          stop the daemon
 *   vpf demo [--json]                 the paper's story on the default topology (also `npm start`)
 *   vpf check FILE                    validate a topology file
 */
import { spawn } from "node:child_process";
import { openSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { VpfError } from "../base/errors.js";
import { defaultSocketPath, request, serveDaemon } from "../world/daemon.js";
import type { ExecResult } from "../world/daemon.js";
import { loadTopology, defaultTopology } from "../world/topology.js";
import type { Topology } from "../world/topology.js";
import { createWorld, formatStatus } from "../world/world.js";
import type { WorldStatus } from "../world/world.js";
import { runDemo } from "../world/demo.js";

const USAGE = `Usage: vpf COMMAND [ARGS]

Commands:
  up [FILE]              start a daemon holding the world described by FILE
                         (YAML topology; the built-in default when omitted)
  exec NODE -- CMD...    run CMD inside NODE (a VM, a host or an external host)
  status [--json]        list nodes, pools, VFs and who holds them
  down                   stop the daemon
  demo [--json]          run the paper's story on the default topology
  check FILE             validate a topology file

Options:
  --socket PATH          daemon socket (default: $VPF_SOCKET or $XDG_RUNTIME_DIR/vpf-UID/vpf.sock)
  -h, --help             show this help
`;

class UsageError extends VpfError {
  constructor(message: string) {
    super("CLI_USAGE", message);
  }
}

interface Parsed {
  readonly command: string | undefined;
  readonly positional: string[];
  readonly rest: string[];
  readonly socket: string;
  readonly json: boolean;
  readonly help: boolean;
}

function parseArgs(argv: readonly string[]): Parsed {
  const positional: string[] = [];
  let rest: string[] = [];
  let socket = defaultSocketPath();
  let json = false;
  let help = false;
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--") {
      rest = argv.slice(i + 1);
      break;
    }
    if (a === "--socket") {
      const v = argv[++i];
      if (v === undefined) throw new UsageError("--socket needs a path");
      socket = v;
    } else if (a.startsWith("--socket=")) socket = a.slice("--socket=".length);
    else if (a === "--json") json = true;
    else if (a === "-h" || a === "--help") help = true;
    else if (a.startsWith("-") && command !== "exec") throw new UsageError(`unknown option '${a}'`);
    else if (command === undefined) command = a;
    else if (command === "exec" && positional.length === 1) {
      // `vpf exec NODE CMD...` without `--` is accepted too.
      rest = argv.slice(i);
      break;
    } else positional.push(a);
  }
  return { command, positional, rest, socket, json, help };
}

async function up(p: Parsed): Promise<number> {
  const file = p.positional[0];
  // Validate in the client, so a bad file is reported here with its line and field.
  if (file !== undefined) loadTopology(file);
  const main = fileURLToPath(import.meta.url);
  mkdirSync(dirname(p.socket), { recursive: true, mode: 0o700 });
  const log = openSync(`${p.socket}.log`, "a");
  const args = [main, "__daemon", "--socket", p.socket, ...(file === undefined ? [] : [file])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", log] });
  const out = child.stdout;
  if (out === null) throw new VpfError("DAEMON_START", "cannot read the daemon's readiness pipe");
  const answer = await new Promise<string>((resolve) => {
    let buf = "";
    out.setEncoding("utf8");
    out.on("data", (c: string) => {
      buf += c;
      if (buf.includes("\n")) resolve(buf);
    });
    child.on("exit", (code) => resolve(buf === "" ? `ERROR ${JSON.stringify({ code: "DAEMON_START", message: `daemon exited with status ${code ?? "?"}; see ${p.socket}.log` })}\n` : buf));
  });
  out.destroy();
  child.unref();
  const line = answer.split("\n")[0] ?? "";
  if (line.startsWith("READY ")) {
    process.stdout.write(`vpf: world up (daemon pid ${line.slice(6)}, socket ${p.socket})\n`);
    return 0;
  }
  const err = JSON.parse(line.replace(/^ERROR /, "")) as { code: string; message: string };
  throw new VpfError(err.code, err.message);
}

async function daemonMain(p: Parsed): Promise<void> {
  // Runs detached. Until READY, stdout is the parent's pipe; afterwards only the log (stderr).
  let topo: Topology;
  try {
    const file = p.positional[0];
    topo = file === undefined ? defaultTopology() : loadTopology(file);
    const world = await createWorld(topo);
    const d = await serveDaemon(p.socket, world);
    process.stdout.write(`READY ${process.pid}\n`);
    process.stdout.end();
    process.on("SIGTERM", () => void d.close());
    process.on("SIGINT", () => void d.close());
    await d.stopped;
    process.exit(0);
  } catch (e) {
    const code = e instanceof VpfError ? e.code : "DAEMON_START";
    const message = e instanceof Error ? e.message : String(e);
    process.stdout.write(`ERROR ${JSON.stringify({ code, message })}\n`);
    process.exit(1);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const p = parseArgs(argv);
  if (p.help || p.command === undefined || p.command === "help") {
    process.stdout.write(USAGE);
    return p.command === undefined && !p.help ? 2 : 0;
  }
  switch (p.command) {
    case "up":
      return up(p);
    case "__daemon":
      await daemonMain(p);
      return 0;
    case "down":
      await request(p.socket, { op: "down" });
      process.stdout.write("vpf: world down\n");
      return 0;
    case "status": {
      const st = (await request(p.socket, { op: "status" })) as WorldStatus;
      process.stdout.write(p.json ? `${JSON.stringify(st, null, 2)}\n` : formatStatus(st));
      return 0;
    }
    case "exec": {
      const node = p.positional[0];
      if (node === undefined || p.rest.length === 0) throw new UsageError("usage: vpf exec NODE -- COMMAND...");
      const r = (await request(p.socket, { op: "exec", node, argv: p.rest })) as ExecResult;
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      return r.exitCode;
    }
    case "demo":
      return runDemo({ json: p.json, out: process.stdout });
    case "check": {
      const file = p.positional[0];
      if (file === undefined) throw new UsageError("usage: vpf check FILE");
      const t = loadTopology(file);
      process.stdout.write(`${file}: ok (${t.hosts.length} host(s), ${t.hosts.reduce((n, h) => n + h.vms.length, 0)} VM(s), ${t.externals.length} external host(s))\n`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${p.command}'`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`vpf: ${e.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (e instanceof VpfError) {
      process.stderr.write(`vpf: ${e.message} [${e.code}]\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`vpf: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
