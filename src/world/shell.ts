/**
 * The tiny shell that `vpf exec NODE -- ...` runs commands through inside a node. It knows
 * words, single and double quotes, backslash escapes, `;`-separated commands and output
 * redirection (`>` and `>>`), which is what sysfs work needs (`echo 4 > .../sriov_numvfs`).
 * It is not a POSIX shell: no variables, globs, pipes or subshells; those are refused
 * with exit status 2 and a message, as a shell refuses a syntax error.
 */
import { VpfError } from "../base/errors.js";

export interface SimpleCommand {
  readonly argv: readonly string[];
  /** Target of `>` or `>>`, if any. */
  readonly redirect: { readonly path: string; readonly append: boolean } | undefined;
}

export class ShellSyntaxError extends VpfError {
  constructor(message: string) {
    super("SHELL_SYNTAX", message);
  }
}

/** Quotes one argument so that `parseCommandLine` gives it back unchanged. */
export function shellQuote(arg: string): string {
  if (arg !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Turns the argv after `--` into command text. A single argument is taken as a command line
 * (`vpf exec vm1 -- 'echo 4 > /sys/...'`); several arguments are words, except bare `>`,
 * `>>` and `;` which keep their shell meaning (`vpf exec vm1 -- echo 4 '>' FILE`).
 */
export function argvToCommandLine(argv: readonly string[]): string {
  if (argv.length === 1) return argv[0] ?? "";
  return argv.map((a) => (a === ">" || a === ">>" || a === ";" ? a : shellQuote(a))).join(" ");
}

export function parseCommandLine(line: string): SimpleCommand[] {
  const commands: SimpleCommand[] = [];
  let words: string[] = [];
  let redirect: { path: string; append: boolean } | undefined;
  let pendingRedirect: { append: boolean } | undefined;
  let word = "";
  let inWord = false;

  const endWord = (): void => {
    if (!inWord) return;
    if (pendingRedirect !== undefined) {
      if (redirect !== undefined) throw new ShellSyntaxError("only one redirection per command is supported");
      redirect = { path: word, append: pendingRedirect.append };
      pendingRedirect = undefined;
    } else {
      words.push(word);
    }
    word = "";
    inWord = false;
  };
  const endCommand = (): void => {
    endWord();
    if (pendingRedirect !== undefined) throw new ShellSyntaxError("syntax error near unexpected token `newline'");
    if (words.length === 0) {
      if (redirect !== undefined) throw new ShellSyntaxError("a redirection needs a command");
    } else {
      commands.push({ argv: words, redirect });
    }
    words = [];
    redirect = undefined;
  };

  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? "";
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellSyntaxError("unexpected EOF while looking for matching `''");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\" && j + 1 < line.length && '"\\$`'.includes(line[j + 1] ?? "")) j++;
        word += line[j] ?? "";
      }
      if (j >= line.length) throw new ShellSyntaxError('unexpected EOF while looking for matching `"\'');
      inWord = true;
      i = j;
    } else if (c === "\\") {
      if (i + 1 < line.length) word += line[++i] ?? "";
      inWord = true;
    } else if (c === " " || c === "\t") {
      endWord();
    } else if (c === "\n" || c === ";") {
      endCommand();
    } else if (c === ">") {
      endWord();
      if (pendingRedirect !== undefined) throw new ShellSyntaxError("syntax error near unexpected token `>'");
      const append = line[i + 1] === ">";
      if (append) i++;
      pendingRedirect = { append };
    } else if (c === "|" || c === "<" || c === "&" || c === "`" || c === "$" || c === "(" || c === ")") {
      throw new ShellSyntaxError(`'${c}' is not supported by the vpf node shell (words, quotes, ';' and '>' only)`);
    } else {
      word += c;
      inWord = true;
    }
  }
  endCommand();
  return commands;
}
