import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { VfConfigMediator } from "./mediator.js";
import { PolicyEngine, type HostVlan, type VmPolicy } from "./policy.js";
import type { HostVfOps, HostVfSettings } from "./host-vf.js";
import { VmmError } from "./errors.js";
import {
  AdminOpcode,
  AdminQualifier,
  AdminStatus,
  ETH_P_8021AD,
  ETH_P_8021Q,
  decodeVfConfig,
  decodeVfStats,
  encodeAdminCommand,
  type VfAdminCommand,
  type VfStats,
} from "./vf-admin.js";

/** A host VF that records what the mediator applied (the host facade's view). */
class RecordingHostVf implements HostVfOps {
  mac = new Uint8Array(6);
  vlan: HostVlan = { vlan: 0, qos: 0, proto: ETH_P_8021Q };
  spoofchk = false;
  trust = false;
  linkState = 0;
  rate = { min: 0, max: 0 };
  calls = 0;
  failNext: string | undefined;
  readonly others = new Set<string>();
  constructor(readonly hostVf: number) {}
  #step(): void {
    this.calls++;
    const f = this.failNext;
    if (f !== undefined) {
      this.failNext = undefined;
      throw new VmmError("VMM_BAD_ARGUMENT", f);
    }
  }
  setMac(mac: Uint8Array): void {
    this.#step();
    this.mac = mac.slice();
  }
  setVlan(v: HostVlan): void {
    this.#step();
    this.vlan = v;
  }
  setSpoofchk(on: boolean): void {
    this.#step();
    this.spoofchk = on;
  }
  setTrust(on: boolean): void {
    this.#step();
    this.trust = on;
  }
  setLinkState(s: 0 | 1 | 2): void {
    this.#step();
    this.linkState = s;
  }
  setRate(min: number, max: number): void {
    this.#step();
    this.rate = { min, max };
  }
  stats(): VfStats {
    return { rxPackets: 1n, txPackets: 2n, rxBytes: 3n, txBytes: 4n, broadcast: 5n, multicast: 6n, rxDropped: 7n, txDropped: 8n };
  }
  configure(s: HostVfSettings): void {
    this.#step();
    if (s.mac !== undefined) this.mac = s.mac.slice();
    this.vlan = s.vlan;
    this.spoofchk = s.spoofchk;
    this.trust = s.trust;
    this.linkState = s.linkState;
    this.rate = { min: s.minTxRateMbps, max: s.maxTxRateMbps };
  }
  macInUseElsewhere(mac: Uint8Array): boolean {
    return this.others.has([...mac].join(":"));
  }
}

const basePolicy: VmPolicy = {
  vlan: { mode: "allow-list", allowed: [100, 200] },
  macPrefix: "02:aa:00:00:00:00/16",
  allowSpoofchkOff: false,
  allowTrust: false,
  maxTxRateMbps: 1000,
};

function setup(policy: VmPolicy = basePolicy): { med: VfConfigMediator; host: RecordingHostVf; run: (c: VfAdminCommand) => { status: number; qualifier?: number; result?: Uint8Array } } {
  const med = new VfConfigMediator(new PolicyEngine(policy));
  const host = new RecordingHostVf(7);
  med.bind(1, host);
  const run = (c: VfAdminCommand): { status: number; qualifier?: number; result?: Uint8Array } => {
    const bytes = encodeAdminCommand(c);
    const opcode = bytes[0]! | (bytes[1]! << 8);
    return med.handle(opcode, "vf" in c ? c.vf : 0, bytes.subarray(24));
  };
  return { med, host, run };
}

test("bind programs the host defaults: first allowed VLAN, spoof check on, trust off, rate ceiling", () => {
  const { host, run } = setup();
  assert.deepEqual(host.vlan, { vlan: 100, qos: 0, proto: ETH_P_8021Q });
  assert.equal(host.spoofchk, true);
  assert.equal(host.trust, false);
  assert.deepEqual(host.rate, { min: 0, max: 1000 });
  const r = run({ op: "get-config", vf: 1 });
  assert.equal(r.status, AdminStatus.OK);
  const cfg = decodeVfConfig(r.result!);
  assert.equal(cfg?.vlan, 100);
  assert.equal(cfg?.maxTxRateMbps, 0, "the guest sees its own request; the ceiling applies beneath");
});

