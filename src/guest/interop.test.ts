/**
 * The guest's rtnetlink bytes against an independent codec (src/wire, itself checked against
 * bytes captured from a real kernel): replies parse there, and requests it emits apply here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { GuestKernel } from "./kernel.js";
import { TestMachine } from "./test-machine.js";
import * as ip from "./iproute.js";
import { LinkRepr, NlmF, Rtm, parseNlMessages, MacAddress, NlErrorRepr } from "../wire/index.js";

const PF = "/sys/bus/pci/devices/0000:01:00.0";

test("src/wire's LinkRepr parses the guest's RTM_NEWLINK with IFLA_NUM_VF and IFLA_VFINFO_LIST", () => {
  const m = new TestMachine();
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory });
  k.sysfsWrite(`${PF}/sriov_numvfs`, "3");
  const eth0 = k.initNs.byName("eth0")!.ifindex;
  assert.equal(ip.parseReplies(k.netlink(ip.setVfRequest(eth0, 2, { vlan: 7, qos: 1, proto: 0x88a8 }))).error, 0);
  const msgs = k.netlink(ip.getLinkRequest("eth0")).flatMap((b) => parseNlMessages(b));
  assert.equal(msgs.length, 1);
  const r = LinkRepr.parse(msgs[0]!);
  assert.equal(r.ifname, "eth0");
  assert.equal(r.ifi.index, eth0);
  assert.equal(r.numVf, 3);
  assert.equal(r.parentDevName, "virtio0");
  assert.equal(r.parentDevBusName, "virtio");
  assert.equal(r.vfInfoList?.length, 3);
  const v2 = (r.vfInfoList ?? [])[2];
  assert.ok(v2 !== undefined);
  assert.equal(v2.vf, 2);
  assert.equal(v2.mac?.toString(), "52:54:00:00:01:03");
  assert.deepEqual(v2.vlan, { vlan: 7, qos: 1 });
  assert.deepEqual(v2.vlanList, [{ vlan: 7, qos: 1, proto: 0x88a8 }]);
  assert.equal(v2.spoofchk, 1);
  assert.equal(v2.rssQueryEn, -1);
  assert.equal(v2.broadcast?.toString(), "ff:ff:ff:ff:ff:ff");
  assert.ok(v2.stats !== undefined);
});

test("requests emitted by src/wire's LinkRepr apply in the guest; its NlErrorRepr reads the answers", () => {
  const m = new TestMachine({ vlanAllow: [5] });
  const k = GuestKernel.boot({ platform: m.platform, memory: m.memory });
  k.sysfsWrite(`${PF}/sriov_numvfs`, "2");
  const eth0 = k.initNs.byName("eth0")!.ifindex;
  const req = (vlan: number): Uint8Array =>
    LinkRepr.emit(
      {
        ifi: { family: 0, type: 0, index: eth0, flags: 0, change: 0 },
        vfInfoList: [{ vf: 1, mac: MacAddress.parse("02:12:34:56:78:9a"), vlanList: [{ vlan, qos: 3, proto: 0x8100 }], trust: 1, extra: [] }],
        extra: [],
      },
      { type: Rtm.SETLINK, flags: NlmF.REQUEST | NlmF.ACK, seq: 9, pid: 0 },
    );
  const ok = parseNlMessages(k.netlink(req(5))[0]!)[0]!;
  assert.equal(NlErrorRepr.parse(ok).error, 0);
  assert.equal(m.vfConfigs.get(2)!.vlan, 5);
  assert.equal(m.vfConfigs.get(2)!.qos, 3);
  assert.equal(m.vfConfigs.get(2)!.trust, true);
  assert.deepEqual([...m.vfConfigs.get(2)!.mac], [0x02, 0x12, 0x34, 0x56, 0x78, 0x9a]);
  const refused = parseNlMessages(k.netlink(req(6))[0]!)[0]!;
  assert.equal(NlErrorRepr.parse(refused).error, -1);
  assert.equal(m.vfConfigs.get(2)!.vlan, 5);
});
