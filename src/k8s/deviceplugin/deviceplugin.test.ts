import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { FakeGuestKernel } from "../fake-kernel.js";
import { GuestEndpointClient, serveGuestEndpoint } from "../endpoint.js";
import { K8sError } from "../errors.js";
import { parseDevicePluginConfig, parsePfName, resourceEnvName } from "./config.js";
import { assignPools, discoverNetDevices } from "./discovery.js";
import { SriovDevicePlugin } from "./plugin.js";
import { KubeletStandIn } from "./kubelet.js";
import type { ListAndWatchResponse } from "./api.js";

const PF = "0000:00:04.0";

async function kernelWithVfs(n: number): Promise<FakeGuestKernel> {
  const k = new FakeGuestKernel([{ bdf: PF, totalVfs: 8 }, { bdf: "0000:00:05.0", totalVfs: 4 }]);
  if (n > 0) await k.sysfs.writeFile(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, `${n}\n`);
  return k;
}

test("discovery sees virtio VFs with PF name through the virtio nesting and skips PFs with VFs", async () => {
  const k = await kernelWithVfs(3);
  const devs = await discoverNetDevices(k.sysfs);
  const ids = devs.map((d) => d.bdf);
  assert.deepEqual(ids, ["0000:00:04.1", "0000:00:04.2", "0000:00:04.3", "0000:00:05.0"]);
  const vf1 = devs.find((d) => d.bdf === "0000:00:04.2")!;
  assert.equal(vf1.pf, PF);
  assert.equal(vf1.vfIndex, 1);
  assert.deepEqual(vf1.pfNetdevs, ["eth0"]);
  assert.equal(vf1.vendor, "1af4");
  assert.equal(vf1.device, "1041");
  assert.equal(vf1.driver, "virtio-pci");
  assert.equal(vf1.linkType, "ether");
  assert.equal(vf1.netdevs.length, 1);
});

test("selectors: vendors/devices/drivers/pciAddresses/rootDevices/pfNames ranges, first pool wins", async () => {
  const k = await kernelWithVfs(4);
  const cfg = parseDevicePluginConfig(JSON.stringify({
    resourceList: [
      { resourceName: "low", selectors: { pfNames: ["eth0#0-1"] } },
      { resourceName: "virtio", selectors: [{ vendors: ["1af4"], devices: ["1041"], drivers: ["virtio-pci"], rootDevices: [PF] }] },
      { resourceName: "byaddr", resourcePrefix: "vpf.dev", selectors: { pciAddresses: ["0000:00:05.0"] } },
      { resourceName: "never", selectors: { linkTypes: ["infiniband"] } },
    ],
  }));
  const pools = assignPools(cfg.resourceList, await discoverNetDevices(k.sysfs));
  const names = (n: string): string[] => [...pools.entries()].find(([p]) => p.resourceName === n)![1].map((d) => d.bdf);
  assert.deepEqual(names("low"), ["0000:00:04.1", "0000:00:04.2"]);
  assert.deepEqual(names("virtio"), ["0000:00:04.3", "0000:00:04.4"]);
  assert.deepEqual(names("byaddr"), ["0000:00:05.0"]);
  assert.deepEqual(names("never"), []);
});

test("config parser: env names, ranges and clear refusals", () => {
  assert.equal(resourceEnvName("intel.com", "sriov_netdevice"), "PCIDEVICE_INTEL_COM_SRIOV_NETDEVICE");
  assert.deepEqual([...parsePfName("eth1#0,2-3").vfIndexes!].sort(), [0, 2, 3]);
  for (const bad of ["", "[]", "{}", '{"resourceList":[{}]}', '{"resourceList":[{"resourceName":"a-b"}]}',
    '{"resourceList":[{"resourceName":"a","deviceType":"accelerator"}]}', '{"resourceList":[{"resourceName":"a","selectors":{"vendors":["xyz"]}}]}',
    '{"resourceList":[{"resourceName":"a","selectors":{"pfNames":["eth0#3-1"]}}]}', '{"resourceList":[{"resourceName":"a"},{"resourceName":"a"}]}',
    '{"resourceList":[{"resourceName":"a","selectors":{"acpiIndexes":["1"]}}]}']) {
    assert.throws(() => parseDevicePluginConfig(bad), (e: unknown) => e instanceof K8sError && e.code === "K8S_BAD_CONFIG", bad);
  }
});

