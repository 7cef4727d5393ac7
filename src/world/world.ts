/**
 * A live world built from a topology: per host an emulated NIC and the host OS facade; per VM a
 * hypervisor VM with a virtual PF backed by a vhost-vdpa device on one host VF and a pool of
 * host VFs for its virtual VFs, running the model guest kernel; external hosts on the wire.
 *
 * The world is set up the way an operator sets up a host for the paper's method: host VFs are
 * created through sriov_numvfs, turned into vDPA devices with `vdpa dev add`, and handed to the
 * hypervisor as backends (DESIGN.md §1). Commands reach nodes through `exec`, as a user's shell
 * would run them there.
 */
import { VirtualClock, NS_PER_MS } from "../base/clock.js";
import { VpfError } from "../base/errors.js";
import { Nic } from "../nic/index.js";
import { Host, runCommand } from "../host/index.js";
import { Vm } from "../vmm/vm.js";
import type { Vpf } from "../vmm/vpf.js";
import { BackendPool } from "../vmm/pool.js";
import { hostBackend } from "../vmm/host-adapter.js";
import type { VfBackend } from "../vmm/host-adapter.js";
import type { VmPolicy } from "../vmm/policy.js";
import { GuestKernel } from "../guest/index.js";
import { startLinuxOnVm } from "../linux/index.js";
import type { LinuxGuest } from "../linux/index.js";
import type { ExecResult, WorldService } from "./daemon.js";
import type { Topology, VmSpec, ExternalSpec, HostSpec } from "./topology.js";
import { parseCommandLine, argvToCommandLine, ShellSyntaxError } from "./shell.js";
import type { SimpleCommand } from "./shell.js";
import { ExternalHost } from "./external.js";
import { runGuestCommand } from "./guest-tools.js";
import { runHostCommand } from "./host-tools.js";
import { WorldKubelets } from "./kubelet.js";
import type { NodeKubelet } from "./kubelet.js";
import type { VpfctlContext } from "./pods.js";

export class WorldError extends VpfError {}

export interface HostNode {
  readonly kind: "host";
  readonly spec: HostSpec;
  readonly nic: Nic;
  readonly host: Host;
  readonly pools: Map<string, BackendPool<VfBackend>>;
  /** vDPA device name → host VF index (per port), for status. */
  readonly vdpa: Map<string, { port: number; vf: number; use: string }>;
}

export interface VmNode {
  readonly kind: "vm";
  readonly spec: VmSpec;
  readonly hostNode: HostNode;
  readonly vm: Vm;
  readonly vpf: Vpf;
  readonly kernel: GuestKernel;
  readonly pool: BackendPool<VfBackend>;
}

/** A VM running a real Linux kernel (v86); its shell is reached through the serial console. */
export interface LinuxVmNode {
  readonly kind: "linux-vm";
  readonly spec: VmSpec;
  readonly hostNode: HostNode;
  readonly vm: Vm;
  readonly vpf: Vpf;
  readonly linux: LinuxGuest;
  readonly pool: BackendPool<VfBackend>;
}

export interface ExternalNode {
  readonly kind: "external";
  readonly spec: ExternalSpec;
  readonly ext: ExternalHost;
}

export type WorldNode = HostNode | VmNode | LinuxVmNode | ExternalNode;

export interface WorldStatus {
  readonly topology: string;
  readonly virtualTimeNs: string;
  readonly hosts: readonly {
    readonly name: string;
    readonly pfs: readonly { readonly ifname: string; readonly numVfs: number; readonly totalVfs: number }[];
    readonly pools: readonly { readonly name: string; readonly capacity: number; readonly available: number; readonly holders: Record<string, number> }[];
    readonly vfs: readonly { readonly pf: string; readonly vf: number; readonly pci: string; readonly vdpa: string; readonly use: string; readonly heldBy: string }[];
  }[];
  readonly vms: readonly {
    readonly name: string;
    readonly host: string;
    readonly guest: string;
    readonly state: string;
    readonly numVfs: number;
    readonly totalVfs: number;
    readonly boundVfs: number;
    readonly netdevs: readonly string[];
    /** Pods run by the VM's kubelet stand-in (`vpfctl pod add`), each with its VF. */
    readonly pods: readonly { readonly name: string; readonly vf: string; readonly vlan: number; readonly ip: string }[];
  }[];
  readonly externals: readonly { readonly name: string; readonly host: string; readonly port: number; readonly ipv4: string; readonly vlan: number | null }[];
}