test("allowed changes reach the host; refusals are EPERM with the rule, change nothing and are counted", () => {
  const { med, host, run } = setup();
  assert.equal(run({ op: "set-vlan", vf: 1, vlan: 200, qos: 3, vlanProto: ETH_P_8021Q }).status, AdminStatus.OK);
  assert.deepEqual(host.vlan, { vlan: 200, qos: 3, proto: ETH_P_8021Q });

  const before = host.calls;
  const refusals: [VfAdminCommand, number][] = [
    [{ op: "set-vlan", vf: 1, vlan: 300, qos: 0, vlanProto: ETH_P_8021Q }, AdminQualifier.POLICY_VLAN],
    [{ op: "set-vlan", vf: 1, vlan: 100, qos: 0, vlanProto: ETH_P_8021AD }, AdminQualifier.POLICY_VLAN_PROTO],
    [{ op: "set-mac", vf: 1, mac: Uint8Array.of(0x02, 0xbb, 0, 0, 0, 1) }, AdminQualifier.POLICY_MAC_PREFIX],
    [{ op: "set-spoofchk", vf: 1, enabled: false }, AdminQualifier.POLICY_SPOOFCHK],
    [{ op: "set-trust", vf: 1, enabled: true }, AdminQualifier.POLICY_TRUST],
    [{ op: "set-rate", vf: 1, minTxRateMbps: 0, maxTxRateMbps: 5000 }, AdminQualifier.POLICY_RATE],
  ];
  for (const [cmd, q] of refusals) {
    const r = run(cmd);
    assert.deepEqual([r.status, r.qualifier], [AdminStatus.EPERM, q], cmd.op);
  }
  assert.equal(host.calls, before, "no refused request touched the host");
  assert.deepEqual(host.vlan, { vlan: 200, qos: 3, proto: ETH_P_8021Q });
  assert.deepEqual(med.counters.refused, { POLICY_VLAN: 1, POLICY_VLAN_PROTO: 1, POLICY_MAC_PREFIX: 1, POLICY_SPOOFCHK: 1, POLICY_TRUST: 1, POLICY_RATE: 1 });

  host.others.add([0x02, 0xaa, 0, 0, 0, 9].join(":"));
  const dup = run({ op: "set-mac", vf: 1, mac: Uint8Array.of(0x02, 0xaa, 0, 0, 0, 9) });
  assert.deepEqual([dup.status, dup.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_MAC_IN_USE]);
  assert.equal(run({ op: "set-mac", vf: 1, mac: Uint8Array.of(0x02, 0xaa, 0, 0, 0, 1) }).status, AdminStatus.OK);
  assert.deepEqual([...host.mac], [0x02, 0xaa, 0, 0, 0, 1]);
  // Turning spoof checking on and trust off is always allowed (and a no-op here).
  assert.equal(run({ op: "set-spoofchk", vf: 1, enabled: true }).status, AdminStatus.OK);
  assert.equal(run({ op: "set-rate", vf: 1, minTxRateMbps: 10, maxTxRateMbps: 0 }).status, AdminStatus.OK);
  assert.deepEqual(host.rate, { min: 10, max: 1000 }, "guest 'no limit' is the ceiling on the host");
  assert.equal(run({ op: "set-link-state", vf: 1, state: 2 }).status, AdminStatus.OK);
  assert.equal(host.linkState, 2);
});

test("allow-list with allow8021ad lets the guest use an allowed ID as an S-tag", () => {
  const { host, run } = setup({ ...basePolicy, vlan: { mode: "allow-list", allowed: [100], allow8021ad: true } });
  assert.equal(run({ op: "set-vlan", vf: 1, vlan: 100, qos: 0, vlanProto: ETH_P_8021AD }).status, AdminStatus.OK);
  assert.deepEqual(host.vlan, { vlan: 100, qos: 0, proto: ETH_P_8021AD });
});

test("QinQ: the guest's VLAN is the C-tag under the tenant's S-tag; 802.1ad from the guest is refused", () => {
  const { host, run } = setup({ ...basePolicy, vlan: { mode: "qinq", outerVid: 42, outerPcp: 1 } });
  assert.deepEqual(host.vlan, { vlan: 42, qos: 1, proto: ETH_P_8021AD });
  assert.equal(run({ op: "set-vlan", vf: 1, vlan: 3000, qos: 2, vlanProto: ETH_P_8021Q }).status, AdminStatus.OK);
  assert.deepEqual(host.vlan, { vlan: 42, qos: 1, proto: ETH_P_8021AD, inner: { vlan: 3000, qos: 2 } });
  const r = run({ op: "set-vlan", vf: 1, vlan: 5, qos: 0, vlanProto: ETH_P_8021AD });
  assert.deepEqual([r.status, r.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_VLAN_PROTO]);
  const v = decodeVfConfig(run({ op: "get-config", vf: 1 }).result!);
  assert.deepEqual([v?.vlan, v?.qos, v?.vlanProto], [3000, 2, ETH_P_8021Q], "the guest sees its own tag");
  // VID 4095 cannot be a C-tag; VLAN 0 takes the inner tag away again.
  const r4095 = run({ op: "set-vlan", vf: 1, vlan: 4095, qos: 0, vlanProto: ETH_P_8021Q });
  assert.deepEqual([r4095.status, r4095.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_VLAN]);
  assert.deepEqual(host.vlan, { vlan: 42, qos: 1, proto: ETH_P_8021AD, inner: { vlan: 3000, qos: 2 } });
  assert.equal(run({ op: "set-vlan", vf: 1, vlan: 0, qos: 0, vlanProto: ETH_P_8021Q }).status, AdminStatus.OK);
  assert.deepEqual(host.vlan, { vlan: 42, qos: 1, proto: ETH_P_8021AD });
});

