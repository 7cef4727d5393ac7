import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, existsSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { serveDaemon, request, acquireLock, DaemonError } from "./daemon.js";
import type { WorldService } from "./daemon.js";

function service(log: string[]): WorldService {
  return {
    exec: (node, argv) => {
      if (node !== "n1") throw new DaemonError("WORLD_NO_NODE", `no node ${node}`);
      return { stdout: `${argv.join(" ")}\n`, stderr: "", exitCode: argv[0] === "false" ? 1 : 0 };
    },
    status: () => ({ nodes: ["n1"] }),
    close: () => { log.push("closed"); },
  };
}

test("a daemon serves exec, status and down; a second daemon on the same socket is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-d-"));
  const sock = join(dir, "s.sock");
  const log: string[] = [];
  const d = await serveDaemon(sock, service(log));
  assert.deepEqual(await request(sock, { op: "exec", node: "n1", argv: ["echo", "hi"] }), { stdout: "echo hi\n", stderr: "", exitCode: 0 });
  await assert.rejects(request(sock, { op: "exec", node: "zz", argv: ["x"] }), (e: unknown) => e instanceof DaemonError && e.code === "WORLD_NO_NODE");
  await assert.rejects(serveDaemon(sock, service([])), (e: unknown) => e instanceof DaemonError && e.code === "DAEMON_RUNNING");
  assert.deepEqual(await request(sock, { op: "status" }), { nodes: ["n1"] });
  await request(sock, { op: "down" });
  await d.stopped;
  assert.deepEqual(log, ["closed"]);
  assert.equal(existsSync(sock), false);
  await assert.rejects(request(sock, { op: "status" }), (e: unknown) => e instanceof DaemonError && e.code === "DAEMON_NOT_RUNNING");
});

test("a client that vanishes mid-request or sends garbage does not hurt the daemon", async () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-d-"));
  const sock = join(dir, "s.sock");
  const d = await serveDaemon(sock, service([]));
  const c = createConnection(sock);
  await new Promise<void>((res) => c.on("connect", () => res()));
  c.write('{"op":"exec","node":"n1"');
  c.destroy();
  await assert.rejects(request(sock, { op: "nope" } as never), (e: unknown) => e instanceof DaemonError && e.code === "DAEMON_BAD_REQUEST");
  const g = createConnection(sock);
  const answer = await new Promise<string>((res) => {
    let b = "";
    g.on("data", (x) => { b += x.toString(); });
    g.on("end", () => res(b));
    g.write("not json\n");
  });
  assert.match(answer, /DAEMON_BAD_REQUEST/);
  assert.deepEqual(await request(sock, { op: "status" }), { nodes: ["n1"] });
  await d.close();
});

test("a lock left by a crashed daemon is cleaned; a live one is respected", () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-d-"));
  const sock = join(dir, "s.sock");
  writeFileSync(`${sock}.pid`, "999999999\n"); // no such process
  writeFileSync(sock, "");
  const release = acquireLock(sock);
  assert.throws(() => acquireLock(sock), (e: unknown) => e instanceof DaemonError && e.code === "DAEMON_RUNNING");
  release();
  acquireLock(sock)();
});
