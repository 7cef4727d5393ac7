import { mkdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { K8sError } from "../errors.js";
import type { SysfsReader } from "../sysfs.js";
import {
  API_VERSION, HEALTHY, KUBELET_SOCKET, UNHEALTHY, loadDevicePluginApi, unixAddress,
  type AllocateRequest, type AllocateResponse, type ContainerAllocateResponse, type Device, type DevicePluginOptions,
  type ListAndWatchResponse, type PreStartContainerRequest, type PreferredAllocationRequest, type PreferredAllocationResponse, type RegisterRequest,
} from "./api.js";
import { resourceEnvName, type DevicePluginConfig, type ResourcePool } from "./config.js";
import { assignPools, discoverNetDevices, type NetDevice } from "./discovery.js";

/**
 * The SR-IOV device plugin for a guest: one gRPC server per resource pool on its own unix socket
 * in the kubelet's device-plugin directory (endpoint `<prefix>_<name>.sock`), registered with
 * the kubelet as `<prefix>/<name>` (kubernetes.md §8). Devices come from a sysfs scan; rescan()
 * pushes a fresh full list to every ListAndWatch stream when anything changed.
 */
export interface SriovDevicePluginOptions {
  readonly sysfs: SysfsReader;
  readonly config: DevicePluginConfig;
  /** The kubelet's device-plugin directory (kubelet.sock lives there, and so do our sockets). */
  readonly pluginDir: string;
  /** Where device-info files go: /var/run/k8s.cni.cncf.io/devinfo/dp. */
  readonly devInfoDir: string;
}

export const DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/dp";

export function fullResourceName(p: ResourcePool): string {
  return `${p.resourcePrefix}/${p.resourceName}`;
}

export function endpointName(p: ResourcePool): string {
  return `${p.resourcePrefix}_${p.resourceName}.sock`;
}

/** Device-info file name (network-attachment-definition-client: resource with "/" as "-"). */
export function deviceInfoFileName(p: ResourcePool, bdf: string): string {
  return `${fullResourceName(p).replace(/\//g, "-")}-${bdf}-device.json`;
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path);
}

function toDevice(p: ResourcePool, d: NetDevice): Device {
  return {
    ID: d.bdf,
    health: d.healthy ? HEALTHY : UNHEALTHY,
    topology: p.excludeTopology || d.numaNode === undefined ? null : { nodes: [{ ID: d.numaNode }] },
  };
}

function sameList(a: readonly Device[], b: readonly Device[]): boolean {
  return a.length === b.length && a.every((x, i) => x.ID === b[i]!.ID && x.health === b[i]!.health && JSON.stringify(x.topology) === JSON.stringify(b[i]!.topology));
}

export class ResourceServer {
  devices: NetDevice[] = [];
  #list: Device[] = [];
  #streams = new Set<grpc.ServerWritableStream<unknown, ListAndWatchResponse>>();
  #server: grpc.Server | undefined;
  readonly socketPath: string;

  constructor(readonly pool: ResourcePool, private readonly opts: SriovDevicePluginOptions) {
    this.socketPath = join(opts.pluginDir, endpointName(pool));
  }

  get resourceName(): string {
    return fullResourceName(this.pool);
  }

  /** The current device list as ListAndWatch sends it. */
  list(): Device[] {
    return this.#list.map((d) => ({ ...d }));
  }

