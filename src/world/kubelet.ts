/**
 * A kubelet stand-in per model-guest VM: the part of a Kubernetes node that turns "run a pod
 * with one SR-IOV VF" into what the kubelet, the container runtime and Multus do on bare metal.
 *
 * Per VM it runs, on unix sockets in a directory private to the world:
 * - the guest endpoint (`serveGuestEndpoint`) on the VM's guest kernel, the only way the device
 *   plugin and the CNI plugin reach the guest (sysfs and rtnetlink bytes);
 * - `KubeletStandIn` (the kubelet's Registration service) and the real `SriovDevicePlugin`,
 *   which discovers the VM's vVFs through the endpoint and registers the resource `vpf.io/vf`;
 * - the CNI plugin `vpf-sriov`, installed as an executable (`installCniPlugin`) and run as a
 *   process per ADD and DEL, with Debian's `host-local` as its IPAM delegate.
 *
 * Pod add: a namespace `/var/run/netns/<pod>` in the guest, one VF chosen from the devices the
 * plugin lists as healthy over ListAndWatch (GetPreferredAllocation, then Allocate, whose
 * `PCIDEVICE_VPF_IO_VF` names the VF), then CNI ADD with `deviceID` set to it. Pod del: CNI DEL,
 * the namespace deleted, the VF free again. Pod operations on one VM run one at a time, as the
 * kubelet's pod workers serialise a node's sandbox changes, so a VF never goes to two pods.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VpfError } from "../base/errors.js";
import {
  GuestEndpointClient, KubeletStandIn, SriovDevicePlugin, HEALTHY, cniMainPath, installCniPlugin, parseDevicePluginConfig,
  locateVf, resourceEnvName, serveGuestEndpoint,
} from "../k8s/index.js";
import type { DevicePluginClient, Device, EndpointServer } from "../k8s/index.js";
import { iproute as ipr } from "../guest/index.js";
import type { GuestKernel } from "../guest/index.js";

export class PodError extends VpfError {}

/** The resource the device plugin offers in every VM: the VM's vVFs. */
export const VF_RESOURCE_PREFIX = "vpf.io";
export const VF_RESOURCE_NAME = "vf";
export const VF_RESOURCE = `${VF_RESOURCE_PREFIX}/${VF_RESOURCE_NAME}`;
/** Where host-local lives on Debian (containernetworking-plugins). */
export const SYSTEM_CNI_DIR = "/usr/lib/cni";
/** The interface name of the VF inside a pod, as Multus names a pod's first extra network. */
export const POD_IFNAME = "net1";

/** A pod network (what a NetworkAttachmentDefinition says): an IPAM subnet and a VLAN. */
export interface PodNetwork {
  readonly name: string;
  readonly subnet: string;
  /** 0: untagged. */
  readonly vlan: number;
  readonly rangeStart?: string;
  readonly rangeEnd?: string;
}

export interface Pod {
  readonly name: string;
  readonly network: string;
  readonly deviceId: string;
  readonly vlan: number;
  readonly mac: string;
  /** CIDR as IPAM gave it; "" when IPAM gave none. */
  readonly ip: string;
  readonly netns: string;
}

export interface PodAddOptions {
  readonly vlan?: number;
  /** A fixed address inside the network's subnet (host-local's `IP=` argument). */
  readonly ip?: string;
  readonly mac?: string;
}

/** What the device plugin lists, with the pod each device is allocated to. */
export interface ListedDevice {
  readonly id: string;
  readonly health: string;
  readonly pod: string | undefined;
}

export interface NodeKubeletOptions {
  readonly vmName: string;
  readonly kernel: GuestKernel;
  /** A directory of this VM's own (sockets, CNI state). */
  readonly dir: string;
  /** host-local's data directory, shared by every VM so a network's addresses are unique world-wide. */
  readonly ipamDir: string;
  /** The PCI address of the VM's vPF; its VFs are the resource. */
  readonly pfAddress: string;
  /** MAC octets pods' MACs start with (the VM's policy prefix); the rest numbers the VF. */
  readonly macPrefix: string;
  /** Runs after every change to the guest, so rings are reaped and the clock moves. */
  readonly settle: () => void;
}

