import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import {
  EtherType,
  Ipv4Address,
  Ipv6Address,
  MacAddress,
  NdpOptionType,
  PcapWriter,
  TcpFlags,
  WireError,
  buildArpFrame,
  buildIcmpEchoFrame,
  buildIcmpv6Frame,
  buildIpFrame,
  buildUdpFrame,
  linkLayerAddressOption,
  pcapGlobalHeader,
  pcapRecord,
  readPcap,
  vlanTag,
  tsharkFields,
  TSHARK_CHECKSUM_FIELDS,
} from "./index.js";

const A = MacAddress.parse("02:00:00:00:00:0a");
const B = MacAddress.parse("02:00:00:00:00:0b");
const v4a = Ipv4Address.parse("10.0.0.1");
const v4b = Ipv4Address.parse("10.0.0.2");
const v6a = Ipv6Address.parse("fd00::1");
const v6b = Ipv6Address.parse("fd00::2");

test("pcap writer emits the libpcap header and records, reader reads them back", () => {
  const w = new PcapWriter({ resolution: "ns" });
  const f = buildUdpFrame({ dst: B, src: A }, v4a, v4b, 1, 2, Uint8Array.of(1, 2, 3));
  w.write(1_500_000_007n, f);
  w.write(2n, f.subarray(0, 20), f.length);
  const bytes = w.bytes();
  assert.equal(w.packetCount, 2);
  assert.equal(bytes.length, 24 + 16 + f.length + 16 + 20);
  assert.deepEqual([...bytes.subarray(0, 24)], [0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]);
  assert.deepEqual([...bytes.subarray(24, 40)], [1, 0, 0, 0, 7, 0x65, 0xcd, 0x1d, f.length, 0, 0, 0, f.length, 0, 0, 0]);
  const r = readPcap(bytes);
  assert.equal(r.resolution, "ns");
  assert.equal(r.linktype, 1);
  assert.equal(r.packets.length, 2);
  assert.equal(r.packets[0]!.tsNs, 1_500_000_007n);
  assert.deepEqual(r.packets[0]!.data, f);
  assert.equal(r.packets[1]!.origLen, f.length);
  assert.equal(r.packets[1]!.data.length, 20);

  const us = new PcapWriter({ resolution: "us", snaplen: 16 });
  us.write(3_000_004_999n, f);
  const ru = readPcap(us.bytes());
  assert.equal(ru.resolution, "us");
  assert.equal(ru.snaplen, 16);
  assert.equal(ru.packets[0]!.tsNs, 3_000_004_000n); // truncated to microseconds
  assert.equal(ru.packets[0]!.data.length, 16);
  assert.equal(ru.packets[0]!.origLen, f.length);
});

test("pcap reader accepts big-endian files and refuses malformed ones with WireError codes", () => {
  const le = new PcapWriter({ resolution: "us" });
  le.write(1_000_001_000n, Uint8Array.of(9, 9));
  const b = le.bytes();
  // Byte-swap every 32-bit header word (and the two version u16s) to make a big-endian file.
  const be = b.slice();
  const sw32 = (o: number) => be.set([b[o + 3]!, b[o + 2]!, b[o + 1]!, b[o]!], o);
  sw32(0);
  be.set([0, 2, 0, 4], 4);
  for (const o of [8, 12, 16, 20, 24, 28, 32, 36]) sw32(o);
  const r = readPcap(be);
  assert.equal(r.bigEndian, true);
  assert.equal(r.packets[0]!.tsNs, 1_000_001_000n);
  assert.deepEqual([...r.packets[0]!.data], [9, 9]);

  const is = (code: string) => (e: unknown) => e instanceof WireError && e.code === code;
  assert.throws(() => readPcap(b.subarray(0, 23)), is("WIRE_TRUNCATED"));
  assert.throws(() => readPcap(new Uint8Array(24)), is("WIRE_BAD_VALUE"));
  const v3 = b.slice();
  v3[4] = 3;
  assert.throws(() => readPcap(v3), is("WIRE_BAD_VERSION"));
  assert.throws(() => readPcap(b.subarray(0, b.length - 1)), is("WIRE_TRUNCATED"));
  const incl = b.slice();
  incl[32] = 3; // incl_len 3 > orig_len 2
  assert.throws(() => readPcap(incl), is("WIRE_BAD_LENGTH"));
  assert.throws(() => pcapRecord(-1n, new Uint8Array(1)), is("WIRE_BAD_VALUE"));
  assert.throws(() => pcapRecord(0n, new Uint8Array(4), undefined, 3), is("WIRE_BAD_LENGTH"));
  assert.throws(() => pcapGlobalHeader({ snaplen: 0 }), is("WIRE_BAD_VALUE"));
});