test("config parser: arbitrary JSON is accepted or refused with K8S_BAD_CONFIG, never another exception", () => {
  fc.assert(
    fc.property(fc.oneof(fc.json(), fc.jsonValue().map((v) => JSON.stringify({ resourceList: [v] })), fc.string()), (text) => {
      try {
        parseDevicePluginConfig(text);
      } catch (e) {
        assert.ok(e instanceof K8sError && e.code === "K8S_BAD_CONFIG", String(e));
      }
    }),
    { numRuns: 300 },
  );
});

test("kubelet stand-in: registration, ListAndWatch updates as VFs appear and vanish, Allocate env and device-info file", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "vpf-dp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const k = await kernelWithVfs(0);
  // Discovery runs over the guest endpoint, as the plugin does against a guest.
  const ep = await serveGuestEndpoint(join(dir, "guest.sock"), k);
  t.after(() => ep.close());
  const sysfs = await GuestEndpointClient.connect(ep.path);
  t.after(() => sysfs.close());
  const kubelet = new KubeletStandIn(dir);
  await kubelet.start();
  t.after(() => kubelet.stop());
  const config = parseDevicePluginConfig(JSON.stringify({ resourceList: [{ resourceName: "sriov_netdevice", selectors: { pfNames: ["eth0"] } }] }));
  const plugin = new SriovDevicePlugin({ sysfs, config, pluginDir: dir, devInfoDir: join(dir, "devinfo") });
  await plugin.start();
  t.after(() => plugin.stop());
  assert.equal(kubelet.registrations.length, 1);
  assert.deepEqual(kubelet.registrations[0], {
    version: "v1beta1", endpoint: "intel.com_sriov_netdevice.sock", resource_name: "intel.com/sriov_netdevice",
    options: { pre_start_required: false, get_preferred_allocation_available: true },
  });

  const client = kubelet.connect("intel.com/sriov_netdevice");
  t.after(() => client.close());
  assert.deepEqual(await client.getDevicePluginOptions(), { pre_start_required: false, get_preferred_allocation_available: true });
  const lists: ListAndWatchResponse[] = [];
  let wake: (() => void) | undefined;
  const cancel = client.listAndWatch((r) => {
    lists.push(r);
    wake?.();
  });
  t.after(cancel);
  const next = async (n: number): Promise<ListAndWatchResponse> => {
    while (lists.length < n) await new Promise<void>((r) => (wake = r));
    return lists[n - 1]!;
  };
  assert.deepEqual((await next(1)).devices, []);

  await k.sysfs.writeFile(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, "2");
  assert.deepEqual(await plugin.rescan(), ["intel.com/sriov_netdevice"]);
  assert.deepEqual((await next(2)).devices.map((d) => [d.ID, d.health]), [["0000:00:04.1", "Healthy"], ["0000:00:04.2", "Healthy"]]);
  assert.deepEqual(await plugin.rescan(), [], "no change, no update");

  const pref = await client.getPreferredAllocation({ container_requests: [{ available_deviceIDs: ["0000:00:04.2", "0000:00:04.1"], must_include_deviceIDs: [], allocation_size: 1 }] });
  assert.deepEqual(pref.container_responses[0]!.deviceIDs, ["0000:00:04.1"]);

  const alloc = await client.allocate({ container_requests: [{ devices_ids: ["0000:00:04.2"] }] });
  const envs = alloc.container_responses[0]!.envs;
  assert.equal(envs.PCIDEVICE_INTEL_COM_SRIOV_NETDEVICE, "0000:00:04.2");
  assert.deepEqual(JSON.parse(envs.PCIDEVICE_INTEL_COM_SRIOV_NETDEVICE_INFO!), { "0000:00:04.2": { generic: { deviceID: "0000:00:04.2" } } });
  const info: unknown = JSON.parse(await readFile(join(dir, "devinfo", "intel.com-sriov_netdevice-0000:00:04.2-device.json"), "utf8"));
  assert.deepEqual(info, { type: "pci", version: "1.1.0", pci: { "pci-address": "0000:00:04.2", "pf-pci-address": PF } });
  await assert.rejects(client.allocate({ container_requests: [{ devices_ids: ["0000:00:09.0"] }] }), /has no device/);
  assert.deepEqual(await client.preStartContainer({ devices_ids: ["0000:00:04.2"] }), {});

  await k.sysfs.writeFile(`/sys/bus/pci/devices/${PF}/sriov_numvfs`, "0");
  await plugin.rescan();
  assert.deepEqual((await next(3)).devices, []);
  assert.deepEqual(await readdir(join(dir, "devinfo")), [], "device-info files of vanished VFs are removed");
});

