// What both benchmarks write next to their numbers: the source they measured, the command that
// produced them, and their section of bench/README.md.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

/** The commit, and uncommitted changes to the proxy's own code. */
export function sourceInfo(root: string): { commit: string; modified: string[] } {
  // Read-only queries; --no-optional-locks keeps `status` from refreshing the index.
  const git = (...args: string[]) => {
    try {
      return execFileSync('git', ['--no-optional-locks', '-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const modified = git('status', '--porcelain', '--', 'proxy', 'cache', 'indexes', 'flowcontrol').split('\n').filter((l) => l.trim() !== '').map((l) => l.trim());
  return { commit: git('rev-parse', '--short', 'HEAD') || 'unknown', modified };
}

/** The command line as typed: `npm run <script> -- …` or `node dist/bench/<file> …`. */
export function commandLine(script: string, file: string): string {
  const args = process.argv.slice(2).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`));
  return process.env['npm_lifecycle_event'] === script ? `npm run ${script}${args.length ? ` -- ${args.join(' ')}` : ''}` : `node dist/bench/${file} ${args.join(' ')}`.trim();
}

/** Replaces the block between `<!-- <marker>:begin -->` and `…:end -->`, or appends it under `heading`. */
export function updateReadme(file: string, marker: string, heading: string, md: string): void {
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark\n';
  const b = text.indexOf(begin);
  const e = text.indexOf(end);
  const block = `${begin}\n${md}\n${end}`;
  const next = b >= 0 && e > b ? text.slice(0, b) + block + text.slice(e + end.length) : `${text.trimEnd()}\n\n## ${heading}\n\n${block}\n`;
  writeFileSync(file, next);
}
