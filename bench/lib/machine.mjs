// How busy the machine was with work other than this harness and the relays it spawned: the
// comparison is only fair when nothing else competes for the cores. Linux /proc only; elsewhere null.
import { readFileSync } from 'node:fs';

function read() {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = cpu;
    // /proc/self/stat: fields after the parenthesised command; utime, stime, cutime, cstime are 14–17.
    const self = readFileSync('/proc/self/stat', 'utf8');
    const f = self
      .slice(self.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    const own = f[11] + f[12] + f[13] + f[14]; // includes children that have exited and been reaped
    // Interrupt time is left out of `busy`: loopback traffic is processed in softirq context and
    // cannot be attributed to a process. Steal (another guest on the host) counts as foreign load.
    return { busy: user + nice + system + steal, total: user + nice + system + idle + iowait + irq + softirq + steal, own };
  } catch {
    return null;
  }
}

/** Starts a meter; `stop()` returns `{ foreignShare, ownShare }` (fractions of all cores), or null. */
export function startCpuMeter() {
  const a = read();
  return {
    stop() {
      const b = read();
      if (!a || !b || b.total === a.total) return null;
      const total = b.total - a.total;
      const own = b.own - a.own;
      return { ownShare: own / total, foreignShare: Math.max(0, (b.busy - a.busy - own) / total) };
    },
  };
}

function ticksOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return f[11] + f[12];
  } catch {
    return 0;
  }
}

/**
 * A meter for one run: `stop()` returns the share of the machine (all cores) used by processes
 * other than this one and the live processes `pids` (the relays), or NaN where /proc is missing.
 */
export function startRunMeter(pids) {
  const a = read();
  const p0 = pids.map(ticksOf);
  return {
    stop() {
      const b = read();
      if (!a || !b || b.total === a.total) return NaN;
      const mine = b.own - a.own + pids.reduce((n, pid, i) => n + ticksOf(pid) - p0[i], 0);
      return Math.max(0, (b.busy - a.busy - mine) / (b.total - a.total));
    },
  };
}
