import { PciError } from "./errors.js";
import type { PciEffect, PciFunction, PowerState } from "./function.js";
import { PCI_CAP_ID_PM } from "./regs.js";

export interface PowerManagementOptions {
  readonly d1?: boolean;
  readonly d2?: boolean;
  /** PME_Support bits [15:11]: D0, D1, D2, D3hot, D3cold; default none. */
  readonly pmeSupport?: number;
  /** No_Soft_Reset: D3hot → D0 keeps state (default true, as virtio-pci and most NICs). */
  readonly noSoftReset?: boolean;
  readonly at?: number;
}

export const PCI_PM_PMC = 0x02;
export const PCI_PM_CTRL = 0x04;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
export const PCI_PM_CTRL_PME_ENABLE = 0x0100;
export const PCI_PM_CTRL_PME_STATUS = 0x8000;

const states: readonly PowerState[] = ["D0", "D1", "D2", "D3hot"];

/**
 * Power Management capability, version 3 (PCI Bus Power Management 1.2 §3.2). PowerState is RW;
 * a write of an unsupported state completes but changes nothing (§3.2.4); D3hot → D0 without
 * No_Soft_Reset resets the function (§5.4.1). Outside D0 BARs do not decode.
 */
export class PowerManagementCapability {
  readonly fn: PciFunction;
  readonly offset: number;
  readonly #supported: readonly boolean[];
  readonly #noSoftReset: boolean;
  #state = 0;

  constructor(fn: PciFunction, opts: PowerManagementOptions = {}) {
    const pme = opts.pmeSupport ?? 0;
    if (!Number.isInteger(pme) || pme < 0 || pme > 0x1f) throw new PciError("PCI_BAD_ARGUMENT", `PME support ${pme} is not 5 bits`);
    this.fn = fn;
    this.#supported = [true, opts.d1 === true, opts.d2 === true, true];
    this.#noSoftReset = opts.noSoftReset ?? true;
    const o = (this.offset = fn.addCapability(PCI_CAP_ID_PM, 8, opts.at));
    const c = fn.config;
    c.setU16(o + PCI_PM_PMC, 3 | (opts.d1 === true ? 0x200 : 0) | (opts.d2 === true ? 0x400 : 0) | (pme << 11));
    c.setU16(o + PCI_PM_CTRL, this.#noSoftReset ? PCI_PM_CTRL_NO_SOFT_RESET : 0);
    c.setWmask(o + PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK | (pme !== 0 ? PCI_PM_CTRL_PME_ENABLE : 0));
    if (pme !== 0) c.setW1c(o + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_STATUS);
    fn.onConfigWrite(o + PCI_PM_CTRL, 2, () => this.#afterWrite());
    fn.onReset(() => {
      this.#state = 0;
      return undefined;
    });
    fn.attach(this);
  }

  get powerState(): PowerState {
    return states[this.#state] ?? "D0";
  }

  #afterWrite(): readonly PciEffect[] | undefined {
    const c = this.fn.config;
    const at = this.offset + PCI_PM_CTRL;
    const v = c.read(at, 2);
    const next = v & PCI_PM_CTRL_STATE_MASK;
    if (next === this.#state) return undefined;
    if (this.#supported[next] !== true) {
      // §3.2.4: an unsupported state is discarded; the write completes normally.
      c.poke(at, 2, (v & ~PCI_PM_CTRL_STATE_MASK) | this.#state);
      return undefined;
    }
    const from = this.#state;
    this.#state = next;
    const state = states[next] ?? "D0";
    this.fn.setPowerState(state);
    const effects: PciEffect[] = [{ kind: "power-state", state }];
    if (from === 3 && next === 0 && !this.#noSoftReset) {
      effects.push({ kind: "function-reset", reason: "power-management" }, ...this.fn.reset());
    }
    return effects;
  }
}
