import { createConnection, createServer, type Server, type Socket } from "node:net";
import { unlink } from "node:fs/promises";
import { Errno, KernelError, type ErrnoName } from "../base/index.js";
import { K8sError } from "./errors.js";
import type { Sysfs } from "./sysfs.js";

/**
 * The guest endpoint: how programs that run "inside" an emulated guest (the CNI plugin, the
 * device plugin) reach that guest's kernel through the interfaces a real one has, sysfs files
 * and rtnetlink bytes, plus the namespace operations `ip netns` performs. One unix socket per
 * guest; the daemon serves it with serveGuestEndpoint(path, kernel). Protocol (docs/k8s.md):
 * frames of a 4-byte big-endian length and a UTF-8 JSON object; requests carry `id` and `op`,
 * answers carry the same `id` and `ok`. Netlink bytes travel base64-encoded and untouched.
 */
export const ENDPOINT_PROTOCOL = "vpf-guest-endpoint";
export const ENDPOINT_VERSION = 1;
/** Largest frame either side accepts; a link dump of a PF with 256 VFs stays far below. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;

type MaybePromise<T> = T | Promise<T>;

export interface NetlinkContext {
  /** The namespace the netlink socket was opened in; null is the initial namespace. */
  readonly netns: string | null;
  /**
   * Resolves an IFLA_NET_NS_FD value: fds come from `netns.open` on the same connection, as a
   * real client opens /run/netns/<name> and passes the fd. Undefined means a bad fd (EBADF).
   */
  readonly nsFd: (fd: number) => string | null | undefined;
}

/** What a guest kernel offers the endpoint. Refusals are KernelErrors (code = errno name). */
export interface GuestKernelEndpoint {
  sysfsRead(path: string): MaybePromise<string>;
  sysfsWrite(path: string, data: string): MaybePromise<void>;
  sysfsReadlink(path: string): MaybePromise<string>;
  sysfsList(path: string): MaybePromise<string[]>;
  /** One request datagram in, the reply datagrams out (ACKs, errors, dump parts, NLMSG_DONE). */
  netlink(request: Uint8Array, ctx: NetlinkContext): MaybePromise<Uint8Array[]>;
  netnsList(): MaybePromise<string[]>;
  netnsAdd(name: string): MaybePromise<void>;
  netnsDel(name: string): MaybePromise<void>;
}

type Json = Record<string, unknown>;

