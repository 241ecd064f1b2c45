/**
 * Lab: a real usernet daemon in a namespace of its own
 * (entered with nsenter, so the daemon still sees /run/netns), a unique
 * prefix per run for every namespace it makes, the CLI run as a child
 * process, and a cleanup that removes every namespace with the prefix and
 * stops the daemon by its pid — also when a test fails.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: the folder above this file that has bin/usernet (works from src/ and dist/src/). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'bin', 'usernet')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the usernet checkout (bin/usernet)');
}

export const ROOT = findRoot();
export const CLI = join(ROOT, 'bin', 'usernet');
export const isRoot = process.getuid?.() === 0;

export function uniquePrefix(tag: string): string {
  return `un${tag}${process.pid % 1000}${Math.random().toString(36).slice(2, 6)}-`;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function listNetns(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

export class DaemonLab {
  readonly prefix: string;
  readonly dir: string;
  readonly socket: string;
  readonly stateDir: string;
  /** the namespace the daemon itself runs in */
  readonly hostNs: string;
  proc: ChildProcess | null = null;
  log = '';

  /** extra `usernet daemon` options */
  daemonArgs: string[] = [];

  constructor(tag: string) {
    this.prefix = uniquePrefix(tag);
    this.dir = mkdtempSync(join(tmpdir(), 'usernet-test-'));
    this.socket = join(this.dir, 'usernet.sock');
    this.stateDir = join(this.dir, 'state');
    this.hostNs = `${this.prefix}host`;
  }

  /** Create the daemon's own namespace (once) and start the daemon in it. */
  async start(): Promise<void> {
    if (!listNetns().includes(this.hostNs)) execFileSync('ip', ['netns', 'add', this.hostNs]);
    execFileSync('ip', ['-n', this.hostNs, 'link', 'set', 'lo', 'up']);
    const proc = spawn(
      'nsenter',
      [`--net=/run/netns/${this.hostNs}`, '--', process.execPath, CLI, '--socket', this.socket, 'daemon', '--state-dir', this.stateDir, '--netns-prefix', this.prefix, '--log-level', 'info', ...this.daemonArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    proc.stdout!.on('data', (d) => (this.log += d));
    proc.stderr!.on('data', (d) => (this.log += d));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`daemon exited (${proc.exitCode}):\n${this.log}`);
      if (existsSync(this.socket) && this.cli('network', 'ls').code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`daemon did not come up:\n${this.log}`);
  }

  /** Stop the daemon (SIGTERM, then SIGKILL) and wait for it. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    this.proc = null;
  }

  cli(...args: string[]): CliResult {
    const r = spawnSync(process.execPath, [CLI, '--socket', this.socket, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** The CLI, which must succeed. */
  ok(...args: string[]): string {
    const r = this.cli(...args);
    if (r.code !== 0) throw new Error(`usernet ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Run a command inside a container (through `usernet exec`). */
  exec(container: string, ...cmd: string[]): CliResult {
    return this.cli('exec', container, '--', ...cmd);
  }

  ping(from: string, to: string, count = 2): boolean {
    return this.exec(from, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', to).code === 0;
  }

  /** Namespaces the daemon made (not the harness's own host namespace) that still exist. */
  leftovers(): string[] {
    return listNetns().filter((n) => n.startsWith(this.prefix) && n !== this.hostNs);
  }

  /** Remove everything: daemon, every namespace with our prefix, temp dir. */
  async cleanup(): Promise<void> {
    await this.stop().catch(() => undefined);
    for (const ns of listNetns().filter((n) => n.startsWith(this.prefix))) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
