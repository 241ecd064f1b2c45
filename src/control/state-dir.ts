/**
 * The daemon's hold on its state directory (cold path, start and stop only).
 *
 * StateDirLock — one daemon per state directory. `lock` in the directory
 * holds the owner's pid and the start time of that process (field 22 of
 * /proc/PID/stat), so a lock left by a daemon that died (or whose pid was
 * reused by another program) is taken over, and a live owner is refused
 * with a one-line error. The file is made with link(2) from a private temp
 * file, which fails when the lock exists: two daemons starting at once
 * cannot both win.
 *
 * NetnsLedger — the names of the namespaces this daemon made (netns.json).
 * A name is written down before `ip netns add` and struck out after `ip
 * netns del`, so a daemon that dies in between still knows the namespace
 * is its own. usernet deletes a namespace only when the ledger has it; any
 * other namespace of the same name (made by the user, another daemon, or
 * the daemon's own namespace) is refused, never removed.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Write JSON to `file` atomically (temp file, then rename), root-only. */
export function writeJsonAtomic(file: string, data: unknown): void {
  const tmp = file + '.tmp';
  writeFileSync(tmp, JSON.stringify(data, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

/** The start time of a process (clock ticks since boot), or null when it is gone. */
function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export class StateDirLock {
  private constructor(
    readonly dir: string,
    private readonly file: string,
    /** the topmost directory this lock's mkdir made (removed again by release(true)), or null */
    private readonly made: string | null,
  ) {}

  /** Make the directory if needed and take its lock; throws a one-line error when another daemon holds it. */
  static acquire(dir: string): StateDirLock {
    const abs = resolve(dir);
    let made: string | null = null;
    try {
      made = mkdirSync(abs, { recursive: true, mode: 0o700 }) ?? null;
    } catch (e) {
      throw new Error(`cannot use state directory ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const file = join(abs, 'lock');
    const me = `${process.pid} ${startTime(process.pid) ?? ''}\n`;
    const tmp = join(abs, `.lock.${process.pid}`);
    writeFileSync(tmp, me, { mode: 0o600 });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          linkSync(tmp, file);
          return new StateDirLock(abs, file, made);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 3) throw e;
        }
        const [pidText, started] = readLock(file);
        const pid = Number(pidText);
        const alive = Number.isInteger(pid) && pid > 0 && pid !== process.pid && startTime(pid) !== null && (!started || startTime(pid) === started);
        if (alive) throw new Error(`state directory ${abs} is in use by another usernet daemon (pid ${pid}); give this one its own --state-dir`);
        unlinkSync(file); // left by a daemon that is gone: take it over
      }
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Give the lock up; with `removeIfMade`, also remove the directory when this daemon made it (a failed start). */
  release(removeIfMade = false): void {
    rmSync(this.file, { force: true });
    if (removeIfMade && this.made) rmSync(this.made, { recursive: true, force: true });
  }
}

function readLock(file: string): [string, string] {
  try {
    const [pid = '', started = ''] = readFileSync(file, 'utf8').trim().split(/\s+/);
    return [pid, started];
  } catch {
    return ['', ''];
  }
}

export class NetnsLedger {
  private readonly names: Set<string>;

  constructor(
    private readonly file: string,
    /** names to count as ours when no ledger exists yet (the containers of a state file written before ledgers) */
    seed: Iterable<string> = [],
  ) {
    if (existsSync(file)) {
      const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`invalid ${file}: expected a list of namespace names`);
      this.names = new Set(v);
    } else {
      this.names = new Set(seed);
    }
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** Write the name down (before the namespace is made). */
  add(name: string): void {
    if (this.names.has(name)) return;
    this.names.add(name);
    this.save();
  }

  /** Strike it out (after the namespace is gone). */
  remove(name: string): void {
    if (this.names.delete(name)) this.save();
  }

  private save(): void {
    writeJsonAtomic(this.file, [...this.names]);
  }
}
