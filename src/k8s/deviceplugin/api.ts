import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { K8sError } from "../errors.js";

/**
 * The kubelet Device Plugin API v1beta1 (kubernetes.md §8), loaded at run time from
 * src/k8s/proto/deviceplugin.proto with field names kept as written (keepCase), so messages here
 * use the proto's snake_case and mixed-case names (`resource_name`, `devices_ids`, `ID`).
 */
export const API_VERSION = "v1beta1";
export const HEALTHY = "Healthy";
export const UNHEALTHY = "Unhealthy";
export const KUBELET_SOCKET = "kubelet.sock";
export const DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins";

export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}
export interface RegisterRequest {
  version: string;
  endpoint: string;
  resource_name: string;
  options: DevicePluginOptions | null;
}
export interface Device {
  ID: string;
  health: string;
  topology: { nodes: { ID: number }[] } | null;
}
export interface ListAndWatchResponse {
  devices: Device[];
}
export interface ContainerPreferredAllocationRequest {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}
export interface PreferredAllocationRequest {
  container_requests: ContainerPreferredAllocationRequest[];
}
export interface PreferredAllocationResponse {
  container_responses: { deviceIDs: string[] }[];
}
export interface AllocateRequest {
  container_requests: { devices_ids: string[] }[];
}
export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: { container_path: string; host_path: string; read_only: boolean }[];
  devices: { container_path: string; host_path: string; permissions: string }[];
  annotations: Record<string, string>;
  cdi_devices: { name: string }[];
}
export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}
export interface PreStartContainerRequest {
  devices_ids: string[];
}

export interface DevicePluginApi {
  readonly Registration: grpc.ServiceClientConstructor;
  readonly DevicePlugin: grpc.ServiceClientConstructor;
}

function protoPath(): string {
  // Under tsx the module sits in src/k8s/deviceplugin; compiled, in dist/src/k8s/deviceplugin,
  // and tsc does not copy .proto files, so look in the source tree too.
  const candidates = [new URL("../proto/deviceplugin.proto", import.meta.url), new URL("../../../../src/k8s/proto/deviceplugin.proto", import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(p)) return p;
  }
  throw new K8sError("K8S_DEVICE_PLUGIN", "deviceplugin.proto not found next to the module or in src/k8s/proto");
}

let cached: DevicePluginApi | undefined;

export function loadDevicePluginApi(): DevicePluginApi {
  if (cached !== undefined) return cached;
  const def = protoLoader.loadSync(protoPath(), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def).v1beta1;
  const get = (name: string): grpc.ServiceClientConstructor => {
    const c = typeof pkg === "object" && pkg !== null ? (pkg as grpc.GrpcObject)[name] : undefined;
    if (typeof c !== "function" || !("service" in c)) throw new K8sError("K8S_DEVICE_PLUGIN", `service v1beta1.${name} missing from deviceplugin.proto`);
    return c;
  };
  cached = { Registration: get("Registration"), DevicePlugin: get("DevicePlugin") };
  return cached;
}

export function unixAddress(path: string): string {
  return `unix://${path}`;
}
