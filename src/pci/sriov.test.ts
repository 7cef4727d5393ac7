import { test } from "node:test";
import assert from "node:assert/strict";
import { makeExamplePf } from "./fixtures.js";
import {
  PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_ARI, PCI_SRIOV_CTRL_MSE, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_NUM_VF, PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_INITIAL_VF, PCI_SRIOV_STATUS, PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_SUP_PGSIZE, PCI_SRIOV_BAR, PCI_SRIOV_VF_OFFSET,
  PCI_SRIOV_VF_STRIDE, PCI_SRIOV_VF_DID, PCI_SRIOV_FUNC_LINK,
} from "./sriov.js";

test("SR-IOV §3.3: power-on register values (InitialVFs = TotalVFs, page sizes 0x553 / 1)", () => {
  const { pf, sriov } = makeExamplePf();
  const o = sriov.offset;
  assert.equal(pf.configRead(o, 4) & 0xfffff, 0x10010);
  assert.equal(pf.configRead(o + PCI_SRIOV_INITIAL_VF, 2), 8);
  assert.equal(pf.configRead(o + PCI_SRIOV_TOTAL_VF, 2), 8);
  assert.equal(pf.configRead(o + PCI_SRIOV_NUM_VF, 2), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_CTRL, 2), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_FUNC_LINK, 1), 0);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_OFFSET, 2), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_STRIDE, 2), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_VF_DID, 2), 0x1041);
  assert.equal(pf.configRead(o + PCI_SRIOV_SUP_PGSIZE, 4), 0x553);
  assert.equal(pf.configRead(o + PCI_SRIOV_SYS_PGSIZE, 4), 1);
  assert.equal(pf.configRead(o + PCI_SRIOV_BAR, 4), 0xc);
  assert.equal(pf.configRead(o + PCI_SRIOV_STATUS, 2), 0);
});

test("SR-IOV §3.3.3.1: setting VF Enable returns vfs-enabled and creates nothing; clearing returns vfs-disabled", () => {
  const { pf, sriov } = makeExamplePf();
  const o = sriov.offset;
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_NUM_VF, 2, 4), []);
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE), [{ kind: "vfs-enabled", numVfs: 4 }]);
  assert.equal(sriov.vfEnabled, true);
  assert.equal(sriov.enabledVfs, 4);
  assert.equal(sriov.existingVf(1), undefined);
  assert.deepEqual(pf.configWrite(o + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_MSE), [{ kind: "vfs-disabled", numVfs: 4 }]);
  assert.equal(sriov.enabledVfs, 0);
});
