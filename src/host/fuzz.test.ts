import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { VirtualClock } from "../base/index.js";
import { Nic } from "../nic/index.js";
import { Host, runCommand } from "./index.js";

const words = [
  "ip", "link", "set", "show", "-s", "enp59s0f0np0", "enp59s0f1np1", "vf", "0", "1", "3", "200", "4096", "mac", "02:00:00:00:00:01",
  "01:00:00:00:00:01", "vlan", "qos", "proto", "802.1ad", "802.1Q", "spoofchk", "trust", "on", "off", "state", "auto", "disable",
  "min_tx_rate", "max_tx_rate", "rate", "query_rss", "devlink", "dev", "eswitch", "mode", "switchdev", "legacy", "pci/0000:3b:00.0",
  "vdpa", "mgmtdev", "add", "del", "config", "name", "v0", "pci/0000:3b:00.2", "max_vqp", "mtu", "echo", ">", "cat",
  "/sys/class/net/enp59s0f0np0/device/sriov_numvfs", "/sys/bus/pci/devices/0000:3b:00.1/sriov_totalvfs", "-1", "0x10", "",
];

test("any command line gets an answer, never an exception", () => {
  const host = new Host(new Nic({ clock: new VirtualClock(), ports: 2 }));
  runCommand(host, "echo 4 > /sys/class/net/enp59s0f0np0/device/sriov_numvfs");
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constantFrom(...words), fc.string({ maxLength: 8 })), { maxLength: 12 }), (argv) => {
      const r = runCommand(host, argv);
      assert.ok(r.status === 0 || r.stderr.length > 0);
    }),
    { numRuns: 2000 },
  );
});
