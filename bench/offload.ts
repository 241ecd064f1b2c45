/**
 * bench/offload — issue 12's benchmark table: every usernet path beside its
 * anchor, measured in one run in interleaved rounds (each usernet
 * measurement right beside its anchor's, round after round), medians,
 * ratios and the issue's targets. The paths are built by
 * bench/offload-setups.ts (see there); run with
 *   npm run bench -- --only offload [--seconds N] [--rounds N] [--verbose]
 *
 * Rows (target from the issue):
 *  1. TCP, one stream, two containers on one bridge (iperf3): usernet vs
 *     the kernel bridge over veth (≥ 0.8×) and vs tapfwd --vnet (≥ 1.0×);
 *     usernet --offload off for reference (when the daemon has the flag).
 *  2. TCP, 8 streams (iperf3 -P 8): usernet vs kernel bridge (≥ 0.8×).
 *  3. TCP container → outside through NAT (uplink TAP) vs a kernel router
 *     namespace with nft masquerade (≥ 0.7×).
 *  4. TCP across two hosts on an overlay vs kernel vxlan + bridge (≥ 0.5×);
 *     the encrypted overlay vs usernet's plain overlay (≥ 0.5×).
 *  5. TCP macvlan endpoint → lan host vs kernel macvlan, offloads on (≥ 0.5×).
 *  6. UDP 64-byte payloads, iperf3 -u -b 0 (the sender as fast as it can):
 *     packets/s the receiver's interface got (what the path delivered; the
 *     rate iperf3 itself read is in the note: on 2 cores the receiving
 *     process falls behind first), usernet vs tapfwd (≥ 1.0×).
 *  7. ping RTT p50 (5 ms spacing), default settings: usernet vs tapfwd
 *     (≤ 1.0×); the kernel bridge for reference.
 *  8. idle daemon CPU (the main daemon: utime+stime from /proc/PID/stat over
 *     10 s, 2 s after it went quiet), once fresh with two containers and once
 *     after all the traffic (< 1% of a core).
 * A path that fails to build or to measure gives a row saying why; the
 * others still run. Everything is removed at the end, also on failure or
 * when interrupted (SIGINT/SIGTERM).
 */
import { cpuSeconds, isMain, iperf, median, pingTimes, printRows, round2, sleep, udpPps } from './lab-util.js';
import { daemonHasOffloadFlag, OffloadLab, SETUP_NAMES, type Setup } from './offload-setups.js';
import type { Row } from './table.js';

export interface OffloadBenchOptions {
  /** seconds per iperf3 run (default 5) */
  seconds?: number;
  /** interleaved rounds (default 2) */
  rounds?: number;
  /** pings per setup over all rounds (default 600) */
  pings?: number;
  /** idle CPU: seconds measured (default 10) */
  idleSeconds?: number;
  /** progress on stderr */
  verbose?: boolean;
}

type Kind = 'tcp' | 'tcp8' | 'udp' | 'ping';
/** In measuring order: each usernet job right beside its anchors. */
const JOBS: ReadonlyArray<readonly [Kind, Setup]> = [
  ['tcp', 'un'],
  ['tcp', 'kbr'],
  ['tcp', 'cvnet'],
  ['tcp', 'unOff'],
  ['tcp8', 'un'],
  ['tcp8', 'kbr'],
  ['tcp', 'unat'],
  ['tcp', 'knat'],
  ['tcp', 'uov'],
  ['tcp', 'kvx'],
  ['tcp', 'uovEnc'],
  ['tcp', 'umv'],
  ['tcp', 'kmv'],
  ['udp', 'un'],
  ['udp', 'cfwd'],
  ['udp', 'cvnet'],
  ['ping', 'un'],
  ['ping', 'cfwd'],
  ['ping', 'cvnet'],
  ['ping', 'kbr'],
];

/** % of one core process `pid` used over `seconds`, after `settle` seconds of quiet. */
async function idleCpu(pid: number, settle: number, seconds: number): Promise<number> {
  await sleep(settle * 1000);
  const t0 = performance.now();
  const c0 = cpuSeconds(pid);
  await sleep(seconds * 1000);
  return (100 * (cpuSeconds(pid) - c0)) / ((performance.now() - t0) / 1000);
}

