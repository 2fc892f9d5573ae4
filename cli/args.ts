import type { Readable, Writable } from 'node:stream';

/** Streams and environment a CLI command runs with (tests pass their own). */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable;
  env: NodeJS.ProcessEnv;
}

/** The process's own streams and environment. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

/** Positional arguments and `--name value` / `--name=value` / `--flag` options. */
export interface ParsedArgs {
  positional: string[];
  options: Map<string, string>;
}

/** Splits arguments; names listed in `flags` take no value. */
export function parseArgs(argv: readonly string[], flags: readonly string[] = []): ParsedArgs {
  const positional: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || a === '--') {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).toLowerCase();
    if (eq > 0) options.set(name, a.slice(eq + 1));
    else if (flags.includes(name)) options.set(name, 'true');
    else {
      const v = argv[i + 1];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      options.set(name, v);
      i++;
    }
  }
  return { positional, options };
}

/** Writes a line. */
export function println(out: Writable, text = ''): void {
  out.write(text + '\n');
}