test("random bytes: pcap reader throws only WireError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 96 }), fc.boolean(), (tail, ns) => {
      const head = pcapGlobalHeader({ resolution: ns ? "ns" : "us" });
      for (const input of [tail, Uint8Array.from([...head, ...tail])]) {
        try {
          readPcap(input);
        } catch (e) {
          assert.ok(e instanceof WireError, String(e));
        }
      }
    }),
  );
});

/** The frames handed to tshark, with what it must report for each. */
function sampleFrames(): { frame: Uint8Array; expect: Record<string, string> }[] {
  const hello = new TextEncoder().encode("hello");
  const sn = v6b.solicitedNodeMulticast();
  return [
    {
      frame: buildUdpFrame({ dst: B, src: A }, v4a, v4b, 1234, 5678, hello),
      expect: { "eth.src": "02:00:00:00:00:0a", "eth.dst": "02:00:00:00:00:0b", "ip.src": "10.0.0.1", "ip.dst": "10.0.0.2", "udp.srcport": "1234", "udp.dstport": "5678", "ip.checksum.status": "1", "udp.checksum.status": "1", "data.data": "68656c6c6f", protocols: "eth:ethertype:ip:udp:data" },
    },
    {
      frame: buildIpFrame({ dst: B, src: A, vlans: [vlanTag(100, { pcp: 3 })] }, { src: v4a, dst: v4b, ttl: 17 }, { proto: "tcp", srcPort: 40000, dstPort: 80, flags: TcpFlags.SYN, seq: 1000, payload: new Uint8Array(3) }),
      expect: { "vlan.id": "100", "vlan.priority": "3", "vlan.etype": "0x0800", "ip.ttl": "17", "tcp.srcport": "40000", "tcp.dstport": "80", "tcp.flags.syn": "1", "tcp.seq_raw": "1000", "ip.checksum.status": "1", "tcp.checksum.status": "1", protocols: "eth:ethertype:vlan:ethertype:ip:tcp" },
    },
    {
      frame: buildIcmpEchoFrame({ dst: B, src: A, vlans: [vlanTag(200, { tpid: EtherType.QINQ, pcp: 1 }), vlanTag(10, { pcp: 5 })] }, v4a, v4b, "echoRequest", 7, 1, new Uint8Array(8).fill(0x61)),
      expect: { "ieee8021ad.id": "200", "ieee8021ad.priority": "1", "vlan.id": "10", "vlan.priority": "5", "vlan.etype": "0x0800", "icmp.type": "8", "icmp.ident": "7", "icmp.seq": "1", "icmp.checksum.status": "1", "ip.checksum.status": "1", protocols: "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:icmp:data" },
    },
    {
      frame: buildArpFrame({ dst: MacAddress.BROADCAST, src: A, pad: true, vlans: [vlanTag(5)] }, { operation: 1, senderMac: A, senderIp: v4a, targetMac: MacAddress.ZERO, targetIp: v4b }),
      expect: { "eth.dst": "ff:ff:ff:ff:ff:ff", "vlan.id": "5", "vlan.etype": "0x0806", "arp.opcode": "1", "arp.src.hw_mac": "02:00:00:00:00:0a", "arp.src.proto_ipv4": "10.0.0.1", "arp.dst.proto_ipv4": "10.0.0.2", protocols: "eth:ethertype:vlan:ethertype:arp" },
    },
    {
      frame: buildIcmpv6Frame({ dst: B, src: A }, v6a, v6b, { kind: "echoRequest", ident: 9, seq: 2, data: new Uint8Array(5) }),
      expect: { "ipv6.src": "fd00::1", "ipv6.dst": "fd00::2", "icmpv6.type": "128", "icmpv6.echo.identifier": "0x0009", "icmpv6.echo.sequence_number": "2", "icmpv6.checksum.status": "1", protocols: "eth:ethertype:ipv6:icmpv6:data" },
    },
    {
      frame: buildIcmpv6Frame({ dst: sn.multicastMac(), src: A }, v6a, sn, { kind: "neighborSolicit", target: v6b, options: [linkLayerAddressOption(NdpOptionType.SOURCE_LINK_ADDR, A)] }),
      expect: { "eth.dst": "33:33:ff:00:00:02", "ipv6.dst": "ff02::1:ff00:2", "ipv6.hlim": "255", "icmpv6.type": "135", "icmpv6.nd.ns.target_address": "fd00::2", "icmpv6.opt.linkaddr": "02:00:00:00:00:0a", "icmpv6.checksum.status": "1" },
    },
    {
      frame: buildIcmpv6Frame({ dst: A, src: B }, v6b, v6a, { kind: "neighborAdvert", router: false, solicited: true, override: true, target: v6b, options: [linkLayerAddressOption(NdpOptionType.TARGET_LINK_ADDR, B)] }),
      expect: { "icmpv6.type": "136", "icmpv6.nd.na.target_address": "fd00::2", "icmpv6.nd.na.flag.s": "1", "icmpv6.nd.na.flag.o": "1", "icmpv6.nd.na.flag.r": "0", "icmpv6.opt.linkaddr": "02:00:00:00:00:0b", "icmpv6.checksum.status": "1" },
    },
    {
      frame: buildUdpFrame({ dst: B, src: A, vlans: [vlanTag(300, { tpid: EtherType.QINQ })] }, v6a, v6b, 40001, 9999, new Uint8Array(11).fill(7)),
      expect: { "ieee8021ad.id": "300", "ipv6.src": "fd00::1", "udp.srcport": "40001", "udp.dstport": "9999", "udp.length": "19", "udp.checksum.status": "1", protocols: "eth:ethertype:ieee8021ad:ethertype:ipv6:udp:data" },
    },
    {
      frame: buildIpFrame({ dst: B, src: A }, { src: v6a, dst: v6b }, { proto: "tcp", srcPort: 22, dstPort: 50000, flags: TcpFlags.ACK | TcpFlags.PSH, ack: 77, payload: new Uint8Array(9).fill(1) }),
      expect: { "ipv6.dst": "fd00::2", "tcp.srcport": "22", "tcp.flags.push": "1", "tcp.ack_raw": "77", "tcp.len": "9", "tcp.checksum.status": "1" },
    },
  ];
}

