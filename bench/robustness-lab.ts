/**
 * What bench/robustness.ts sets up and runs (cold code, bench only): the
 * published-port lab (a usernet daemon with an uplink TAP to an outside
 * namespace, a container `web` publishing an echo server and an iperf3
 * server) and its kernel anchor (outside → router namespace doing nft DNAT
 * + masquerade → server namespace, over veth: the NAT bench's kernel router
 * with a prerouting DNAT added); the bounded floods and probes (the test
 * fixtures syn_flood.py / l2_flood.py / echo_stream.py, and
 * bench/robustness_probe.py), each a child stopped by its pid (and killed
 * by pid after its own bound plus a margin, should it hang); a daemon's RSS
 * and open fds; and a burst of bad API requests on the unix socket.
 *
 * Namespaces: a usernet lab's extra namespaces carry its DaemonLab prefix
 * (removed by lab.cleanup()); the kernel anchors carry the caller's unique
 * prefix (removeNetns). The spoofed sources 198.51.100.0/24 and
 * 203.0.113.0/24 exist only here:
 * the outside namespace blackholes them, so every answered SYN stays a
 * half-open flow, as under a real spoofed flood.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { DaemonLab, ROOT } from '../src/lab/lab.js';
import { inNs, ip, poll, quietNs, sleep, stop } from './lab-util.js';

export const FIX = join(ROOT, 'test', 'fixtures');
export const PROBE = join(ROOT, 'bench', 'robustness_probe.py');
export const UPLINK_IP = '192.0.2.2';
export const OUTSIDE_IP = '192.0.2.1';
export const SPOOF_NET = '198.51.100';
/** a second spoofed range (a later flood's sources are new flows, not the first flood's again) */
export const SPOOF_NET2 = '203.0.113';
/** the published ports: echo (8080 → 80) and iperf3 (5201 → 5201) */
export const ECHO_PORT = 8080;
export const IPERF_PORT = 5201;

/** Every child the bench starts; stopAll() stops them by pid. */
export class Kids {
  readonly list: ChildProcess[] = [];

