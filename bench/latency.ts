/**
 * bench/latency — ping RTT and daemon CPU of usernet's default polling,
 * beside the C TAP forwarder (bench/reference/tapfwd.c) and the kernel
 * bridge, in one run (issue 12 item 7: p50 ≤ the C forwarder's, idle
 * daemon < 1% of a core).
 *
 *   node dist/bench/latency.js [--pings N] [--rounds R] [--idle S] [--fast N]
 *        [--flood N] [--usernet NAME=BIN[,DAEMON_ARG…]]…  [--load]
 *
 * Every usernet variant is a real daemon (its own namespace) with two
 * containers on one bridge network; the default variant is this checkout's
 * bin/usernet with default settings. `--usernet before=/tmp/x/bin/usernet`
 * adds another build (e.g. the git HEAD engine) to compare in the same run;
 * `--usernet busy=,--busy-poll,10` this checkout with options.
 *
 * Measured, per setup, in interleaved rounds (so drift of a shared machine
 * hits all alike): `ping -i 0.01` RTTs (p50, p99) and the daemon's CPU
 * meanwhile (100 pps); then `ping -i 0.001 -c N` (1000 pps) RTT and CPU;
 * then a flood ping (`ping -f`: replies/s, mean RTT, CPU: frames close
 * together, where polling pays);
 * and the idle daemon's CPU (utime+stime of all its threads, from
 * /proc/PID/stat) over S seconds with the two containers idle. `--load`
 * runs a CPU hog (one busy process, stopped by pid) during the ping rounds.
 * Every namespace has a unique prefix and is removed at the end, also on
 * failure; every process is stopped by its pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { CLI, DaemonLab, listNetns, uniquePrefix, type CliResult } from '../src/lab/lab.js';
import { addNs, floodPing, inNs, ip, isMain, median, poll, printRows, removeNetns, round2, stop, type Pair } from './lab-util.js';
import { buildReference } from './reference.js';
import type { Row } from './table.js';

export interface LatencyOptions {
  /** pings at 10 ms spacing per setup, split over the rounds (default 1000) */
  pings?: number;
  rounds?: number;
  /** idle measurement, seconds (default 10) */
  idleSeconds?: number;
  /** pings at 1 ms spacing per setup (default 3000) */
  fastPings?: number;
  /** flood pings (ping -f: the next as soon as the reply is in) per setup (default 20000) */
  flood?: number;
  /** usernet variants: name → bin/usernet path and daemon options (default: this checkout, defaults) */
  variants?: Variant[];
  /** a CPU hog during the ping rounds */
  load?: boolean;
}

export interface Variant {
  name: string;
  bin: string;
  args: string[];
}

