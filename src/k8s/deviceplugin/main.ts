#!/usr/bin/env node
/**
 * vpf-device-plugin: the SR-IOV network device plugin for a guest. Reads the resource pools,
 * discovers VFs in the guest's sysfs (through the guest endpoint, or a sysfs tree on disk),
 * serves one Device Plugin API socket per pool and registers each with the kubelet; then rescans
 * every --rescan-ms and, whenever the kubelet's socket is re-created (a kubelet restart wipes the
 * plugin sockets and the registrations), listens and registers again. See docs/k8s.md.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { VpfError } from "../../base/index.js";
import { K8sError } from "../errors.js";
import { GuestEndpointClient } from "../endpoint.js";
import { DirSysfs, type SysfsReader } from "../sysfs.js";
import { DEVICE_PLUGIN_DIR, KUBELET_SOCKET } from "./api.js";
import { DEFAULT_RESOURCE_PREFIX, parseDevicePluginConfig } from "./config.js";
import { DEVINFO_DIR, SriovDevicePlugin } from "./plugin.js";

const { values } = parseArgs({
  options: {
    "config-file": { type: "string", default: "/etc/pcidp/config.json" },
    "resource-prefix": { type: "string", default: DEFAULT_RESOURCE_PREFIX },
    "device-plugin-dir": { type: "string", default: DEVICE_PLUGIN_DIR },
    "devinfo-dir": { type: "string", default: DEVINFO_DIR },
    "guest-endpoint": { type: "string" },
    "sysfs-root": { type: "string", default: "/" },
    "rescan-ms": { type: "string", default: "5000" },
  },
  strict: true,
});

function die(e: unknown): never {
  const code = e instanceof VpfError ? e.code : "ERROR";
  process.stderr.write(`vpf-device-plugin: ${code}: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}

async function kubeletInode(dir: string): Promise<number | undefined> {
  try {
    return (await stat(join(dir, KUBELET_SOCKET))).ino;
  } catch {
    return undefined;
  }
}

// Signals are caught from the start: a SIGTERM that arrives while registering still ends the
// plugin cleanly (sockets removed), after start() has finished.
let shutdown: (() => void) | undefined;
let stopping = false;
const onSignal = (): void => {
  stopping = true;
  shutdown?.();
};
process.once("SIGTERM", onSignal);
process.once("SIGINT", onSignal);

try {
  const config = parseDevicePluginConfig(await readFile(values["config-file"], "utf8"), values["resource-prefix"]);
  const rescanMs = Number(values["rescan-ms"]);
  if (!Number.isInteger(rescanMs) || rescanMs < 10) throw new K8sError("K8S_BAD_CONFIG", "--rescan-ms must be an integer >= 10");
  const endpoint = values["guest-endpoint"];
  const sysfs: SysfsReader = endpoint === undefined ? new DirSysfs(values["sysfs-root"]) : await GuestEndpointClient.connect(endpoint);
  const pluginDir = values["device-plugin-dir"];
  const plugin = new SriovDevicePlugin({ sysfs, config, pluginDir, devInfoDir: values["devinfo-dir"] });
  await plugin.start();
  process.stderr.write(`vpf-device-plugin: registered ${plugin.servers.map((s) => `${s.resourceName} (${s.devices.length})`).join(", ")}\n`);
  let inode = await kubeletInode(pluginDir);
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      try {
        await plugin.rescan();
        // A new kubelet socket, or one of ours gone (inode numbers are reused, so both count).
        const now = await kubeletInode(pluginDir);
        const ours = await Promise.all(plugin.servers.map((s) => stat(s.socketPath).then(() => true, () => false)));
        if (now !== undefined && (now !== inode || ours.includes(false))) {
          await plugin.restart();
          inode = now;
        }
      } catch (e) {
        process.stderr.write(`vpf-device-plugin: ${e instanceof Error ? e.message : String(e)}\n`);
      } finally {
        busy = false;
      }
    })();
  }, rescanMs);
  shutdown = (): void => {
    shutdown = undefined;
    clearInterval(timer);
    void plugin.stop().then(() => {
      if (sysfs instanceof GuestEndpointClient) sysfs.close();
    });
  };
  if (stopping) shutdown();
} catch (e) {
  die(e);
}