/** Two MAC octets per index, below a prefix, as `aa:bb:...`. */
function macFrom(prefix: string, n: number): string {
  const octets = prefix.split(":");
  while (octets.length < 4) octets.push("00");
  octets.push(((n >> 8) & 255).toString(16).padStart(2, "0"), (n & 255).toString(16).padStart(2, "0"));
  return octets.slice(0, 6).join(":");
}

/** The topology's VM policy in the hypervisor's terms. */
export function vmPolicy(spec: VmSpec): VmPolicy {
  const vlan: VmPolicy["vlan"] =
    spec.vlan.mode === "qinq"
      ? { mode: "qinq", outerVid: spec.vlan.outer }
      : spec.vlan.allow.length === 0
        ? { mode: "allow-list", allowed: [0] }
        : { mode: "allow-list", allowed: [...spec.vlan.allow] };
  const prefix = spec.macPrefix === undefined ? undefined : `${macFrom(spec.macPrefix, 0).split(":").slice(0, 6).join(":")}/${spec.macPrefix.split(":").length * 8}`;
  return {
    vlan,
    allowSpoofchkOff: spec.allowSpoofchkOff,
    allowTrust: spec.allowTrust,
    ...(prefix === undefined ? {} : { macPrefix: prefix }),
    ...(spec.maxTxRateMbps === 0 ? {} : { maxTxRateMbps: spec.maxTxRateMbps }),
  };
}

export class World implements WorldService {
  readonly clock = new VirtualClock();
  readonly nodes = new Map<string, WorldNode>();
  /** Pod networks and the kubelet stand-ins of model-guest VMs (started on first `vpfctl`). */
  readonly kube = new WorldKubelets();
  #closed = false;

  private constructor(readonly topology: Topology) {}