const ZERO_MAC = "00:00:00:00:00:00";
const POD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A pod name is a DNS label (RFC 1123), as Kubernetes wants; it names the namespace too. */
export function checkPodName(name: string): void {
  if (name.length > 63 || !POD_NAME.test(name)) {
    throw new PodError("POD_BAD_NAME", `invalid pod name '${name.slice(0, 80)}': a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (at most 63)`);
  }
}

/** A MAC from a prefix of 1..5 octets, the remaining octets numbering `n`. */
export function macUnder(prefix: string, n: number): string {
  const head = prefix.split(":");
  const tail: string[] = [];
  let v = n;
  for (let i = head.length; i < 6; i++) {
    tail.unshift((v & 255).toString(16).padStart(2, "0"));
    v = Math.floor(v / 256);
  }
  return [...head, ...tail].join(":");
}

/** The command that runs vpf-sriov: compiled main.js, or main.ts through tsx in the dev loop. */
function cniProgramArgs(): string[] | undefined {
  const js = cniMainPath();
  if (existsSync(js)) return undefined;
  // Resolved here, so the plugin finds tsx whatever directory the daemon was started from.
  let tsx = "tsx";
  try {
    tsx = import.meta.resolve("tsx");
  } catch {
    // not resolvable from here: leave it to Node's lookup from the working directory
  }
  return ["--import", tsx, js.replace(/\.js$/, ".ts")];
}

interface CniRun {
  readonly stdout: string;
  readonly exitCode: number;
  readonly stderr: string;
}

