import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseCommandLine, argvToCommandLine, shellQuote, ShellSyntaxError } from "./shell.js";

test("words, quotes, escapes, ';' and redirections", () => {
  assert.deepEqual(parseCommandLine("echo 4 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs"), [
    { argv: ["echo", "4"], redirect: { path: "/sys/bus/pci/devices/0000:01:00.0/sriov_numvfs", append: false } },
  ]);
  assert.deepEqual(parseCommandLine(`echo 'a b' "c \\"d\\"" e\\ f>>out; ls`), [
    { argv: ["echo", "a b", 'c "d"', "e f"], redirect: { path: "out", append: true } },
    { argv: ["ls"], redirect: undefined },
  ]);
  assert.deepEqual(parseCommandLine("  "), []);
});

test("syntax errors are refused with SHELL_SYNTAX", () => {
  for (const bad of ["echo 'x", 'echo "x', "echo >", "> f", "ls | grep x", "echo $HOME", "a > b > c"]) {
    assert.throws(() => parseCommandLine(bad), (e: unknown) => e instanceof ShellSyntaxError && e.code === "SHELL_SYNTAX", bad);
  }
});

test("argv from the user's shell keeps its words; bare '>' keeps its meaning", () => {
  assert.deepEqual(parseCommandLine(argvToCommandLine(["echo", "4", ">", "/sys/x"])), [{ argv: ["echo", "4"], redirect: { path: "/sys/x", append: false } }]);
  assert.deepEqual(parseCommandLine(argvToCommandLine(["ip link show dev eth0"])), [{ argv: ["ip", "link", "show", "dev", "eth0"], redirect: undefined }]);
});

test("shellQuote round-trips any argument", () => {
  fc.assert(
    fc.property(fc.array(fc.string(), { minLength: 2, maxLength: 5 }), (args) => {
      const line = args.map(shellQuote).join(" ");
      const cmds = parseCommandLine(line);
      assert.deepEqual(cmds[0]?.argv, args);
    }),
  );
});