function encodeFrame(obj: Json): Buffer {
  const body = Buffer.from(JSON.stringify(obj), "utf8");
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Splits a byte stream into frames; calls onFrame per complete frame, onError on a bad length. */
class FrameReader {
  #buf: Buffer = Buffer.alloc(0);
  #broken = false;
  constructor(private readonly onFrame: (body: Buffer) => void, private readonly onError: (e: K8sError) => void) {}

  push(chunk: Buffer): void {
    if (this.#broken) return; // framing is lost for good once a length is impossible
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    while (this.#buf.length >= 4) {
      const len = this.#buf.readUInt32BE(0);
      if (len > MAX_FRAME_BYTES) {
        this.#broken = true;
        this.#buf = Buffer.alloc(0);
        this.onError(new K8sError("K8S_PROTOCOL", `frame of ${len} bytes exceeds ${MAX_FRAME_BYTES}`));
        return;
      }
      if (this.#buf.length < 4 + len) return;
      const body = this.#buf.subarray(4, 4 + len);
      this.#buf = this.#buf.subarray(4 + len);
      this.onFrame(body);
    }
  }
}

function str(req: Json, key: string): string {
  const v = req[key];
  if (typeof v !== "string") throw new K8sError("K8S_PROTOCOL", `field ${key} must be a string`);
  return v;
}

function nsName(req: Json, key: string): string | null {
  const v = req[key];
  if (v === null || v === undefined) return null;
  if (typeof v !== "string") throw new K8sError("K8S_PROTOCOL", `field ${key} must be a string or null`);
  return v;
}

function isErrnoName(code: unknown): code is ErrnoName {
  return typeof code === "string" && Object.hasOwn(Errno, code);
}

export interface EndpointServer {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Serves a guest kernel on a unix socket. Each connection has its own table of namespace fds
 * (`netns.open`), and its requests are answered one at a time, in order.
 */
export async function serveGuestEndpoint(path: string, kernel: GuestKernelEndpoint): Promise<EndpointServer> {
  await unlink(path).catch(() => undefined); // a stale socket from a previous run
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    const fds = new Map<number, string | null>();
    let nextFd = 3;
    let chain: Promise<void> = Promise.resolve();
    const reader = new FrameReader(
      (body) => {
        chain = chain.then(async () => {
          const reply = await answer(body);
          if (!sock.destroyed) sock.write(encodeFrame(reply));
        });
      },
      (e) => {
        if (!sock.destroyed) sock.end(encodeFrame({ id: null, ok: false, errno: "EINVAL", code: e.code, message: e.message }));
      },
    );
    sock.on("data", (c: Buffer) => reader.push(c));

    async function answer(body: Buffer): Promise<Json> {
      let id: unknown = null;
      try {
        const parsed: unknown = JSON.parse(body.toString("utf8"));
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new K8sError("K8S_PROTOCOL", "a frame must hold a JSON object");
        const req = parsed as Json;
        id = typeof req.id === "number" || typeof req.id === "string" ? req.id : null;
        return { id, ok: true, ...(await dispatch(req)) };
      } catch (e) {
        if (e instanceof KernelError) return { id, ok: false, errno: e.errno, message: e.message };
        if (e instanceof K8sError) return { id, ok: false, errno: "EINVAL", code: e.code, message: e.message };
        if (e instanceof SyntaxError) return { id, ok: false, errno: "EINVAL", code: "K8S_PROTOCOL", message: "frame is not JSON" };
        const code = (e as { code?: unknown }).code;
        return { id, ok: false, errno: isErrnoName(code) ? code : "EIO", message: e instanceof Error ? e.message : String(e) };
      }
    }

    async function dispatch(req: Json): Promise<Json> {
      switch (req.op) {
        case "hello":
          return { protocol: ENDPOINT_PROTOCOL, version: ENDPOINT_VERSION };
        case "sysfs.read":
          return { data: await kernel.sysfsRead(str(req, "path")) };
        case "sysfs.write":
          await kernel.sysfsWrite(str(req, "path"), str(req, "data"));
          return {};
        case "sysfs.readlink":
          return { target: await kernel.sysfsReadlink(str(req, "path")) };
        case "sysfs.list":
          return { entries: await kernel.sysfsList(str(req, "path")) };
        case "netlink": {
          const text = str(req, "request");
          if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new K8sError("K8S_PROTOCOL", "request is not base64");
          const bytes = new Uint8Array(Buffer.from(text, "base64"));
          const netns = nsName(req, "netns");
          const replies = await kernel.netlink(bytes, { netns, nsFd: (fd) => (fds.has(fd) ? fds.get(fd) : undefined) });
          return { responses: replies.map((r) => Buffer.from(r).toString("base64")) };
        }
        case "netns.list":
          return { names: await kernel.netnsList() };
        case "netns.add":
          await kernel.netnsAdd(str(req, "name"));
          return {};
        case "netns.del":
          await kernel.netnsDel(str(req, "name"));
          return {};
        case "netns.open": {
          const name = nsName(req, "name");
          if (name !== null && !(await kernel.netnsList()).includes(name)) throw new KernelError("ENOENT", `no network namespace ${name}`);
          if (fds.size >= 1024) throw new KernelError("ENOSPC", "too many open namespace fds");
          const fd = nextFd++;
          fds.set(fd, name);
          return { fd };
        }
        case "netns.close": {
          const fd = req.fd;
          if (typeof fd !== "number" || !fds.delete(fd)) throw new KernelError("EINVAL", "bad fd");
          return {};
        }
        default:
          throw new K8sError("K8S_PROTOCOL", `unknown op ${JSON.stringify(req.op)?.slice(0, 40) ?? "undefined"}`);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The client side: one connection, requests answered in order. It is also a Sysfs, so the PCI
 * lookups of src/k8s/pci.ts run against a guest unchanged.
 */
export class GuestEndpointClient implements Sysfs {
  #sock: Socket;
  #nextId = 1;
  #pending = new Map<number, { resolve: (r: Json) => void; reject: (e: Error) => void }>();
  #failed: K8sError | undefined;

  private constructor(sock: Socket, readonly path: string) {
    this.#sock = sock;
    const reader = new FrameReader(
      (body) => this.#onFrame(body),
      (e) => this.#fail(e),
    );
    sock.on("data", (c: Buffer) => reader.push(c));
    sock.on("error", (e) => this.#fail(new K8sError("K8S_ENDPOINT", `guest endpoint ${path}: ${e.message}`, { cause: e })));
    sock.on("close", () => this.#fail(new K8sError("K8S_ENDPOINT", `guest endpoint ${path} closed the connection`)));
  }

  static connect(path: string): Promise<GuestEndpointClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const onError = (e: Error): void => reject(new K8sError("K8S_ENDPOINT", `cannot reach guest endpoint ${path}: ${e.message}`, { cause: e, details: { path } }));
      sock.once("error", onError);
      sock.once("connect", () => {
        sock.off("error", onError);
        resolve(new GuestEndpointClient(sock, path));
      });
    });
  }

  #fail(e: K8sError): void {
    this.#failed ??= e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  #onFrame(body: Buffer): void {
    let msg: unknown;
    try {
      msg = JSON.parse(body.toString("utf8"));
    } catch {
      this.#fail(new K8sError("K8S_PROTOCOL", "guest endpoint sent a frame that is not JSON"));
      return;
    }
    if (typeof msg !== "object" || msg === null) return this.#fail(new K8sError("K8S_PROTOCOL", "guest endpoint sent a non-object frame"));
    const m = msg as Json;
    const p = typeof m.id === "number" ? this.#pending.get(m.id) : undefined;
    if (p === undefined) return this.#fail(new K8sError("K8S_PROTOCOL", "guest endpoint answered an unknown request id"));
    this.#pending.delete(m.id as number);
    if (m.ok === true) return p.resolve(m);
    const message = typeof m.message === "string" ? m.message : undefined;
    if (isErrnoName(m.errno) && m.code === undefined) p.reject(new KernelError(m.errno, message));
    else p.reject(new K8sError("K8S_ENDPOINT", `guest endpoint refused the request: ${message ?? "no reason"}`, { details: { errno: m.errno, code: m.code } }));
  }

  request(op: string, fields: Json = {}): Promise<Json> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#sock.write(encodeFrame({ ...fields, id, op }));
    });
  }

  async hello(): Promise<{ protocol: string; version: number }> {
    const r = await this.request("hello");
    if (r.protocol !== ENDPOINT_PROTOCOL || typeof r.version !== "number") throw new K8sError("K8S_PROTOCOL", "the socket does not speak the guest endpoint protocol");
    return { protocol: r.protocol, version: r.version };
  }

  async readFile(path: string): Promise<string> {
    return field(await this.request("sysfs.read", { path }), "data");
  }
  async writeFile(path: string, data: string): Promise<void> {
    await this.request("sysfs.write", { path, data });
  }
  async readlink(path: string): Promise<string> {
    return field(await this.request("sysfs.readlink", { path }), "target");
  }
  async listDir(path: string): Promise<string[]> {
    return stringList(await this.request("sysfs.list", { path }), "entries");
  }

  /** Sends one rtnetlink request from a socket in `netns` (null = initial); returns reply datagrams. */
  async netlink(request: Uint8Array, netns: string | null = null): Promise<Uint8Array[]> {
    const r = await this.request("netlink", { netns, request: Buffer.from(request).toString("base64") });
    return stringList(r, "responses").map((s) => new Uint8Array(Buffer.from(s, "base64")));
  }

  async netnsList(): Promise<string[]> {
    return stringList(await this.request("netns.list"), "names");
  }
  async netnsAdd(name: string): Promise<void> {
    await this.request("netns.add", { name });
  }
  async netnsDel(name: string): Promise<void> {
    await this.request("netns.del", { name });
  }
  /** An fd for IFLA_NET_NS_FD, valid on this connection; null names the initial namespace. */
  async netnsOpen(name: string | null): Promise<number> {
    const r = await this.request("netns.open", { name });
    if (typeof r.fd !== "number") throw new K8sError("K8S_PROTOCOL", "netns.open answer without fd");
    return r.fd;
  }
  async netnsClose(fd: number): Promise<void> {
    await this.request("netns.close", { fd });
  }

  close(): void {
    this.#failed ??= new K8sError("K8S_ENDPOINT", "client closed");
    this.#sock.end();
  }
}

function field(r: Json, key: string): string {
  const v = r[key];
  if (typeof v !== "string") throw new K8sError("K8S_PROTOCOL", `answer field ${key} must be a string`);
  return v;
}

function stringList(r: Json, key: string): string[] {
  const v = r[key];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === "string")) throw new K8sError("K8S_PROTOCOL", `answer field ${key} must be a list of strings`);
  return v;
}