  /** Replaces the devices; returns whether the advertised list changed (and then pushes it). */
  update(devices: NetDevice[]): boolean {
    this.devices = [...devices].sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0));
    const next = this.devices.map((d) => toDevice(this.pool, d));
    if (sameList(next, this.#list)) return false;
    this.#list = next;
    for (const s of this.#streams) s.write({ devices: this.list() });
    return true;
  }

  async start(): Promise<void> {
    await unlink(this.socketPath).catch(() => undefined);
    const api = loadDevicePluginApi();
    const server = new grpc.Server();
    const impl: grpc.UntypedServiceImplementation = {
      GetDevicePluginOptions: (_call: grpc.ServerUnaryCall<unknown, DevicePluginOptions>, cb: grpc.sendUnaryData<DevicePluginOptions>) => cb(null, this.options()),
      ListAndWatch: (call: grpc.ServerWritableStream<unknown, ListAndWatchResponse>) => {
        this.#streams.add(call);
        const drop = (): void => {
          this.#streams.delete(call);
        };
        call.on("cancelled", drop);
        call.on("close", drop);
        call.on("error", drop);
        call.write({ devices: this.list() });
      },
      GetPreferredAllocation: (call: grpc.ServerUnaryCall<PreferredAllocationRequest, PreferredAllocationResponse>, cb: grpc.sendUnaryData<PreferredAllocationResponse>) => {
        cb(null, this.preferredAllocation(call.request));
      },
      Allocate: (call: grpc.ServerUnaryCall<AllocateRequest, AllocateResponse>, cb: grpc.sendUnaryData<AllocateResponse>) => {
        this.allocate(call.request).then(
          (r) => cb(null, r),
          (e: unknown) => cb({ code: e instanceof K8sError ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL, details: e instanceof Error ? e.message : String(e) }),
        );
      },
      PreStartContainer: (_call: grpc.ServerUnaryCall<PreStartContainerRequest, object>, cb: grpc.sendUnaryData<object>) => cb(null, {}),
    };
    server.addService(api.DevicePlugin.service, impl);
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(unixAddress(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err === null ? resolve() : reject(err)));
    });
    this.#server = server;
  }

  options(): DevicePluginOptions {
    return { pre_start_required: false, get_preferred_allocation_available: true };
  }

  /**
   * Must-include devices first, then the other available ones, preferring VFs of PFs already
   * chosen (fewer PFs per pod), then address order, so the answer is deterministic.
   */
  preferredAllocation(req: PreferredAllocationRequest): PreferredAllocationResponse {
    const byId = new Map(this.devices.map((d) => [d.bdf, d]));
    return {
      container_responses: req.container_requests.map((c) => {
        const size = Math.max(0, c.allocation_size);
        const chosen: string[] = [];
        for (const id of c.must_include_deviceIDs) if (!chosen.includes(id)) chosen.push(id);
        const pfs = new Set(chosen.map((id) => byId.get(id)?.pf));
        const rest = c.available_deviceIDs.filter((id) => !chosen.includes(id) && byId.get(id)?.healthy !== false);
        rest.sort((a, b) => {
          const pa = pfs.has(byId.get(a)?.pf) ? 0 : 1, pb = pfs.has(byId.get(b)?.pf) ? 0 : 1;
          return pa !== pb ? pa - pb : a < b ? -1 : a > b ? 1 : 0;
        });
        for (const id of rest) {
          if (chosen.length >= size) break;
          chosen.push(id);
        }
        return { deviceIDs: chosen };
      }),
    };
  }

  async allocate(req: AllocateRequest): Promise<AllocateResponse> {
    const byId = new Map(this.devices.map((d) => [d.bdf, d]));
    const env = resourceEnvName(this.pool.resourcePrefix, this.pool.resourceName);
    const responses: ContainerAllocateResponse[] = [];
    for (const c of req.container_requests) {
      for (const id of c.devices_ids) {
        if (!byId.has(id)) throw new K8sError("K8S_DEVICE_PLUGIN", `${this.resourceName} has no device ${JSON.stringify(id).slice(0, 80)}`, { details: { id } });
      }
      const info: Record<string, unknown> = {};
      for (const id of c.devices_ids) {
        const extra = this.pool.additionalInfo[id] ?? this.pool.additionalInfo["*"];
        info[id] = { generic: { deviceID: id }, ...(extra === undefined ? {} : { extra }) };
        await this.#writeDeviceInfo(byId.get(id)!);
      }
      responses.push({ envs: { [env]: c.devices_ids.join(","), [`${env}_INFO`]: JSON.stringify(info) }, mounts: [], devices: [], annotations: {}, cdi_devices: [] });
    }
    return { container_responses: responses };
  }

  /** The device-info file Multus hands to the CNI plugin (kubernetes.md §9), written atomically. */
  async #writeDeviceInfo(d: NetDevice): Promise<void> {
    await mkdir(this.opts.devInfoDir, { recursive: true });
    const body = { type: "pci", version: "1.1.0", pci: { "pci-address": d.bdf, ...(d.pf === undefined ? {} : { "pf-pci-address": d.pf }) } };
    await writeAtomic(join(this.opts.devInfoDir, deviceInfoFileName(this.pool, d.bdf)), JSON.stringify(body));
  }

  /** Removes device-info files of devices that are gone. */
  async cleanDeviceInfo(gone: readonly string[]): Promise<void> {
    for (const bdf of gone) await rm(join(this.opts.devInfoDir, deviceInfoFileName(this.pool, bdf)), { force: true });
  }

  async stop(): Promise<void> {
    for (const s of this.#streams) s.end();
    this.#streams.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await unlink(this.socketPath).catch(() => undefined);
  }
}

