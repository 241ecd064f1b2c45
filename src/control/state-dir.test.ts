import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NetnsLedger, StateDirLock } from './state-dir.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'usernet-sd-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('StateDirLock', () => {
  it('refuses a second holder while the first is alive, and frees the directory on release', () => {
    const dir = join(tmp(), 'state');
    const a = StateDirLock.acquire(dir);
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} \\d+`));
    // this process holds it: a lock file naming a live process with the same start time is "in use"
    const held = readFileSync(join(dir, 'lock'), 'utf8');
    a.release();
    expect(existsSync(join(dir, 'lock'))).toBe(false);
    // another live process (a child) holds it
    const child = spawn('sleep', ['30']);
    try {
      const started = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const st = started.slice(started.lastIndexOf(')') + 2).split(' ')[19];
      writeFileSync(join(dir, 'lock'), `${child.pid} ${st}\n`);
      expect(() => StateDirLock.acquire(dir)).toThrow(new RegExp(`state directory .*state is in use by another usernet daemon \\(pid ${child.pid}\\)`));
      // the refused attempt changed nothing
      expect(readFileSync(join(dir, 'lock'), 'utf8')).toBe(`${child.pid} ${st}\n`);
      // a reused pid (same pid, other start time) is not the owner
      writeFileSync(join(dir, 'lock'), `${child.pid} 1\n`);
      StateDirLock.acquire(dir).release();
    } finally {
      child.kill('SIGKILL');
    }
    expect(held).toContain(String(process.pid));
  });

  it('takes over the lock of a daemon that is gone', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'lock'), '999999999 12345\n');
    const l = StateDirLock.acquire(dir);
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    l.release();
  });

  it('removes a directory it made when asked (failed start), and never one that was there', () => {
    const base = tmp();
    const made = join(base, 'a', 'b');
    StateDirLock.acquire(made).release(true);
    expect(existsSync(join(base, 'a'))).toBe(false);
    const there = join(base, 'kept');
    StateDirLock.acquire(there).release();
    writeFileSync(join(there, 'state.json'), '{}');
    StateDirLock.acquire(there).release(true);
    expect(existsSync(join(there, 'state.json'))).toBe(true);
  });

  it('gives a one-line error for a directory it cannot make', () => {
    const f = join(tmp(), 'file');
    writeFileSync(f, 'x');
    expect(() => StateDirLock.acquire(join(f, 'state'))).toThrow(/^cannot use state directory .*: ENOTDIR$/);
  });
});

describe('NetnsLedger', () => {
  it('remembers the names written down across instances and forgets struck-out ones', () => {
    const file = join(tmp(), 'netns.json');
    const a = new NetnsLedger(file, ['seeded']);
    expect(a.has('seeded')).toBe(true);
    a.add('x');
    a.add('y');
    a.remove('seeded');
    const b = new NetnsLedger(file, ['ignored-once-a-ledger-exists']);
    expect([b.has('x'), b.has('y'), b.has('seeded'), b.has('ignored-once-a-ledger-exists')]).toEqual([true, true, false, false]);
  });

  it('refuses a corrupt ledger with a clear error', () => {
    const file = join(tmp(), 'netns.json');
    writeFileSync(file, '{"a":1}');
    expect(() => new NetnsLedger(file)).toThrow(/invalid .*netns.json: expected a list of namespace names/);
  });
});
