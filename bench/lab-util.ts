/**
 * What the benchmarks share: the numbers (median, round2), running a bench
 * file directly, namespaces (ip, inNs, addNs, quietNs, ethtoolK,
 * removeNetns), processes (sleep, poll, stop, cpuSeconds), and the
 * measurements between a client and a server namespace (iperf3 TCP and UDP
 * packet rate, ping RTTs, the flood-ping warm-up) with the medians and rows
 * made of them.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { listNetns } from '../src/lab/lab.js';
import type { Row } from './table.js';

// ───────────────────────────── numbers ─────────────────────────────

/** The median (the mean of the middle two for an even count); NaN for none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

// ───────────────────────────── run directly ─────────────────────────────

/** Whether the module at `url` (its import.meta.url) is the program node was started with. */
export function isMain(url: string): boolean {
  return !!process.argv[1] && fileURLToPath(url) === process.argv[1];
}

/** Print a directly run benchmark's rows (console.table); on failure, the error and exit code 1. */
export function printRows(rows: Promise<Row[]>): void {
  rows.then(
    (r) => console.table(r),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}

// ───────────────────────────── namespaces ─────────────────────────────

/** `ip ARGS`; its stderr goes into the error when it fails. */
export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `cmd` in namespace `ns`: the arguments of spawn/spawnSync/execFileSync. */
export const inNs = (ns: string, cmd: string[]): [string, string[]] => ['ip', ['netns', 'exec', ns, ...cmd]];

/** A new namespace with lo up. */
export function addNs(ns: string): void {
  ip('netns', 'add', ns);
  ip('-n', ns, 'link', 'set', 'lo', 'up');
}

/** A new namespace with lo up and IPv6 off. */
export function quietNs(ns: string): void {
  addNs(ns);
  execFileSync(...inNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']));
}

/** `ethtool -K dev FEATURE on|off …` in namespace `ns`. */
export function ethtoolK(ns: string, dev: string, ...features: string[]): void {
  execFileSync(...inNs(ns, ['ethtool', '-K', dev, ...features]), { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Delete every namespace whose name starts with `prefix`. */
export function removeNetns(prefix: string): void {
  for (const ns of listNetns().filter((n) => n.startsWith(prefix))) spawnSync('ip', ['netns', 'del', ns]);
}

// ───────────────────────────── processes ─────────────────────────────

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Until `pred()` holds (true) or `ms` have passed (then one last look), trying every `every` ms. */
export async function poll(pred: () => boolean, ms: number, every = 200): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(every);
  }
  return pred();
}

/** Stop a child we started, by its pid (SIGTERM, then SIGKILL after 3 s), and wait for it to exit. */
export async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(t);
}

// ───────────────────────────── measurements ─────────────────────────────

/** A measured path: from namespace `client` to `serverIp` in namespace `server`. */
export interface Pair {
  name: string;
  client: string;
  server: string;
  serverIp: string;
}

export interface IperfResult {
  gbps: number;
  retransmits: number;
}

/**
 * iperf3 TCP client → server for `seconds` (`extra`: more client options, e.g. `-P 8`): Gbit/s
 * received and the sender's retransmits. The server is stopped by its pid.
 */
export async function iperf(p: Pair, seconds: number, extra: string[] = []): Promise<IperfResult> {
  const server = spawn(...inNs(p.server, ['iperf3', '-s', '-1', '-p', '5201']), { stdio: 'ignore' });
  try {
    await sleep(300);
    const r = spawnSync(...inNs(p.client, ['iperf3', '-c', p.serverIp, '-p', '5201', '-t', String(seconds), '-J', ...extra]), { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
    let j: { error?: string; end?: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number } } };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 (${p.name}): ${r.error?.message ?? r.stderr}`);
    }
    if (j.error || !j.end) throw new Error(`iperf3 (${p.name}): ${j.error}`);
    return { gbps: j.end.sum_received.bits_per_second / 1e9, retransmits: j.end.sum_sent.retransmits ?? 0 };
  } finally {
    await stop(server);
  }
}

/** Packets received so far by every interface but lo in namespace `ns` (`ip -s link`). */
export function rxPackets(ns: string): number {
  const links = JSON.parse(execFileSync('ip', ['-n', ns, '-j', '-s', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string; stats64?: { rx: { packets: number } } }>;
  return links.reduce((a, l) => a + (l.ifname === 'lo' ? 0 : (l.stats64?.rx.packets ?? 0)), 0);
}

export interface UdpResult {
  /** packets/s the server's interfaces received (what the path delivered) */
  delivered: number;
  /** packets/s the iperf3 server read (its socket drops the rest when it falls behind on a busy machine) */
  received: number;
}

/**
 * iperf3 UDP client → server for `seconds`, `len`-byte payloads sent as fast as the client can
 * (-b 0; bounded by `seconds`).
 */
export async function udpPps(p: Pair, seconds: number, len = 64): Promise<UdpResult> {
  const server = spawn(...inNs(p.server, ['iperf3', '-s', '-1', '-p', '5202']), { stdio: 'ignore' });
  try {
    await sleep(300);
    const args = ['iperf3', '-c', p.serverIp, '-p', '5202', '-u', '-l', String(len), '-b', '0', '-t', String(seconds), '-J'];
    const rx0 = rxPackets(p.server);
    const r = spawnSync(...inNs(p.client, args), { encoding: 'utf8', timeout: (seconds + 20) * 1000 });
    const rx = rxPackets(p.server) - rx0;
    let j: { error?: string; end?: { sum_sent?: { seconds: number }; sum_received?: { bytes: number; seconds: number } } };
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 -u (${p.name}): ${r.error?.message ?? r.stderr}`);
    }
    const got = j.end?.sum_received;
    const sent = j.end?.sum_sent;
    if (j.error || !got || !sent) throw new Error(`iperf3 -u (${p.name}): ${j.error ?? 'no summary'}`);
    return { delivered: rx / sent.seconds, received: got.bytes / len / got.seconds };
  } finally {
    await stop(server);
  }
}

