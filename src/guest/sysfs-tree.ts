/**
 * The contents of the model guest's sysfs (reference/pci-sriov.md §9), generated from kernel
 * state. Formats follow Linux's show functions: hex IDs with 0x ("0x1af4\n"), class as six hex
 * digits, sriov_vf_device without 0x, decimal counts, netdev flags as "0x%x".
 */
import { sysErr } from "./errors.js";
import type { GuestKernel } from "./kernel.js";
import { ARPHRD_LOOPBACK, type NetDevice, type NetNamespace } from "./netdev.js";
import type { PciDev } from "./pci.js";
import { kstrtobool } from "./pci-core.js";
import { link, memoDir, relativeLink, ro, rw as rwNode, type SysNode, wo as woNode } from "./sysfs.js";
import type { VirtioPciDevice } from "./virtio-pci.js";

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, "0")}\n`;

function macText(m: Uint8Array): string {
  return [...m].map((b) => b.toString(16).padStart(2, "0")).join(":") + "\n";
}

function entries(list: [string, SysNode][]): Map<string, SysNode> {
  return new Map(list);
}

export function buildSysfs(k: GuestKernel, ns: NetNamespace): SysNode {
  const dir = (entries: () => Map<string, SysNode>): SysNode => memoDir(() => k.generation, entries);
  // Every store may reshape the tree (VFs, drivers, netdevs): the generation moves after it too,
  // so a directory read from a uevent listener in the middle of the change is not kept.
  const rw = (read: () => string, write: (data: string) => void): SysNode => rwNode(read, after(write));
  const wo = (write: (data: string) => void): SysNode => woNode(after(write));
  const after =
    (write: (data: string) => void) =>
    (data: string): void => {
      try {
        write(data);
      } finally {
        k.generation++;
      }
    };
  const visible = (nd: NetDevice): boolean => nd.ns === ns;
  const netdevsOfVirtio = (v: VirtioPciDevice): NetDevice[] => {
    const nd = k.virtioNet.instances.get(v)?.netdev;
    return nd !== undefined && visible(nd) ? [nd] : [];
  };

  const netdevDir = (nd: NetDevice, path: string, devicePath: string | undefined): SysNode =>
    dir(() => {
      const e: [string, SysNode][] = [
        ["address", ro(() => macText(nd.mac))],
        ["addr_len", ro(() => "6\n")],
        ["broadcast", ro(() => (nd.type === ARPHRD_LOOPBACK ? "00:00:00:00:00:00\n" : "ff:ff:ff:ff:ff:ff\n"))],
        [
          "carrier",
          ro(() => {
            // carrier_show: -EINVAL unless the device is up (netif_running).
            if (!nd.isUp) throw sysErr("EINVAL");
            return nd.carrier ? "1\n" : "0\n";
          }),
        ],
        ["dev_id", ro(() => "0x0\n")],
        [
          "flags",
          rw(
            () => `0x${nd.flags.toString(16)}\n`,
            (s) => {
              const v = Number.parseInt(s.trim(), s.trim().startsWith("0x") ? 16 : 10);
              if (!Number.isInteger(v) || v < 0) throw sysErr("EINVAL");
              k.setUp(nd, (v & 1) !== 0);
            },
          ),
        ],
        ["ifindex", ro(() => `${nd.ifindex}\n`)],
        ["iflink", ro(() => `${nd.ifindex}\n`)],
        [
          "mtu",
          rw(
            () => `${nd.mtu}\n`,
            (s) => {
              const t = s.endsWith("\n") ? s.slice(0, -1) : s;
              if (!/^\d+$/.test(t)) throw sysErr("EINVAL");
              k.setMtu(nd, Number(t));
            },
          ),
        ],
        ["name_assign_type", ro(() => "1\n")],
        // Drivers without ndo_get_phys_port_* / switchdev answer EOPNOTSUPP (virtio_net has none).
        ["phys_port_id", ro(() => { throw sysErr("EOPNOTSUPP"); })],
        ["phys_port_name", ro(() => { throw sysErr("EOPNOTSUPP"); })],
        ["phys_switch_id", ro(() => { throw sysErr("EOPNOTSUPP"); })],
        [
          "speed",
          ro(() => {
            if (!nd.isUp) throw sysErr("EINVAL");
            return "-1\n"; // SPEED_UNKNOWN: no VIRTIO_NET_F_SPEED_DUPLEX
          }),
        ],
        [
          "duplex",
          ro(() => {
            if (!nd.isUp) throw sysErr("EINVAL");
            return "unknown\n";
          }),
        ],
        ["operstate", ro(() => `${nd.operstateText}\n`)],
        ["type", ro(() => `${nd.type}\n`)],
        ["tx_queue_len", ro(() => "1000\n")],
        ["uevent", ro(() => `INTERFACE=${nd.name}\nIFINDEX=${nd.ifindex}\n`)],
        ["subsystem", link(relativeLink(path, "/sys/class/net"))],
        [
          "statistics",
          dir(() =>
            entries([
              ["rx_packets", ro(() => `${nd.stats.rxPackets}\n`)],
              ["tx_packets", ro(() => `${nd.stats.txPackets}\n`)],
              ["rx_bytes", ro(() => `${nd.stats.rxBytes}\n`)],
              ["tx_bytes", ro(() => `${nd.stats.txBytes}\n`)],
              ["rx_dropped", ro(() => `${nd.stats.rxDropped}\n`)],
              ["tx_dropped", ro(() => `${nd.stats.txDropped}\n`)],
              ["multicast", ro(() => `${nd.stats.multicast}\n`)],
            ]),
          ),
        ],
      ];
      if (devicePath !== undefined) e.push(["device", link(relativeLink(path, devicePath))]);
      return entries(e);
    });

  const virtioDir = (v: VirtioPciDevice, path: string): SysNode =>
    dir(() => {
      const e: [string, SysNode][] = [
        ["device", ro(() => hex4(v.deviceId))],
        ["vendor", ro(() => hex4(v.pci.vendor))],
        ["status", ro(() => `0x${v.status.toString(16).padStart(8, "0")}\n`)],
        [
          "features",
          ro(() => {
            let s = "";
            for (let i = 0; i < 64; i++) s += ((v.features >> BigInt(i)) & 1n) === 1n ? "1" : "0";
            return s + "\n";
          }),
        ],
        ["modalias", ro(() => `virtio:d${v.deviceId.toString(16).toUpperCase().padStart(8, "0")}v${v.pci.vendor.toString(16).toUpperCase().padStart(8, "0")}\n`)],
        ["subsystem", link(relativeLink(path, "/sys/bus/virtio"))],
        ["uevent", ro(() => `DRIVER=${v.driver?.name ?? ""}\nMODALIAS=virtio:d${v.deviceId.toString(16).padStart(8, "0")}v${v.pci.vendor.toString(16).padStart(8, "0")}\n`)],
      ];
      if (v.driver !== undefined) e.push(["driver", link(relativeLink(path, `/sys/bus/virtio/drivers/${v.driver.name}`))]);
      const nds = netdevsOfVirtio(v);
      if (nds.length > 0) {
        e.push(["net", dir(() => entries(nds.map((nd) => [nd.name, netdevDir(nd, `${path}/net/${nd.name}`, path)])))]);
      }
      return entries(e);
    });

  const pciDir = (d: PciDev): SysNode => {
    const path = `/sys/${d.devpath}`;
    return dir(() => {
      const e: [string, SysNode][] = [
        ["vendor", ro(() => hex4(d.vendor))],
        ["device", ro(() => hex4(d.device))],
        ["subsystem_vendor", ro(() => hex4(d.subsystemVendor))],
        ["subsystem_device", ro(() => hex4(d.subsystemDevice))],
        ["class", ro(() => `0x${d.classCode.toString(16).padStart(6, "0")}\n`)],
        ["revision", ro(() => `0x${d.revision.toString(16).padStart(2, "0")}\n`)],
        ["config", ro(() => d.readConfig())],
        ["enable", ro(() => "1\n")],
        ["numa_node", ro(() => "-1\n")],
        ["irq", ro(() => "0\n")],
        ["msi_bus", ro(() => "1\n")],
        ["driver_override", ro(() => "(null)\n")],
        ["uevent", ro(() => `PCI_CLASS=${d.classCode.toString(16).toUpperCase()}\nPCI_ID=${d.vendor.toString(16).toUpperCase().padStart(4, "0")}:${d.device.toString(16).toUpperCase().padStart(4, "0")}\nPCI_SLOT_NAME=${d.name}\n`)],
        ["subsystem", link(relativeLink(path, "/sys/bus/pci"))],
      ];
      const drv = k.pci.bound.get(d);
      if (drv !== undefined) e.push(["driver", link(relativeLink(path, `/sys/bus/pci/drivers/${drv.name}`))]);
      const st = k.pci.sriov.get(d);
      if (st !== undefined) {
        e.push(
          ["sriov_totalvfs", ro(() => `${st.driverMaxVFs}\n`)],
          [
            "sriov_numvfs",
            rw(
              () => `${st.numVFs}\n`,
              (s) => {
                k.pci.sriovNumvfsStore(d, s);
              },
            ),
          ],
          ["sriov_offset", ro(() => `${st.offset}\n`)],
          ["sriov_stride", ro(() => `${st.stride}\n`)],
          ["sriov_vf_device", ro(() => `${st.vfDevice.toString(16)}\n`)],
          [
            "sriov_drivers_autoprobe",
            rw(
              () => `${st.driversAutoprobe ? 1 : 0}\n`,
              (s) => {
                k.pci.sriovAutoprobeStore(d, s);
              },
            ),
          ],
          ["sriov_vf_total_msix", ro(() => "0\n")],
        );
        st.vfs.forEach((vf) => e.push([`virtfn${vf.vfIndex}`, link(relativeLink(path, `/sys/${vf.devpath}`))]));
      }
      if (d.physfn !== undefined) e.push(["physfn", link(relativeLink(path, `/sys/${d.physfn.devpath}`))]);
      for (const c of k.pci.devices) if (c.parent === d) e.push([c.name, pciDir(c)]);
      const v = k.virtioPci.devices.get(d);
      if (v !== undefined) e.push([v.name, virtioDir(v, `${path}/${v.name}`)]);
      // msi_irqs/<irq> reads "msix" for each vector the driver set up.
      if (v !== undefined && v.msix.vectors.length > 0) {
        const vecs = [...v.msix.vectors];
        e.push(["msi_irqs", dir(() => entries(vecs.map((n) => [String(n), ro(() => "msix\n")])))]);
      }
      return entries(e);
    });
  };

  const driverDir = (name: string, bound: () => PciDev[], bind: (d: PciDev) => void, unbind: (d: PciDev) => void): SysNode => {
    const path = `/sys/bus/pci/drivers/${name}`;
    return dir(() => {
      const e: [string, SysNode][] = bound().map((d) => [d.name, link(relativeLink(path, `/sys/${d.devpath}`))]);
      const arg = (s: string): PciDev => {
        const dev = k.pci.find(s.trim());
        if (dev === undefined) throw sysErr("ENODEV");
        return dev;
      };
      e.push(["bind", wo((s) => { bind(arg(s)); })]);
      e.push(["unbind", wo((s) => { unbind(arg(s)); })]);
      return entries(e);
    });
  };

  const pciDriversDir = (): SysNode =>
    dir(() =>
      entries(
        k.pci.drivers.map((drv) => [
          drv.name,
          driverDir(
            drv.name,
            () => k.pci.devices.filter((d) => k.pci.bound.get(d) === drv),
            (d) => {
              if (k.pci.bound.has(d)) throw sysErr("EBUSY");
              if (!drv.match(d)) throw sysErr("ENODEV");
              k.pci.probeDevice(d);
              if (k.pci.bound.get(d) !== drv) throw sysErr("ENODEV");
            },
            (d) => {
              if (k.pci.bound.get(d) !== drv) throw sysErr("ENODEV");
              k.pci.unbind(d);
            },
          ),
        ]),
      ),
    );

  const virtioDevices = (): VirtioPciDevice[] => [...k.virtioPci.devices.values()].sort((a, b) => a.index - b.index);

  const loPath = "/sys/devices/virtual/net/lo";
  const netPathOf = (nd: NetDevice): string => {
    if (nd.type === ARPHRD_LOOPBACK) return loPath;
    return `${nd.parentPath}/net/${nd.name}`;
  };

  return dir(() =>
    entries([
      [
        "devices",
        dir(() =>
          entries([
            ["pci0000:00", dir(() => entries(k.pci.devices.filter((d) => d.parent === undefined).map((d) => [d.name, pciDir(d)])))],
            [
              "virtual",
              dir(() =>
                entries([
                  [
                    "net",
                    dir(() => {
                      const lo = ns.byName("lo");
                      return entries(lo === undefined ? [] : [["lo", netdevDir(lo, loPath, undefined)]]);
                    }),
                  ],
                ]),
              ),
            ],
          ]),
        ),
      ],
      [
        "bus",
        dir(() =>
          entries([
            [
              "pci",
              dir(() =>
                entries([
                  ["devices", dir(() => entries(k.pci.devices.map((d) => [d.name, link(relativeLink("/sys/bus/pci/devices", `/sys/${d.devpath}`))])))],
                  ["drivers", pciDriversDir()],
                  ["drivers_autoprobe", rw(() => "1\n", (s) => { kstrtobool(s); })],
                ]),
              ),
            ],
            [
              "virtio",
              dir(() =>
                entries([
                  ["devices", dir(() => entries(virtioDevices().map((v) => [v.name, link(relativeLink("/sys/bus/virtio/devices", `/sys/${v.pci.devpath}/${v.name}`))])))],
                  [
                    "drivers",
                    dir(() =>
                      entries([
                        [
                          "virtio_net",
                          dir(() =>
                            entries(
                              virtioDevices()
                                .filter((v) => v.driver !== undefined)
                                .map((v) => [v.name, link(relativeLink("/sys/bus/virtio/drivers/virtio_net", `/sys/${v.pci.devpath}/${v.name}`))]),
                            ),
                          ),
                        ],
                      ]),
                    ),
                  ],
                ]),
              ),
            ],
          ]),
        ),
      ],
      [
        "class",
        dir(() =>
          entries([
            ["net", dir(() => entries(ns.list().map((nd) => [nd.name, link(relativeLink("/sys/class/net", netPathOf(nd)))])))],
          ]),
        ),
      ],
    ]),
  );
}