function unary<Req, Res>(client: grpc.Client, def: grpc.MethodDefinition<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, req, (err, res) => {
      if (err !== null || res === undefined) reject(err ?? new K8sError("K8S_DEVICE_PLUGIN", "empty answer"));
      else resolve(res);
    });
  });
}

/** Untyped service definitions from proto-loader, narrowed to one method's request and response. */
export function method<Req, Res>(service: grpc.ServiceDefinition, name: string): grpc.MethodDefinition<Req, Res> {
  const m = service[name];
  if (m === undefined) throw new K8sError("K8S_DEVICE_PLUGIN", `method ${name} missing from the service definition`);
  return m as grpc.MethodDefinition<Req, Res>;
}

export { unary as grpcUnary };

export class SriovDevicePlugin {
  readonly servers: ResourceServer[];

  constructor(private readonly opts: SriovDevicePluginOptions) {
    this.servers = opts.config.resourceList.map((p) => new ResourceServer(p, opts));
  }

  server(resourceName: string): ResourceServer | undefined {
    return this.servers.find((s) => s.resourceName === resourceName);
  }

  /** Scans sysfs, updates every pool; returns the resource names whose lists changed. */
  async rescan(): Promise<string[]> {
    const devices = await discoverNetDevices(this.opts.sysfs);
    const assigned = assignPools(this.opts.config.resourceList, devices);
    const changed: string[] = [];
    for (const s of this.servers) {
      const before = s.devices.map((d) => d.bdf);
      const now = assigned.get(s.pool) ?? [];
      if (s.update(now)) changed.push(s.resourceName);
      await s.cleanDeviceInfo(before.filter((b) => !now.some((d) => d.bdf === b)));
    }
    return changed;
  }

  /** Scans, listens on every pool's socket, and registers each pool with the kubelet. */
  async start(): Promise<void> {
    await this.rescan();
    for (const s of this.servers) await s.start();
    await this.register();
  }

  async register(): Promise<void> {
    const api = loadDevicePluginApi();
    const client = new grpc.Client(unixAddress(join(this.opts.pluginDir, KUBELET_SOCKET)), grpc.credentials.createInsecure());
    try {
      const def = method<RegisterRequest, object>(api.Registration.service, "Register");
      for (const s of this.servers) {
        try {
          await unary(client, def, { version: API_VERSION, endpoint: endpointName(s.pool), resource_name: s.resourceName, options: s.options() });
        } catch (e) {
          throw new K8sError("K8S_DEVICE_PLUGIN", `kubelet refused ${s.resourceName}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
      }
    } finally {
      client.close();
    }
  }

  /**
   * After a kubelet restart: the kubelet wipes every socket in its directory and forgets every
   * registration, so each pool listens again on a fresh socket and registers again.
   */
  async restart(): Promise<void> {
    for (const s of this.servers) {
      await s.stop();
      await s.start();
    }
    await this.register();
  }

  async stop(): Promise<void> {
    for (const s of this.servers) await s.stop();
  }
}