test("host failures are EIO/HOST_FAILED and leave the guest view unchanged", () => {
  const { med, host, run } = setup();
  host.failNext = "boom";
  const r = run({ op: "set-vlan", vf: 1, vlan: 200, qos: 0, vlanProto: ETH_P_8021Q });
  assert.deepEqual([r.status, r.qualifier], [AdminStatus.EIO, AdminQualifier.HOST_FAILED]);
  assert.equal(med.config(1)?.vlan, 100);
  assert.equal(med.counters.hostFailed, 1);
  const s = decodeVfStats(run({ op: "get-stats", vf: 1 }).result!);
  assert.equal(s?.txDropped, 8n);
});

test("bind failure throws VMM_BACKEND_FAILED and leaves the member unbound; unbind neutralises the host VF", () => {
  const med = new VfConfigMediator(new PolicyEngine(basePolicy));
  const host = new RecordingHostVf(3);
  host.failNext = "refused";
  assert.throws(() => med.bind(2, host), (e: unknown) => e instanceof VmmError && e.code === "VMM_BACKEND_FAILED");
  assert.equal(med.bound(2), false);
  med.bind(2, host);
  med.unbind(2);
  assert.deepEqual(host.vlan, { vlan: 0, qos: 0, proto: ETH_P_8021Q });
  assert.deepEqual(host.rate, { min: 0, max: 0 });
  assert.equal(med.bound(2), false);
});

test("policies that contradict themselves are refused at construction", () => {
  const bad: VmPolicy[] = [
    { ...basePolicy, vlan: { mode: "allow-list", allowed: [] } },
    { ...basePolicy, vlan: { mode: "allow-list", allowed: [5000] } },
    { ...basePolicy, vlan: { mode: "allow-list", allowed: [1], initial: 2 } },
    { ...basePolicy, vlan: { mode: "qinq", outerVid: 0 } },
    { ...basePolicy, macPrefix: "01:00:00:00:00:00/8" },
    { ...basePolicy, macPrefix: "zz/8" },
    { ...basePolicy, maxTxRateMbps: 0 },
  ];
  for (const p of bad) assert.throws(() => new PolicyEngine(p), (e: unknown) => e instanceof VmmError && e.code === "VMM_BAD_ARGUMENT");
});

test("property: arbitrary command data never throws and never leaves a refused change on the host", () => {
  fc.assert(
    fc.property(fc.constantFrom(...Object.values(AdminOpcode)), fc.uint8Array({ maxLength: 40 }), (opcode, data) => {
      const { med, host } = setup();
      const before = JSON.stringify({ ...host, mac: [...host.mac] });
      const r = med.handle(opcode, 1, data);
      if (r.status !== AdminStatus.OK) assert.equal(JSON.stringify({ ...host, mac: [...host.mac] }), before);
    }),
    { numRuns: 300 },
  );
});

test("property: in QinQ mode any SET_VLAN keeps the tenant's S-tag on the host and the inner tag equal to the guest's view", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 0, max: 7 }), fc.constantFrom(ETH_P_8021Q, ETH_P_8021AD)), { maxLength: 20 }), (reqs) => {
      const { host, run } = setup({ ...basePolicy, vlan: { mode: "qinq", outerVid: 42, outerPcp: 6 } });
      for (const [vlan, qos, vlanProto] of reqs) {
        run({ op: "set-vlan", vf: 1, vlan, qos, vlanProto });
        assert.deepEqual([host.vlan.vlan, host.vlan.qos, host.vlan.proto], [42, 6, ETH_P_8021AD]);
        const v = decodeVfConfig(run({ op: "get-config", vf: 1 }).result!);
        assert.ok(v !== undefined);
        assert.equal(v.vlanProto, ETH_P_8021Q);
        assert.ok(v.vlan !== 4095);
        assert.deepEqual(host.vlan.inner, v.vlan === 0 ? undefined : { vlan: v.vlan, qos: v.qos });
      }
    }),
    { numRuns: 200 },
  );
});

test("a guest may always set a VF back to the MAC the host gave it, even outside the prefix (SR-IOV CNI's DEL)", () => {
  const med = new VfConfigMediator(new PolicyEngine(basePolicy));
  const host = new RecordingHostVf(3);
  const hostMac = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x10, 0x03); // outside 02:aa::/16
  med.bind(1, host, hostMac);
  const run = (c: VfAdminCommand): { status: number; qualifier?: number } => {
    const bytes = encodeAdminCommand(c);
    return med.handle(bytes[0]! | (bytes[1]! << 8), 1, bytes.subarray(24));
  };
  assert.equal(run({ op: "set-mac", vf: 1, mac: Uint8Array.of(0x02, 0xaa, 0, 0, 0, 9) }).status, AdminStatus.OK);
  assert.deepEqual([...host.mac], [0x02, 0xaa, 0, 0, 0, 9]);
  assert.equal(run({ op: "set-mac", vf: 1, mac: hostMac }).status, AdminStatus.OK, "restoring the host's MAC");
  assert.deepEqual([...host.mac], [...hostMac]);
  const other = run({ op: "set-mac", vf: 1, mac: Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x10, 0x04) });
  assert.deepEqual([other.status, other.qualifier], [AdminStatus.EPERM, AdminQualifier.POLICY_MAC_PREFIX], "another MAC outside the prefix is still refused");
});
