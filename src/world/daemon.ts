/**
 * The daemon that holds a live world (`vpf up`) and its client side (`vpf exec|status|down`).
 *
 * One request per connection: the client writes one JSON line, the daemon answers one JSON
 * line and closes. A lock file beside the socket (`<socket>.pid`, created exclusively, holding
 * the daemon's pid) makes a second `up` on the same socket fail while the first daemon lives;
 * a lock or socket left by a daemon that crashed is detected (dead pid, refused connection)
 * and cleaned, so it never blocks the next `up`.
 */
import { createServer, createConnection } from "node:net";
import type { Server, Socket } from "node:net";
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { tmpdir } from "node:os";
import { VpfError } from "../base/errors.js";

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** What a daemon serves; the world implements it. */
export interface WorldService {
  exec(node: string, argv: readonly string[]): Promise<ExecResult> | ExecResult;
  status(): unknown;
  close(): Promise<void> | void;
}

export type DaemonRequest =
  | { readonly op: "hello" }
  | { readonly op: "exec"; readonly node: string; readonly argv: readonly string[] }
  | { readonly op: "status" }
  | { readonly op: "down" };

export type DaemonResponse =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly code: string; readonly message: string };

export class DaemonError extends VpfError {}

const MAX_REQUEST = 1 << 20;

/** The default socket: $VPF_SOCKET, else a per-user runtime folder. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.VPF_SOCKET;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const base = env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== "" ? env.XDG_RUNTIME_DIR : tmpdir();
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  return join(base, `vpf-${uid}`, "vpf.sock");
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // A killed daemon whose parent has not reaped it still answers kill(0): read its state.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/**
 * Takes the instance lock for a socket path, cleaning a stale one. Throws DAEMON_RUNNING when
 * a live daemon holds it.
 */
export function acquireLock(socketPath: string): () => void {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  const lock = `${socketPath}.pid`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lock, "utf8").trim() === String(process.pid)) unlinkSync(lock);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      let owner = NaN;
      try {
        owner = Number.parseInt(readFileSync(lock, "utf8"), 10);
      } catch {
        // Unreadable or vanished: treat as stale.
      }
      if (Number.isInteger(owner) && owner > 0 && pidAlive(owner)) {
        throw new DaemonError("DAEMON_RUNNING", `a vpf daemon (pid ${owner}) already serves ${socketPath}; run 'vpf down' first`, { details: { pid: owner } });
      }
      try {
        unlinkSync(lock); // stale lock of a crashed daemon
      } catch {
        // Raced with another cleaner; retry the exclusive create.
      }
    }
  }
  throw new DaemonError("DAEMON_LOCK", `cannot take the lock ${lock}`);
}

export interface RunningDaemon {
  readonly socketPath: string;
  /** Resolves when the daemon has stopped (after `down` or close()). */
  readonly stopped: Promise<void>;
  close(): Promise<void>;
}

/** Serves `service` on `socketPath` until a `down` request or close(). */
export async function serveDaemon(socketPath: string, service: WorldService): Promise<RunningDaemon> {
  const release = acquireLock(socketPath);
  // We hold the lock, so any socket file left here belongs to a dead daemon.
  if (existsSync(socketPath)) unlinkSync(socketPath);
  const server: Server = createServer();
  let closing: Promise<void> | undefined;
  let resolveStopped: () => void = () => undefined;
  const stopped = new Promise<void>((res) => { resolveStopped = res; });
  const sockets = new Set<Socket>();

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await new Promise<void>((res) => {
        server.close(() => res());
        for (const s of sockets) s.destroy();
      });
      await service.close();
      try {
        unlinkSync(socketPath);
      } catch {
        // Already removed.
      }
      release();
      resolveStopped();
    })();
    return closing;
  };

  server.on("connection", (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy()); // a killed client must not hurt the daemon
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        reply(sock, { ok: false, code: "DAEMON_REQUEST_TOO_LARGE", message: "request larger than 1 MiB" });
        return;
      }
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = "";
      void handle(line).then((res) => {
        reply(sock, res);
        if (res.ok && isDown(line)) void close();
      });
    });
  });

  const handle = async (line: string): Promise<DaemonResponse> => {
    let req: unknown;
    try {
      req = JSON.parse(line);
    } catch {
      return { ok: false, code: "DAEMON_BAD_REQUEST", message: "request is not JSON" };
    }
    if (typeof req !== "object" || req === null) return { ok: false, code: "DAEMON_BAD_REQUEST", message: "request must be an object" };
    const r = req as Record<string, unknown>;
    try {
      switch (r.op) {
        case "hello":
          return { ok: true, result: { pid: process.pid, socket: socketPath } };
        case "status":
          return { ok: true, result: service.status() };
        case "down":
          return { ok: true, result: { stopping: true } };
        case "exec": {
          if (typeof r.node !== "string" || !Array.isArray(r.argv) || !r.argv.every((a) => typeof a === "string")) {
            return { ok: false, code: "DAEMON_BAD_REQUEST", message: "exec needs node (string) and argv (strings)" };
          }
          return { ok: true, result: await service.exec(r.node, r.argv) };
        }
        default:
          return { ok: false, code: "DAEMON_BAD_REQUEST", message: `unknown op ${JSON.stringify(r.op)}` };
      }
    } catch (e) {
      if (e instanceof VpfError) return { ok: false, code: e.code, message: e.message };
      return { ok: false, code: "DAEMON_INTERNAL", message: e instanceof Error ? e.message : String(e) };
    }
  };

  await new Promise<void>((res, rej) => {
    server.once("error", (e) => {
      release();
      rej(e);
    });
    server.listen(socketPath, () => res());
  });
  return { socketPath, stopped, close };
}

function isDown(line: string): boolean {
  try {
    return (JSON.parse(line) as { op?: unknown }).op === "down";
  } catch {
    return false;
  }
}

function reply(sock: Socket, res: DaemonResponse): void {
  if (sock.destroyed) return;
  sock.end(`${JSON.stringify(res)}\n`);
}

/** Sends one request; DAEMON_NOT_RUNNING when nothing listens on the socket. */
export function request(socketPath: string, req: DaemonRequest, timeoutMs = 120_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DaemonError("DAEMON_TIMEOUT", `no answer from the vpf daemon at ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on("data", (c: string) => { buf += c; });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === "ENOENT" || e.code === "ECONNREFUSED") {
        reject(new DaemonError("DAEMON_NOT_RUNNING", `no vpf daemon is running at ${socketPath} (start one with 'vpf up')`));
      } else reject(new DaemonError("DAEMON_IO", `talking to the vpf daemon at ${socketPath}: ${e.message}`, { cause: e }));
    });
    sock.on("end", () => {
      clearTimeout(timer);
      let res: DaemonResponse;
      try {
        res = JSON.parse(buf.trim()) as DaemonResponse;
      } catch {
        reject(new DaemonError("DAEMON_IO", "the daemon closed the connection without an answer"));
        return;
      }
      if (res.ok) resolve(res.result);
      else reject(new DaemonError(res.code, res.message));
    });
  });
}
