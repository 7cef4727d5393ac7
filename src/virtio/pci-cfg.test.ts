import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { GuestAllocator, GuestMemory } from "../memory/index.js";
import {
  PCI_CAP_ID_VNDR, PCI_COMMAND, PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, SriovCapability, lspciDump,
  type AccessWidth, type PciFunction,
} from "../pci/index.js";
import {
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_NUMQ,
  COMMON_STATUS,
  LoopbackBackend,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_PCI_BAR_SPEC,
  VIRTIO_PCI_CAP_BAR,
  VIRTIO_PCI_CAP_LENGTH,
  VIRTIO_PCI_CAP_OFFSET,
  VIRTIO_PCI_CAP_PCI_CFG,
  VIRTIO_PCI_CFG_CAP_SIZE,
  VIRTIO_PCI_CFG_DATA,
  VIRTIO_PCI_DEVICE_OFFSET,
  VIRTIO_PCI_ISR_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VirtioPciDriver,
  attachVirtioNet,
  createVirtioNetPci,
} from "./index.js";

const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc);

function machine() {
  const mem = new GuestMemory(1 << 22);
  const alloc = new GuestAllocator(mem, 0x1000, (1 << 22) - 0x1000);
  const dev = createVirtioNetPci({ memory: mem, mac: MAC, backend: new LoopbackBackend(), adminQueue: true });
  const drv = new VirtioPciDriver(dev.fn, mem, alloc);
  return { mem, alloc, dev, drv, win: new CfgWindow(dev.fn) };
}

/**
 * The driver side of §4.1.4.9: finds the VIRTIO_PCI_CAP_PCI_CFG capability by walking the list
 * (as a driver would) and reaches BAR registers with configuration cycles only.
 */
class CfgWindow {
  readonly at: number;
  constructor(readonly fn: PciFunction) {
    let found = 0;
    for (let p = fn.configRead(0x34, 1), guard = 0; p !== 0 && guard < 48; p = fn.configRead(p + 1, 1), guard++) {
      if (fn.configRead(p, 1) === PCI_CAP_ID_VNDR && fn.configRead(p + 3, 1) === VIRTIO_PCI_CAP_PCI_CFG) found = p;
    }
    assert.notEqual(found, 0, "no VIRTIO_PCI_CAP_PCI_CFG capability");
    this.at = found;
  }
  /** Sets cap.bar, cap.length and cap.offset, in the spec's order. */
  select(bar: number, offset: number, length: number): void {
    this.fn.configWrite(this.at + VIRTIO_PCI_CAP_BAR, 1, bar);
    this.fn.configWrite(this.at + VIRTIO_PCI_CAP_LENGTH, 4, length);
    this.fn.configWrite(this.at + VIRTIO_PCI_CAP_OFFSET, 4, offset);
  }
  read(bar: number, offset: number, width: AccessWidth): number {
    this.select(bar, offset, width);
    return this.fn.configRead(this.at + VIRTIO_PCI_CFG_DATA, width);
  }
  write(bar: number, offset: number, width: AccessWidth, value: number): void {
    this.select(bar, offset, width);
    this.fn.configWrite(this.at + VIRTIO_PCI_CFG_DATA, width, value);
  }
  get data(): number {
    return this.fn.config.read(this.at + VIRTIO_PCI_CFG_DATA, 4);
  }
}

test("virtio §4.1.4.9.1: the device presents one VIRTIO_PCI_CAP_PCI_CFG capability, last, 20 bytes, fields 0", () => {
  const { dev, win } = machine();
  const fn = dev.fn;
  const types: number[] = [];
  for (let p = fn.configRead(0x34, 1); p !== 0; p = fn.configRead(p + 1, 1)) {
    if (fn.configRead(p, 1) === PCI_CAP_ID_VNDR) types.push(fn.configRead(p + 3, 1));
  }
  assert.deepEqual(types, [1, 2, 3, 4, VIRTIO_PCI_CAP_PCI_CFG]);
  assert.equal(win.at, dev.transport.pciCfgCap);
  assert.equal(fn.configRead(win.at + 2, 1), VIRTIO_PCI_CFG_CAP_SIZE, "cap_len covers pci_cfg_data");
  for (const off of [VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_CAP_LENGTH, VIRTIO_PCI_CFG_DATA]) {
    assert.equal(fn.configRead(win.at + off, off === VIRTIO_PCI_CAP_BAR ? 1 : 4), 0);
  }
});

