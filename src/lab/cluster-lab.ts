/**
 * ClusterLab: several usernet "hosts" joined by an underlay, with etcd on
 * it — all inside namespaces this lab makes (unique prefix per run):
 *
 *   <p>ul     a kernel bridge br0: the underlay segment
 *   <p>etcd   etcd (Debian's etcd-server) at 198.18.0.100:2379
 *   hosts     one DaemonLab each; its namespace gets `ul0` on the underlay
 *             at 198.18.0.<i+1>/24 and the daemon runs with --cluster and
 *             --advertise that address
 *
 * Extra underlay members (a kernel vxlan peer) come from addMember().
 * cleanup() stops every daemon and etcd by pid and removes every namespace
 * the lab made, also after a failure.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonLab, listNetns, uniquePrefix } from './lab.js';

export const UNDERLAY = '198.18.0';
export const ETCD_IP = `${UNDERLAY}.100`;

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function netnsSysctl(ns: string): void {
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

export class ClusterLab {
  readonly prefix = uniquePrefix('cl');
  readonly ul: string;
  readonly etcdNs: string;
  readonly hosts: DaemonLab[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'usernet-cluster-'));
  etcd: ChildProcess | null = null;
  etcdLog = '';
  private members = 0;

  constructor(readonly ttlSeconds = 3) {
    this.ul = `${this.prefix}ul`;
    this.etcdNs = `${this.prefix}etcd`;
  }

  get etcdUrl(): string {
    return `etcd://${ETCD_IP}:2379`;
  }

  /** The underlay bridge and etcd's namespace. */
  setUp(): void {
    ip('netns', 'add', this.ul);
    netnsSysctl(this.ul);
    ip('-n', this.ul, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', this.ul, 'link', 'set', 'br0', 'up');
    this.addMember(this.etcdNs, ETCD_IP, 'e0');
  }

  /**
   * A namespace (made if missing) with interface `ifname` on the underlay
   * at `addr`/24; returns the name of its port on br0 (to capture on).
   */
  addMember(ns: string, addr: string, ifname = 'ul0'): string {
    if (!listNetns().includes(ns)) {
      ip('netns', 'add', ns);
      netnsSysctl(ns);
    }
    const port = `m${this.members++}`;
    ip('-n', this.ul, 'link', 'add', port, 'type', 'veth', 'peer', 'name', ifname, 'netns', ns);
    ip('-n', this.ul, 'link', 'set', port, 'master', 'br0', 'up');
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', ifname);
    ip('-n', ns, 'link', 'set', ifname, 'up');
    return port;
  }

  async startEtcd(): Promise<void> {
    const url = `http://${ETCD_IP}:2379`;
    this.etcd = spawn(
      'ip',
      [
        'netns', 'exec', this.etcdNs, 'etcd',
        '--name', 'lab', '--data-dir', join(this.dir, 'etcd'),
        '--listen-client-urls', url, '--advertise-client-urls', url,
        '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
        '--initial-cluster', 'lab=http://127.0.0.1:2380', '--log-level', 'warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const p = this.etcd;
    p.stdout!.on('data', (d) => (this.etcdLog += d));
    p.stderr!.on('data', (d) => (this.etcdLog += d));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (p.exitCode !== null) throw new Error(`etcd exited (${p.exitCode}):\n${this.etcdLog}`);
      const r = spawnSync('ip', ['netns', 'exec', this.etcdNs, 'bash', '-c', `exec 3<>/dev/tcp/${ETCD_IP}/2379`], { timeout: 2000 });
      if (r.status === 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`etcd did not come up:\n${this.etcdLog}`);
  }

  async stopEtcd(): Promise<void> {
    const p = this.etcd;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await exited;
    this.etcd = null;
  }

  /** A host: a daemon in its own namespace on the underlay at 198.18.0.<n>. */
  addHost(extraArgs: string[] = []): DaemonLab {
    const n = this.hosts.length + 1;
    const d = new DaemonLab(`h${n}`);
    this.addMember(d.hostNs, this.hostIp(n));
    d.daemonArgs = ['--cluster', this.etcdUrl, '--advertise', this.hostIp(n), '--cluster-ttl', String(this.ttlSeconds), ...extraArgs];
    this.hosts.push(d);
    return d;
  }

  hostIp(n: number): string {
    return `${UNDERLAY}.${n}`;
  }

  /** Run a command in a namespace; its exit code and output. */
  run(ns: string, args: string[], timeoutMs = 20_000): { code: number; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') };
  }

  async cleanup(): Promise<void> {
    for (const h of this.hosts) await h.cleanup().catch(() => undefined);
    await this.stopEtcd().catch(() => undefined);
    for (const ns of listNetns().filter((n) => n.startsWith(this.prefix))) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