  /** Builds a world whose guests are all model guests (no real kernel to boot). */
  static create(topology: Topology): World {
    const w = new World(topology);
    const linux = topology.hosts.flatMap((h) => h.vms).find((v) => v.guest === "linux");
    if (linux !== undefined) throw new WorldError("WORLD_GUEST_UNSUPPORTED", `VM ${linux.name} runs a real Linux guest: build this world with createWorld()`);
    topology.hosts.forEach((h, hi) => w.#buildHost(h, hi));
    for (const e of topology.externals) w.#buildExternal(e);
    return w;
  }

  /** Builds a world; VMs with `guest: linux` boot a real kernel in v86 (seconds, or a snapshot). */
  static async build(topology: Topology): Promise<World> {
    const w = new World(topology);
    topology.hosts.forEach((h, hi) => w.#buildHost(h, hi));
    for (const e of topology.externals) w.#buildExternal(e);
    try {
      for (const [name, pending] of w.#pendingLinux) {
        const linux = await startLinuxOnVm(pending.vm);
        w.nodes.set(name, { ...pending, kind: "linux-vm", linux });
      }
    } catch (e) {
      await w.close();
      throw e;
    }
    w.#pendingLinux.clear();
    return w;
  }

  readonly #pendingLinux = new Map<string, Omit<LinuxVmNode, "kind" | "linux">>();

  #sh(host: Host, line: string): void {
    const r = runCommand(host, line);
    if (r.status !== 0) throw new WorldError("WORLD_SETUP", `setting up the host failed at '${line}': ${r.stderr.trim()}`);
  }

  #buildHost(spec: HostSpec, hostIndex: number): void {
    const nic = new Nic({ clock: this.clock, ports: spec.nic.ports, totalVfs: spec.nic.totalVfs });
    const host = new Host(nic);
    const node: HostNode = { kind: "host", spec, nic, host, pools: new Map(), vdpa: new Map() };
    this.nodes.set(spec.name, node);

    // Which port each pool lives on: the port of the first VM that draws from it.
    const poolPort = new Map<string, number>();
    for (const vm of spec.vms) if (!poolPort.has(vm.pool)) poolPort.set(vm.pool, vm.port);
    const needed = Array.from({ length: spec.nic.ports }, () => 0);
    for (const vm of spec.vms) needed[vm.port] = (needed[vm.port] ?? 0) + 1;
    for (const p of spec.pools) {
      const port = poolPort.get(p.name) ?? 0;
      needed[port] = (needed[port] ?? 0) + p.size;
    }
    needed.forEach((n, port) => {
      if (n > 0) this.#sh(host, `echo ${n} > /sys/class/net/${host.pfName(port)}/device/sriov_numvfs`);
    });

    const nextVf = Array.from({ length: spec.nic.ports }, () => 0);
    const addVdpa = (port: number, name: string, mac: string, use: string): VfBackend => {
      const vf = nextVf[port] ?? 0;
      nextVf[port] = vf + 1;
      const bdf = nic.port(port).vfAddress(vf).toString();
      this.#sh(host, `vdpa dev add name ${name} mgmtdev pci/${bdf} mac ${mac}`);
      node.vdpa.set(name, { port, vf, use });
      return hostBackend(host, name);
    };
    const hostPrefix = `02:${(hostIndex & 255).toString(16).padStart(2, "0")}:00:00`;
    spec.pools.forEach((p, pi) => {
      const port = poolPort.get(p.name) ?? 0;
      const backends: VfBackend[] = [];
      for (let i = 0; i < p.size; i++) backends.push(addVdpa(port, `${p.name}-${i}`, macFrom(hostPrefix, 0x1000 + pi * 256 + i), `pool ${p.name}`));
      node.pools.set(p.name, new BackendPool(p.name, backends));
    });
    spec.vms.forEach((v, vi) => {
      const vpfMac = macFrom(v.macPrefix ?? hostPrefix, 0xff00 + vi);
      const backend = addVdpa(v.port, `${v.name}-vpf`, vpfMac, `vPF of ${v.name}`);
      const pool = node.pools.get(v.pool);
      if (pool === undefined) throw new WorldError("WORLD_SETUP", `VM ${v.name}: no pool ${v.pool}`);
      const vm = new Vm({ name: v.name, memory: v.memoryMiB * 1024 * 1024 });
      const vpf = vm.addVpf({ backend, pool, policy: vmPolicy(v), quota: v.quota });
      vm.start();
      if (v.guest === "linux") {
        this.#pendingLinux.set(v.name, { spec: v, hostNode: node, vm, vpf, pool });
        return;
      }
      const kernel = GuestKernel.boot({ platform: vm, memory: vm.memory });
      this.nodes.set(v.name, { kind: "vm", spec: v, hostNode: node, vm, vpf, kernel, pool });
    });
  }

