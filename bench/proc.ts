// CPU time and memory of other processes, from /proc (Linux).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticksPerSecond: number | undefined;

/** The kernel's clock ticks per second (USER_HZ) that /proc/<pid>/stat counts in. */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime+stime of a process in seconds (its own threads; not its children), or NaN if it is gone. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  // The command name (field 2) may contain spaces and parentheses: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / clockTicks();
}

/** Resident set size in bytes from /proc/<pid>/status, or NaN. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export interface CpuSample {
  readonly at: number;
  readonly seconds: Readonly<Record<string, number>>;
}

/** CPU seconds of each named process at one instant. */
export function sampleCpu(pids: Readonly<Record<string, number>>): CpuSample {
  const seconds: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) seconds[name] = cpuSeconds(pid);
  const self = process.cpuUsage();
  seconds['bench'] = (self.user + self.system) / 1e6;
  return { at: performance.now(), seconds };
}

/** CPU seconds used between two samples, per process. */
export function cpuDelta(a: CpuSample, b: CpuSample): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(b.seconds)) out[name] = v - (a.seconds[name] ?? Number.NaN);
  return out;
}