export async function benchOffload(opts: OffloadBenchOptions = {}): Promise<Row[]> {
  const seconds = opts.seconds ?? 5;
  const rounds = opts.rounds ?? 2;
  const pings = opts.pings ?? 600;
  const idleSeconds = opts.idleSeconds ?? 10;
  const say = (s: string) => opts.verbose && process.stderr.write(`offload: ${s}\n`);
  const flag = daemonHasOffloadFlag();
  const lab = new OffloadLab(flag, say);
  // `${kind}:${setup}` → per-round values (ping: every RTT); `p50:${setup}` each ping round's p50; `udpapp:${setup}` what iperf3 read
  const res = new Map<string, number[]>();
  const add = (k: string, ...xs: number[]) => res.set(k, [...(res.get(k) ?? []), ...xs]);
  const fail = new Map<string, string>();
  const idle: { fresh?: number; after?: number } = {};
  // interrupted (Ctrl-C, SIGTERM): build and measure nothing more, remove everything, then exit
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    signal = sig;
    lab.interrupted = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await lab.buildMain();
    const pid = lab.main.proc?.pid;
    if (lab.pairs.un && pid && !lab.interrupted) {
      say('idle CPU, fresh daemon with two containers');
      idle.fresh = await idleCpu(pid, 2, idleSeconds);
    }
    await lab.buildRest();
    await lab.warmUp();
    say(`warm: ${Object.keys(lab.pairs).join(', ')}`);
    for (let round = 0; round < rounds; round++) {
      for (const [kind, s] of JOBS) {
        const p = lab.pairs[s];
        const key = `${kind}:${s}`;
        if (!p || lab.interrupted || fail.has(key)) continue;
        try {
          let v: number[];
          if (kind === 'ping') {
            v = pingTimes(p, Math.ceil(pings / rounds));
            add(`p50:${s}`, median(v));
          } else if (kind === 'udp') {
            const u = await udpPps(p, seconds);
            v = [u.delivered];
            add(`udpapp:${s}`, u.received);
          } else v = [(await iperf(p, seconds, kind === 'tcp8' ? ['-P', '8'] : [])).gbps];
          add(key, ...v);
          say(`round ${round + 1} ${key}: ${kind === 'ping' ? `${round2(median(v))} µs p50` : round2(v[0])}`);
        } catch (e) {
          fail.set(key, e instanceof Error ? e.message.split('\n')[0] : String(e));
          say(`${key} failed: ${fail.get(key)}`);
        }
      }
    }
    if (lab.pairs.un && pid && !lab.interrupted) {
      say('idle CPU after the traffic');
      idle.after = await idleCpu(pid, 2, idleSeconds);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await lab.cleanup();
    if (signal) process.exit(signal === 'SIGINT' ? 130 : 143);
  }
  return offloadRows({ seconds, rounds, pings, idleSeconds, flag, res, fail, errors: lab.errors, idle });
}

interface Results {
  seconds: number;
  rounds: number;
  pings: number;
  idleSeconds: number;
  flag: boolean;
  res: Map<string, number[]>;
  fail: Map<string, string>;
  errors: Partial<Record<Setup, string>>;
  idle: { fresh?: number; after?: number };
}