  /** `cmd` in namespace `ns`; killed by pid after `boundMs` if it has not ended by then. */
  run(ns: string, cmd: string[], boundMs: number): { p: ChildProcess; done: Promise<{ code: number; out: string; err: string }> } {
    const p = spawn(...inNs(ns, cmd), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.list.push(p);
    let out = '';
    let err = '';
    p.stdout!.on('data', (b) => (out += b));
    p.stderr!.on('data', (b) => (err += b));
    const t = setTimeout(() => p.kill('SIGKILL'), boundMs);
    const done = new Promise<{ code: number; out: string; err: string }>((r) =>
      p.on('exit', (code) => {
        clearTimeout(t);
        r({ code: code ?? -1, out, err });
      }),
    );
    return { p, done };
  }

  /** A server that prints "ready" once it listens (it runs until stopped). */
  async server(ns: string, cmd: string[]): Promise<ChildProcess> {
    const p = spawn(...inNs(ns, cmd), { stdio: ['ignore', 'pipe', 'ignore'] });
    this.list.push(p);
    let ready = false;
    p.stdout!.on('data', (b) => (ready ||= String(b).includes('ready')));
    if (!(await poll(() => ready, 5000, 50))) throw new Error(`${cmd.join(' ')} in ${ns} did not start`);
    return p;
  }

  async stopAll(): Promise<void> {
    for (const p of this.list) await stop(p);
  }
}

/** Where new connections go: a client namespace and the published address. */
export interface Target {
  name: string;
  /** the outside namespace (flood source, clients) */
  outside: string;
  ip: string;
}

/** The outside namespace's side of an uplink: `dev` there gets 192.0.2.1, spoofed sources are blackholed. */
function outsideNs(ns: string, dev: string): void {
  ip('-n', ns, 'addr', 'add', `${OUTSIDE_IP}/24`, 'dev', dev);
  ip('-n', ns, 'link', 'set', dev, 'up');
  for (const n of [SPOOF_NET, SPOOF_NET2]) ip('-n', ns, 'route', 'add', 'blackhole', `${n}.0/24`);
}

/** An echo server on 80 (test/fixtures/echo_server.py) and an iperf3 server on 5201 in `ns`. */
async function servers(kids: Kids, ns: string): Promise<void> {
  await kids.server(ns, ['python3', join(FIX, 'echo_server.py'), '80']);
  const ip3 = spawn(...inNs(ns, ['iperf3', '-s', '-p', String(IPERF_PORT)]), { stdio: 'ignore' });
  kids.list.push(ip3);
  await sleep(300);
}

/**
 * usernet: `lab` (not yet started) gets an uplink TAP moved to `<prefix>out`,
 * a network `pub` (`net`.0/24) and a container `web` publishing 8080 → 80
 * (echo) and 5201 (iperf3); `ctCapacity`: conntrack flows (default: the daemon's).
 */
export async function usernetPublished(lab: DaemonLab, kids: Kids, net: string, ctCapacity?: number): Promise<Target> {
  lab.daemonArgs = ['--uplink', `tap:unup0,ip=${UPLINK_IP}/24,gw=${OUTSIDE_IP}`];
  // a conntrack capacity other than the default: through the environment the daemon inherits (as test/robustness/flood-lab.ts does)
  const prev = process.env.USERNET_CONNTRACK_CAPACITY;
  if (ctCapacity !== undefined) process.env.USERNET_CONNTRACK_CAPACITY = String(ctCapacity);
  try {
    await lab.start();
  } finally {
    if (prev === undefined) delete process.env.USERNET_CONNTRACK_CAPACITY;
    else process.env.USERNET_CONNTRACK_CAPACITY = prev;
  }
  const out = lab.prefix + 'out';
  quietNs(out);
  ip('-n', lab.hostNs, 'link', 'set', 'unup0', 'netns', out);
  outsideNs(out, 'unup0');
  lab.ok('network', 'create', '--subnet', `${net}.0/24`, 'pub');
  lab.ok('run', '--name', 'web', '--network', 'pub', '-p', `${ECHO_PORT}:80`, '-p', `${IPERF_PORT}:${IPERF_PORT}`);
  await servers(kids, lab.prefix + 'web');
  return { name: ctCapacity ? `usernet (conntrack ${ctCapacity})` : 'usernet', outside: out, ip: UPLINK_IP };
}

/**
 * The kernel anchor: `<prefix>kout` (192.0.2.1) — veth — `<prefix>kr`, a
 * router (192.0.2.2 on up0, `net`.1 on in0) doing nft DNAT of 8080 → server:80
 * and 5201 → server:5201 and masquerade out of up0 — veth — `<prefix>ks`,
 * the server (`net`.2).
 */
export async function kernelPublished(prefix: string, kids: Kids, net: string): Promise<Target> {
  const [o, r, s] = [prefix + 'kout', prefix + 'kr', prefix + 'ks'];
  for (const n of [o, r, s]) quietNs(n);
  ip('-n', r, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o);
  ip('-n', r, 'link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', s);
  outsideNs(o, 'eth0');
  for (const [ns, dev, addr] of [
    [r, 'up0', `${UPLINK_IP}/24`],
    [r, 'in0', `${net}.1/24`],
    [s, 'eth0', `${net}.2/24`],
  ]) {
    ip('-n', ns, 'addr', 'add', addr, 'dev', dev);
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
  ip('-n', s, 'route', 'add', 'default', 'via', `${net}.1`);
  ip('-n', r, 'route', 'add', 'default', 'via', OUTSIDE_IP);
  execFileSync(...inNs(r, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']));
  execFileSync(...inNs(r, ['nft', '-f', '-']), {
    input:
      'table ip nat {\n' +
      ` chain pre {\n  type nat hook prerouting priority -100;\n  iifname "up0" tcp dport ${ECHO_PORT} dnat to ${net}.2:80\n  iifname "up0" tcp dport ${IPERF_PORT} dnat to ${net}.2:${IPERF_PORT}\n }\n` +
      ' chain post {\n  type nat hook postrouting priority 100;\n  oifname "up0" masquerade\n }\n}\n',
  });
  await servers(kids, s);
  return { name: 'kernel', outside: o, ip: UPLINK_IP };
}

/** A bounded spoofed SYN flood (syn_flood.py) from t.outside to t.ip:8080, sources `from`.1–254: the SYNs sent and the seconds it took. */
export async function synFlood(kids: Kids, t: Target, count: number, seconds: number, rate: number, from = SPOOF_NET): Promise<{ sent: number; secs: number }> {
  const r = await kids.run(t.outside, ['python3', join(FIX, 'syn_flood.py'), t.ip, String(ECHO_PORT), String(count), String(seconds), from, String(rate)], (seconds + 10) * 1000).done; // prettier-ignore
  const m = /sent (\d+) in ([\d.]+) s/.exec(r.out);
  if (!m) throw new Error(`syn_flood.py (${t.name}) failed (${r.code}): ${r.out}${r.err}`);
  return { sent: Number(m[1]), secs: Number(m[2]) };
}

export interface Connects {
  ok: number;
  n: number;
  p50_ms: number | null;
}

/** `n` new connections from t.outside to the published echo port, spread over `seconds`, each within `timeout` s. */
export function connects(kids: Kids, t: Target, n: number, seconds: number, timeout: number): Promise<Connects> {
  return kids.run(t.outside, ['python3', PROBE, 'connects', t.ip, String(ECHO_PORT), String(n), String(seconds), String(timeout)], (seconds + timeout + 15) * 1000).done.then((r) => {
    try {
      return JSON.parse(r.out) as Connects;
    } catch {
      throw new Error(`connect probe (${t.name}) failed (${r.code}): ${r.out}${r.err}`);
    }
  });
}

export interface Interval {
  start: number;
  end: number;
  gbps: number;
}

/** iperf3 from t.outside to the published iperf3 port for `seconds`, per-`step` intervals (from the client's start). */
export function iperfIntervals(kids: Kids, t: Target, seconds: number, step: number): Promise<Interval[]> {
  return kids.run(t.outside, ['iperf3', '-c', t.ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-i', String(step), '-J'], (seconds + 20) * 1000).done.then((r) => {
    let j: { error?: string; intervals?: { sum: { start: number; end: number; bits_per_second: number } }[] };
    try {
      j = JSON.parse(r.out);
    } catch {
      throw new Error(`iperf3 (${t.name}) failed (${r.code}): ${r.err}`);
    }
    if (j.error || !j.intervals) throw new Error(`iperf3 (${t.name}): ${j.error}`);
    return j.intervals.map((i) => ({ start: i.sum.start, end: i.sum.end, gbps: i.sum.bits_per_second / 1e9 }));
  });
}

/** Mean Gbit/s of the intervals lying within [from, to] seconds. */
export function meanIn(iv: Interval[], from: number, to: number): number {
  const xs = iv.filter((i) => i.start >= from - 1e-6 && i.end <= to + 1e-6).map((i) => i.gbps);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** A process's resident memory (KiB) and open file descriptors. */
export function procSample(pid: number): { rssKb: number; fds: number } {
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return { rssKb, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** One raw HTTP exchange on the daemon's socket: the status (0: closed without an answer; -1: no answer in time). */
function rawRequest(socket: string, data: Buffer, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(socket);
    let got = '';
    let done = false;
    const finish = (st: number) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      s.destroy();
      resolve(st);
    };
    const t = setTimeout(() => finish(-1), timeoutMs);
    s.on('data', (c) => {
      got += c.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m && got.includes('\r\n\r\n')) finish(Number(m[1]));
    });
    s.on('error', () => finish(0));
    s.on('close', () => finish(0));
    s.write(data, () => undefined);
  });
}

const req = (method: string, target: string, body = '', extra: string[] = []): Buffer =>
  Buffer.from([`${method} ${target} HTTP/1.1`, 'Host: usernet', 'Connection: close', `Content-Length: ${Buffer.byteLength(body)}`, 'Content-Type: application/json', ...extra, '', body].join('\r\n'));

/** The bad requests of one round: bad targets, bad JSON, wrong types, huge names, an oversized body, hang-ups. */
function badRequests(): Buffer[] {
  const long = 'n'.repeat(10_000);
  return [
    req('GET', '/networks/%E0%A4%A'),
    req('DELETE', '/containers/%'),
    req('GET', '//%zz/networks'),
    req('GET', 'http://[zz/networks'),
    req('POST', '/networks', '{"name": "x", "subnet": '),
    req('POST', '/networks', '[1,2,3]'),
    req('POST', '/networks', JSON.stringify({ name: 42, subnet: true })),
    req('POST', '/networks', JSON.stringify({ name: long })),
    req('POST', '/networks', JSON.stringify({ name: 'bad', subnet: '10.0.0.0/33' })),
    req('POST', '/containers', JSON.stringify({ name: long, networks: 'pub' })),
    req('POST', '/containers', JSON.stringify({ name: 'bad', publish: [{ hostPort: -1 }] })),
    req('POST', '/containers', '\u0000\u0001\u0002'),
    req('PUT', '/nothing/here'),
    req('GET', '/networks', '', ['X-Junk: ' + 'j'.repeat(4000)]),
    // declares 100 MB, sends 1 MB of it: refused by the length (413) without reading the rest
    Buffer.concat([Buffer.from(`POST /networks HTTP/1.1\r\nHost: usernet\r\nContent-Type: application/json\r\nContent-Length: ${100 << 20}\r\n\r\n`), Buffer.alloc(1 << 20, 0x61)]),
    Buffer.from('NOT HTTP AT ALL\r\n\r\n'),
  ];
}

/** Bad API requests, then hang-ups mid-request: requests sent, how many got a 4xx, a 5xx, something else (the valid GET with a 4 KB junk header), or no answer. */
export async function badApi(socket: string): Promise<{ sent: number; c4xx: number; c5xx: number; other: number; none: number }> {
  const res = { sent: 0, c4xx: 0, c5xx: 0, other: 0, none: 0 };
  for (const b of badRequests()) {
    const st = await rawRequest(socket, b);
    res.sent++;
    if (st >= 400 && st < 500) res.c4xx++;
    else if (st >= 500) res.c5xx++;
    else if (st <= 0) res.none++;
    else res.other++;
  }
  // clients that hang up half-way (not counted: there is nobody to answer)
  for (let i = 0; i < 5; i++) {
    const s = net.connect(socket);
    s.on('error', () => undefined);
    s.write('POST /networks HTTP/1.1\r\nHost: usernet\r\nContent-Length: 500\r\n\r\n{"name":', () => s.destroy());
  }
  await sleep(50);
  return res;
}

/** test/fixtures/l2_flood.py in `ns` (every mode ends by itself; killed by pid `seconds` + 20 s on) */
export function l2flood(kids: Kids, ns: string, args: string[], seconds: number) {
  return kids.run(ns, ['python3', join(FIX, 'l2_flood.py'), ...args], (seconds + 20) * 1000);
}

/** ping replies received from `n` pings (0.2 s apart) from namespace `ns` to `to` */
export const pingIn = (ns: string, to: string, n: number): number =>
  Number(/(\d+) received/.exec(spawnSync(...inNs(ns, ['ping', '-c', String(n), '-i', '0.2', '-W', '1', to]), { encoding: 'utf8', timeout: 30_000 }).stdout ?? '')?.[1] ?? 0);
/** eth0's MAC in namespace `ns` */
export const macOf = (ns: string): string => spawnSync(...inNs(ns, ['cat', '/sys/class/net/eth0/address']), { encoding: 'utf8' }).stdout.trim();
/** the MAC `ns` has learned for `addr` ('' when none) */
export const neighMac = (ns: string, addr: string): string => /lladdr (\S+)/.exec(spawnSync(...inNs(ns, ['ip', 'neigh', 'show', addr]), { encoding: 'utf8' }).stdout)?.[1] ?? '';
