import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { VirtualClock, KernelError } from "../base/index.js";
import { GuestMemory } from "../memory/index.js";
import { Nic } from "../nic/index.js";
import { Host, runCommand } from "./index.js";

const words = [
  "ip", "link", "set", "show", "-s", "enp59s0f0np0", "enp59s0f1np1", "vf", "0", "1", "3", "200", "4096", "mac", "02:00:00:00:00:01",
  "01:00:00:00:00:01", "vlan", "qos", "proto", "inner_vlan", "inner_qos", "802.1ad", "802.1Q", "spoofchk", "trust", "on", "off", "state", "auto", "disable",
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

test("random vhost-vdpa ioctl sequences and VF settings fail only with KernelError", () => {
  const num = fc.oneof(fc.integer({ min: -2, max: 300 }), fc.constantFrom(0x10000, 2 ** 40, NaN, 1.5));
  const op = fc.oneof(
    fc.tuple(fc.constant("features"), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    fc.tuple(fc.constant("status"), num),
    fc.tuple(fc.constant("num"), num, num),
    fc.tuple(fc.constant("addr"), num, num),
    fc.tuple(fc.constant("base"), num, num),
    fc.tuple(fc.constant("enable"), num, fc.boolean()),
    fc.tuple(fc.constant("kick"), num),
    fc.tuple(fc.constant("config"), num, num),
    fc.tuple(fc.constant("vf"), num, fc.record({ vlan: num, qos: num, rate: num, state: num, ad: fc.boolean(), inner: fc.option(fc.record({ vlan: num, qos: num })) })),
    fc.tuple(fc.constant("close")),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
      const host = new Host(new Nic({ clock: new VirtualClock() }));
      host.setSriovNumVfs("enp59s0f0np0", 2);
      host.vdpaDevAdd({ name: "v", mgmtdev: "pci/0000:3b:00.2", mac: "02:00:00:00:00:01" });
      const h = host.openVhostVdpa("v");
      const mem = new GuestMemory(0x20000);
      h.setMemory(mem);
      for (const o of ops) {
        try {
          switch (o[0]) {
            case "features": h.setFeatures(o[1]); break;
            case "status": h.setStatus(o[1]); break;
            case "num": h.setVringNum(o[1], o[2]); break;
            case "addr": h.setVringAddr(o[1], { desc: o[2] * 64, avail: o[2] * 64 + 0x4000, used: o[2] * 64 + 0x8000 }); break;
            case "base": h.setVringBase(o[1], o[2]); break;
            case "enable": h.setVringEnable(o[1], o[2]); break;
            case "kick": h.kick(o[1]); break;
            case "config": h.getConfig(o[1], o[2]); break;
            case "vf": host.setVf("enp59s0f0np0", o[1], { vlan: { vlan: o[2].vlan, qos: o[2].qos, proto: o[2].ad ? "802.1ad" : "802.1Q", ...(o[2].inner === null ? {} : { inner: o[2].inner }) }, maxTxRate: o[2].rate, state: o[2].state }); break;
            case "close": h.close(); break;
          }
        } catch (e) {
          assert.ok(e instanceof KernelError, `unexpected ${String(e)}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});