  #buildExternal(spec: ExternalSpec): void {
    const h = this.nodes.get(spec.host);
    if (h?.kind !== "host") throw new WorldError("WORLD_SETUP", `external ${spec.name}: no host ${spec.host}`);
    const ext = new ExternalHost(spec, h.nic.port(spec.port).uplink);
    this.nodes.set(spec.name, { kind: "external", spec, ext });
  }

  /** Lets every guest reap its rings and the clock move, until nothing more happens. */
  settle(rounds = 8): void {
    for (let i = 0; i < rounds; i++) {
      let work = 0;
      for (const n of this.nodes.values()) if (n.kind === "vm") work += n.kernel.poll();
      this.clock.advance(NS_PER_MS);
      if (work === 0 && i > 0) break;
    }
  }

  node(name: string): WorldNode {
    const n = this.nodes.get(name);
    if (n === undefined) throw new WorldError("WORLD_NO_NODE", `no node named '${name}' (nodes: ${[...this.nodes.keys()].join(", ")})`);
    return n;
  }

  async exec(nodeName: string, argv: readonly string[]): Promise<ExecResult> {
    if (this.#closed) throw new WorldError("WORLD_CLOSED", "the world is shutting down");
    const node = this.node(nodeName);
    let commands: SimpleCommand[];
    try {
      commands = parseCommandLine(argvToCommandLine(argv));
    } catch (e) {
      if (e instanceof ShellSyntaxError) return { stdout: "", stderr: `sh: ${e.message}\n`, exitCode: 2 };
      throw e;
    }
    let stdout = "";
    let stderr = "";
    let exitCode = 0;
    for (const c of commands) {
      const r = await this.#run(node, c);
      stdout += r.stdout;
      stderr += r.stderr;
      exitCode = r.exitCode;
    }
    return { stdout, stderr, exitCode };
  }

  async #run(node: WorldNode, c: SimpleCommand): Promise<ExecResult> {
    switch (node.kind) {
      case "linux-vm": {
        // The real kernel's busybox shell parses the line itself (redirections included).
        const line = c.argv.join(" ").concat(c.redirect === undefined ? "" : ` ${c.redirect.append ? ">>" : ">"} ${c.redirect.path}`);
        const r = await node.linux.run(line);
        return { stdout: r.output, stderr: "", exitCode: r.status };
      }
      case "vm":
        return runGuestCommand(this, node, c);
      case "host":
        return runHostCommand(this, node, c);
      case "external":
        return node.ext.run(this, c);
    }
  }

  /** The kubelet stand-in of a model-guest VM, started on first use. */
  kubelet(vmName: string): Promise<NodeKubelet> {
    const n = this.node(vmName);
    if (n.kind !== "vm") return Promise.reject(new WorldError("WORLD_GUEST_UNSUPPORTED", `${vmName} is not a model-guest VM: pods run in model-guest VMs`));
    const all = this.topology.hosts.flatMap((h) => h.vms);
    const ordinal = all.indexOf(n.spec);
    const k = n.kernel;
    const pf = k.sysfsList("/sys/bus/pci/devices").find((d) => {
      try {
        k.sysfsRead(`/sys/bus/pci/devices/${d}/sriov_totalvfs`);
        return true;
      } catch {
        return false;
      }
    });
    if (pf === undefined) return Promise.reject(new WorldError("WORLD_SETUP", `${vmName}: the guest sees no SR-IOV capable function`));
    return this.kube.node({
      vmName,
      kernel: k,
      pfAddress: pf,
      macPrefix: n.spec.macPrefix ?? `02:a0:${(ordinal & 255).toString(16).padStart(2, "0")}:00`,
      settle: () => this.settle(2),
    });
  }

  /** What `vpfctl` in a VM works with. */
  vpfctlContext(vmName: string): VpfctlContext {
    return {
      networks: this.kube.networks,
      podsUsing: async (network) => (await this.kube.started()).flatMap((k) => k.pods().filter((p) => p.network === network).map((p) => `${k.vmName}/${p.name}`)),
      kubelet: () => this.kubelet(vmName),
    };
  }

  status(): WorldStatus {
    const hosts: WorldStatus["hosts"][number][] = [];
    const vms: WorldStatus["vms"][number][] = [];
    const externals: WorldStatus["externals"][number][] = [];
    for (const n of this.nodes.values()) {
      if (n.kind === "host") {
        const holderOf = new Map<string, string>();
        for (const pool of n.pools.values()) {
          for (const vm of this.nodes.values()) {
            if ((vm.kind !== "vm" && vm.kind !== "linux-vm") || vm.pool !== pool) continue;
            const podOf = new Map(this.kube.podsOf(vm.spec.name).map((p) => [vvfNumber(p.deviceId), p.name]));
            for (let i = 1; i <= vm.vpf.boundVfs; i++) {
              const b = vm.vpf.vvfBackend(i);
              const pod = podOf.get(i);
              if (b !== undefined) holderOf.set(b.name, `${vm.spec.name} vVF ${i}${pod === undefined ? "" : ` (pod ${pod})`}`);
            }
          }
        }
        for (const vm of this.nodes.values()) if ((vm.kind === "vm" || vm.kind === "linux-vm") && vm.hostNode === n) holderOf.set(vm.vpf.backend.name, `${vm.spec.name} vPF`);
        hosts.push({
          name: n.spec.name,
          pfs: n.host.pfNames().map((ifname) => ({ ifname, numVfs: n.host.sriovNumVfs(ifname), totalVfs: n.host.sriovTotalVfs(ifname) })),
          pools: [...n.pools.values()].map((p) => ({ name: p.name, capacity: p.capacity, available: p.available, holders: Object.fromEntries(p.holdings()) })),
          vfs: [...n.vdpa.entries()].map(([vdpa, v]) => ({
            pf: n.host.pfName(v.port),
            vf: v.vf,
            pci: n.nic.port(v.port).vfAddress(v.vf).toString(),
            vdpa,
            use: v.use,
            heldBy: holderOf.get(vdpa) ?? "-",
          })),
        });
      } else if (n.kind === "vm" || n.kind === "linux-vm") {
        vms.push({
          name: n.spec.name,
          host: n.hostNode.spec.name,
          guest: n.spec.guest,
          state: n.vm.state,
          numVfs: n.vpf.sriov?.numVfs ?? 0,
          totalVfs: n.vpf.totalVfs,
          boundVfs: n.vpf.boundVfs,
          netdevs: n.kind === "linux-vm" ? ["(ask the guest: ip link)"] : netdevNames(n.kernel),
          pods: this.kube.podsOf(n.spec.name).map((p) => ({ name: p.name, vf: p.deviceId, vlan: p.vlan, ip: p.ip })),
        });
      } else {
        externals.push({ name: n.spec.name, host: n.spec.host, port: n.spec.port, ipv4: n.spec.ipv4, vlan: n.spec.vlan ?? null });
      }
    }
    return { topology: this.topology.name, virtualTimeNs: String(this.clock.now()), hosts, vms, externals };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.kube.close();
    for (const n of this.nodes.values()) {
      if (n.kind === "vm") {
        n.kernel.shutdown();
        n.vm.stop();
      } else if (n.kind === "linux-vm") {
        await n.linux.shutdown();
        n.vm.stop();
      }
    }
  }
}