test("kubelet stand-in refuses a second registration of the same resource", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "vpf-dp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const k = await kernelWithVfs(1);
  const kubelet = new KubeletStandIn(dir);
  await kubelet.start();
  t.after(() => kubelet.stop());
  const config = parseDevicePluginConfig('{"resourceList":[{"resourceName":"a"}]}');
  const p1 = new SriovDevicePlugin({ sysfs: k.sysfs, config, pluginDir: dir, devInfoDir: join(dir, "di") });
  await p1.start();
  t.after(() => p1.stop());
  const p2 = new SriovDevicePlugin({ sysfs: k.sysfs, config: parseDevicePluginConfig('{"resourceList":[{"resourceName":"a","resourcePrefix":"intel.com"}]}'), pluginDir: join(dir, "x"), devInfoDir: join(dir, "di") });
  await assert.rejects(p2.register(), (e: unknown) => e instanceof K8sError && e.code === "K8S_DEVICE_PLUGIN");
});

test("the vpf-device-plugin executable registers with the kubelet over the guest endpoint and stops on SIGTERM", { timeout: 30_000 }, async (t) => {
  const { spawn } = await import("node:child_process");
  const { writeFile } = await import("node:fs/promises");
  const { existsSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  const dir = await mkdtemp(join(tmpdir(), "vpf-dp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const k = await kernelWithVfs(3);
  const ep = await serveGuestEndpoint(join(dir, "guest.sock"), k);
  t.after(() => ep.close());
  const kubelet = new KubeletStandIn(dir);
  await kubelet.start();
  t.after(() => kubelet.stop());
  await writeFile(join(dir, "config.json"), JSON.stringify({ resourceList: [{ resourceName: "vf", selectors: { rootDevices: [PF] } }] }));
  const js = fileURLToPath(new URL("./main.js", import.meta.url));
  const args = existsSync(js) ? [js] : ["--import", "tsx", fileURLToPath(new URL("./main.ts", import.meta.url))];
  const child = spawn(process.execPath, [...args, "--config-file", join(dir, "config.json"), "--device-plugin-dir", dir, "--devinfo-dir", join(dir, "di"), "--guest-endpoint", ep.path, "--rescan-ms", "50"], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  await kubelet.waitForRegistrations(1);
  assert.equal(kubelet.registrations[0]!.resource_name, "intel.com/vf");
  const client = kubelet.connect("intel.com/vf");
  const first = await new Promise<ListAndWatchResponse>((resolve) => {
    const cancel = client.listAndWatch((r) => {
      cancel();
      resolve(r);
    });
  });
  client.close();
  assert.deepEqual(first.devices.map((d) => d.ID), ["0000:00:04.1", "0000:00:04.2", "0000:00:04.3"]);
  // A kubelet restart: its socket is re-created and every plugin socket is wiped.
  await kubelet.stop();
  const { unlink } = await import("node:fs/promises");
  await unlink(join(dir, "intel.com_vf.sock"));
  const kubelet2 = new KubeletStandIn(dir);
  await kubelet2.start();
  t.after(() => kubelet2.stop());
  await kubelet2.waitForRegistrations(1);
  const client2 = kubelet2.connect("intel.com/vf");
  assert.deepEqual(await client2.getDevicePluginOptions(), { pre_start_required: false, get_preferred_allocation_available: true });
  client2.close();
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
});

test("GetPreferredAllocation keeps must-include devices, prefers their PF, and Allocate refuses unknown IDs", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "vpf-dp-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const k = await kernelWithVfs(3);
  await k.sysfs.writeFile("/sys/bus/pci/devices/0000:00:05.0/sriov_numvfs", "2");
  const config = parseDevicePluginConfig('{"resourceList":[{"resourceName":"all"}]}');
  const plugin = new SriovDevicePlugin({ sysfs: k.sysfs, config, pluginDir: dir, devInfoDir: join(dir, "di") });
  await plugin.rescan();
  const s = plugin.server("intel.com/all")!;
  const ids = s.list().map((d) => d.ID);
  assert.deepEqual(ids, ["0000:00:04.1", "0000:00:04.2", "0000:00:04.3", "0000:00:05.1", "0000:00:05.2"]);
  const r = s.preferredAllocation({ container_requests: [{ available_deviceIDs: ids, must_include_deviceIDs: ["0000:00:05.2"], allocation_size: 2 }] });
  assert.deepEqual(r.container_responses[0]!.deviceIDs, ["0000:00:05.2", "0000:00:05.1"]);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.string({ maxLength: 70 }), { minLength: 1, maxLength: 4 }), async (req) => {
      if (req.every((x) => ids.includes(x))) return;
      await assert.rejects(s.allocate({ container_requests: [{ devices_ids: req }] }), (e: unknown) => e instanceof K8sError && e.code === "K8S_DEVICE_PLUGIN");
    }),
    { numRuns: 100 },
  );
});