test("virtio §4.1.4.9: cap.bar, cap.offset, cap.length and pci_cfg_data are read-write; the header is read-only", () => {
  const { dev, win } = machine();
  const fn = dev.fn;
  const header = fn.configRead(win.at, 4);
  const idPad = fn.configRead(win.at + 4, 4) & 0xffff_ff00;
  fn.configWrite(win.at, 4, 0xffff_ffff);
  fn.configWrite(win.at + 4, 4, 0xffff_ffff);
  assert.equal(fn.configRead(win.at, 4), header);
  assert.equal(fn.configRead(win.at + 4, 4), (idPad | 0xff) >>> 0, "only cap.bar changes in the second dword");
  fn.configWrite(win.at + VIRTIO_PCI_CAP_OFFSET, 4, 0x1234_5678);
  fn.configWrite(win.at + VIRTIO_PCI_CAP_LENGTH, 4, 0x9abc_def0);
  assert.equal(fn.configRead(win.at + VIRTIO_PCI_CAP_OFFSET, 4), 0x1234_5678);
  assert.equal(fn.configRead(win.at + VIRTIO_PCI_CAP_LENGTH, 4), 0x9abc_def0);
});

test("virtio §4.1.4.9.1: reading pci_cfg_data reads the common configuration as the BAR does (device_feature, num_queues)", () => {
  const { dev, drv, win } = machine();
  const bar = drv.common.bar;
  for (const sel of [0, 1]) {
    drv.commonWrite(COMMON_DFSELECT, 4, sel);
    const viaBar = drv.commonRead(COMMON_DF, 4);
    assert.equal(win.read(bar, drv.common.offset + COMMON_DF, 4), viaBar);
    // The selector written through the window is the one the BAR sees.
    win.write(bar, drv.common.offset + COMMON_DFSELECT, 4, sel);
    assert.equal(drv.commonRead(COMMON_DFSELECT, 4), sel);
  }
  const offered = dev.transport.offeredFeatures;
  win.write(bar, COMMON_DFSELECT, 4, 0);
  const lo = win.read(bar, COMMON_DF, 4);
  win.write(bar, COMMON_DFSELECT, 4, 1);
  const hi = win.read(bar, COMMON_DF, 4);
  assert.equal((BigInt(hi) << 32n) | BigInt(lo), offered);
  assert.equal(win.read(bar, COMMON_NUMQ, 2), drv.numQueues);
  // Device configuration, byte by byte: the MAC address.
  const mac = [0, 1, 2, 3, 4, 5].map((i) => win.read(bar, VIRTIO_PCI_DEVICE_OFFSET + i, 1));
  assert.deepEqual(mac, [...MAC]);
  assert.equal(dev.transport.stats.pciCfgIgnored, 0);
  assert.equal(dev.transport.stats.badAccesses, 0);
});