/** clock ticks per second of /proc/PID/stat's times */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system, all threads) process `pid` has used so far, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 (utime) and 15 (stime)
}

/** Per-reply RTTs in µs of `count` pings at 5 ms spacing. */
export function pingTimes(p: Pair, count: number): number[] {
  const r = spawnSync(...inNs(p.client, ['ping', '-c', String(count), '-i', '0.005', '-W', '1', p.serverIp]), { encoding: 'utf8', timeout: 60_000 });
  const t = [...(r.stdout ?? '').matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (t.length < count * 0.9) throw new Error(`ping (${p.name}) lost replies: ${(r.stdout ?? '').split('\n').slice(-3).join(' ')}`);
  return t;
}

/** The warm-up: a flood ping of `count` packets (ARP/FDB, and usernet's JIT: a daemon that serves traffic is warm). */
export function floodPing(p: Pair, count: number, timeoutMs?: number): void {
  spawnSync(...inNs(p.client, ['ping', '-f', '-q', '-c', String(count), '-W', '1', p.serverIp]), { timeout: timeoutMs });
}

/**
 * The medians of interleaved rounds per setup (iperf3 runs and ping RTTs),
 * the per-round list and retransmits for notes, and rows of setup `k`
 * beside anchor setup `a` (values rounded to 2 places, the ratio not).
 */
export function summarize<K extends string>(runs: Record<K, IperfResult[]>, rtt: Record<K, number[]>) {
  const g = (k: K) => median(runs[k].map((r) => r.gbps));
  const t = (k: K) => median(rtt[k]);
  return {
    g,
    t,
    list: (k: K) => runs[k].map((r) => r.gbps.toFixed(2)).join('/'),
    retr: (k: K) => runs[k].reduce((a, r) => a + r.retransmits, 0),
    tcpRow: (name: string, k: K, a: K, anchorName: string, note: string): Row => ({ name, value: round2(g(k)), unit: 'Gbit/s', anchorName, anchor: round2(g(a)), ratio: g(k) / g(a), note }),
    rttRow: (name: string, k: K, a: K, anchorName: string, note: string): Row => ({ name, value: round2(t(k)), unit: 'µs', anchorName, anchor: round2(t(a)), ratio: t(k) / t(a), note }),
  };
}