/** The table: each usernet measurement beside its anchor, with the target and whether it was met. */
function offloadRows(r: Results): Row[] {
  const val = (key: string) => median(r.res.get(key) ?? []);
  const why = (key: string) => {
    const s = key.split(':')[1] as Setup;
    return r.errors[s] ?? r.fail.get(key) ?? 'not measured';
  };
  const unit: Record<Kind, string> = { tcp: 'Gbit/s', tcp8: 'Gbit/s', udp: 'kpps', ping: 'µs' };
  const scale = (kind: Kind, x: number) => (kind === 'udp' ? x / 1000 : x);
  /** the per-round values of `kind` on setup `s` (ping: each round's p50) */
  const list = (kind: Kind, s: Setup) => (r.res.get(kind === 'ping' ? `p50:${s}` : `${kind}:${s}`) ?? []).map((x) => round2(scale(kind, x))).join('/');
  /** A row of `kind` for usernet setup `u` beside anchor `a`; `target` "≥ 0.8" / "≤ 1.0" or none. */
  const row = (name: string, kind: Kind, u: Setup, a: Setup, target?: string, extra = ''): Row => {
    const ku = `${kind}:${u}`;
    const ka = `${kind}:${a}`;
    const v = scale(kind, val(ku));
    const av = scale(kind, val(ka));
    const ratio = v / av;
    const notes: string[] = [];
    if (Number.isNaN(v)) notes.push(`${SETUP_NAMES[u]}: ${why(ku)}`);
    if (Number.isNaN(av)) notes.push(`${SETUP_NAMES[a]}: ${why(ka)}`);
    if (target) {
      const [op, t] = [target.slice(0, 1), Number(target.slice(1))];
      const met = op === '≥' ? ratio >= t : ratio <= t;
      notes.unshift(`target ${op} ${t.toFixed(1)}×: ${Number.isNaN(ratio) ? 'not measured' : met ? 'met' : 'NOT met'}`);
    }
    if (r.rounds > 1 && !Number.isNaN(v)) notes.push(`rounds ${list(kind, u)} (anchor ${list(kind, a)})${kind === 'ping' ? ' p50' : ''}`);
    if (extra) notes.push(extra);
    return { name, value: round2(v), unit: unit[kind], anchorName: SETUP_NAMES[a], anchor: round2(av), ratio, note: notes.join('; ') };
  };
  const idleRow = (name: string, pct: number | undefined): Row => ({
    name,
    value: round2(pct ?? NaN),
    unit: '% core',
    note: pct === undefined ? `not measured: ${r.errors.un ?? 'the main daemon did not run'}` : `target < 1%: ${pct < 1 ? 'met' : 'NOT met'}; utime+stime over ${r.idleSeconds} s, 2 s after quiet`,
  });
  const tcp = `${r.seconds}s ×${r.rounds}, median`;
  const offNote = r.flag ? `offload off is ${round2(val('tcp:unOff') / val('tcp:un'))}× of on` : 'the daemon has no --offload flag yet: this row and "usernet" both run without offloads';
  const kpps = (k: string) => round2(val(k) / 1000);
  const vnetPps = `tapfwd --vnet ${kpps('udp:cvnet')} kpps; iperf3 read ${kpps('udpapp:un')} (tapfwd ${kpps('udpapp:cfwd')}) kpps`;
  const vnetRtt = `tapfwd --vnet ${round2(val('ping:cvnet'))} µs`;
  return [
    row(`1. TCP 1 stream, one bridge (${tcp})`, 'tcp', 'un', 'kbr', '≥0.8', r.flag ? '' : offNote),
    row(`1. TCP 1 stream, one bridge (${tcp})`, 'tcp', 'un', 'cvnet', '≥1.0'),
    row(`1. TCP 1 stream, one bridge, --offload off (${tcp})`, 'tcp', 'unOff', 'kbr', undefined, r.flag ? offNote : ''),
    row(`2. TCP 8 streams, one bridge (${tcp})`, 'tcp8', 'un', 'kbr', '≥0.8'),
    row(`3. TCP container → outside via NAT (${tcp})`, 'tcp', 'unat', 'knat', '≥0.7'),
    row(`4. TCP overlay, 2 hosts (${tcp})`, 'tcp', 'uov', 'kvx', '≥0.5'),
    row(`4. TCP overlay -o encrypted, 2 hosts (${tcp})`, 'tcp', 'uovEnc', 'uov', '≥0.5'),
    row(`5. TCP macvlan endpoint → lan host (${tcp})`, 'tcp', 'umv', 'kmv', '≥0.5', 'veth parent with the kernel default offloads'),
    row(`6. UDP 64 B payload, delivered (${tcp}, -b 0)`, 'udp', 'un', 'cfwd', '≥1.0', vnetPps),
    row(`7. ping RTT p50 (${r.pings} pings, 5 ms apart)`, 'ping', 'un', 'cfwd', '≤1.0', vnetRtt),
    row(`7. ping RTT p50 (${r.pings} pings, 5 ms apart)`, 'ping', 'un', 'kbr', undefined, 'for reference'),
    idleRow('8. idle daemon CPU, fresh (2 containers)', r.idle.fresh),
    idleRow('8. idle daemon CPU, after all the traffic', r.idle.after),
  ];
}

// run directly: node dist/bench/offload.js [seconds] [rounds]
if (isMain(import.meta.url)) {
  const [s, n] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  printRows(benchOffload({ seconds: Number(s ?? 5), rounds: Number(n ?? 2), verbose: true }));
}