test("virtio §4.1.4.9.1: writing pci_cfg_data writes device status and features as the BAR does", () => {
  const { dev, drv, win } = machine();
  const bar = drv.common.bar;
  win.write(bar, COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  win.write(bar, COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  assert.equal(drv.status, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  assert.equal(win.read(bar, COMMON_STATUS, 1), drv.status);
  const wanted = dev.transport.offeredFeatures;
  win.write(bar, COMMON_GFSELECT, 4, 0);
  win.write(bar, COMMON_GF, 4, Number(wanted & 0xffff_ffffn));
  win.write(bar, COMMON_GFSELECT, 4, 1);
  win.write(bar, COMMON_GF, 4, Number(wanted >> 32n));
  win.write(bar, COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  assert.equal(win.read(bar, COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_FEATURES_OK);
  assert.equal(dev.transport.negotiatedFeatures, wanted);
  // Writing 0 resets the device, through the window too.
  win.write(bar, COMMON_STATUS, 1, 0);
  assert.equal(dev.transport.status, 0);
  assert.equal(dev.transport.negotiatedFeatures, 0n);
});

test("virtio §4.1.4.9: the window works while the BAR does not decode (Command Memory clear, BAR unassigned)", () => {
  const { dev, drv, win } = machine();
  assert.equal(dev.fn.configRead(PCI_COMMAND, 2) & 0x2, 0);
  assert.equal(dev.fn.barAddress(drv.common.bar), undefined);
  win.write(drv.common.bar, COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  assert.equal(dev.transport.status, VIRTIO_CONFIG_S_ACKNOWLEDGE);
});

test("virtio §4.1.4.9.1: a read stores the first cap.length bytes in pci_cfg_data and leaves the others", () => {
  const { dev, drv, win } = machine();
  const fn = dev.fn;
  fn.configWrite(win.at + VIRTIO_PCI_CFG_DATA, 4, 0xa1b2c3d4); // window closed (length 0): just stored
  win.select(drv.common.bar, COMMON_STATUS, 1);
  drv.status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
  assert.equal(fn.configRead(win.at + VIRTIO_PCI_CFG_DATA, 4), (0xa1b2c300 | VIRTIO_CONFIG_S_ACKNOWLEDGE) >>> 0);
  // Each read access is one BAR read: the ISR status clears on the first (§4.1.4.5).
  dev.net.setLink(false); // VIRTIO_NET_S_LINK_UP changes: a configuration change (§5.1.4)
  win.select(drv.common.bar, VIRTIO_PCI_ISR_OFFSET, 1);
  assert.equal(fn.configRead(win.at + VIRTIO_PCI_CFG_DATA, 1) & 2, 2, "configuration change bit");
  assert.equal(fn.configRead(win.at + VIRTIO_PCI_CFG_DATA, 1), 0, "read clears");
});

test("virtio §4.1.4.9.2: lengths other than 1, 2, 4 and misaligned offsets are ignored (no BAR access, data unchanged)", () => {
  const { dev, drv, win } = machine();
  const fn = dev.fn;
  const bar = drv.common.bar;
  const data = win.at + VIRTIO_PCI_CFG_DATA;
  fn.configWrite(data, 4, 0x5a5a5a5a); // the window is closed (length 0): ignored too
  const cases: [number, number][] = [[0, COMMON_STATUS], [3, COMMON_DF], [8, COMMON_DF], [0x104, COMMON_DF], [2, COMMON_DF + 1], [4, COMMON_NUMQ]];
  let ignored = 1;
  for (const [length, offset] of cases) {
    win.select(bar, offset, length);
    assert.equal(fn.configRead(data, 4), 0x5a5a5a5a, `read with length ${length} at ${offset}`);
    fn.configWrite(data, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    fn.configWrite(data, 1, 0x5a);
    ignored += 3;
    assert.equal(dev.transport.status, 0, `write with length ${length} at ${offset} reached the BAR`);
  }
  assert.equal(dev.transport.stats.pciCfgIgnored, ignored);
  assert.equal(dev.transport.stats.badAccesses, 0, "nothing reached the common configuration");
});

test("virtio §4.1.4.9.2: accesses outside the other capabilities' structures are ignored (MSI-X table, gaps, other BARs)", () => {
  const { dev, drv, win } = machine();
  const fn = dev.fn;
  const bar = drv.common.bar;
  drv.enableFunction();
  const table = fn.barRead(bar, VIRTIO_PCI_MSIX_TABLE_OFFSET + 8, 4);
  fn.configWrite(win.at + VIRTIO_PCI_CFG_DATA, 4, 0); // the window is closed (length 0): ignored too
  for (const [b, off] of [[bar, VIRTIO_PCI_MSIX_TABLE_OFFSET + 8], [bar, 0x40], [bar, VIRTIO_PCI_ISR_OFFSET + 4], [0, COMMON_DF], [7, COMMON_DF], [bar, 0xffff_fffc]] as const) {
    win.write(b, off, 4, 0x77);
    assert.equal(win.read(b, off, 4), 0x77, "read ignored: pci_cfg_data keeps what was written");
  }
  assert.equal(fn.barRead(bar, VIRTIO_PCI_MSIX_TABLE_OFFSET + 8, 4), table, "the MSI-X table is not reachable");
  assert.equal(dev.transport.stats.pciCfgIgnored, 1 + 12);
});

test("PCIe Base §6.6.2: a function-level reset closes the window (cap.bar/offset/length/data back to 0)", () => {
  const { dev, drv, win } = machine();
  win.select(drv.common.bar, COMMON_STATUS, 1);
  dev.fn.configWrite(win.at + VIRTIO_PCI_CFG_DATA, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  assert.equal(dev.transport.status, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  dev.fn.reset();
  for (const off of [VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_CAP_LENGTH, VIRTIO_PCI_CFG_DATA]) {
    assert.equal(dev.fn.configRead(win.at + off, 1), 0);
  }
  assert.equal(dev.transport.status, 0);
});

test("virtio §4.1.4.9: a vVF (SR-IOV VF with attachVirtioNet) has its own window onto its VF BAR", () => {
  const mem = new GuestMemory(1 << 22);
  const pf = createVirtioNetPci({ memory: mem, mac: MAC, adminQueue: true });
  const sriov = new SriovCapability(pf.fn, { totalVfs: 1, firstVfOffset: 1, vfStride: 1, vfDeviceId: 0x1041, vfBars: [{ index: 0, ...VIRTIO_PCI_BAR_SPEC }] });
  pf.fn.configWrite(sriov.offset + PCI_SRIOV_NUM_VF, 2, 1);
  pf.fn.configWrite(sriov.offset + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
  const vfFn = sriov.vfFunction(1, { classCode: 0x020000 });
  const vf = attachVirtioNet(vfFn, { memory: mem, mac: Uint8Array.of(0x52, 0x54, 0, 0, 0, 1), bar: 0, backend: new LoopbackBackend() });
  const win = new CfgWindow(vfFn);
  assert.equal(win.read(0, VIRTIO_PCI_DEVICE_OFFSET + 5, 1), 1, "the VF's MAC, not the PF's");
  win.write(0, COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  assert.equal(vf.transport.status, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  assert.equal(pf.transport.status, 0);
});

test("property: random configuration writes and reads on the PCI_CFG capability never throw and keep its header", () => {
  const { dev, drv } = machine();
  drv.enableFunction();
  const fn = dev.fn;
  const at = dev.transport.pciCfgCap;
  const header = fn.configRead(at, 4);
  const access = fc.record({
    off: fc.integer({ min: at - 4, max: at + VIRTIO_PCI_CFG_CAP_SIZE + 3 }),
    width: fc.constantFrom<AccessWidth>(1, 2, 4),
    value: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 1, 2, 4, 3, 0x14, 0x1000, 0x1800, 0x2000, 0x3000)),
    read: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(access, { maxLength: 60 }), (ops) => {
      for (const o of ops) {
        if (o.read) fn.configRead(o.off, o.width);
        else fn.configWrite(o.off, o.width, o.value);
      }
      assert.equal(fn.configRead(at, 4), header);
      assert.equal(fn.configRead(at + 5, 1), 0, "cap.id");
    }),
    { numRuns: 300 },
  );
});

/** Runs the real pciutils `lspci -vvv -F <dump>`; a missing lspci fails the test. */
function lspci(dump: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vpf-lspci-"));
  try {
    const file = join(dir, "dump.txt");
    writeFileSync(file, dump);
    return execFileSync("lspci", ["-vvv", "-F", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("real lspci -vvv -F decodes the whole capability list with the PCI_CFG capability last", () => {
  const { dev, drv, win } = machine();
  const decode = (): { caps: string[]; out: string } => {
    const out = lspci(lspciDump(dev.fn, { bus: 1, device: 0, function: 0 }));
    return { out, caps: out.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("Capabilities:")) };
  };
  const { caps, out } = decode();
  assert.doesNotMatch(out, /<chain (broken|looped)>|<access denied>/);
  assert.ok(caps.some((l) => l.includes("Express (v2) Endpoint")) && caps.some((l) => l.includes("MSI-X: Enable- Count=")), caps.join("\n"));
  const vendor = caps.filter((l) => l.includes("Vendor Specific Information"));
  // pciutils names cfg_type 1..4 only (3.9's ls-caps-vendor.c); type 5 prints as <unknown> with
  // its bar/offset/length fields, which is how it recognises a virtio capability it cannot name.
  assert.deepEqual(vendor.map((l) => l.replace(/^Capabilities: \[[0-9a-f]+\] Vendor Specific Information: /, "")), [
    "VirtIO: CommonCfg", "VirtIO: Notify", "VirtIO: ISR", "VirtIO: DeviceCfg", "VirtIO: <unknown>",
  ]);
  const last = `Capabilities: [${dev.transport.pciCfgCap.toString(16)}] Vendor Specific Information: VirtIO: <unknown>`;
  assert.equal(vendor.at(-1), last);
  assert.match(out, new RegExp(`\\[${dev.transport.pciCfgCap.toString(16)}\\][^\\n]*\\n\\s+BAR=0 offset=00000000 size=00000000\\n`));
  // The driver's window selection is what lspci shows in the capability's fields.
  win.select(drv.common.bar, COMMON_STATUS, 1);
  assert.match(decode().out, new RegExp(`\\[${dev.transport.pciCfgCap.toString(16)}\\][^\\n]*\\n\\s+BAR=4 offset=00000014 size=00000001\\n`));
});