/** The vVF number (1-based, as the hypervisor counts) of a VF at `dddd:bb:DD.F` behind PF function 0. */
export function vvfNumber(bdf: string): number {
  const m = /:([0-9a-f]{2})\.([0-7])$/.exec(bdf);
  return m === null ? -1 : Number.parseInt(m[1] ?? "", 16) * 8 + Number(m[2]);
}

function netdevNames(k: GuestKernel): string[] {
  return k.allNetdevs().map((d) => (d.ns === k.initNs ? d.name : `${d.name}@${k.netnsList().find((x) => k.namespace(x) === d.ns) ?? "?"}`));
}

export function createWorld(topology: Topology): Promise<World> {
  return World.build(topology);
}

/** `vpf status` as a table. */
export function formatStatus(s: WorldStatus): string {
  const out: string[] = [`topology ${s.topology}   virtual time ${(Number(BigInt(s.virtualTimeNs) / 1000n) / 1000).toFixed(3)} ms`, ""];
  for (const h of s.hosts) {
    out.push(`host ${h.name}`);
    for (const pf of h.pfs) out.push(`  pf ${pf.ifname}: ${pf.numVfs}/${pf.totalVfs} VFs`);
    for (const p of h.pools) {
      const holders = Object.entries(p.holders).map(([k, v]) => `${k}=${v}`).join(" ");
      out.push(`  pool ${p.name}: ${p.available}/${p.capacity} free${holders === "" ? "" : `  held: ${holders}`}`);
    }
    out.push("  VF  PCI            vDPA              use                 held by");
    for (const v of h.vfs) out.push(`  ${String(v.vf).padEnd(3)} ${v.pci.padEnd(14)} ${v.vdpa.padEnd(17)} ${v.use.padEnd(19)} ${v.heldBy}`);
  }
  out.push("");
  for (const v of s.vms) {
    out.push(`vm ${v.name} (${v.guest} guest on ${v.host}, ${v.state}): vPF ${v.numVfs}/${v.totalVfs} VFs enabled, ${v.boundVfs} bound; netdevs ${v.netdevs.join(" ")}`);
    // Older daemons answer without pods.
    for (const p of v.pods ?? []) out.push(`  pod ${p.name}: VF ${p.vf} vlan ${p.vlan} ${p.ip === "" ? "(no address)" : p.ip}`);
  }
  for (const e of s.externals) out.push(`external ${e.name} on ${e.host} port ${e.port}: ${e.ipv4}${e.vlan === null ? "" : ` vlan ${e.vlan}`}`);
  return `${out.join("\n")}\n`;
}
