/**
 * Commands on a host node: the host facade's tools (`ip link` with host VFs, `devlink`, `vdpa`,
 * `cat` and `echo >` on sysfs, from src/host) plus `tcpdump` on NIC ports. Port names for
 * tcpdump: `p<N>` is the uplink (the wire) of port N, the PF netdev name (e.g. enp59s0f0np0) is
 * the PF's own eswitch port, and `pf<N>vf<M>` is VF M of port N (mlx5's phys_port_name style).
 */
import { runCommand } from "../host/index.js";
import type { EswitchPort } from "../nic/index.js";
import type { ExecResult } from "./daemon.js";
import type { SimpleCommand } from "./shell.js";
import type { HostNode, World } from "./world.js";
import { capture, parseTcpdumpArgs } from "./tcpdump.js";

function portByName(node: HostNode, name: string): EswitchPort | undefined {
  for (let p = 0; p < node.nic.ports.length; p++) {
    const port = node.nic.port(p);
    if (name === `p${p}`) return port.uplink;
    if (name === node.host.pfName(p)) return port.pf;
    const m = /^pf(\d+)vf(\d+)$/.exec(name);
    if (m !== null && Number(m[1]) === p) return port.vfs[Number(m[2])];
  }
  return undefined;
}

export async function runHostCommand(world: World, node: HostNode, c: SimpleCommand): Promise<ExecResult> {
  const [tool, ...args] = c.argv;
  if (tool === "tcpdump") {
    const a = parseTcpdumpArgs(args);
    if (typeof a === "string") return { stdout: "", stderr: `${a}\n`, exitCode: 1 };
    const name = a.iface ?? "p0";
    const port = portByName(node, name);
    if (port === undefined) return { stdout: "", stderr: `tcpdump: ${name}: No such device exists\n(ports: p0, ${node.host.pfName(0)}, pf0vf0 ...)\n`, exitCode: 1 };
    return capture(world.clock, a, name, (onFrame) => port.addTap({ capture: (f) => onFrame(f) }));
  }
  if (tool === "ls") {
    return { stdout: "", stderr: "sh: ls: the host node has ip, devlink, vdpa, cat, echo and tcpdump\n", exitCode: 127 };
  }
  const argv = c.redirect === undefined ? c.argv : [...c.argv, ">", c.redirect.path];
  const r = runCommand(node.host, argv);
  // Host commands may change VF state that guests see (link state, rates): let the world settle.
  world.settle(2);
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.status };
}
