import { unlink } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { K8sError } from "../errors.js";
import {
  API_VERSION, KUBELET_SOCKET, loadDevicePluginApi, unixAddress,
  type AllocateRequest, type AllocateResponse, type DevicePluginOptions, type ListAndWatchResponse,
  type PreStartContainerRequest, type PreferredAllocationRequest, type PreferredAllocationResponse, type RegisterRequest,
} from "./api.js";
import { grpcUnary, method } from "./plugin.js";

/**
 * The kubelet's side of the Device Plugin API, for tests and for the world's kubelet stand-in:
 * it serves Registration on `<dir>/kubelet.sock` (refusing a wrong version or a name already
 * taken, as the kubelet does) and opens DevicePlugin clients on the registered endpoints.
 */
export class KubeletStandIn {
  readonly registrations: RegisterRequest[] = [];
  #server: grpc.Server | undefined;
  #waiters: (() => void)[] = [];

  constructor(readonly dir: string) {}

  get socketPath(): string {
    return join(this.dir, KUBELET_SOCKET);
  }

  async start(): Promise<void> {
    await unlink(this.socketPath).catch(() => undefined);
    const api = loadDevicePluginApi();
    const server = new grpc.Server();
    server.addService(api.Registration.service, {
      Register: (call: grpc.ServerUnaryCall<RegisterRequest, object>, cb: grpc.sendUnaryData<object>) => {
        const r = call.request;
        if (r.version !== API_VERSION) return cb({ code: grpc.status.INVALID_ARGUMENT, details: `unsupported version ${r.version}` });
        if (this.registrations.some((x) => x.resource_name === r.resource_name)) return cb({ code: grpc.status.ALREADY_EXISTS, details: `${r.resource_name} is already registered` });
        this.registrations.push(r);
        cb(null, {});
        for (const w of this.#waiters.splice(0)) w();
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(unixAddress(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err === null ? resolve() : reject(err)));
    });
    this.#server = server;
  }

  /** Resolves once `n` plugins have registered. */
  async waitForRegistrations(n: number): Promise<void> {
    while (this.registrations.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  /** A client for a registered resource, on the endpoint it registered. */
  connect(resourceName: string): DevicePluginClient {
    const r = this.registrations.find((x) => x.resource_name === resourceName);
    if (r === undefined) throw new K8sError("K8S_DEVICE_PLUGIN", `no plugin registered ${resourceName}`);
    return new DevicePluginClient(join(this.dir, r.endpoint));
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s !== undefined) await new Promise<void>((resolve) => s.tryShutdown(() => resolve()));
  }
}

export class DevicePluginClient {
  readonly #client: grpc.Client;
  readonly #service: grpc.ServiceDefinition;

  constructor(socketPath: string) {
    this.#client = new grpc.Client(unixAddress(socketPath), grpc.credentials.createInsecure());
    this.#service = loadDevicePluginApi().DevicePlugin.service;
  }

  getDevicePluginOptions(): Promise<DevicePluginOptions> {
    return grpcUnary(this.#client, method<object, DevicePluginOptions>(this.#service, "GetDevicePluginOptions"), {});
  }
  getPreferredAllocation(req: PreferredAllocationRequest): Promise<PreferredAllocationResponse> {
    return grpcUnary(this.#client, method<PreferredAllocationRequest, PreferredAllocationResponse>(this.#service, "GetPreferredAllocation"), req);
  }
  allocate(req: AllocateRequest): Promise<AllocateResponse> {
    return grpcUnary(this.#client, method<AllocateRequest, AllocateResponse>(this.#service, "Allocate"), req);
  }
  preStartContainer(req: PreStartContainerRequest): Promise<object> {
    return grpcUnary(this.#client, method<PreStartContainerRequest, object>(this.#service, "PreStartContainer"), req);
  }

  /** Opens the ListAndWatch stream; each full list goes to onList. Returns a cancel function. */
  listAndWatch(onList: (r: ListAndWatchResponse) => void, onEnd?: (e?: Error) => void): () => void {
    const def = method<object, ListAndWatchResponse>(this.#service, "ListAndWatch");
    const call = this.#client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, {});
    call.on("data", onList);
    call.on("error", (e: Error) => onEnd?.(e));
    call.on("end", () => onEnd?.());
    return () => call.cancel();
  }

  close(): void {
    this.#client.close();
  }
}
