import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseTopology, defaultTopology, TopologyError, DEFAULT_TOPOLOGY_YAML } from "./topology.js";
import { VpfError } from "../base/errors.js";

function err(text: string): TopologyError {
  try {
    parseTopology(text, "t.yaml");
  } catch (e) {
    assert.ok(e instanceof TopologyError, `expected TopologyError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the topology to be refused");
}

test("the default topology has host1, vm1 and vm2 with pools of 8, and ext1", () => {
  const t = defaultTopology();
  assert.equal(t.hosts.length, 1);
  const h = t.hosts[0]!;
  assert.equal(h.name, "host1");
  assert.deepEqual(h.vms.map((v) => [v.name, v.pool, v.quota]), [["vm1", "vm1-pool", 8], ["vm2", "vm2-pool", 8]]);
  assert.deepEqual(h.pools.map((p) => p.size), [8, 8]);
  assert.equal(t.externals[0]?.name, "ext1");
  assert.equal(h.nic.totalVfs, 127);
});

test("errors name file, line, column and field", () => {
  const text = DEFAULT_TOPOLOGY_YAML.replace("size: 8 }\n      - { name: vm2-pool", "size: 999 }\n      - { name: vm2-pool");
  const e = err(text);
  assert.equal(e.code, "TOPOLOGY_INVALID");
  assert.equal(e.field, "hosts[0].pools[0].size");
  assert.equal(e.line, 9);
  assert.match(e.message, /^t\.yaml:9:\d+: hosts\[0\]\.pools\[0\]\.size: must be an integer from 1 to 255$/);
});

test("unknown fields, missing fields, bad references and bad values are refused", () => {
  assert.equal(err("hosts:\n  - name: h\n    nic: {}\n    colour: red\n").field, "hosts[0].colour");
  assert.equal(err("hosts:\n  - nic: {}\n").field, "hosts[0].name");
  assert.match(err("hosts:\n  - name: h\n    nic: {}\n    vms:\n      - { name: v, pool: nope }\n").message, /no pool named 'nope'/);
  assert.equal(err("hosts:\n  - name: h\n    nic: {}\n    pools: [{ name: p, size: 2 }]\n    vms:\n      - { name: v, pool: p, vlan: { mode: allow-list, allow: [5000] } }\n").field, "hosts[0].vms[0].vlan.allow[0]");
  assert.equal(err("hosts:\n  - name: h\n    nic: {}\n    pools: [{ name: p, size: 2 }]\n    vms:\n      - { name: v, pool: p, guest: windows }\n").field, "hosts[0].vms[0].guest");
  assert.equal(err("hosts:\n  - name: h\n    nic: {}\nexternals:\n  - { name: e, host: h, mac: '03:00:00:00:00:01', ipv4: 10.0.0.1/8 }\n").field, "externals[0].mac");
  assert.equal(err("hosts:\n  - name: h\n    nic: {}\nexternals:\n  - { name: e, host: h, mac: '02:00:00:00:00:01', ipv4: 10.0.0.300/8 }\n").field, "externals[0].ipv4");
  assert.equal(err("hosts:\n  - name: h\n    nic: { totalVfs: 4 }\n    pools: [{ name: p, size: 4 }]\n    vms:\n      - { name: v, pool: p }\n").field, "hosts[0].nic.totalVfs");
  assert.equal(err("hosts: []\n").field, "hosts");
  assert.match(err("hosts:\n  - name: [\n").message, /^t\.yaml:\d+:\d+: YAML syntax error/);
});

test("any text either parses or fails with a TOPOLOGY_* VpfError", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.constantFrom(DEFAULT_TOPOLOGY_YAML)).chain((base) =>
      fc.tuple(fc.constant(base), fc.nat(base.length), fc.string({ maxLength: 6 }))), ([base, at, junk]) => {
      const text = base.slice(0, at) + junk + base.slice(at);
      try {
        parseTopology(text, "f.yaml");
      } catch (e) {
        assert.ok(e instanceof VpfError && e.code.startsWith("TOPOLOGY_"), String(e));
      }
    }),
    { numRuns: 300 },
  );
});