/** A DaemonLab whose daemon and CLI are `bin` (another build of usernet). */
class VariantLab extends DaemonLab {
  constructor(
    tag: string,
    readonly bin: string,
  ) {
    super(tag);
  }
  override async start(): Promise<void> {
    if (!listNetns().includes(this.hostNs)) ip('netns', 'add', this.hostNs);
    ip('-n', this.hostNs, 'link', 'set', 'lo', 'up');
    const args = ['--socket', this.socket, 'daemon', '--state-dir', this.stateDir, '--netns-prefix', this.prefix, '--log-level', 'warn', ...this.daemonArgs];
    const proc = spawn('nsenter', [`--net=/run/netns/${this.hostNs}`, '--', process.execPath, this.bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (d) => (this.log += d));
    proc.stderr!.on('data', (d) => (this.log += d));
    const up = await poll(() => proc.exitCode === null && existsSync(this.socket) && this.cli('network', 'ls').code === 0, 15_000, 100);
    if (!up) throw new Error(`daemon ${this.bin} did not come up:\n${this.log}`);
  }
  override cli(...args: string[]): CliResult {
    const r = spawnSync(process.execPath, [this.bin, '--socket', this.socket, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }
}

/** utime+stime of every thread of process `pid`, in seconds (nsenter execs node: the pid is the daemon's). */
function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // fields 14, 15; USER_HZ = 100 on Linux
}

/** Per-reply RTTs in µs of `count` pings `intervalS` apart. */
function pingRtts(p: Pair, count: number, intervalS: number): number[] {
  const r = spawnSync(...inNs(p.client, ['ping', '-c', String(count), '-i', String(intervalS), '-W', '1', p.serverIp]), { encoding: 'utf8', timeout: count * intervalS * 1000 * 3 + 20_000 });
  const t = [...(r.stdout ?? '').matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000);
  if (t.length < count * 0.9) throw new Error(`ping (${p.name}) lost replies: ${(r.stdout ?? '').split('\n').slice(-3).join(' ')}`);
  return t;
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

interface Setup {
  pair: Pair;
  pid?: number;
  rtt: number[];
  cpu100: number[];
  fast: number[];
  cpu1000: number;
  idle: number;
  /** flood: replies/s, mean RTT µs, daemon CPU */
  floodPps: number;
  floodAvg: number;
  cpuFlood: number;
}

/** A flood ping: replies per second and the mean RTT in µs (ping -f prints no per-reply times). */
function floodRate(p: Pair, count: number): { pps: number; avg: number } {
  const r = spawnSync(...inNs(p.client, ['ping', '-f', '-q', '-c', String(count), '-W', '1', p.serverIp]), { encoding: 'utf8', timeout: 120_000 });
  const out = r.stdout ?? '';
  const recv = /(\d+) received/.exec(out);
  const time = /time (\d+)ms/.exec(out);
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(out);
  if (!recv || !time || !rtt) throw new Error(`flood ping (${p.name}): ${out}`);
  return { pps: Number(recv[1]) / (Number(time[1]) / 1000), avg: Number(rtt[1]) * 1000 };
}

export async function benchLatency(opts: LatencyOptions = {}): Promise<Row[]> {
  const pings = opts.pings ?? 1000;
  const rounds = opts.rounds ?? 2;
  const idleSeconds = opts.idleSeconds ?? 10;
  const fastPings = opts.fastPings ?? 3000;
  const flood = opts.flood ?? 20000;
  const variants = opts.variants ?? [{ name: 'usernet', bin: CLI, args: [] }];
  const prefix = uniquePrefix('bl');
  const procs: ChildProcess[] = [];
  const labs: VariantLab[] = [];
  const setups = new Map<string, Setup>();
  const add = (pair: Pair, pid?: number) => setups.set(pair.name, { pair, pid, rtt: [], cpu100: [], fast: [], cpu1000: NaN, idle: NaN, floodPps: NaN, floodAvg: NaN, cpuFlood: NaN });
  const mkns = (n: string) => {
    addNs(prefix + n);
    return prefix + n;
  };
  try {
    {
      const br = mkns('kbr');
      const c1 = mkns('kc1');
      const c2 = mkns('kc2');
      ip('-n', br, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', br, 'link', 'set', 'br0', 'up');
      for (const [ns, addr, veth] of [
        [c1, '10.143.0.1/24', 'vk1'],
        [c2, '10.143.0.2/24', 'vk2'],
      ]) {
        ip('-n', br, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ip('-n', br, 'link', 'set', veth, 'master', 'br0', 'up');
        ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
      }
      add({ name: 'kernel bridge', client: c1, server: c2, serverIp: '10.143.0.2' });
    }
    {
      const ref = buildReference('tapfwd');
      if ('error' in ref) throw new Error(`C forwarder: ${ref.error}`);
      const fwd = mkns('cfw');
      const c1 = mkns('cc1');
      const c2 = mkns('cc2');
      const p = spawn('nsenter', [`--net=/run/netns/${fwd}`, '--', ref.bin, 'tfa', 'tfb'], { stdio: ['ignore', 'pipe', 'ignore'] });
      procs.push(p);
      let ready = false;
      p.stdout!.on('data', (d) => (ready ||= String(d).includes('ready')));
      if (!(await poll(() => ready, 5000, 50))) throw new Error('C forwarder did not start');
      for (const [tap, ns, addr] of [
        ['tfa', c1, '10.144.0.1/24'],
        ['tfb', c2, '10.144.0.2/24'],
      ]) {
        ip('-n', fwd, 'link', 'set', tap, 'netns', ns);
        ip('-n', ns, 'link', 'set', tap, 'name', 'eth0');
        ip('-n', ns, 'addr', 'add', addr, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
      }
      add({ name: 'C forwarder', client: c1, server: c2, serverIp: '10.144.0.2' }, p.pid);
    }
    for (const [i, v] of variants.entries()) {
      const lab = new VariantLab(`l${i}`, v.bin);
      labs.push(lab);
      lab.daemonArgs = v.args;
      await lab.start();
      const net = `10.${145 + i}.0`;
      lab.ok('network', 'create', '--subnet', `${net}.0/24`, 'bench');
      lab.ok('run', '--name', 'c1', '--network', 'bench');
      lab.ok('run', '--name', 'c2', '--network', 'bench');
      add({ name: v.name, client: lab.prefix + 'c1', server: lab.prefix + 'c2', serverIp: `${net}.3` }, lab.proc!.pid);
    }
    const all = [...setups.values()];
    // warm-up: ARP caches, and usernet's JIT (a daemon that serves traffic is warm)
    for (const s of all) floodPing(s.pair, 20000, 30_000);
    // idle: every daemon at once, containers idle (after a few seconds to settle: V8 tidies up after the warm-up)
    await new Promise((r) => setTimeout(r, 3000));
    const t0 = all.map((s) => (s.pid ? cpuSeconds(s.pid) : 0));
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const wall = (performance.now() - w0) / 1000;
    all.forEach((s, i) => s.pid && (s.idle = (cpuSeconds(s.pid) - t0[i]) / wall));
    let hog: ChildProcess | null = null;
    if (opts.load) {
      hog = spawn(process.execPath, ['-e', 'const end = Date.now() + 600000; while (Date.now() < end);'], { stdio: 'ignore' });
      procs.push(hog);
    }
    for (let round = 0; round < rounds; round++) {
      for (const s of all) {
        const c0 = s.pid ? cpuSeconds(s.pid) : 0;
        const start = performance.now();
        s.rtt.push(...pingRtts(s.pair, Math.ceil(pings / rounds), 0.01));
        if (s.pid) s.cpu100.push((cpuSeconds(s.pid) - c0) / ((performance.now() - start) / 1000));
      }
    }
    for (const s of all) {
      const c0 = s.pid ? cpuSeconds(s.pid) : 0;
      const start = performance.now();
      s.fast = pingRtts(s.pair, fastPings, 0.001);
      if (s.pid) s.cpu1000 = (cpuSeconds(s.pid) - c0) / ((performance.now() - start) / 1000);
    }
    for (const s of all) {
      const c0 = s.pid ? cpuSeconds(s.pid) : 0;
      const start = performance.now();
      const f = floodRate(s.pair, flood);
      s.floodPps = f.pps;
      s.floodAvg = f.avg;
      if (s.pid) s.cpuFlood = (cpuSeconds(s.pid) - c0) / ((performance.now() - start) / 1000);
    }
    if (hog) await stop(hog);
  } finally {
    for (const p of procs) await stop(p);
    for (const lab of labs) await lab.cleanup();
    removeNetns(prefix);
  }
  const c = setups.get('C forwarder')!;
  const cP50 = median(c.rtt);
  const load = opts.load ? ', CPU hog running' : '';
  const rows: Row[] = [];
  for (const s of setups.values()) {
    const p50 = median(s.rtt);
    const cpu = (xs: number) => (Number.isNaN(xs) ? '' : `${(xs * 100).toFixed(2)}%`);
    rows.push({
      name: `ping -i 0.01 RTT p50 (${s.rtt.length}), ${s.pair.name}${load}`,
      value: round2(p50),
      unit: 'µs',
      anchorName: 'C TAP forwarder',
      anchor: round2(cP50),
      ratio: p50 / cP50,
      note:
        `p99 ${pct(s.rtt, 0.99).toFixed(0)} µs; 1000 pps p50 ${median(s.fast).toFixed(0)} p99 ${pct(s.fast, 0.99).toFixed(0)} µs; ` +
        `flood ${s.floodPps.toFixed(0)}/s avg ${s.floodAvg.toFixed(0)} µs` +
        (s.pid ? `; CPU idle ${cpu(s.idle)}, 100 pps ${cpu(median(s.cpu100))}, 1000 pps ${cpu(s.cpu1000)}, flood ${cpu(s.cpuFlood)}` : ''),
    });
  }
  return rows;
}

function parseArgs(argv: string[]): LatencyOptions {
  const o: LatencyOptions = {};
  const variants: Variant[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--pings') o.pings = Number(next());
    else if (a === '--rounds') o.rounds = Number(next());
    else if (a === '--idle') o.idleSeconds = Number(next());
    else if (a === '--fast') o.fastPings = Number(next());
    else if (a === '--flood') o.flood = Number(next());
    else if (a === '--load') o.load = true;
    else if (a === '--usernet') {
      const [name, rest] = next().split('=', 2);
      const [bin, ...args] = (rest ?? '').split(',');
      variants.push({ name, bin: bin || CLI, args });
    } else throw new Error(`unknown option ${a}`);
  }
  if (variants.length) o.variants = variants;
  return o;
}

if (isMain(import.meta.url)) printRows(benchLatency(parseArgs(process.argv.slice(2))));