function runProcess(path: string, env: Record<string, string>, stdin: string): Promise<CniRun> {
  return new Promise((resolve) => {
    const child = spawn(path, [], { env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) => resolve({ stdout: "", stderr: e.message, exitCode: 127 }));
    child.on("close", (code) => resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), exitCode: code ?? 1 }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}

/** The message of a CNI error JSON, or the raw output. */
function cniMessage(r: CniRun): string {
  try {
    const e = JSON.parse(r.stdout) as { code?: number; msg?: string; details?: string };
    if (typeof e.msg === "string") return `${e.msg}${typeof e.code === "number" ? ` (CNI error ${e.code})` : ""}`;
  } catch {
    // not JSON: fall through to the raw text
  }
  const text = `${r.stdout}${r.stderr}`.trim();
  return text === "" ? `exit status ${r.exitCode}` : text.slice(0, 400);
}

/** A device plugin call; a gRPC failure becomes POD_DEVICE_PLUGIN with the call's name. */
async function rpc<T>(what: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (e) {
    throw new PodError("POD_DEVICE_PLUGIN", `${VF_RESOURCE} ${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

export class NodeKubelet {
  readonly #opts: NodeKubeletOptions;
  readonly #pods = new Map<string, Pod & { readonly conf: string }>();
  #endpoint: EndpointServer | undefined;
  #guest: GuestEndpointClient | undefined;
  #kubelet: KubeletStandIn | undefined;
  #plugin: SriovDevicePlugin | undefined;
  #client: DevicePluginClient | undefined;
  #cancelWatch: (() => void) | undefined;
  #cniPath = "";
  #listed: Device[] = [];
  #listWaiters: (() => void)[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(opts: NodeKubeletOptions) {
    this.#opts = opts;
  }

  get vmName(): string {
    return this.#opts.vmName;
  }

  /** The guest endpoint socket (for a user's own `vpf-sriov` or device plugin runs). */
  get endpointPath(): string {
    return this.#endpoint?.path ?? "";
  }

  static async start(opts: NodeKubeletOptions): Promise<NodeKubelet> {
    const k = new NodeKubelet(opts);
    try {
      await k.#start();
    } catch (e) {
      await k.close();
      throw e;
    }
    return k;
  }

  async #start(): Promise<void> {
    const o = this.#opts;
    const pluginDir = join(o.dir, "device-plugins");
    const binDir = join(o.dir, "bin");
    await mkdir(pluginDir, { recursive: true });
    this.#endpoint = await serveGuestEndpoint(join(o.dir, "guest.sock"), o.kernel);
    this.#guest = await GuestEndpointClient.connect(this.#endpoint.path);
    const args = cniProgramArgs();
    await installCniPlugin(binDir, args === undefined ? {} : { args });
    this.#cniPath = `${binDir}:${SYSTEM_CNI_DIR}`;
    this.#kubelet = new KubeletStandIn(pluginDir);
    await this.#kubelet.start();
    const config = parseDevicePluginConfig(JSON.stringify({
      resourceList: [{
        resourceName: VF_RESOURCE_NAME,
        resourcePrefix: VF_RESOURCE_PREFIX,
        // virtio VFs (1af4:1041 bound to virtio-pci) of this VM's vPF.
        selectors: { vendors: ["1af4"], devices: ["1041"], drivers: ["virtio-pci"], rootDevices: [o.pfAddress] },
      }],
    }));
    this.#plugin = new SriovDevicePlugin({ sysfs: this.#guest, config, pluginDir, devInfoDir: join(o.dir, "devinfo") });
    await this.#plugin.start();
    await this.#kubelet.waitForRegistrations(1);
    this.#client = this.#kubelet.connect(VF_RESOURCE);
    const first = this.#waitForList(() => true);
    this.#cancelWatch = this.#client.listAndWatch((r) => {
      this.#listed = r.devices;
      for (const w of this.#listWaiters.splice(0)) w();
    });
    await first;
  }

  /** Resolves once a ListAndWatch list satisfying `ok` has arrived (5 s of wall time at most). */
  #waitForList(ok: (list: readonly Device[]) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new PodError("POD_DEVICE_PLUGIN", `${VF_RESOURCE}: no device list from the device plugin`)), 5000);
      const check = (): void => {
        if (ok(this.#listed) && this.#client !== undefined) {
          clearTimeout(timer);
          resolve();
        } else this.#listWaiters.push(check);
      };
      check();
    });
  }

  /** Rescans the guest and waits until the kubelet's ListAndWatch view shows the plugin's list. */
  async #sync(): Promise<void> {
    const plugin = this.#plugin;
    if (plugin === undefined) throw new PodError("POD_DEVICE_PLUGIN", "the device plugin is not running");
    await plugin.rescan();
    const want = (plugin.server(VF_RESOURCE)?.list() ?? []).map((d) => `${d.ID}/${d.health}`).sort().join(",");
    await this.#waitForList((l) => l.map((d) => `${d.ID}/${d.health}`).sort().join(",") === want);
  }

  /** One pod operation at a time on this node. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  pods(): Pod[] {
    return [...this.#pods.values()].map(({ conf: _conf, ...p }) => p).sort((a, b) => a.name.localeCompare(b.name));
  }

  pod(name: string): Pod | undefined {
    return this.pods().find((p) => p.name === name);
  }

  /** The device plugin's list as the kubelet last saw it, after a rescan. */
  async devices(): Promise<ListedDevice[]> {
    return this.#serial(async () => {
      await this.#sync();
      return this.#devicesNow();
    });
  }

  #devicesNow(): ListedDevice[] {
    const holder = new Map([...this.#pods.values()].map((p) => [p.deviceId, p.name]));
    return [...this.#listed].sort((a, b) => a.ID.localeCompare(b.ID)).map((d) => ({ id: d.ID, health: d.health, pod: holder.get(d.ID) }));
  }

  addPod(name: string, network: PodNetwork, opts: PodAddOptions = {}): Promise<Pod> {
    return this.#serial(() => this.#addPod(name, network, opts));
  }

  async #addPod(name: string, network: PodNetwork, opts: PodAddOptions): Promise<Pod> {
    checkPodName(name);
    const o = this.#opts;
    if (this.#pods.has(name)) throw new PodError("POD_EXISTS", `pods "${name}" already exists`);
    if (o.kernel.netnsList().includes(name)) throw new PodError("POD_EXISTS", `network namespace "${name}" already exists in ${o.vmName}`);
    const client = this.#client;
    if (client === undefined) throw new PodError("POD_DEVICE_PLUGIN", "the device plugin is not running");
    await this.#sync();
    const free = this.#devicesNow().filter((d) => d.health === HEALTHY && d.pod === undefined).map((d) => d.id);
    if (free.length === 0) {
      const listed = this.#listed.length;
      throw new PodError("POD_NO_VF", listed === 0
        ? `0/1 nodes are available: 1 Insufficient ${VF_RESOURCE} (${o.vmName} has no VFs: enable some with 'echo N > /sys/bus/pci/devices/${o.pfAddress}/sriov_numvfs')`
        : `0/1 nodes are available: 1 Insufficient ${VF_RESOURCE} (all ${listed} VFs of ${o.vmName} are in pods)`);
    }
    const pref = await rpc("GetPreferredAllocation", client.getPreferredAllocation({ container_requests: [{ available_deviceIDs: free, must_include_deviceIDs: [], allocation_size: 1 }] }));
    const chosen = pref.container_responses[0]?.deviceIDs[0] ?? free[0] ?? "";
    const alloc = await rpc("Allocate", client.allocate({ container_requests: [{ devices_ids: [chosen] }] }));
    const envName = resourceEnvName(VF_RESOURCE_PREFIX, VF_RESOURCE_NAME);
    const deviceId = alloc.container_responses[0]?.envs[envName];
    if (deviceId === undefined || deviceId !== chosen) throw new PodError("POD_DEVICE_PLUGIN", `Allocate answered ${envName}=${deviceId ?? "(none)"} for ${chosen}`);

    const vlan = opts.vlan ?? network.vlan;
    // Numbered by the VF's device and function, so two pods of one VM never share a MAC.
    const m = /:([0-9a-f]{2})\.([0-7])$/.exec(deviceId);
    const vfNumber = m === null ? 0 : Number.parseInt(m[1] ?? "", 16) * 8 + Number(m[2]);
    const mac = opts.mac ?? macUnder(o.macPrefix, 0xc000 + vfNumber);
    const conf = JSON.stringify({
      cniVersion: "1.0.0",
      name: network.name,
      type: "vpf-sriov",
      deviceID: deviceId,
      vlan,
      mac,
      spoofchk: "on",
      trust: "off",
      guestEndpoint: this.endpointPath,
      dataDir: join(o.dir, "cni"),
      ipam: {
        type: "host-local",
        subnet: network.subnet,
        ...(network.rangeStart === undefined ? {} : { rangeStart: network.rangeStart }),
        ...(network.rangeEnd === undefined ? {} : { rangeEnd: network.rangeEnd }),
        dataDir: o.ipamDir,
      },
    });
    await this.#clearAdminMac(deviceId);
    o.kernel.netnsAdd(name);
    const add = await this.#cni("ADD", name, conf, opts.ip === undefined ? "" : `IgnoreUnknown=1;IP=${opts.ip}`);
    o.settle();
    if (add.exitCode !== 0) {
      // The plugin undid its own steps; the sandbox goes too, and the VF stays free.
      try {
        o.kernel.netnsDel(name);
      } catch {
        // already gone
      }
      o.settle();
      throw new PodError("POD_CNI", `failed to set up sandbox of pod "${name}": plugin type="vpf-sriov" name="${network.name}" failed (add): ${cniMessage(add)}`);
    }
    let ip: string;
    try {
      const r = JSON.parse(add.stdout) as { ips?: { address?: string }[] };
      ip = r.ips?.[0]?.address ?? "";
    } catch {
      ip = ""; // a result that is not JSON carries no address we could show
    }
    const pod = { name, network: network.name, deviceId, vlan, mac, ip, netns: `/var/run/netns/${name}`, conf };
    this.#pods.set(name, pod);
    const { conf: _c, ...shown } = pod;
    return shown;
  }

  delPod(name: string): Promise<Pod> {
    return this.#serial(() => this.#delPod(name));
  }

  async #delPod(name: string): Promise<Pod> {
    const pod = this.#pods.get(name);
    if (pod === undefined) throw new PodError("POD_NOT_FOUND", `pods "${name}" not found`);
    const del = await this.#cni("DEL", name, pod.conf, "");
    this.#opts.settle();
    if (del.exitCode !== 0) throw new PodError("POD_CNI", `failed to tear down pod "${name}": plugin type="vpf-sriov" failed (delete): ${cniMessage(del)}`);
    try {
      this.#opts.kernel.netnsDel(name);
    } catch {
      // someone deleted the namespace by hand; DEL has already brought the VF home
    }
    this.#opts.settle();
    this.#pods.delete(name);
    const { conf: _c, ...shown } = pod;
    return shown;
  }

  /**
   * A fresh vVF reports its host backend's MAC as its admin MAC, which usually lies outside the
   * VM's MAC prefix: vpf-sriov saves that MAC on ADD and its restore on DEL would be refused
   * (EPERM). So before a VF goes to a pod its admin MAC is cleared (all-zero is always allowed),
   * as an operator's node agent resets VFs before handing them out.
   */
  async #clearAdminMac(deviceId: string): Promise<void> {
    const guest = this.#guest;
    if (guest === undefined) return;
    const k = this.#opts.kernel;
    const loc = await locateVf(guest, deviceId);
    const link = ipr.parseReplies(k.netlink(ipr.getLinkRequest(loc.pfNetdev, true, true))).links[0];
    const vf = link?.vfs?.find((v) => v.vf === loc.vfIndex);
    if (link === undefined || vf === undefined || vf.mac === ZERO_MAC) return;
    const r = ipr.parseReplies(k.netlink(ipr.setVfRequest(link.ifindex, loc.vfIndex, { mac: ZERO_MAC })));
    this.#opts.settle();
    if (r.error !== 0) throw new PodError("POD_CNI", `resetting the admin MAC of VF ${loc.vfIndex} (${deviceId}) failed: errno ${-r.error}`);
  }

  #cni(command: "ADD" | "DEL", pod: string, conf: string, args: string): Promise<CniRun> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: `${this.#opts.vmName}-${pod}`,
      CNI_NETNS: `/var/run/netns/${pod}`,
      CNI_IFNAME: POD_IFNAME,
      CNI_PATH: this.#cniPath,
    };
    if (args !== "") env.CNI_ARGS = args;
    return runProcess(join(this.#cniPath.split(":")[0] ?? "", "vpf-sriov"), env, conf);
  }

  /**
   * Stops the device plugin, the kubelet and the endpoint. Pods are not torn down: the world
   * closes with its guests, so there is nothing left to give their VFs back to.
   */
  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
    this.#cancelWatch?.();
    this.#cancelWatch = undefined;
    this.#client?.close();
    this.#client = undefined;
    await this.#plugin?.stop();
    this.#plugin = undefined;
    await this.#kubelet?.stop();
    this.#kubelet = undefined;
    this.#guest?.close();
    this.#guest = undefined;
    await this.#endpoint?.close();
    this.#endpoint = undefined;
  }
}

/**
 * The cluster's side for a whole world: pod networks (cluster-wide, like
 * NetworkAttachmentDefinitions), and one `NodeKubelet` per model-guest VM, started on first use
 * in a temp directory that close() removes.
 */
export class WorldKubelets {
  readonly networks = new Map<string, PodNetwork>();
  readonly #nodes = new Map<string, Promise<NodeKubelet>>();
  readonly #running = new Map<string, NodeKubelet>();
  #dir: Promise<string> | undefined;
  #closed = false;

  #path: string | undefined;

  #root(): Promise<string> {
    this.#dir ??= mkdtemp(join(tmpdir(), "vpf-kube-")).then((d) => (this.#path = d));
    return this.#dir;
  }

  /** The world-private directory (sockets, CNI state, IPAM), once a kubelet has started. */
  get directory(): string | undefined {
    return this.#path;
  }

  /** The node's kubelet, started on first use. */
  node(opts: Omit<NodeKubeletOptions, "dir" | "ipamDir">): Promise<NodeKubelet> {
    if (this.#closed) return Promise.reject(new PodError("POD_CLOSED", "the world is shutting down"));
    let k = this.#nodes.get(opts.vmName);
    if (k === undefined) {
      k = this.#root().then(async (root) => {
        const dir = join(root, opts.vmName);
        await mkdir(dir, { recursive: true });
        const started = await NodeKubelet.start({ ...opts, dir, ipamDir: join(root, "ipam") }).catch((e: unknown) => {
          if (e instanceof VpfError) throw e;
          throw new PodError("POD_DEVICE_PLUGIN", `the kubelet stand-in of ${opts.vmName} did not start: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        });
        this.#running.set(opts.vmName, started);
        return started;
      });
      this.#nodes.set(opts.vmName, k);
      k.catch(() => this.#nodes.delete(opts.vmName));
    }
    return k;
  }

  /** A VM's pods, if its kubelet runs (for status, which answers at once). */
  podsOf(vmName: string): Pod[] {
    return this.#running.get(vmName)?.pods() ?? [];
  }

  /** The kubelets started so far. */
  async started(): Promise<NodeKubelet[]> {
    const out: NodeKubelet[] = [];
    for (const p of this.#nodes.values()) {
      const k = await p.catch(() => undefined);
      if (k !== undefined) out.push(k);
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const k of await this.started()) await k.close();
    this.#nodes.clear();
    this.#running.clear();
    const dir = this.#dir;
    if (dir !== undefined) await rm(await dir, { recursive: true, force: true });
  }
}
