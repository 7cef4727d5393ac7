import { LinuxError, LinuxErrorCode } from "./errors.js";
import { BEGIN_MARKER, END_MARKER, READY_MARKER } from "./initramfs.js";

/** What one console command gave back. */
export interface CommandResult {
  /** stdout and stderr interleaved, with the tty's CR LF turned into LF. */
  readonly output: string;
  /** The exit status of `sh -c <command>`. */
  readonly status: number;
}

interface Waiter {
  readonly pattern: RegExp;
  readonly resolve: (m: RegExpExecArray) => void;
  readonly reject: (e: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

/** The tty line buffer is 4096 bytes (N_TTY_BUF_SIZE); stay well below it. */
export const MAX_COMMAND_LENGTH = 3000;

/**
 * The host side of the serial console protocol served by the initramfs's /init (initScript):
 * a line "<id> <command>" in, "@@VPF-BEGIN <id>@@", output, "@@VPF-END <id> <status>@@" out.
 * Bytes arrive one by one from v86's UART; `send` writes to the UART's receive side. Timeouts
 * are wall-clock: they bound how long a test waits for an emulator, they assert nothing.
 */
export class SerialConsole {
  private text = "";
  private nextId = 1;
  private busy = false;
  private closed: LinuxError | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  /** Everything the guest printed, bounded, for error messages and logs. */
  private transcript = "";

  constructor(private readonly send: (text: string) => void) {}

  /** One byte of guest console output. */
  feed(byte: number): void {
    const ch = this.decoder.decode(Uint8Array.of(byte), { stream: true });
    if (ch === "" || ch === "\r") return;
    this.text += ch;
    this.transcript = (this.transcript + ch).slice(-16384);
    if (ch === "\n" || ch === "@") this.check();
  }

  /** The last part of what the guest printed (for diagnostics). */
  tail(chars = 4000): string {
    return this.transcript.slice(-chars);
  }

  private check(): void {
    for (const w of this.waiters) {
      w.pattern.lastIndex = 0;
      const m = w.pattern.exec(this.text);
      if (m !== null) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        this.text = this.text.slice(m.index + m[0].length);
        w.resolve(m);
      }
    }
  }

  /** Resolves with the first match of `pattern` in output not yet consumed, then consumes it. */
  waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
    if (this.closed !== undefined) return Promise.reject(this.closed);
    return new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new LinuxError(LinuxErrorCode.commandTimeout, `no ${what} from the guest within ${timeoutMs} ms; console tail:\n${this.tail(1500)}`, {
            details: { what, timeoutMs },
          }),
        );
      }, timeoutMs);
      const waiter: Waiter = { pattern, resolve, reject, timer };
      this.waiters.add(waiter);
      this.check();
    });
  }

  /** Waits for /init's ready marker. */
  async waitReady(timeoutMs: number): Promise<void> {
    try {
      await this.waitFor(new RegExp(escape(READY_MARKER)), timeoutMs, "ready marker");
    } catch (e) {
      if (e instanceof LinuxError && e.code === LinuxErrorCode.commandTimeout) {
        throw new LinuxError(LinuxErrorCode.bootTimeout, e.message.replace("no ready marker", "no ready marker (boot)"), { cause: e });
      }
      throw e;
    }
  }

  /** Runs one shell command line in the guest. */
  async run(command: string, timeoutMs = 30_000): Promise<CommandResult> {
    if (this.closed !== undefined) throw this.closed;
    if (command.includes("\n") || command.includes("\r") || command.includes("\0") || command.length > MAX_COMMAND_LENGTH || command.includes("@@VPF-")) {
      throw new LinuxError(LinuxErrorCode.badCommand, "a console command is one line without NUL or @@VPF- markers, at most 3000 chars", {
        details: { length: command.length },
      });
    }
    if (this.busy) throw new LinuxError(LinuxErrorCode.consoleState, "one console command at a time");
    this.busy = true;
    try {
      const id = this.nextId++;
      const end = this.waitFor(new RegExp(`${escape(BEGIN_MARKER)} ${id}@@\\n([\\s\\S]*?)${escape(END_MARKER)} ${id} (\\d+)@@`), timeoutMs, `end of command ${id} (${command})`);
      this.send(`${id} ${command}\n`);
      const m = await end;
      return { output: m[1] ?? "", status: Number(m[2]) };
    } finally {
      this.busy = false;
    }
  }

  /** Fails every waiter: the emulator is gone. */
  close(reason: string): void {
    this.closed = new LinuxError(LinuxErrorCode.consoleState, `guest console closed: ${reason}`);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(this.closed);
    }
    this.waiters.clear();
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
