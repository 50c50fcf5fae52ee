// The benchmarks' command lines: `--flag value` and `--flag=value`, `-h`/`--help`.

/**
 * Calls `visit` for each flag, with a function that takes its value (the rest of `--flag=value`,
 * else the next argument). Returns 'help' at `-h` or `--help`.
 */
export function eachFlag(argv: readonly string[], visit: (flag: string, value: () => string) => void): 'help' | undefined {
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] ?? '';
    const eq = raw.indexOf('=');
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const inline = eq > 0 ? raw.slice(eq + 1) : undefined;
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag}: needs a value`);
      return v;
    };
    if (flag === '-h' || flag === '--help') return 'help';
    visit(flag, value);
  }
  return undefined;
}

/**
 * A benchmark's options from the command line, or the exit code once handled: 0 after printing
 * `usage` for --help, 2 after printing a bad flag's message.
 */
export function optionsOrExit<T extends object>(parse: (argv: readonly string[]) => T | 'help', usage: string): T | number {
  let parsed: T | 'help';
  try {
    parsed = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(usage);
    return 0;
  }
  return parsed;
}