const FIELDS = [
  "frame.number", "frame.time_epoch", "frame.protocols", "eth.src", "eth.dst", "vlan.id", "vlan.priority", "vlan.etype",
  "ieee8021ad.id", "ieee8021ad.priority", "ip.src", "ip.dst", "ip.ttl", "ip.checksum.status", "ipv6.src", "ipv6.dst", "ipv6.hlim",
  "udp.srcport", "udp.dstport", "udp.length", "udp.checksum.status", "tcp.srcport", "tcp.dstport", "tcp.flags.syn", "tcp.flags.push",
  "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.checksum.status", "icmp.type", "icmp.ident", "icmp.seq", "icmp.checksum.status",
  "icmpv6.type", "icmpv6.echo.identifier", "icmpv6.echo.sequence_number", "icmpv6.nd.ns.target_address", "icmpv6.nd.na.target_address",
  "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.r", "icmpv6.opt.linkaddr", "icmpv6.checksum.status",
  "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "data.data",
];

/** Real tshark over the file (a missing tshark throws ENOENT: the test fails, never skips). */
function tshark(file: string): Record<string, string>[] {
  return tsharkFields(file, FIELDS).map((r) => ({ ...r, protocols: r["frame.protocols"] ?? "" }));
}

test("the real tshark decodes a vpf pcap: addresses, VLAN and 802.1ad tags, protocols, good checksums", () => {
  const dir = mkdtempSync(join(tmpdir(), "vpf-wire-"));
  try {
    const samples = sampleFrames();
    // One deliberately damaged frame proves tshark's checksum validation is live in this run.
    const bad = buildUdpFrame({ dst: B, src: A }, v4a, v4b, 1, 2, Uint8Array.of(1, 2, 3, 4));
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    for (const resolution of ["ns", "us"] as const) {
      const w = new PcapWriter({ resolution });
      samples.forEach((s, i) => w.write(BigInt(i + 1) * 1_000_000_000n + 123_456n, s.frame));
      w.write(99_000_000_000n, bad);
      const file = join(dir, `sample-${resolution}.pcap`);
      writeFileSync(file, w.bytes());
      const recs = tshark(file);
      assert.equal(recs.length, samples.length + 1);
      samples.forEach((s, i) => {
        const rec = recs[i]!;
        assert.equal(rec["frame.time_epoch"], `${i + 1}.${resolution === "ns" ? "000123456" : "000123000"}`);
        for (const [k, v] of Object.entries(s.expect)) assert.equal(rec[k], v, `frame ${i + 1} ${k}`);
        // Every checksum tshark computed must be Good (1); at least one per IP frame.
        const statuses = TSHARK_CHECKSUM_FIELDS.map((f) => rec[f]).filter((x) => x !== "");
        if (rec["ip.src"] !== "" || rec["ipv6.src"] !== "") assert.ok(statuses.length > 0, `frame ${i + 1} has checksums`);
        for (const st of statuses) assert.equal(st, "1", `frame ${i + 1} checksum status`);
      });
      const last = recs[samples.length]!;
      assert.equal(last["ip.checksum.status"], "1");
      assert.equal(last["udp.checksum.status"], "0");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
